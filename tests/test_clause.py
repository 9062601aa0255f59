"""The post-reasoning clause belongs to PostReason: optimizers that rewrite instructions keep it, saves keep it."""

from __future__ import annotations

import time

import dspy
import pytest

from postreason_dspy import DEFAULT_INSTRUCTION, PostReason
from postreason_dspy.export import export_prompts, render_messages
from postreason_dspy.predict import CLAUSE_KEY
from postreason_dspy.signatures import LEGACY_DEFAULT_INSTRUCTION, fill_clause, post_reason_instructions
from postreason_dspy.testing import requested_order, scripted_lm

VALUES = {"answer": "42", "rationale": "six sevens are forty-two"}
CLAUSE = fill_clause(DEFAULT_INSTRUCTION, ["answer"], "rationale")
TASK = "Multiply the two numbers in the question."
PROPOSAL = "Multiply the two numbers and give the product"


def _system(engine, index: int = -1) -> str:
    return engine.requests[index].messages[0]["content"]


def _squash(text: str) -> str:
    """The ChatAdapter indents instruction lines; compare their words."""
    return " ".join(text.split())


def test_the_signature_holds_the_task_instruction_and_the_request_holds_both():
    module = PostReason(dspy.Signature("question -> answer", TASK))
    assert module.predict.signature.instructions == TASK
    assert module.instruction == DEFAULT_INSTRUCTION
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        module(question="6 * 7?")
    assert _squash(f"{TASK}\n\n{CLAUSE}") in _squash(_system(engine))


def test_replacing_instructions_as_optimizers_do_keeps_the_clause():
    module = PostReason("question -> answer")
    predictor = module.predict
    predictor.signature = predictor.signature.with_instructions("A proposed instruction from an optimizer.")
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        module(question="6 * 7?", mode="answer_only")
    system = _squash(_system(engine))
    assert "A proposed instruction from an optimizer." in system
    assert _squash(CLAUSE) in system
    assert system.count("Give your final answer first") == 1


def test_the_clause_is_tunable_and_none_removes_it():
    module = PostReason("question -> answer", instruction="Answer in {outputs}; then argue in `{rationale}`.")
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        module(question="q")
        module.instruction = None
        module(question="q")
    assert "Answer in `answer`; then argue in `rationale`." in _system(engine, 0)
    assert "argue" not in _system(engine, 1) and "Give your final answer" not in _system(engine, 1)


def test_instructions_that_already_hold_the_clause_do_not_get_it_twice():
    module = PostReason("question -> answer")
    base = module.predict.signature.instructions
    module.predict.signature = module.predict.signature.with_instructions(
        post_reason_instructions(base, ["answer"], "rationale", DEFAULT_INSTRUCTION)
    )
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        module(question="q")
    assert _squash(_system(engine)).count(_squash(CLAUSE)) == 1


def test_saved_state_keeps_task_instruction_and_clause_apart(tmp_path):
    module = PostReason("question -> answer", instruction="Commit in {outputs}, then defend in `{rationale}`.")
    module.predict.signature = module.predict.signature.with_instructions("Tuned task text.")
    path = tmp_path / "program.json"
    module.save(str(path))
    loaded = PostReason("question -> answer")
    loaded.load(str(path))
    assert loaded.instruction == "Commit in {outputs}, then defend in `{rationale}`."
    assert loaded.predict.signature.instructions == "Tuned task text."
    assert loaded.dump_state()["predict"][CLAUSE_KEY] == loaded.instruction


@pytest.mark.parametrize("saved_clause", [DEFAULT_INSTRUCTION, LEGACY_DEFAULT_INSTRUCTION])
def test_an_older_state_with_the_clause_inside_its_instructions_loads_without_doubling_it(saved_clause):
    old = PostReason("question -> answer").dump_state()
    del old["predict"][CLAUSE_KEY]
    old["predict"]["signature"]["instructions"] = post_reason_instructions(
        "Old task text.", ["answer"], "rationale", saved_clause
    )
    loaded = PostReason("question -> answer")
    loaded.load_state(old)
    assert loaded.predict.signature.instructions == "Old task text."
    assert loaded.instruction == DEFAULT_INSTRUCTION
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        loaded(question="q")
    system = _squash(_system(engine))
    assert system.count("justify it step by step") == 1 and _squash(CLAUSE) in system


def test_an_older_state_without_any_clause_loads_with_the_default():
    old = PostReason("question -> answer").dump_state()
    del old["predict"][CLAUSE_KEY]
    old["predict"]["signature"]["instructions"] = "An instruction MIPROv2 wrote over the clause."
    loaded = PostReason("question -> answer")
    loaded.load_state(old)
    assert loaded.predict.signature.instructions == "An instruction MIPROv2 wrote over the clause."
    assert loaded.instruction == DEFAULT_INSTRUCTION


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.XMLAdapter()], ids=["chat", "xml"])
def test_export_renders_task_instruction_and_clause_as_sent(adapter):
    module = PostReason("question -> answer")
    module.predict.signature = module.predict.signature.with_instructions("Tuned task text.")
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=adapter):
        module(question="6 * 7?")
    (entry,) = export_prompts(module, adapter)["predictors"]
    assert render_messages(entry, {"question": "6 * 7?"}) == engine.requests[0].messages
    assert "Tuned task text." in entry["messages"][0]["content"]


def _mipro_script(user: str) -> dict[str, str]:
    """An obedient model for MIPROv2's proposer prompts (any fields) and for the task program."""
    values = {"answer": "42", "rationale": "six sevens", "proposed_instruction": PROPOSAL}
    return {name: values.get(name, f"some {name.replace('_', ' ')}") for name in requested_order(user)}


def test_a_miprov2_compile_keeps_the_clause_in_every_program_request():
    started = time.monotonic()
    lm, engine = scripted_lm(_mipro_script)
    trainset = [dspy.Example(question=f"{n} * 6?", answer="42").with_inputs("question") for n in range(6)]
    metric = lambda example, pred, trace=None: float(pred.answer == example.answer)  # noqa: E731
    optimizer = dspy.MIPROv2(metric=metric, prompt_model=lm, task_model=lm, auto=None, num_candidates=2,
                             max_bootstrapped_demos=1, max_labeled_demos=1, num_threads=1, verbose=False,
                             track_stats=False)
    with dspy.context(lm=lm):
        compiled = optimizer.compile(
            PostReason("question -> answer"), trainset=trainset[:4], valset=trainset[4:], num_trials=2,
            minibatch=False, requires_permission_to_run=False,
        )
        compiled(question="6 * 7?")
    program_requests = [r for r in engine.requests if "`answer`" in r.messages[0]["content"]
                        and "rationale" in r.messages[-1]["content"]]
    proposed = [r for r in program_requests if PROPOSAL in r.messages[0]["content"]]
    assert proposed, "MIPROv2 never tried its proposed instruction"
    assert all(_squash(CLAUSE) in _squash(r.messages[0]["content"]) for r in program_requests)
    assert _squash(CLAUSE) in _squash(_system(engine))
    assert time.monotonic() - started < 20
