"""Reports from constructed run records: terminal tables, markdown, PNG plots, and comparing two runs."""

from __future__ import annotations

import io
import json
import os

import pytest
from rich.console import Console

from postreason_dspy.cli import main
from postreason_dspy.distill.run import distill_folder
from postreason_dspy.evaluation import RunStore, render_summary, summarize, write_comparison, write_report
from postreason_dspy.evaluation.records import ExampleRecord
from postreason_dspy.finetune.run import record_folder
from postreason_dspy.formatting import interval, number, p_value, pct, plural, points, ratio
from postreason_dspy.run_folder import COMPARE, RunFolder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def config_document(benchmarks=("b1", "b2"), strategies=("direct", "post", "cot"), size=4):
    return {
        "created": "2025-01-01T00:00:00+00:00",
        "command": "postreason eval --model m",
        "config": {"models": ["m"], "benchmarks": list(benchmarks), "strategies": list(strategies),
                   "split": "test", "seed": 0},
        "models": {"m": {"model": "hosted_vllm/local", "api_base": "http://127.0.0.1:8765/v1"}},
        "benchmarks": {name: {"family": "math", "source": "a test file", "example_ids": [f"q{i}" for i in range(size)]}
                       for name in benchmarks},
    }


def make_run(tmp_path, run_id, correct):
    """`correct[(benchmark, strategy)]` is the list of per-example flags; tokens grow with the strategy."""
    tokens = {"direct": 10, "post": 11, "cot": 100}
    benchmarks = tuple(dict.fromkeys(b for b, _ in correct))
    strategies = tuple(dict.fromkeys(s for _, s in correct))
    store = RunStore.create(tmp_path, config_document(benchmarks, strategies, len(next(iter(correct.values())))),
                            run_id=run_id)
    for (benchmark, strategy), flags in correct.items():
        for i, ok in enumerate(flags):
            store.append(ExampleRecord(model="m", benchmark=benchmark, strategy=strategy, id=f"q{i}", status="ok",
                                       correct=ok, prompt_tokens=50, completion_tokens=tokens[strategy],
                                       latency_s=tokens[strategy] / 20, finish_reason="stop"))
    return store


RESULTS = {
    ("b1", "direct"): [True, False, False, False],
    ("b1", "post"): [True, True, False, False],
    ("b1", "cot"): [True, True, True, False],
    ("b2", "direct"): [False, False, False, False],
    ("b2", "post"): [True, False, False, False],
    ("b2", "cot"): [False, False, False, False],
}


def test_report_files_and_terminal_tables(tmp_path):
    store = make_run(tmp_path, "run", RESULTS)
    summary, files = write_report(store)
    names = {path.name for path in files}
    assert names == {"report.md", "accuracy_by_setting.png", "relative_improvement.png", "accuracy_vs_tokens.png"}
    for path in files:
        assert path.parent == store.report_dir
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 5000

    report = (store.report_dir / "report.md").read_text()
    assert "**post**: post beats direct in 2 of 2 settings (100.0%" in report
    assert "mean relative improvement +100.0% (over 1 setting with direct accuracy > 0)" in report
    assert "| m | b1 | post | 4 | 50.0% | 25.0% | +25.0 pp |" in report
    assert "| m | b2 | cot | 4 | 0.0% | 0.0% | +0.0 pp | [+0.0, +0.0] | - | 0/0 | 1 | 10.00x | 10.00x |" in report
    assert "![accuracy by setting](accuracy_by_setting.png)" in report
    assert "model `m`: model=hosted_vllm/local" in report

    output = io.StringIO()
    render_summary(summary, Console(file=output, width=250))
    text = output.getvalue()
    assert "Accuracy by setting" in text and "Against direct answer" in text
    assert "cot beats direct in 1 of 2 settings (50.0%; 1 tie, 0 losses), 0 significantly better and 0" in text


