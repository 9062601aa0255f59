"""The race (issue 23): demo sets of every size in two styles, a direct candidate, successive halving on growing
dev minibatches, and a budget of LM calls that counts everything: on a scripted model whose right answers depend
on exactly one of these choices."""

from __future__ import annotations

import re

import dspy
import pytest
from search_helpers import EXPERT, exact, examples, trials_log

from postreason_dspy import DEFAULT_INSTRUCTION, Direct, PostReason
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.optimizers import PostReasonSearch
from postreason_dspy.optimizers.demos import read_demo_sets
from postreason_dspy.optimizers.racing import ETA, cost_per_candidate, demo_sets_for_budget, steps
from postreason_dspy.testing import scripted_lm

JUSTIFICATION = "since it is so"
QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(\w+)")  # a question's value in a prompt (a demo's or the asked one)


def model(right_when):
    """A scripted model right exactly when `right_when(prompt)`; the teacher (full mode) is always right."""
    lm, engine = scripted_lm({})

    def script(user: str) -> dict[str, str]:
        request = engine.requests[-1]
        right = request.stop == () or right_when(request.prompt, user)
        return {"answer": "right" if right else "wrong", "rationale": JUSTIFICATION}

    engine.script = script
    return lm, engine


def half_right(prompt: str, user: str) -> bool:
    """Right on even-numbered dev questions only: a candidate scores 50%."""
    question = QUESTION.findall(user)[-1]
    return int(question.lstrip("d")) % 2 == 0


def post() -> PostReason:
    return PostReason("question -> answer", mode="answer_only")


def test_steps_grow_geometrically_and_the_budget_sizes_the_demo_sets():
    assert steps(50, 5, "halving") == [5, 15, 50] and steps(50, 5, "bound") == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert steps(50, None, "bound") == [50] and steps(6, 10, "halving") == [6]
    assert cost_per_candidate(50, 5, "halving") == pytest.approx(5 + 10 / ETA + 35 / ETA**2)
    raced = demo_sets_for_budget(300, 1000, 50, 40, 5, "halving")
    assert raced > 4 * demo_sets_for_budget(300, 1000, 50, 40, None, "bound") > 0  # more, cheaper candidates
    assert demo_sets_for_budget(None, 16, 50, 40, None, "bound") == 16


def test_a_bad_candidate_is_eliminated_early_with_its_evidence_and_its_calls_counted(tmp_path):
    # The baseline is right on half the dev questions; the expert wording makes the model wrong on all.
    lm, _ = model(lambda prompt, user: EXPERT not in prompt and half_right(prompt, user))
    with dspy.context(lm=lm):
        best = PostReasonSearch(exact, num_trials=12, num_demo_sets=0, run_dir=tmp_path, minibatch=2,
                                pruner="halving").compile(post(), trainset=examples(2, "t"), valset=examples(18, "d"))
    log = trials_log(tmp_path)
    assert log[0]["baseline"] and log[0]["state"] == "complete" and log[0]["lm_calls"] == 18
    expert = [line for line in log if EXPERT in line["instructions"][0] and line["state"] == "pruned"]
    assert expert, "the expert wording never raced"
    evidence = expert[0]["eliminated"]
    # At 2 questions it had 0 right and could still reach 16/18 > 50%: the bound alone would go on; halving stops it.
    assert evidence == {"rule": "halving", "n": 2, "score": 0.0, "cutoff": 0.5, "keep": 1,
                        "reached": evidence["reached"], "eta": ETA}
    assert expert[0]["lm_calls"] == 2 and "successive halving" in expert[0]["note"]
    assert best.record["lm_calls"] == sum(line["lm_calls"] for line in log)  # eliminated trials' calls counted
    assert best.record["race"]["eliminated_by"]["halving"] >= 1
    assert best.record["race"]["steps"] == [2, 6, 18]


