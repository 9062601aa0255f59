"""`postreason tune` end to end on a scripted model: search on train/dev, program.json, held-out test through
the evaluation harness (only test ids), the dev-chosen recommendation confirmed on test, resume, report."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import read_program
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import JsonlLog
from postreason_dspy.optimizers.candidates import prompt_instructions
from postreason_dspy.testing import scripted_lm
from postreason_dspy.tuning import TuneConfig, TuneRun, recommend
from postreason_dspy.tuning.report import write_tune_report
from postreason_dspy.tuning.run import TUNE_SEARCH

EXPERT = "An expert will review"
GOLD = re.compile(r"gold-([A-E])")


def post_only(**search: Any) -> dict[str, Any]:
    """TuneConfig keywords for the search these pipeline tests run: post-reasoning candidates with justified
    demos (no direct candidate, no bare demos), so a few trials find the wording the scripted model needs;
    `search` changes the rest of the tune's search settings."""
    return {"direct_candidate": False, "search": replace(TUNE_SEARCH, demo_styles=("justified",), **search)}


def csqa_file(folder: Path, n: int = 120) -> Path:
    rows = []
    for i in range(n):
        gold = "ABCDE"[i * 7 % 5]
        rows.append({"id": f"q{i}", "question": f"question {i} gold-{gold}?", "answerKey": gold,
                     "choices": {"label": list("ABCDE"), "text": [f"option {x}" for x in "abcde"]}})
    path = folder / "csqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def expert_model():
    """Right when told an expert reviews the justification, or when asked for the justification (the teacher);
    otherwise always 'A' (right one time in five)."""
    lm, engine = scripted_lm({})

    def script(user: str) -> dict[str, str]:
        request = engine.requests[-1]
        question = user.split("[[ ## question ## ]]")[-1]
        gold = GOLD.search(question).group(1)
        teacher = request.stop == () and "rationale" in user.split("Respond with")[-1]  # full mode
        right = EXPERT in request.messages[0]["content"] or teacher
        return {"answer": gold if right else "A", "rationale": f"because {gold} fits", "reasoning": "hm"}

    engine.script = script
    return lm, engine


def test_tune_run_measures_and_recommends_the_tuned_program(tmp_path):
    data = csqa_file(tmp_path)
    lm, engine = expert_model()
    config = TuneConfig(models=("scripted",), benchmark="commonsense_qa", train_size=8, dev_size=8, limit=20,
                        data=str(data), **post_only(num_trials=8, num_demo_sets=2, max_bootstrapped_demos=1))
    run = TuneRun.create(tmp_path / "runs", config, "t1", lm_factory=lambda *a, **k: lm)
    summary = run.run()
    row = summary["models"]["scripted"]
    assert row["dev"]["tuned"] == 1.0 and row["dev"]["untuned"] < 1.0
    assert row["test"]["tuned"] == 1.0 and row["test"]["direct"] < 1.0
    assert row["recommendation"] == "tuned" and row["confirmed_on_test"] is True
    assert row["p_values"]["tuned_vs_untuned"] is not None and row["trials"] == 8
    assert row["tuning_lm_calls"] > 0 and row["tuning_tokens"]["input"] > 0
    assert json.loads((run.path / "summary.json").read_text())["models"]["scripted"]["recommendation"] == "tuned"

    # The held-out comparison used test questions only, the same ones for every strategy.
    bench = get_benchmark("commonsense_qa")
    splits = bench.splits(data)
    tuning_ids = {str(ex.id) for ex in splits["train"] + splits["dev"]}
    test_run = run.path / "scripted" / "test"
    ids = json.loads((test_run / "config.json").read_text())["benchmarks"]["commonsense_qa"]["example_ids"]
    assert len(ids) == 20 and set(ids) <= {str(ex.id) for ex in splits["test"]} and not set(ids) & tuning_ids
    records = [json.loads(line) for line in (test_run / "examples.jsonl").read_text().splitlines()]
    by_strategy: dict[str, set] = {}
    for record in records:
        by_strategy.setdefault(record["strategy"], set()).add(record["id"])
    assert set(by_strategy) == {"direct", "post", "post_tuned"} and all(v == set(ids) for v in by_strategy.values())
    trial_lines = JsonlLog(run.path / "scripted" / "trials.jsonl").read()[0]
    assert all(set(line["demo_ids"][0]) <= tuning_ids for line in trial_lines if line["demo_ids"])

    # program.json rebuilds the tuned program from the file alone.
    saved = read_program(run.path / "scripted" / "program.json")
    assert saved.model == "scripted" and saved.metadata["dev_scores"]["tuned"] == 1.0
    assert EXPERT in prompt_instructions(saved.build().choose.predict)

    # Resuming a finished run redoes nothing.
    calls = len(engine.requests)
    again = TuneRun.open("t1", tmp_path / "runs", lm_factory=lambda *a, **k: lm).run()
    assert len(engine.requests) == calls and again["models"]["scripted"]["test"] == row["test"]

    # The report: per model the test table, the chosen wording and demos, a PNG of dev score by trial.
    markdown, files = write_tune_report(run.path)
    assert EXPERT in markdown and "tuned" in markdown and "confirmed on test" in markdown
    assert any(path.suffix == ".png" and path.stat().st_size > 0 for path in files)


