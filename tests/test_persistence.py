"""Saving and loading: a post-reasoning program round-trips; a state with another field layout is refused."""

from __future__ import annotations

import json

import dspy
import pytest

from postreason_dspy import Direct, PostReason, StateMismatchError, StrictChainOfThought
from postreason_dspy.testing import scripted_lm


def tuned_program() -> PostReason:
    program = PostReason("question -> answer", rationale_field="justification", rationale_desc="why it holds")
    program.predict.signature = program.predict.signature.with_instructions("Answer first. Then justify.")
    program.predict.demos = [
        dspy.Example(question="2 + 2?", answer="4", justification="two and two make four"),
        dspy.Example(question="3 * 3?", answer="9", justification="three threes are nine"),
    ]
    return program


def test_round_trip_keeps_instructions_demos_and_rationale(tmp_path):
    path = tmp_path / "post.json"
    tuned_program().save(str(path))
    loaded = PostReason("question -> answer", rationale_field="justification")
    loaded.load(str(path))

    assert loaded.predict.signature.instructions == "Answer first. Then justify."
    assert [d["justification"] for d in loaded.predict.demos] == ["two and two make four", "three threes are nine"]
    assert loaded.predict.signature.output_fields["justification"].json_schema_extra["desc"] == "why it holds"

    lm, engine = scripted_lm({"answer": "5", "justification": "one more than four"})
    with dspy.context(lm=lm):
        pred = loaded(question="4 + 1?")
    assert (pred.answer, pred.justification) == ("5", "one more than four")
    assert "three threes are nine" in "\n".join(m["content"] for m in engine.requests[0].messages)


def test_saved_file_names_the_field_layout(tmp_path):
    path = tmp_path / "post.json"
    tuned_program().save(str(path))
    layout = json.loads(path.read_text())["predict"]["postreason_layout"]
    assert layout == {"inputs": ["question"], "outputs": ["answer", "justification"]}


@pytest.mark.parametrize(
    "other",
    [
        lambda: StrictChainOfThought("question -> answer"),
        lambda: Direct("question -> answer"),
        lambda: PostReason("question -> answer"),  # rationale named differently
    ],
    ids=["cot", "direct", "other-rationale-name"],
)
def test_state_from_another_layout_is_refused(tmp_path, other):
    path = tmp_path / "other.json"
    other().save(str(path))
    target = PostReason("question -> answer", rationale_field="justification")
    before = target.predict.signature.instructions
    with pytest.raises(StateMismatchError, match="field layout"):
        target.load(str(path))
    assert target.predict.signature.instructions == before


def test_plain_dspy_chain_of_thought_state_is_refused(tmp_path):
    path = tmp_path / "dspy_cot.json"
    dspy.ChainOfThought("question -> answer").save(str(path))
    with pytest.raises(StateMismatchError, match="prefixes"):
        PostReason("question -> answer").load(str(path))


def test_plain_dspy_state_with_matching_fields_loads(tmp_path):
    path = tmp_path / "dspy_predict.json"
    class Plain(dspy.Module):
        def __init__(self):
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

    plain = Plain()
    plain.predict.signature = plain.predict.signature.with_instructions("Be terse.")
    plain.save(str(path))
    direct = Direct("question -> answer")
    direct.load(str(path))
    assert direct.predict.signature.instructions == "Be terse."
