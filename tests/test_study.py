"""`postreason report R1 R2 --study`: the study's table merged across runs and models, from scripted runs."""

from __future__ import annotations

import json
import math

import pytest

from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import RunStore
from postreason_dspy.evaluation.records import ExampleRecord
from postreason_dspy.evaluation.study import build_study
from postreason_dspy.evaluation.study_report import write_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scripted_run(tmp_path, run_id, served, outcomes, tokens=(10, 8), golds=None):
    """A run of `--model local` against a server that served `served`; outcomes[benchmark] = (direct, post) flags."""
    size = len(next(iter(outcomes.values()))[0])
    config = {
        "created": "2026-01-01T00:00:00+00:00",
        "command": f"postreason eval --model local --benchmark {','.join(outcomes)} --strategy direct,post",
        "config": {"models": ["local"], "benchmarks": list(outcomes), "strategies": ["direct", "post"],
                   "split": "test", "seed": 0},
        "models": {"local": {"model": "hosted_vllm/local", "kind": "local", "local_model": served}},
        "benchmarks": {name: {"family": "multiple_choice", "source": "a file",
                              "example_ids": [f"q{i}" for i in range(size)]} for name in outcomes},
    }
    store = RunStore.create(tmp_path, config, run_id=run_id)
    for benchmark, flags in outcomes.items():
        for strategy, column, cost in (("direct", flags[0], tokens[0]), ("post", flags[1], tokens[1])):
            for i, ok in enumerate(column):
                gold = golds[benchmark][i] if golds else None
                store.append(ExampleRecord(model="local", benchmark=benchmark, strategy=strategy, id=f"q{i}",
                                           status="ok", gold=gold, correct=ok, prompt_tokens=40, completion_tokens=cost,
                                           latency_s=0.5, finish_reason="stop"))
    return store


def flags(right: int, n: int = 20, offset: int = 0) -> list[bool]:
    return [offset <= i < offset + right for i in range(n)]


@pytest.fixture
def two_models(tmp_path):
    big = scripted_run(tmp_path, "big", "qwen2.5-coder-1.5b", {
        "clear_win": (flags(2), flags(14)),  # post right on 12 more questions: McNemar p 0.00049
        "noise": (flags(8), flags(9)),  # one discordant pair
        "zero": (flags(0), flags(3)),  # direct scored 0: no relative gain
        "only_big": (flags(10), flags(6)),  # measured on this model only
    })
    small = scripted_run(tmp_path, "small", "qwen2.5-coder-0.5b", {
        "clear_win": (flags(5), flags(5)),  # a tie
        "noise": (flags(12), flags(0)),  # post much worse: p 0.00049
    }, tokens=(10, 20))
    return tmp_path, big, small


def test_study_merges_models_and_counts_significance(two_models):
    _, big, small = two_models
    study = build_study([big, small])
    assert study.models == ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"]
    rows = {(row.comparison.model, row.comparison.benchmark): row for row in study.rows}
    assert len(rows) == 6 and ("qwen2.5-coder-0.5b", "only_big") not in rows
    win = rows["qwen2.5-coder-1.5b", "clear_win"].comparison
    assert (win.baseline_accuracy, win.treatment_accuracy, win.treatment_only, win.baseline_only) == (0.1, 0.7, 12, 0)
    assert win.p_value == pytest.approx(2 / 2**12)

    line, figures = study.headline, study.headline.figures
    assert (figures.settings, figures.wins, figures.ties, figures.losses) == (6, 3, 1, 2)
    assert (figures.significant_wins, figures.significant_losses) == (1, 1)
    # relative gains: clear_win +600%, noise(1.5b) +12.5%, only_big -40%, tie 0%, noise(0.5b) -100%; zero left out
    assert figures.mean_relative_improvement == pytest.approx((6.0 + 0.125 - 0.4 + 0.0 - 1.0) / 5)
    assert line.left_out == ["qwen2.5-coder-1.5b / zero: direct answer scored 0, so a relative gain is undefined"]
    # pooled discordant pairs: post-only 12 + 1 + 3 + 0 + 0 + 0 = 16; direct-only 0 + 0 + 0 + 4 + 0 + 12 = 16
    assert (line.pooled.favourable, line.pooled.unfavourable, line.pooled.p_value) == (16, 16, 1.0)
    assert (line.sign_test.favourable, line.sign_test.unfavourable) == (3, 2)
    assert line.sign_test.p_value == pytest.approx(1.0)
    by_model = {h.model: h for h in study.by_model}
    assert (by_model["qwen2.5-coder-1.5b"].figures.wins, by_model["qwen2.5-coder-1.5b"].figures.settings) == (3, 4)
    assert by_model["qwen2.5-coder-0.5b"].figures.token_ratio == pytest.approx(2.0)
    assert by_model["qwen2.5-coder-1.5b"].pooled.p_value == pytest.approx(
        2 * sum(math.comb(20, k) for k in range(5)) / 2**20)  # 16 against 4