def test_recommendation_is_chosen_on_dev_and_checked_on_test():
    tie = recommend({"direct": 0.5, "untuned": 0.5, "tuned": 0.5}, {"direct": 0.4, "untuned": 0.45, "tuned": 0.5})
    assert tie["recommendation"] == "direct" and tie["confirmed_on_test"] is False
    win = recommend({"direct": 0.5, "untuned": 0.52, "tuned": 0.6}, {"direct": 0.5, "untuned": 0.5, "tuned": 0.5})
    assert win["recommendation"] == "tuned" and win["confirmed_on_test"] is True
    assert "dev 60.0%, test 50.0%" in win["recommendation_text"]


def measured(**p_values):
    """McNemar's p of option pairs as `recommend` asks for it: either order, None when not measured."""
    pairs = {frozenset(key.split("_vs_")): value for key, value in p_values.items()}
    return lambda a, b: pairs.get(frozenset((a, b)))


def test_a_recommendation_best_on_test_by_a_non_significant_margin_says_so():
    dev, test = {"direct": 0.50, "untuned": 0.58, "tuned": 0.68}, {"direct": 0.53, "untuned": 0.51, "tuned": 0.565}
    weak = recommend(dev, test, measured(tuned_vs_direct=0.401, untuned_vs_tuned=0.126))
    assert (weak["confirmed_on_test"], weak["significant_on_test"]) == (True, False)
    assert "best on test, but not significantly (McNemar p 0.401 vs direct, 0.126 vs untuned)" in weak[
        "recommendation_text"]
    strong = recommend(dev, test, measured(tuned_vs_direct=0.0006, tuned_vs_untuned=0.0066))
    assert (strong["confirmed_on_test"], strong["significant_on_test"]) == (True, True)
    # p-values print as every report prints them (postreason_dspy.formatting.p_value)
    assert "; confirmed on test (McNemar p 6.0e-04 vs direct, 0.0066 vs untuned)" in strong["recommendation_text"]
    unknown = recommend(dev, test, measured(tuned_vs_direct=0.0006))
    assert unknown["significant_on_test"] is None and unknown["recommendation_text"].endswith("confirmed on test)")


def test_bad_settings_fail_with_one_line():
    with pytest.raises(ConfigurationError, match="--program-strategy"):
        TuneConfig(models=("local",), benchmark="gsm8k", program_strategy="direct")
    with pytest.raises(ConfigurationError, match="--study needs --storage"):
        TuneConfig(models=("local",), benchmark="gsm8k", study="s")


