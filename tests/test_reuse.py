"""postreason_dspy.evaluation.reuse: an earlier run stands for an arm only with the same weights, settings,
data and questions (matched by id), and says why when it cannot."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from postreason_dspy.evaluation import EvalConfig
from postreason_dspy.evaluation.records import ExampleRecord, RunStore
from postreason_dspy.evaluation.reuse import Source, Want, plan, question_ids
from postreason_dspy.testing import requested_order, scripted_lm

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = "qwen2.5-coder-1.5b"
IDS = [f"q{i}" for i in range(6)]


def make_run(runs: Path, run_id: str, *, ids=IDS, weights=WEIGHTS, strategies=("direct", "post"), **settings) -> Source:
    config = {"benchmarks": ["csqa"], "strategies": list(strategies), "split": "test", "max_tokens": 512,
              "temperature": 0.0, "data": {}, "programs": {}, **settings}
    store = RunStore.create(runs, {"config": config, "models": {"local": {"local_model": weights}}}, run_id)
    for strategy in strategies:
        for qid in ids:
            store.append(ExampleRecord(model="local", benchmark="csqa", strategy=strategy, id=qid, status="ok",
                                       correct=qid == "q0"))
    return Source.open(run_id, runs)


WANT = Want(WEIGHTS, 512, 0.0, {"csqa": IDS})


@pytest.mark.parametrize(("settings", "why"), [
    ({"max_tokens": 256}, "max_tokens 256, not 512"),
    ({"temperature": 0.7}, "temperature 0.7, not 0.0"),
    ({"split": "dev"}, "split 'dev', not 'test'"),
    ({"data": {"csqa": "my.jsonl"}}, "its data came from my.jsonl"),
    ({"weights": "qwen2.5-coder-0.5b"}, "it served qwen2.5-coder-0.5b, not qwen2.5-coder-1.5b"),
    ({"weights": f"{WEIGHTS}+lora-abc"}, f"it served {WEIGHTS}+lora-abc, not {WEIGHTS}"),
    ({"programs": {"post": "tuned.json"}}, "post is a program file there"),
    ({"ids": [f"other{i}" for i in range(6)]}, "it answered 0 of the 6 questions"),  # as many, not the same
    ({"ids": IDS[:4]}, "it answered 4 of the 6 questions"),
])
def test_a_run_that_differs_is_refused_with_why(tmp_path, settings, why):
    records, reason = make_run(tmp_path, "earlier", **settings).arm(("csqa", "post"), WANT)
    assert records is None and reason == why


def test_a_matching_run_gives_the_wanted_questions_in_order(tmp_path):
    source = make_run(tmp_path, "earlier", ids=[*reversed(IDS), "q6", "q7"])  # more questions, other order
    records, reason = source.arm(("csqa", "direct"), WANT)
    assert reason is None and [record.id for record in records] == IDS
    assert source.arm(("gsm8k", "direct"), WANT) == (None, None)  # never evaluated there: nothing to say


def test_the_plan_takes_the_first_run_that_can_stand_for_each_arm(tmp_path):
    short = make_run(tmp_path, "short", max_tokens=256)
    direct = make_run(tmp_path, "direct-only", strategies=("direct",))
    both = make_run(tmp_path, "both")
    result = plan([short, direct, both], [("csqa", "direct"), ("csqa", "post"), ("sciq", "post")], WANT)
    assert {arm: run for arm, (run, _) in result.found.items()} == {("csqa", "direct"): "direct-only",
                                                                    ("csqa", "post"): "both"}
    assert result.missing == [("sciq", "post")]
    assert result.refused[("csqa", "post")] == ["short: max_tokens 256, not 512"]
    assert result.refusals() == []  # the refused arm was found elsewhere; sciq no run had


def test_question_ids_are_those_the_study_run_evaluated():
    config = json.loads((ROOT / "results" / "study" / "runs" / "study-1.5b-core" / "config.json").read_text())
    assert question_ids("commonsense_qa", 300) == config["benchmarks"]["commonsense_qa"]["example_ids"]


def test_a_new_run_copies_the_arms_an_earlier_run_answered_and_asks_only_the_rest(tmp_path):
    from test_runner import post_fixes_odd, run

    lm, engine = scripted_lm(post_fixes_odd)
    first, _ = run(tmp_path, lm, run_id="first")  # direct and post on six questions
    asked = len(engine.requests)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct", "post", "cot"), limit=None)
    second, summary = run(tmp_path, lm, config, run_id="second", reuse=[Source.open("first", tmp_path)])

    new = [requested_order(request.messages[-1]["content"]) for request in engine.requests[asked:]]
    assert len(new) == 6 and all("reasoning" in fields for fields in new)  # only chain-of-thought was asked
    answers = {(r.strategy, r.id): (r.answer, r.correct, r.completion) for r in first.records()}
    assert {(r.strategy, r.id): (r.answer, r.correct, r.completion)
            for r in second.records() if r.strategy != "cot"} == answers
    assert second.read_config()["reused"] == {"fake/arith/direct": "first", "fake/arith/post": "first"}
    post_vs_direct = summary.comparison("post", "direct")
    assert (post_vs_direct.treatment_only, post_vs_direct.baseline_only) == (3, 0)  # paired across the copy

    earlier = [Source.open("first", tmp_path)]
    third, _ = run(tmp_path, lm, replace(config, max_tokens=256), run_id="third", reuse=earlier)
    assert len(engine.requests) == asked + 6 + 18 and third.read_config()["reused"] == {}  # other settings: all asked


def test_eval_reuse_from_is_a_setting_resume_refuses(tmp_path, capsys):
    from postreason_dspy.cli import main

    code = main(["eval", "--resume", "some-run", "--reuse-from", "other", "--runs-dir", str(tmp_path)])
    assert code == 2 and "--reuse-from" in capsys.readouterr().err
