"""`postreason distill` on benchmark data: the leakage guard, official-test warnings, GPQA never written."""

from __future__ import annotations

import json

import dspy
import pytest
from gpqa_fake import fake_gpqa, leaked, write_program_with_demos

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import main
from postreason_dspy.distill import program as distill_program
from postreason_dspy.distill.program import DistillJob, run_distill_job
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.testing import scripted_lm

PLANTED = "Tom has 2 apples and buys 3 more. How many apples does Tom have?"
VALUES = {"answer": "5", "rationale": "2 + 3 = 5"}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def scripted(monkeypatch):
    lm, engine = scripted_lm(VALUES)
    monkeypatch.setattr("postreason_dspy.cli.distill.resolve_lm", lambda *args, **kwargs: lm)
    return engine


def _gsm8k_program(tmp_path):
    path = tmp_path / "program.json"
    save_program(get_benchmark("gsm8k").program("post"), path, benchmark="gsm8k", strategy="post", model="local")
    return path


def test_a_planted_test_question_is_skipped_counted_and_named(tmp_path, data_dir, scripted, monkeypatch, capsys):
    train = [{"id": f"g{n}", "question": f"What is {n} + {5 - n}?", "answer": "5", "split": "train"} for n in range(4)]
    planted = {"id": "g-planted", "question": PLANTED, "answer": "5", "split": "train"}
    others = [{"id": "t1", "question": "What is 1 + 1?", "answer": "2"},
              {"id": "d1", "question": "What is 1 + 2?", "answer": "3", "split": "dev"}]  # train and dev published
    _jsonl(data_dir / "gsm8k.jsonl", [*train, planted, *others])
    _jsonl(data_dir / "math500.jsonl", [
        {"problem": "tom HAS 2 apples,  and buys 3 more -- how many apples does tom have", "answer": "5",
         "split": "test"},
        {"problem": "What is 2 + 2?", "answer": "4", "split": "train"},
    ])
    checked = [get_benchmark(name) for name in ("gsm8k", "math500", "amc23")]
    monkeypatch.setattr(distill_program, "list_benchmarks", lambda: checked)
    out = tmp_path / "sft"

    assert main(["distill", str(_gsm8k_program(tmp_path)), "--out", str(out), "--split", "train"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "skipped as test questions: g-planted (math500)" in printed
    assert "not checked for test overlap: amc23" in printed
    assert "official" not in printed  # the file publishes a train split: nothing carved from its test set
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_overlap"] == 1 and summary["overlaps"] == {"g-planted": ["math500"]}
    assert summary["kept"] + summary["rejected"] == len(train)
    assert PLANTED not in (out / "train.jsonl").read_text()
    assert "Tom has" not in (out / "train.jsonl").read_text()
    card = (out / "README.md").read_text()
    assert "Checked against the test splits of: gsm8k, math500." in card
    assert "- `amc23`: " in card and "`g-planted`: in math500" in card
    assert "Licence of the source data: MIT" in card and "Source model: `local`" in card
    assert len(scripted.requests) == len(train)  # the planted question never reached the model

    assert main(["distill", str(_gsm8k_program(tmp_path)), "--out", str(out), "--rationalize"]) == 2
    assert "other settings (rationalize differ)" in " ".join(capsys.readouterr().err.split())


def test_a_tuning_split_carved_from_the_official_test_set_is_announced(tmp_path, data_dir):
    rows = [{"id": f"q{n}", "question": f"What is {n} + 1?", "answer": str(n + 1)} for n in range(40)]
    _jsonl(data_dir / "gsm8k.jsonl", rows)
    said = []
    lm, _ = scripted_lm(VALUES)
    job = DistillJob(program=_gsm8k_program(tmp_path), out=tmp_path / "sft", limit=2)
    stats, about, _ = run_distill_job(job, lm, guard_benchmarks=[], say=said.append)
    assert stats.kept + stats.rejected == 2
    assert said == [about.official_test_warning]
    assert "overlaps GSM8K grade-school math's official evaluation set" in said[0]
    assert "do not use it to train a model that will be evaluated on GSM8K" in said[0]
    assert said[0] in (tmp_path / "sft" / "README.md").read_text()


def test_only_tuning_splits_are_distilled(tmp_path):
    lm, _ = scripted_lm(VALUES)
    with pytest.raises(ConfigurationError, match="tuning split"):
        run_distill_job(DistillJob(program=_gsm8k_program(tmp_path), out=tmp_path / "o", split="test"), lm)


def test_gpqa_text_never_reaches_an_output_folder(tmp_path, data_dir, scripted, capsys):
    secrets = fake_gpqa(data_dir)
    bench = get_benchmark("gpqa")
    with_demos = bench.program("post")
    with_demos.choose.predict.demos = [
        dspy.Example(**example.inputs(), answer=example.answer, rationale="because") for example in
        bench.load("test", limit=2)
    ]
    assert len(with_demos.choose.predict.demos) == 2
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigurationError, match="must never be stored in plain text"):
        save_program(with_demos, tmp_path / "gpqa-demos.json", benchmark="gpqa", strategy="post", model="local")
    assert not (tmp_path / "gpqa-demos.json").exists()
    write_program_with_demos(with_demos, tmp_path / "gpqa-demos.json")
    save_program(bench.program("post"), tmp_path / "gpqa-plain.json", benchmark="gpqa", strategy="post")

    for fmt in ("messages", "text", "python", "jinja", "dspy"):
        assert main(["export", str(tmp_path / "gpqa-demos.json"), "--format", fmt, "--out", str(out / fmt)]) == 2
        assert "must never be stored in plain text" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "gpqa-plain.json"), "--format", "messages", "--out",
                 str(out / "plain.json")]) == 0
    for program in ("gpqa-demos.json", "gpqa-plain.json"):
        assert main(["distill", str(tmp_path / program), "--out", str(out / "sft")]) == 2
        assert "must never be stored in plain text" in capsys.readouterr().err
    assert main(["distill", str(tmp_path / "gpqa-demos.json"), "--benchmark", "mmlu", "--out",
                 str(out / "sft-mmlu")]) == 2

    assert sorted(path.name for path in out.iterdir()) == ["plain.json"]
    assert not scripted.requests
    assert "Answer the multiple-choice question." in (out / "plain.json").read_text()  # there, without GPQA's text
    assert not leaked(out, secrets)