def test_cli_tune_interrupted_twice_resumes_with_nothing_lost(tmp_path, monkeypatch, capsys):
    from postreason_dspy.cli import main
    from postreason_dspy.tuning import run as tune_module

    data = csqa_file(tmp_path)
    lm, engine = expert_model()
    script = engine.script
    interrupt_at = {12, 45}  # inside the search, then inside the held-out evaluation

    def interrupting(user: str):
        if len(engine.requests) in interrupt_at:
            interrupt_at.discard(len(engine.requests))
            raise KeyboardInterrupt
        return script(user)

    engine.script = interrupting
    monkeypatch.setattr(tune_module, "resolve_lm", lambda *a, **k: lm)
    args = ["tune", "--model", "scripted", "--benchmark", "commonsense_qa", "--data", str(data), "--trials", "5",
            "--train-size", "6", "--dev-size", "6", "--limit", "10", "--demo-sets", "1", "--max-demos", "1",
            "--demo-styles", "justified", "--no-direct-candidate",
            "--runs-dir", str(tmp_path / "runs"), "--run-id", "r", "--no-progress"]
    assert main(args) == 130
    folder = tmp_path / "runs" / "r" / "scripted"
    assert [line["state"] for line in JsonlLog(folder / "trials.jsonl").read()[0]].count("interrupted") == 1
    assert main(["tune", "--resume", "r", "--trials", "3", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert ("--resume continues a run with its own settings: drop the options that would change them (--trials); "
            "start a new run for other settings") in " ".join(capsys.readouterr().err.split())
    assert main(["tune", "--resume", "r", "--runs-dir", str(tmp_path / "runs")]) == 130  # live display on
    assert (folder / "test" / "config.json").is_file() and not interrupt_at
    assert main(["tune", "--resume", "r", "--runs-dir", str(tmp_path / "runs")]) == 0  # with the live display
    lines = JsonlLog(folder / "trials.jsonl").read()[0]
    assert [line["state"] for line in lines].count("complete") == 5 and lines[0]["baseline"]
    records = (folder / "test" / "examples.jsonl").read_text().splitlines()
    assert len(records) == 30 and len({(json.loads(r)["strategy"], json.loads(r)["id"]) for r in records}) == 30
    out = capsys.readouterr().out
    assert "scripted: use" in out and "summary:" in out
    assert main(["report", "r", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert (tmp_path / "runs" / "r" / "report" / "dev-by-trial-scripted.png").is_file()
    assert "Tune run r: commonsense_qa" in capsys.readouterr().out


def test_a_storage_password_is_never_written(tmp_path, monkeypatch):
    from postreason_dspy.tuning import run as tune_module

    config = TuneConfig(models=("local",), benchmark="gsm8k", storage="postgresql://tuner:s3cret@127.0.0.1:1/optuna",
                        study="shared")
    with pytest.raises(ConfigurationError, match=r"cannot open the Optuna storage postgresql://tuner:\[redacted\]@"):
        TuneRun.create(tmp_path, config, "pw")  # nothing listens there: one line, no folder
    assert not (tmp_path / "pw").exists()
    monkeypatch.setattr(tune_module, "check_storage", lambda url: None)
    run = TuneRun.create(tmp_path, config, "pw")
    assert "s3cret" not in (run.path / "tune.json").read_text()
    with pytest.raises(ConfigurationError, match="give the URL again with --storage"):
        TuneRun.open("pw", tmp_path)
    assert TuneRun.open("pw", tmp_path, storage=config.storage).config.storage == config.storage


def test_with_direct_demos_the_test_also_runs_direct_with_the_tuned_demos(tmp_path):
    """The control that separates the demos' share: direct given the tuned program's demos, minus justifications."""
    data = csqa_file(tmp_path)
    lm, engine = expert_model()
    config = TuneConfig(models=("scripted",), benchmark="commonsense_qa", train_size=8, dev_size=8, limit=10,
                        data=str(data), with_direct_demos=True,
                        **post_only(num_trials=6, num_demo_sets=2, max_bootstrapped_demos=1))
    run = TuneRun.create(tmp_path / "runs", config, "c1", lm_factory=lambda *a, **k: lm)
    row = run.run()["models"]["scripted"]
    folder = run.path / "scripted"
    tuned_demos = read_program(folder / "program.json").state["choose.predict"]["demos"]
    control = read_program(folder / "direct_demos.json")
    assert tuned_demos and control.strategy == "direct"
    demos = control.state["choose.predict"]["demos"]
    assert [d["question"] for d in demos] == [d["question"] for d in tuned_demos]
    assert all("rationale" not in d and d["answer"] for d in demos)
    # The expert model is right only under the post wording: the demos alone do not make direct right.
    assert row["test"]["tuned"] == 1.0 and row["test"]["direct_demos"] < 0.5
    assert row["p_values"]["tuned_vs_direct_demos"] is not None
    direct_demo_requests = [r for r in engine.requests if tuned_demos[0]["question"] in str(r.messages)
                            and "rationale" not in r.messages[0]["content"]]
    assert len(direct_demo_requests) >= 10  # every test question asked with the demo in the prompt
    assert "--with-direct-demos" in run.config.command()
    assert "direct answer with the tuned program's demos" in write_tune_report(run.path, with_plots=False)[0]


def test_a_direct_candidate_that_wins_the_race_is_the_recommendation_and_says_so(tmp_path):
    """The answer format is a candidate too: a model right only when answering directly with demos gets a
    direct program recommended, by name, and program.json rebuilds it as one."""
    data = csqa_file(tmp_path)
    lm, engine = scripted_lm({})

    def script(user: str) -> dict[str, str]:
        request = engine.requests[-1]
        gold = GOLD.search(user.split("[[ ## question ## ]]")[-1]).group(1)
        teacher = request.stop == () and "rationale" in user.split("Respond with")[-1]  # full mode bootstraps
        direct_with_demos = len(request.messages) > 2 and "rationale" not in request.prompt
        return {"answer": gold if teacher or direct_with_demos else "A", "rationale": f"because {gold} fits"}

    engine.script = script
    config = TuneConfig(models=("scripted",), benchmark="commonsense_qa", train_size=8, dev_size=8, limit=10,
                        data=str(data), search=replace(TUNE_SEARCH, num_trials=10, max_bootstrapped_demos=1))
    # ^ the default search: demos, styles, formats
    run = TuneRun.create(tmp_path / "runs", config, "d1", lm_factory=lambda *a, **k: lm)
    row = run.run()["models"]["scripted"]
    assert row["tuned_format"] == "direct" and row["recommendation"] == "tuned"
    assert row["recommendation_text"].startswith("tuned direct answer") and row["dev"]["direct"] < 1.0
    saved = read_program(run.path / "scripted" / "program.json")
    assert saved.strategy == "direct" and saved.metadata["format"] == "direct"
    assert saved.state["choose.predict"]["demos"] and row["test"]["tuned"] == 1.0
    assert not (run.path / "scripted" / "direct_demos.json").exists()  # the tuned program is that control already
    assert "tuned direct answer" in write_tune_report(run.path, with_plots=False)[0]
