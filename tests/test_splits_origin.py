"""`postreason benchmarks show` says where the tuning split comes from, truthfully per source."""

from __future__ import annotations

from postreason_dspy.benchmarks.splits import tuning_origin
from postreason_dspy.cli import main


def test_origin_follows_the_published_splits():
    assert tuning_origin(["test", "train", "dev"], "mmlu", "package") == (
        "official", "MMLU's dev (5-shot) set as train and its validation set as dev")
    kind, wording = tuning_origin(["test", "dev"], "arc_challenge", "package")
    assert kind == "official, divided" and wording.startswith("ARC-Challenge's published validation set")
    kind, wording = tuning_origin(["test"], "gsm8k", "package")
    assert kind == "carved" and "20% of its items" in wording
    assert tuning_origin([None], "x", "file")[0] == "carved"


def test_show_names_the_origin_and_sizes_of_a_local_file(tmp_path, monkeypatch, capsys):
    rows = [f'{{"question": "q{i}", "answer": "{i}"}}' for i in range(50)]
    (tmp_path / "gsm8k.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("POSTREASON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["benchmarks", "show", "gsm8k"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tuning split"))
    assert "[carved] from the official evaluation split" in line
    assert "train " in line and "; test " in line
