"""PostReasonSearch finds the instruction wording and demos a (scripted) model answers best with."""

from __future__ import annotations

import dspy

from postreason_dspy import Direct, PostReason
from postreason_dspy.optimizers.post_reason_search import PostReasonSearch, instruction_candidates
from postreason_dspy.optimizers.wordings import POST_REASONING_WORDINGS
from postreason_dspy.testing import scripted_lm


def exact(example, pred, trace=None):
    return pred.answer == example.answer


def examples(n: int) -> list[dspy.Example]:
    return [dspy.Example(question=f"q{i}", answer="right").with_inputs("question") for i in range(n)]


def picky_model(user_message: str) -> dict[str, str]:
    """Answers right only when told an expert will review its justification."""
    return {"answer": "right" if "An expert will review" in user_message else "wrong", "rationale": "since"}


def test_candidates_reword_only_post_reasoning_predictors():
    class Program(dspy.Module):
        def __init__(self):
            super().__init__()
            self.restate = Direct("question -> givens")
            self.solve = PostReason("question, givens -> answer")

    program = Program()
    restate, solve = instruction_candidates(program, POST_REASONING_WORDINGS)
    assert restate == [program.restate.predict.signature.instructions]
    assert solve[0] == program.solve.predict.signature.instructions
    assert len(solve) == len(POST_REASONING_WORDINGS)  # the default wording is the current one
    assert all("`answer`" in text and "`rationale`" in text for text in solve)


def test_search_finds_the_wording_the_model_needs(tmp_path):
    # The instructions reach the model in the system message; route it to the script.
    lm, engine = scripted_lm(picky_model)
    engine.script = lambda _user: picky_model(engine.requests[-1].messages[0]["content"])
    search = PostReasonSearch(exact, num_trials=10, num_demo_sets=1, storage=f"sqlite:///{tmp_path}/s.db",
                              study_name="picky")
    with dspy.context(lm=lm):
        best = search.compile(PostReason("question -> answer", mode="answer_only"), trainset=examples(4))
        assert best(question="new").answer == "right"
    assert best.score == 100.0
    assert best.study.trials[0].value == 0.0  # the unmodified program, scored first
    assert "An expert will review" in best.predict.signature.instructions

    # Resuming the stored study runs no new trials once num_trials are done.
    calls = len(engine.requests)
    with dspy.context(lm=lm):
        again = PostReasonSearch(exact, num_trials=10, num_demo_sets=1, storage=f"sqlite:///{tmp_path}/s.db",
                                 study_name="picky").compile(PostReason("question -> answer"), trainset=examples(4))
    assert len(engine.requests) == calls
    assert again.score == 100.0


def test_bootstrapped_demos_carry_justifications():
    lm, engine = scripted_lm({"answer": "right", "rationale": "because it is"})
    search = PostReasonSearch(exact, num_trials=3, num_demo_sets=4, max_bootstrapped_demos=2, max_labeled_demos=0)
    with dspy.context(lm=lm):
        best = search.compile(PostReason("question -> answer", mode="answer_only"), trainset=examples(6))
    demo_sets = [t.params["demos_0"] for t in best.study.trials]
    assert demo_sets[0] == 0
    assert all(d.get("rationale") == "because it is" for d in best.predict.demos)
    assert any(r.stop == () for r in engine.requests)  # the teacher ran in full mode
