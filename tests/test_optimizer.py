"""PostReasonSearch: finds the wording a (scripted) model needs, honestly: dev disjoint from train, the
baseline as given, justified demos, duplicates not re-scored, unparseable answers scored 0, LM-call cap,
resume after a killed process with the same demo sets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dspy
import optuna
import pytest
from search_helpers import EXPERT, exact, examples, trials_log
from search_worker import start_worker

from postreason_dspy import Direct, PostReason
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.optimizers.candidates import (
    apply_candidate,
    instruction_candidates,
    prompt_instructions,
    rebuild_from_study,
)
from postreason_dspy.optimizers.demos import read_demo_sets
from postreason_dspy.optimizers.post_reason_search import PostReasonSearch
from postreason_dspy.optimizers.study import open_study
from postreason_dspy.optimizers.wordings import POST_REASONING_WORDINGS
from postreason_dspy.testing import scripted_lm


def picky(engine):
    """Right on training questions, and on others only when the system message says an expert will review
    the justification; always justified."""
    def script(user: str) -> dict[str, str]:
        system = engine.requests[-1].messages[0]["content"]
        right = EXPERT in system or "train" in user.split("[[ ## question ## ]]")[-1]
        return {"answer": "right" if right else "wrong", "rationale": "since it is so"}
    return script


def picky_lm():
    lm, engine = scripted_lm({})
    engine.script = picky(engine)
    return lm, engine


def test_candidates_reword_only_post_reasoning_predictors():
    class Program(dspy.Module):
        def __init__(self):
            super().__init__()
            self.restate = Direct("question -> givens")
            self.solve = PostReason("question, givens -> answer")

    program = Program()
    restate, solve = instruction_candidates(program, POST_REASONING_WORDINGS)
    assert [w["instructions"] for w in restate] == [program.restate.predict.signature.instructions]
    assert solve[0]["instructions"] == program.solve.predict.signature.instructions
    assert len(solve) == len(POST_REASONING_WORDINGS)  # the default wording is the current one
    texts = [prompt_instructions(apply_candidate(program, [restate[0], w], [[], []]).solve.predict) for w in solve]
    assert all("`answer`" in text and "`rationale`" in text for text in texts)
    assert sum(EXPERT in text for text in texts) == 1


def test_search_finds_the_better_wording_within_budget(tmp_path):
    lm, _ = picky_lm()
    search = PostReasonSearch(exact, num_trials=10, num_demo_sets=2, max_bootstrapped_demos=1, run_dir=tmp_path)
    with dspy.context(lm=lm):
        best = search.compile(PostReason("question -> answer", mode="answer_only"),
                              trainset=examples(4, "train"), valset=examples(4, "d"))
        assert best(question="new").answer == "right"
    assert best.score == 1.0 and EXPERT in prompt_instructions(best.predict)
    lines = trials_log(tmp_path)
    complete = [line for line in lines if line["state"] == "complete"]
    assert len(complete) == 10 and len({line["number"] for line in complete}) == 10
    assert complete[0]["baseline"] and complete[0]["dev_score"] == 0.0  # the unmodified program, first
    assert all(line["lm_calls"] == 4 and line["input_tokens"] > 0 for line in complete)
    record = json.loads((tmp_path / "search.json").read_text())
    assert record["stopped"] == "budget" and record["baseline"]["dev_score"] == 0.0
    # Duplicates are recorded with the earlier score, and not scored again.
    for line in lines:
        if line["state"] == "duplicate":
            earlier = next(c for c in complete if c["number"] == line["duplicate_of"])
            assert line["dev_score"] == earlier["dev_score"] and line["lm_calls"] == 0
            assert line["instructions"] == earlier["instructions"]


def test_valset_is_required_and_disjoint_from_trainset():
    search = PostReasonSearch(exact, num_trials=2)
    program = PostReason("question -> answer")
    with pytest.raises(ConfigurationError, match="non-empty valset"):
        search.compile(program, trainset=examples(3))
    with pytest.raises(ConfigurationError, match="shares 2 examples"):
        search.compile(program, trainset=examples(3), valset=examples(2))


def test_baseline_is_the_program_as_given_and_demos_are_justified(tmp_path):
    lm, engine = scripted_lm({"answer": "right", "rationale": "because it is"})
    program = PostReason("question -> answer", mode="answer_only")
    program.predict.demos = [dspy.Example(question="given", answer="right", rationale="my own demo")]
    search = PostReasonSearch(exact, num_trials=3, num_demo_sets=2, max_bootstrapped_demos=2, run_dir=tmp_path)
    with dspy.context(lm=lm):
        best = search.compile(program, trainset=examples(6, "t"), valset=examples(2, "d"))
    assert any(r.stop == () for r in engine.requests)  # the teacher ran in full mode
    baseline = trials_log(tmp_path)[0]
    assert baseline["baseline"] and baseline["demo_set_ids"][0].startswith("given:")
    first_dev_prompt = next(r.prompt for r in engine.requests if "d0" in r.prompt)
    assert "my own demo" in first_dev_prompt  # the baseline trial kept the program's own demos
    document = read_demo_sets(tmp_path / "demo_sets.json")
    assert document["sets"] and all(d["rationale"] == "because it is"
                                    for entry in document["sets"] for d in entry["demos"][0])
    assert all(set(entry["example_ids"]) <= {f"t{i}" for i in range(6)} for entry in document["sets"])
    assert best.predict.demos and all(str(demo.get("rationale") or "").strip() for demo in best.predict.demos)


def test_unparseable_answers_score_zero_and_the_search_goes_on(tmp_path):
    def script(user: str):
        return "no fields at all" if "d1" in user or "d2" in user else {"answer": "right", "rationale": "so"}

    lm, _ = scripted_lm(script)
    search = PostReasonSearch(exact, num_trials=3, num_demo_sets=0, run_dir=tmp_path)
    with dspy.context(lm=lm):
        best = search.compile(PostReason("question -> answer", mode="answer_only"),
                              trainset=examples(2, "t"), valset=examples(4, "d"))
    complete = [line for line in trials_log(tmp_path) if line["state"] == "complete"]
    assert len(complete) == 3
    assert all(line["dev_score"] == 0.5 and line["unparsed"] == 2 for line in complete)
    assert best.score == 0.5


def test_max_lm_calls_stops_cleanly_and_says_so(tmp_path):
    lm, engine = picky_lm()
    search = PostReasonSearch(exact, num_trials=10, num_demo_sets=0, run_dir=tmp_path, max_lm_calls=10)
    with dspy.context(lm=lm):
        best = search.compile(PostReason("question -> answer"), trainset=examples(2, "t"), valset=examples(4, "d"))
    assert len(engine.requests) == 10
    states = [line["state"] for line in trials_log(tmp_path)]
    assert states.count("complete") == 2 and states[-1] == "pruned"
    assert best.record["stopped"] == "max_lm_calls" and best.record["lm_calls"] == 10  # the pruned trial's 2 included
    assert json.loads((tmp_path / "search.json").read_text())["stopped"] == "max_lm_calls"


def test_a_resume_that_scores_nothing_keeps_the_searchs_total_time(tmp_path):
    def search_once() -> dict:
        lm, _ = picky_lm()
        with dspy.context(lm=lm):
            search = PostReasonSearch(exact, num_trials=3, num_demo_sets=1, max_bootstrapped_demos=1, run_dir=tmp_path)
            search.compile(PostReason("question -> answer", mode="answer_only"),
                           trainset=examples(2, "t"), valset=examples(3, "d"))
        return json.loads((tmp_path / "search.json").read_text())

    first = search_once()
    scored = sum(line["seconds"] for line in trials_log(tmp_path) if line["state"] == "complete")
    assert first["seconds_total"] == pytest.approx(scored + first["bootstrap"]["seconds"], abs=0.01)
    second = search_once()  # the study is finished: no LM call, no trial
    assert second["lm_calls"] == first["lm_calls"] and second["seconds_total"] == first["seconds_total"]


def test_storage_without_study_name_gets_a_deterministic_one(tmp_path):
    storage = f"sqlite:///{tmp_path}/shared.db"
    names = []
    for _ in range(2):
        lm, _ = picky_lm()
        with dspy.context(lm=lm):
            best = PostReasonSearch(exact, num_trials=2, num_demo_sets=0, storage=storage).compile(
                PostReason("question -> answer"), trainset=examples(2, "t"), valset=examples(2, "d"))
        names.append(best.study.study_name)
    assert names[0] == names[1] and names[0].startswith("postreason-")
    assert len(optuna.get_all_study_summaries(storage)) == 1


# ----- a real process killed in the middle of a trial -----

def kill_mid_trial(worker: subprocess.Popen, run_dir: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (run_dir / "mid-trial").exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the worker never reached the slow call"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    (run_dir / "mid-trial").unlink()


def test_search_killed_mid_trial_resumes_with_the_same_demo_sets(tmp_path):
    run_dir = tmp_path / "run"
    # 4 bootstrap calls (or fewer), then 3 dev calls per trial: call 12 is inside the third trial.
    first = start_worker(run_dir, trials=6, slow_after=12)
    kill_mid_trial(first, run_dir)
    demo_hash = read_demo_sets(run_dir / "demo_sets.json")["hash"]
    before = trials_log(run_dir)
    assert 1 <= len([line for line in before if line["state"] == "complete"]) < 6

    second = start_worker(run_dir, trials=6, slow_after=-1)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert read_demo_sets(run_dir / "demo_sets.json")["hash"] == demo_hash
    lines = trials_log(run_dir)
    interrupted = [line for line in lines if line["state"] == "interrupted"]
    assert len(interrupted) == 1
    complete = [line for line in lines if line["state"] == "complete"]
    assert len(complete) == 6 and len({line["number"] for line in complete}) == 6
    assert complete[0]["baseline"]
    retried = [line for line in complete if line["retry_of"] == interrupted[0]["number"]]
    assert len(retried) == 1 and retried[0]["params"] == interrupted[0]["params"]
    study = open_study(f"sqlite:///{run_dir / 'study.db'}", optuna.get_all_study_names(
        f"sqlite:///{run_dir / 'study.db'}")[0], 0)
    assert "demo_sets" in study.user_attrs
    rebuilt = rebuild_from_study(PostReason("question -> answer", mode="answer_only"), study)
    assert f"BEST {float(out.split()[-1])}" in out
    best_line = max((line for line in complete), key=lambda line: (line["dev_score"], -line["number"]))
    assert prompt_instructions(rebuilt.predict) == best_line["instructions"][0]  # from the storage alone
