"""scripts/pool_comparisons.py on two synthetic comparisons (one as a runs/ folder, one as its results/ copy):
each program against ours at B per benchmark and pooled (the pooled p is the exact McNemar on the summed
discordant pairs), costs summed, and issue 23's targets said met or not met."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from postreason_dspy.evaluation.records import ExampleRecord, RunStore

ROOT = Path(__file__).resolve().parents[1]
N = 20
# Questions (by index) each program answers right, per benchmark.
RIGHT = {
    "commonsense_qa": {"direct": range(6), "post": range(8), "ours_B": range(12), "ours_half_B": range(9),
                       "miprov2_B": [*range(8), 15], "bfsrs_B": range(13), "gepa_B": range(6)},
    "arc_challenge": {"direct": range(5), "post": range(7), "ours_B": range(10), "ours_half_B": range(8),
                      "miprov2_B": [*range(6), 12, 13], "bfsrs_B": range(10)},
}


def load_script():
    spec = importlib.util.spec_from_file_location("pool_comparisons", ROOT / "scripts" / "pool_comparisons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def records(benchmark: str, right: dict) -> list[ExampleRecord]:
    return [ExampleRecord(model="local", benchmark=benchmark, strategy=label, id=f"q{i}", status="ok",
                          correct=i in set(chosen)) for label, chosen in right.items() for i in range(N)]


def comparison(folder: Path, benchmark: str, right: dict, *, copy: bool) -> Path:
    """compare.json as compare_optimizers.py writes it; the test answers as a run (test/) or its copy."""
    optimizers = {label: {"lm_calls": 100 * (k + 1), "input_tokens": 1000, "output_tokens": 50, "seconds": 120.0}
                  for k, label in enumerate(label for label in right if label.endswith("_B"))}
    folder.mkdir(parents=True)
    (folder / "compare.json").write_text(json.dumps({
        "kind": "compare_optimizers", "command": f"python scripts/compare_optimizers.py --benchmark {benchmark}",
        "model": "local", "benchmark": benchmark, "budget": 300, "train_size": 40, "dev_size": 50, "test_size": N,
        "optimizers": optimizers}))
    if copy:
        lines = [json.dumps(record.to_dict()) for record in records(benchmark, right)]
        (folder / "test-examples.jsonl").write_text("\n".join(lines) + "\n")
    else:
        store = RunStore.create(folder, {"config": {}}, "test")
        for record in records(benchmark, right):
            store.append(record)
    return folder


@pytest.fixture
def folders(tmp_path):
    return [comparison(tmp_path / "runs" / "compare-csqa", "commonsense_qa", RIGHT["commonsense_qa"], copy=False),
            comparison(tmp_path / "results" / "compare-arc", "arc_challenge", RIGHT["arc_challenge"], copy=True)]


def test_each_program_against_ours_per_benchmark_and_pooled(folders, tmp_path):
    script = load_script()
    assert script.main([*map(str, folders), "--out", str(tmp_path / "pooled")]) == 0
    result = json.loads((tmp_path / "pooled" / "pooled.json").read_text())
    csqa = {row["arm"]: row for row in result["per_benchmark"]["commonsense_qa"]}
    assert list(csqa) == ["ours_half_B", "miprov2_B", "bfsrs_B", "gepa_B", "direct", "post"]  # tuned ones first
    assert (csqa["miprov2_B"]["treatment_accuracy"], csqa["miprov2_B"]["baseline_accuracy"]) == (0.6, 0.45)
    assert (csqa["miprov2_B"]["treatment_only"], csqa["miprov2_B"]["baseline_only"]) == (4, 1)
    pooled = {row["arm"]: row for row in result["pooled"]}
    mipro = pooled["miprov2_B"]
    # discordant pairs summed over the two benchmarks: ours alone right 4 + 4, MIPROv2 alone 1 + 2
    assert (mipro["ours_only"], mipro["arm_only"], mipro["pairs"]) == (8, 3, 2 * N)
    assert mipro["p_value"] == pytest.approx(2 * sum(math.comb(11, k) for k in range(4)) / 2 ** 11)
    assert (mipro["ours_accuracy"], mipro["arm_accuracy"]) == (pytest.approx(22 / 40), pytest.approx(17 / 40))
    assert (mipro["lm_calls"], mipro["input_tokens"], mipro["seconds"]) == (600, 2000, 240.0)
    assert pooled["gepa_B"]["benchmarks"] == ["commonsense_qa"]  # measured on one benchmark only
    assert pooled["direct"]["lm_calls"] is None
    text = (tmp_path / "pooled" / "pooled.md").read_text()
    assert "| pooled | miprov2_B | 40 | 42.5% | 55.0% | +12.5 pp | 8/3 | 0.227 | 600 | 2,100 | 4.0 |" in text


def test_the_targets_are_met_or_not_with_the_reason(folders):
    result = load_script().pool(folders)
    at_b, half = result["targets"]
    assert not at_b["met"]
    assert at_b["unmet"] == ["commonsense_qa: ours_B vs bfsrs_B", "arc_challenge: ours_B vs gepa_B (not measured)"]
    assert half["met"] and len(half["checks"]) == 2  # 9 vs 9 and 8 vs 8: at least as accurate


def test_every_target_met(tmp_path):
    right = {name: {**arms, "bfsrs_B": range(4), "gepa_B": range(3)} for name, arms in RIGHT.items()}
    folders = [comparison(tmp_path / name, name, right[name], copy=True) for name in right]
    assert [goal["met"] for goal in load_script().pool(folders)["targets"]] == [True, True]


def test_two_comparisons_of_one_benchmark_are_refused(tmp_path):
    folders = [comparison(tmp_path / name, "commonsense_qa", RIGHT["commonsense_qa"], copy=True) for name in "ab"]
    with pytest.raises(SystemExit, match="two comparisons of the same benchmark"):
        load_script().pool(folders)


def test_a_comparison_without_test_answers_is_refused(tmp_path):
    folder = comparison(tmp_path / "c", "commonsense_qa", RIGHT["commonsense_qa"], copy=True)
    (folder / "test-examples.jsonl").unlink()
    with pytest.raises(SystemExit, match=r"no test/ run and no test-examples\.jsonl"):
        load_script().pool([folder])