def test_study_command_writes_table_json_and_forest_plot(two_models, capsys):
    tmp_path, _, _ = two_models
    assert main(["report", "big", "small", "--study", "--runs-dir", str(tmp_path)]) == 0
    out = tmp_path / "study"
    text = " ".join(capsys.readouterr().out.split())
    assert "post beats direct in 3 of 6 settings (50.0%; the study: 88.19%; 1 tied, 2 lost)" in text
    assert "1 significantly better and 1 significantly worse" in text
    report = (out / "report.md").read_text()
    assert "| qwen2.5-coder-1.5b | clear_win | 20 | – | 10.0% | 70.0% | +60.0 pp * |" in report
    assert "Measured on only some models: zero (only qwen2.5-coder-1.5b); only_big (only qwen2.5-coder-1.5b)" in report
    assert "left out: qwen2.5-coder-1.5b / zero" in report
    assert "### qwen2.5-coder-0.5b" in report and "![forest plot](forest.png)" in report
    data = json.loads((out / "study.json").read_text())
    assert data["headline"]["significant_wins"] == 1 and data["models"] == ["qwen2.5-coder-1.5b",
                                                                          "qwen2.5-coder-0.5b"]
    assert {row["benchmark"] for row in data["rows"] if row["significant"]} == {"clear_win", "noise"}
    assert (out / "forest.png").read_bytes().startswith(PNG_MAGIC)


def test_study_refuses_a_setting_measured_twice_and_runs_without_pairs(tmp_path):
    first = scripted_run(tmp_path, "first", "m", {"b": (flags(1), flags(2))})
    again = scripted_run(tmp_path, "again", "m", {"b": (flags(1), flags(2))})
    with pytest.raises(ConfigurationError, match="m / b is in both run first and run again"):
        build_study([first, again])
    config = {"created": "x", "command": "c", "config": {"models": ["m"], "benchmarks": ["b"],
              "strategies": ["direct"], "split": "test", "seed": 0},
              "models": {"m": {"model": "m"}}, "benchmarks": {"b": {"family": "math", "source": "f",
                                                                    "example_ids": ["q0"]}}}
    lone = RunStore.create(tmp_path, config, run_id="lone")
    lone.append(ExampleRecord(model="m", benchmark="b", strategy="direct", id="q0", status="ok", correct=True))
    with pytest.raises(ConfigurationError, match="no setting in lone has both post and direct"):
        build_study([lone])


def test_report_refuses_several_runs_without_study(two_models, capsys):
    tmp_path, _, _ = two_models
    assert main(["report", "big", "small", "--runs-dir", str(tmp_path)]) == 2
    assert "report one run, or merge several with --study" in capsys.readouterr().err


def test_write_study_without_plots_writes_no_png(two_models):
    tmp_path, big, small = two_models
    _, files = write_study([big, small], tmp_path / "out", with_plots=False)
    assert [path.name for path in files] == ["report.md", "study.json"]


def test_each_setting_shows_what_always_giving_its_commonest_answer_scores(tmp_path):
    """A near-chance model can gain by answering "yes" more often: the majority column shows that floor."""
    yes_no = ["A"] * 12 + ["B"] * 8
    store = scripted_run(tmp_path, "bias", "qwen2.5-coder-0.5b", {
        "boolq_like": (flags(8), flags(12)),
        "no_key": (flags(5), flags(5)),
    }, golds={"boolq_like": yes_no, "no_key": [None] * 20})
    rows = {row.comparison.benchmark: row for row in build_study([store]).rows}
    assert rows["boolq_like"].majority == pytest.approx(12 / 20)
    assert rows["no_key"].majority is None
    write_study([store], tmp_path / "out", with_plots=False)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| qwen2.5-coder-0.5b | boolq_like | 20 | 60.0% | 40.0% | 60.0% |" in report
    assert "| qwen2.5-coder-0.5b | no_key | 20 | – |" in report
    data = json.loads((tmp_path / "out" / "study.json").read_text())
    assert [row["majority"] for row in data["rows"]] == [0.6, None]