def test_report_of_an_unfinished_run_says_so(tmp_path):
    results = {("b1", "direct"): [True, False], ("b1", "post"): [True, True]}
    store = make_run(tmp_path, "run", results)
    document = store.read_config()
    document["benchmarks"]["b1"]["example_ids"].append("q2")  # one example never ran
    store.write_json("config.json", document)
    summary, _ = write_report(store, with_plots=False)
    assert not summary.complete and (summary.recorded, summary.expected) == (4, 6)
    assert "examples recorded: 4 of 6 (incomplete)" in (store.report_dir / "report.md").read_text()


def test_compare_two_runs(tmp_path):
    before = make_run(tmp_path, "before", {("b1", "post"): [True, False, False, False]})
    after = make_run(tmp_path, "after", {("b1", "post"): [True, True, True, False]})
    comparison, path = write_comparison(before, after)
    (row,) = comparison.rows
    assert (row.baseline_accuracy, row.treatment_accuracy, row.treatment_only, row.baseline_only) == (0.25, 0.75, 2, 0)
    assert path == after.report_dir / "compare-before.md"
    assert "| m | b1 | post | 4 | 25.0% | 75.0% | +50.0 pp |" in path.read_text()


def test_report_command(tmp_path, capsys):
    make_run(tmp_path, "old", RESULTS)
    latest = make_run(tmp_path, "new", RESULTS)
    assert main(["report", "--runs-dir", str(tmp_path), "--no-plots"]) == 0
    assert (latest.report_dir / "report.md").exists()
    out = tmp_path / "out"
    assert main(["report", "new", "--runs-dir", str(tmp_path), "--compare", "old", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"report.md", "compare-old.md", "accuracy_vs_tokens.png"}
    assert "Run B (new) against run A (old)" in capsys.readouterr().out


def test_report_without_a_run_takes_the_latest_evaluation_run_never_a_newer_folder_of_another_kind(tmp_path, capsys):
    evaluation = make_run(tmp_path, "eval", RESULTS)
    newer = [record_folder(tmp_path, "ft", False, {"command": "postreason finetune"}).config_path,
             RunFolder.ensure(tmp_path / "cmp", COMPARE, {"command": "compare"}).config_path,
             distill_folder(tmp_path / "dist").config_path]
    (tmp_path / "tune").mkdir()  # a tune run, and a fine-tuning record from before the kind marker
    (tmp_path / "tune" / "tune.json").write_text(json.dumps({"kind": "tune", "config": {}}))
    (tmp_path / "old-ft").mkdir()
    (tmp_path / "old-ft" / "config.json").write_text(json.dumps({"command": "postreason finetune", "config": {}}))
    (tmp_path / "old-ft" / "finetune.json").write_text("{}")
    newer += [tmp_path / "tune" / "tune.json", tmp_path / "old-ft" / "config.json"]
    os.utime(evaluation.path / "config.json", (1_000, 1_000))
    for path in newer:
        os.utime(path, (2_000, 2_000))
    assert main(["report", "--runs-dir", str(tmp_path), "--no-plots"]) == 0
    assert (evaluation.report_dir / "report.md").exists() and not (tmp_path / "old-ft" / "report").exists()
    assert main(["report", "ft", "--runs-dir", str(tmp_path), "--no-plots"]) == 2
    assert "is a fine-tuning record, not an evaluation run" in " ".join(capsys.readouterr().err.split())


def test_summary_answers_accuracy_and_comparison_either_way_round(tmp_path):
    store = make_run(tmp_path, "one", {("b1", "direct"): [True, False, False, True],
                                      ("b1", "post"): [True, True, True, False]})
    summary = summarize(store.records(), store.run_id, store.read_config())
    assert (summary.accuracy("post"), summary.accuracy("direct"), summary.accuracy("cot")) == (0.75, 0.5, None)
    (recorded,) = summary.comparisons
    assert summary.comparison("post", "direct") == recorded and (recorded.treatment_only, recorded.baseline_only) == (
        2, 1)
    flipped = summary.comparison("direct", "post")  # looked up either way, read the way asked
    assert (flipped.treatment, flipped.baseline, flipped.treatment_accuracy, flipped.baseline_accuracy) == (
        "direct", "post", 0.5, 0.75)
    assert (flipped.treatment_only, flipped.baseline_only, flipped.p_value) == (1, 2, recorded.p_value)
    assert flipped.difference == -recorded.difference == -0.25
    assert flipped.difference_ci == (-recorded.difference_ci[1], -recorded.difference_ci[0])
    assert flipped.relative_improvement == pytest.approx(-1 / 3) and recorded.relative_improvement == 0.5
    assert flipped.token_ratio == pytest.approx(10 / 11) and recorded.token_ratio == pytest.approx(11 / 10)
    assert summary.comparison("post", "cot") is None
    several = summarize(make_run(tmp_path, "two", RESULTS).records(), "two")
    with pytest.raises(ValueError, match="several models or benchmarks"):
        several.accuracy("post")
    with pytest.raises(ValueError, match="several models or benchmarks"):
        several.comparison("direct", "post")


def test_summary_json_round_trip_matches_report(tmp_path):
    store = make_run(tmp_path, "run", RESULTS)
    summary = summarize(store.records(), store.run_id, store.read_config())
    assert summary.complete and summary.expected == 24
    assert [line.strategy for line in summary.headline] == ["post", "cot"]
    assert summary.to_dict()["comparisons"][0]["difference"] == pytest.approx(0.25)


def test_report_out_must_be_a_directory(tmp_path, capsys):
    make_run(tmp_path, "run", RESULTS)
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    assert main(["report", "run", "--runs-dir", str(tmp_path), "--out", str(taken), "--no-plots"]) == 2
    assert "notes.txt is a file, not a directory" in " ".join(capsys.readouterr().err.split())
    assert taken.read_text() == "mine"


def test_report_of_a_run_with_a_corrupt_config_is_one_line(tmp_path, capsys):
    store = make_run(tmp_path, "run", RESULTS)
    (store.path / "config.json").write_text('{"config": {"models": [')
    assert main(["report", "run", "--runs-dir", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "config.json is corrupt (not valid JSON" in err


def test_named_pairs_get_their_own_table(tmp_path):
    results = {("b1", "direct"): [True, False, False, False], ("b1", "post"): [True, True, False, False],
               ("b1", "cot"): [True, True, True, False]}
    store = make_run(tmp_path, "run", results)
    document = store.read_config()
    document["config"]["pairs"] = [["cot", "post"]]
    store.write_json("config.json", document)
    _, files = write_report(store, with_plots=False)
    report = files[0].read_text()
    assert "## Other pairs, on the same examples" in report
    assert "| m | b1 | cot | post | 4 | 75.0% | 50.0% | +25.0 pp |" in report


def test_the_report_is_scrubbed_too(tmp_path, monkeypatch):
    """A run written by an older version, with a URL password in its command, does not pass it on."""
    store = make_run(tmp_path, "run", RESULTS)
    document = store.read_config()
    document["command"] = "postreason eval --api-base http://alice:hunter2-pass@10.0.0.1/v1"
    document["models"]["m"]["note"] = "tok-0123456789"
    monkeypatch.setenv("SERVICE_TOKEN", "tok-0123456789")
    (store.path / "config.json").write_text(json.dumps(document))
    _, files = write_report(RunStore.open("run", tmp_path), with_plots=False)
    report = files[0].read_text()
    assert "alice:[redacted]@10.0.0.1" in report and "hunter2" not in report and "tok-0123456789" not in report


def test_figures_print_one_way_everywhere():
    """Every report prints through postreason_dspy.formatting: small p-values keep their order of magnitude."""
    assert [p_value(p) for p in (0.5, 0.0432, 0.001, 0.000123, None)] == ["0.5", "0.0432", "0.001", "1.2e-04", "-"]
    assert pct(0.4567) == "45.7%" and pct(0.05, signed=True) == "+5.0%" and pct(None) == "-"
    assert interval((-0.05, 0.125), signed=True) == "[-5.0, +12.5]" and points(0.031) == "+3.1 pp"
    assert ratio(1.5) == "1.50x" and number(None) == "-" and plural(2, "loss", "losses") == "2 losses"
