"""PostReason against a scripted model that follows the prompt's field order and obeys stop/max_tokens."""

from __future__ import annotations

import dspy
import pytest

from postreason_dspy import (
    CompletionParseError,
    ConfigurationError,
    Direct,
    PostReason,
    StrictChainOfThought,
    UnsupportedAdapterError,
    make_strategy,
    post_reason_signature,
    with_mode,
)
from postreason_dspy.decoding import answer_only_stops
from postreason_dspy.testing import requested_order, scripted_lm, tokens

LONG_RATIONALE = "Seven times six is forty-two, because six sevens are " + "forty-two " * 40
VALUES = {"answer": "42", "rationale": LONG_RATIONALE, "reasoning": "6 * 7 = 42"}
ADAPTERS = [pytest.param(dspy.ChatAdapter, id="chat"), pytest.param(dspy.XMLAdapter, id="xml")]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_prompt_asks_for_answer_before_rationale(adapter):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=adapter()):
        PostReason("question -> answer")(question="What is 7 * 6?")
    request = engine.requests[0]
    assert requested_order(request.messages[-1]["content"]) == ["answer", "rationale"]
    system = request.messages[0]["content"]
    assert system.index("`answer`") < system.index("`rationale`")
    assert "Give your final answer first" in system


@pytest.mark.parametrize(
    ("adapter", "markers"),
    [(dspy.ChatAdapter, ("\n[[",)), (dspy.XMLAdapter, ("<rationale", "<Rationale"))],
)
def test_answer_only_stops_at_rationale_marker(adapter, markers):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=adapter()):
        pred = PostReason("question -> answer", mode="answer_only")(question="What is 7 * 6?")
    assert engine.requests[0].stop == markers
    assert pred.answer == "42"
    assert pred.rationale == ""


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_full_and_answer_only_give_the_same_answer_at_a_fraction_of_the_tokens(adapter):
    lm, _ = scripted_lm(VALUES)
    module = PostReason("question -> answer")
    with dspy.context(lm=lm, adapter=adapter(), track_usage=True):
        full = module(question="What is 7 * 6?")
        short = module(question="What is 7 * 6?", mode="answer_only")
    assert full.answer == short.answer == "42"
    assert full.rationale.startswith("Seven times six")
    full_tokens = full.get_lm_usage()["scripted/model"]["completion_tokens"]
    short_tokens = short.get_lm_usage()["scripted/model"]["completion_tokens"]
    assert short_tokens < 10 < 40 < full_tokens


def test_answer_only_stops_when_the_rationale_follows_a_single_line_break():
    """Qwen2.5-Coder-0.5B often writes `B\\n[[ ## rationale ## ]]`, not ChatAdapter's blank line."""
    lm, _ = scripted_lm(lambda _user: "[[ ## answer ## ]]\nB\n[[ ## rationale ## ]]\n" + LONG_RATIONALE)
    with dspy.context(lm=lm, track_usage=True):
        pred = PostReason("question -> answer", mode="answer_only")(question="q")
    assert pred.answer == "B"
    assert pred.rationale == ""
    assert pred.get_lm_usage()["scripted/model"]["completion_tokens"] < 10


def test_answer_only_keeps_user_stop_sequences():
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        PostReason("question -> answer", mode="answer_only", stop=["END"])(question="q")
    assert engine.requests[0].stop == ("\n[[", "END")


def test_answer_only_refuses_json_adapter_before_calling_the_model():
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), pytest.raises(UnsupportedAdapterError, match="JSON"):
        PostReason("question -> answer", mode="answer_only")(question="q")
    assert engine.requests == []


@pytest.mark.parametrize("module", [Direct, PostReason, StrictChainOfThought])
def test_malformed_completion_is_one_call_and_a_typed_error(module):
    lm, engine = scripted_lm(lambda _user: "I think it is 42, no markers at all.")
    with dspy.context(lm=lm), pytest.raises(CompletionParseError) as raised:
        module("question -> answer")(question="q")
    assert raised.value.completion == "I think it is 42, no markers at all."
    assert len(engine.requests) == 1


def test_malformed_completion_can_be_marked_instead_of_raised():
    lm, engine = scripted_lm(lambda _user: "[[ ## rationale ## ]]\nno answer field")
    with dspy.context(lm=lm):
        pred = PostReason("question -> answer", on_parse_error="mark")(question="q")
    assert pred.answer is None
    assert "answer" in pred.parse_error
    assert pred.completion.startswith("[[ ## rationale ## ]]")
    assert len(engine.requests) == 1


def test_every_strategy_makes_one_call_per_prediction():
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        for name in ("direct", "post", "post_full", "cot"):
            assert make_strategy(name, "question -> answer")(question="q").answer == "42"
    assert len(engine.requests) == 4
    assert [r.stop for r in engine.requests] == [(), ("\n[[",), (), ()]


def test_cot_reasons_before_answering():
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        pred = StrictChainOfThought("question -> answer")(question="q")
    assert requested_order(engine.requests[0].messages[-1]["content"]) == ["reasoning", "answer"]
    assert pred.reasoning == "6 * 7 = 42"