def test_racing_tries_many_more_candidates_at_the_same_budget(tmp_path):
    # Demos make this model wrong everywhere: most candidates are bad, and a race learns it from 2 questions.
    tried = {}
    for name, kwargs in (("full", {}), ("raced", {"minibatch": 2, "pruner": "halving"})):
        lm, engine = model(lambda prompt, user: "[[ ## question ## ]]\nt" not in prompt and half_right(prompt, user))
        with dspy.context(lm=lm):
            best = PostReasonSearch(exact, num_trials=100, num_demo_sets=20, max_bootstrapped_demos=2,
                                    wordings=(DEFAULT_INSTRUCTION,), run_dir=tmp_path / name, max_lm_calls=60,
                                    **kwargs).compile(post(), trainset=examples(10, "t"), valset=examples(18, "d"))
        assert len(engine.requests) == best.record["lm_calls"] <= 60  # bootstrap and every trial, eliminated or not
        assert best.record["bootstrap"]["lm_calls"] == 2 + 1 + 2 + 1 + 2  # POOL_SETS sets' worth; the rest drawn
        tried[name] = best.record["counted"]
    assert tried["full"] == 2 and tried["raced"] >= 4 * tried["full"]


def test_bare_and_justified_demo_sets_of_every_size_race_and_the_data_decides(tmp_path):
    # Right only when shown a demo whose justification is empty: bare demos must win.
    lm, _ = model(lambda prompt, _user: any(q.startswith("t") for q in QUESTION.findall(prompt))
                  and JUSTIFICATION not in prompt)
    with dspy.context(lm=lm):
        best = PostReasonSearch(exact, num_trials=12, num_demo_sets=4, max_bootstrapped_demos=3, run_dir=tmp_path,
                                demo_styles=("justified", "bare"), minibatch=2, pruner="halving").compile(
            post(), trainset=examples(12, "t"), valset=examples(6, "d"))
    sizes = [len(entry["example_ids"]) for entry in read_demo_sets(tmp_path / "demo_sets.json")["sets"]]
    assert sizes == [3, 2, 1, 3]  # the number of demos is searched too (0: the program's own, none)
    styles = {line["demo_style"] for line in trials_log(tmp_path) if line["state"] in ("complete", "pruned")}
    assert {"justified", "bare"} <= styles
    assert best.score == 1.0 and best.record["best"]["demo_style"] == "bare"
    assert best.predict.demos and all(demo["rationale"] == "" for demo in best.predict.demos)
    assert all(set(entry["example_ids"]) <= {f"t{i}" for i in range(12)}
               for entry in read_demo_sets(tmp_path / "demo_sets.json")["sets"])  # from train only


def test_a_direct_candidate_can_win_and_the_program_says_so(tmp_path):
    # Right only when the prompt does not ask for a justification at all (a direct answer).
    lm, _ = model(lambda prompt, _user: "rationale" not in prompt)
    with dspy.context(lm=lm):
        best = PostReasonSearch(exact, num_trials=10, num_demo_sets=2, max_bootstrapped_demos=1, run_dir=tmp_path,
                                demo_styles=("justified", "bare")).compile(
            post(), trainset=examples(4, "t"), valset=examples(3, "d"), direct=Direct("question -> answer"))
        assert best(question="new").answer == "right"
    assert best.format == "direct" and best.record["best"]["format"] == "direct" and best.score == 1.0
    assert "rationale" not in best.predict.signature.fields
    formats = [line["format"] for line in trials_log(tmp_path) if line["state"] != "duplicate"]
    assert formats[0] == "post" and "direct" in formats  # the baseline is the program as given
    assert best.record["formats"] == ["post", "direct"]
    with pytest.raises(ConfigurationError, match="pair up"):
        PostReasonSearch(exact, num_trials=2).compile(
            post(), trainset=examples(2, "t"), valset=examples(2, "d"), direct=dspy.Module())


def test_race_options_fail_with_one_line():
    with pytest.raises(ConfigurationError, match="give minibatch"):
        PostReasonSearch(exact, pruner="halving")
    with pytest.raises(ConfigurationError, match="demo_styles"):
        PostReasonSearch(exact, demo_styles=("terse",))
