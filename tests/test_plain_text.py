"""PlainTextAdapter: `Label: value` lines, answer-only stopping at the justification's label, typed values."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import dspy
import pytest

from postreason_dspy import CompletionParseError, Direct, PostReason, StrictChainOfThought, UnsupportedAdapterError
from postreason_dspy.adapters import PlainTextAdapter, field_label, plain_sections
from postreason_dspy.decoding import answer_only_stops, field_start_marker
from postreason_dspy.distill import distill
from postreason_dspy.export.standalone import _plain_sections
from postreason_dspy.streaming import stream_answer
from postreason_dspy.testing import requested_order, scripted_lm, tokens

RATIONALE = "Six sevens are forty-two. " * 20
VALUES = {"answer": "42", "rationale": RATIONALE, "reasoning": "6 * 7 = 42", "justification": RATIONALE}


class Typed(dspy.Signature):
    """Answer with typed values."""

    question: str = dspy.InputField()
    count: int = dspy.OutputField()
    share: float = dspy.OutputField()
    sure: bool = dspy.OutputField()
    letter: Literal["A", "B", "C"] = dspy.OutputField()


def test_labels_are_title_cased_field_names():
    assert field_label("answer") == "Answer"
    assert field_label("final_answer") == "Final Answer"
    assert field_start_marker(PlainTextAdapter(), "justification") == "Justification:"


def test_answer_only_stops_at_the_label_in_the_spellings_a_model_writes():
    assert answer_only_stops(PlainTextAdapter(), "justification") == [
        "\nJustification:", "\njustification:", "\nJUSTIFICATION:"
    ]


def test_the_prompt_asks_for_label_lines_and_the_model_writes_them():
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=PlainTextAdapter()):
        pred = PostReason("question -> answer")(question="What is 7 * 6?")
    request = engine.requests[0]
    user = request.messages[-1]["content"]
    assert user.startswith("Question: What is 7 * 6?")
    assert "starts with its label: `Answer:`, then `Rationale:`." in user
    assert requested_order(user) == ["answer", "rationale"]
    assert "[[ ##" not in request.prompt and "<answer>" not in request.prompt
    assert pred.answer == "42" and pred.rationale == RATIONALE.strip()


@pytest.mark.parametrize("stop_spelling", ["Justification:", "justification:", "JUSTIFICATION:"])
def test_answer_only_cuts_the_justification_off_however_its_label_is_cased(stop_spelling):
    lm, engine = scripted_lm(lambda _user: f"Answer: 42\n{stop_spelling} {RATIONALE}")
    with dspy.context(lm=lm, adapter=PlainTextAdapter(), track_usage=True):
        pred = PostReason("question -> answer", rationale_field="justification", mode="answer_only")(question="q")
    assert pred.answer == "42" and pred.justification == ""
    assert "\nJustification:" in engine.requests[0].stop
    assert pred.get_lm_usage()["scripted/model"]["completion_tokens"] == len(tokens("Answer: 42"))


@pytest.mark.parametrize("module", [Direct, StrictChainOfThought, PostReason])
def test_every_strategy_runs_in_plain_text(module):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=PlainTextAdapter()):
        pred = module("question -> answer")(question="7 * 6?")
    assert pred.answer == "42"
    order = requested_order(engine.requests[0].messages[-1]["content"])
    assert order == {Direct: ["answer"], StrictChainOfThought: ["reasoning", "answer"],
                     PostReason: ["answer", "rationale"]}[module]


def test_typed_outputs_parse_through_dspy_values():
    lm, _ = scripted_lm({"count": "3", "share": "0.25", "sure": "true", "letter": "B"})
    with dspy.context(lm=lm, adapter=PlainTextAdapter()):
        pred = Direct(Typed)(question="q")
    assert (pred.count, pred.share, pred.sure, pred.letter) == (3, 0.25, True, "B")
    lm, _ = scripted_lm({"count": "three", "share": "0.25", "sure": "true", "letter": "B"})
    with dspy.context(lm=lm, adapter=PlainTextAdapter()), pytest.raises(CompletionParseError, match="count"):
        Direct(Typed)(question="q")


def test_markdown_labels_and_a_quoted_label_inside_the_justification():
    completion = "**Answer:** 42\n\n**Rationale:** six sevens.\nAnswer: 41 would be wrong.\nrationale: still this"
    parsed = PlainTextAdapter().parse(PostReason("question -> answer").predict.signature, completion)
    assert parsed == {"answer": "42", "rationale": "six sevens.\nAnswer: 41 would be wrong.\nrationale: still this"}


def test_a_completion_without_the_answer_label_is_a_parse_error_in_one_call():
    lm, engine = scripted_lm(lambda _user: "I think it is 42.")
    with dspy.context(lm=lm, adapter=PlainTextAdapter()), pytest.raises(CompletionParseError):
        PostReason("question -> answer")(question="q")
    assert len(engine.requests) == 1  # no JSON fallback


def test_trailing_field_recovery_keeps_the_answer_when_the_justification_is_cut_by_max_tokens():
    lm, _ = scripted_lm({"count": "3", "rationale": RATIONALE})
    with dspy.context(lm=lm, adapter=PlainTextAdapter()):
        pred = PostReason("question -> count: int", max_tokens=6)(question="q")
    assert pred.count == 3 and pred.rationale.startswith("Six sevens")


def test_the_standalone_parse_reads_like_the_adapter():
    names = ["final_answer", "rationale"]
    markers = {name: field_start_marker(PlainTextAdapter(), name) for name in names}
    for text in ["Final Answer: 7\nRationale: because\nFinal answer: 8", "preamble\n__Final Answer__: x y\n\nz",
                 "## RATIONALE: first\nFinal Answer: 7", "nothing labelled"]:
        assert _plain_sections(text, markers) == plain_sections(text, names)


def test_streaming_is_refused_with_a_clear_error():
    lm, engine = scripted_lm(VALUES)

    async def run():
        with dspy.context(lm=lm, adapter=PlainTextAdapter()):
            return await stream_answer(PostReason("question -> answer"), question="q")

    with pytest.raises(UnsupportedAdapterError, match="PlainTextAdapter"):
        asyncio.run(run())
    assert engine.requests == []


def test_distilled_records_are_in_plain_text_with_spans_and_the_clause(tmp_path):
    lm, engine = scripted_lm({"answer": "5", "rationale": "2 + 3 = 5\nso five"})
    examples = [dspy.Example(id="a", question="2 + 3?", answer="5").with_inputs("question")]
    with dspy.context(lm=lm):
        distill(PostReason("question -> answer"), examples, lambda ex, pred, trace=None: pred.answer == ex.answer,
                tmp_path, adapter=PlainTextAdapter())
    (record,) = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    content = record["messages"][-1]["content"]
    (answer_start, answer_end), (start, end) = record["spans"]["answer"], record["spans"]["justification"]
    assert content[answer_start:answer_end] == "Answer: 5\n\n"
    assert content[start:end] == "Rationale:\n2 + 3 = 5\nso five"
    assert record["messages"][:-1] == engine.requests[0].messages  # the clause included, as sent
    assert "justify it step by step" in record["messages"][0]["content"]