def test_multiple_and_typed_outputs():
    class Measure(dspy.Signature):
        """Measure the thing."""

        question: str = dspy.InputField()
        context: str = dspy.InputField()
        value: int = dspy.OutputField()
        unit: str = dspy.OutputField()
        factors: list[str] = dspy.OutputField()

    values = {"value": "12", "unit": "cm", "factors": '["a", "b"]', "rationale": LONG_RATIONALE}
    lm, engine = scripted_lm(values)
    module = PostReason(Measure)
    with dspy.context(lm=lm):
        full = module(question="q", context="c")
        short = module(question="q", context="c", mode="answer_only")
    assert requested_order(engine.requests[0].messages[-1]["content"]) == ["value", "unit", "factors", "rationale"]
    for pred in (full, short):
        assert (pred.value, pred.unit, pred.factors) == (12, "cm", ["a", "b"])
    assert short.rationale == ""
    assert engine.requests[1].stop == ("[[ ## rationale",)  # several answer fields: "\n[[" would cut after the first
    assert "`value`, `unit`, `factors`" in engine.requests[0].messages[0]["content"]


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter, dspy.XMLAdapter], ids=["chat", "xml"])
def test_truncation_inside_the_rationale_still_parses(adapter):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=adapter()):
        pred = PostReason("question -> answer", max_tokens=20)(question="q")
    assert engine.requests[0].max_tokens == 20
    assert pred.answer == "42"
    assert 0 < len(tokens(pred.rationale)) < 20
    assert len(engine.requests) == 1


def test_xml_rationale_under_a_capitalised_tag_keeps_the_answer():
    completion = "<answer>$1</answer>\n<Rationale>It costs $1 < $2.</rationale>"  # as Qwen2.5-Coder-0.5B wrote
    lm, _ = scripted_lm(lambda user: completion)
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()):
        pred = PostReason("question -> answer")(question="q")
    assert (pred.answer, pred.rationale) == ("$1", "It costs $1 < $2.")


def test_xml_rationale_that_is_not_xml_keeps_the_answer():
    lm, engine = scripted_lm({"answer": "7", "rationale": "since 3 < 4 & 4 < 7, it is 7", "note": "3 < 4"})
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()):
        pred = PostReason("question -> answer: int")(question="q")
    assert (pred.answer, pred.rationale) == (7, "since 3 < 4 & 4 < 7, it is 7")
    assert len(engine.requests) == 1
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()), pytest.raises(CompletionParseError):
        Direct("question -> answer: int, note")(question="q")  # no free-text tail to fall back on


def test_signature_transform_options():
    sig = post_reason_signature(
        "question -> answer", rationale_field="why", rationale_desc="because",
        instruction="Answer {outputs}; {rationale}."
    )
    assert list(sig.output_fields) == ["answer", "why"]
    assert sig.output_fields["why"].json_schema_extra["desc"] == "because"
    assert sig.instructions.endswith("Answer `answer`; why.")
    assert post_reason_signature("q -> a", instruction=None).instructions == dspy.Signature("q -> a").instructions
    with pytest.raises(ValueError, match="rationale"):
        post_reason_signature("question -> answer, rationale")


def test_bad_mode_and_unknown_strategy():
    with pytest.raises(ValueError, match="mode"):
        PostReason("q -> a", mode="fast")
    lm, _ = scripted_lm(VALUES)
    with dspy.context(lm=lm), pytest.raises(ValueError, match="mode"):
        PostReason("question -> answer")(question="q", mode="fast")
    with pytest.raises(ConfigurationError, match="direct, post"):
        make_strategy("tot", "q -> a")


def test_with_mode_switches_every_post_reason_in_a_copy():
    class Program(dspy.Module):
        def __init__(self):
            super().__init__()
            self.first = PostReason("question -> givens", mode="answer_only")
            self.second = PostReason("givens -> answer", mode="answer_only")

    program = Program()
    full = with_mode(program, "full")
    assert (full.first.mode, full.second.mode) == ("full", "full")
    assert (program.first.mode, program.second.mode) == ("answer_only", "answer_only")


def test_answer_only_stops_at_the_whole_marker_when_another_field_shares_the_prefix():
    assert answer_only_stops(dspy.ChatAdapter(), "rationale", ["answer", "rationale_score", "rationale"]) == [
        "[[ ## rationale ## ]]"]
    assert answer_only_stops(dspy.XMLAdapter(), "rationale", ["rationale_score"]) == ["<rationale>", "<Rationale>"]
    lm, engine = scripted_lm({"answer": "42", "rationale_score": "9", "rationale": "because"})
    with dspy.context(lm=lm):
        pred = PostReason("question -> answer, rationale_score", mode="answer_only")(question="What is 7 * 6?")
    assert engine.requests[0].stop == ("[[ ## rationale ## ]]",)
    assert (pred.answer, pred.rationale_score) == ("42", "9")
