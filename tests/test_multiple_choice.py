"""Answer discipline: a multiple-choice answer field holds one offered letter, whatever the model wrote around it."""

from __future__ import annotations

from typing import Literal

import dspy
import pytest

from postreason_dspy import CompletionParseError, PostReason
from postreason_dspy.adapters import PlainTextAdapter
from postreason_dspy.programs.multiple_choice import MultipleChoice, offered_options, read_letter, render_options
from postreason_dspy.testing import scripted_lm

OPTIONS = render_options(["beach", "dairy farm", "television", "desert"])


@pytest.mark.parametrize(
    ("written", "letter"),
    [("B", "B"), ("B. dairy farm", "B"), ("(B)", "B"), ("B) dairy farm", "B"), ("**B**", "B"),
     ("The correct option is B. dairy farm.", "B"), ("dairy farm", "B"), ("television", "C"), ("b", "B")],
)
def test_a_written_answer_is_read_as_the_letter_it_names(written, letter):
    assert read_letter(written, OPTIONS) == letter


@pytest.mark.parametrize("written", ["E", "F. something", "a cow", "The circulatory system", ""])
def test_an_answer_naming_no_offered_option_is_not_a_letter(written):
    assert read_letter(written, OPTIONS) is None


def test_the_offered_letters_come_from_the_options():
    assert offered_options(OPTIONS) == ("ABCD", ["beach", "dairy farm", "television", "desert"])
    assert offered_options("free text, no lettered lines")[0] == "ABCDEFGHIJ"


@pytest.mark.parametrize("strategy", ["direct", "post", "post_full", "cot"])
@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.XMLAdapter(), PlainTextAdapter()],
                         ids=["chat", "xml", "plain"])
def test_the_program_answers_the_letter_alone(strategy, adapter):
    lm, engine = scripted_lm({"answer": "B. dairy farm", "rationale": "cows give milk", "reasoning": "milk"})
    with dspy.context(lm=lm, adapter=adapter):
        pred = MultipleChoice(strategy)(question="Where does milk come from?", options=OPTIONS)
    assert pred.answer == "B"
    assert "the letter of the correct option alone" in engine.requests[0].messages[0]["content"]


@pytest.mark.parametrize("on_parse_error", ["raise", "mark"])
def test_an_answer_naming_no_option_is_kept_out_of_the_field(on_parse_error):
    lm, _ = scripted_lm({"answer": "The circulatory system", "rationale": "blood"})
    with dspy.context(lm=lm):
        pred = MultipleChoice("post", on_parse_error=on_parse_error)(question="q", options=OPTIONS)
    assert pred.answer is None
    assert "'The circulatory system' names none of the options ABCD" in pred.parse_error


def test_an_unparsed_completion_stays_marked():
    lm, _ = scripted_lm(lambda _user: "no fields at all")
    with dspy.context(lm=lm):
        pred = MultipleChoice("post", on_parse_error="mark")(question="q", options=OPTIONS)
    assert pred.answer is None and pred.completion == "no fields at all"


class UserChoice(dspy.Signature):
    """A user's own multiple-choice signature, with a letter-typed answer."""

    question: str = dspy.InputField()
    options: str = dspy.InputField()
    answer: Literal["A", "B", "C", "D"] = dspy.OutputField(desc="the letter of the correct option")


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.XMLAdapter(), PlainTextAdapter()],
                         ids=["chat", "xml", "plain"])
@pytest.mark.parametrize("mode", ["full", "answer_only"])
def test_a_letter_typed_field_written_with_its_option_text_is_read_as_its_letter(adapter, mode):
    lm, _ = scripted_lm({"answer": "B. dairy farm", "rationale": "cows give milk"})
    with dspy.context(lm=lm, adapter=adapter):
        pred = PostReason(UserChoice, mode=mode)(question="Where does milk come from?", options=OPTIONS)
    assert pred.answer == "B"


def test_a_letter_field_and_a_broken_xml_justification_are_both_recovered():
    lm, _ = scripted_lm(lambda _user: "<answer>\n(C) television\n</answer>\n\n<rationale>\n1 < 2\n</rationale>")
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()):
        pred = PostReason(UserChoice)(question="q", options=OPTIONS)
    assert (pred.answer, pred.rationale) == ("C", "1 < 2")


@pytest.mark.parametrize("written", ["television", "E. none", "Because B"])
def test_a_letter_typed_field_without_a_leading_offered_letter_is_a_parse_error(written):
    lm, engine = scripted_lm({"answer": written, "rationale": "r"})
    with dspy.context(lm=lm), pytest.raises(CompletionParseError):
        PostReason(UserChoice)(question="q", options=OPTIONS)
    assert len(engine.requests) == 1
