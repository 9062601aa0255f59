"""The streaming helper returns the answer before the justification is generated."""

from __future__ import annotations

import asyncio

import dspy
import pytest
from dspy.lm15 import StreamDeltaEvent
from dspy.utils.exceptions import AdapterParseError

from postreason_dspy import CompletionParseError, Direct, PostReason
from postreason_dspy.streaming import stream_answer
from postreason_dspy.testing import requested_order, scripted_lm, tokens

RATIONALE = " ".join(["because"] * 300)


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter, dspy.XMLAdapter], ids=["chat", "xml"])
def test_stream_returns_answer_and_cancels_the_rest(adapter):
    lm, engine = scripted_lm({"answer": "forty two", "rationale": RATIONALE})
    with dspy.context(lm=lm, adapter=adapter()):
        pred = asyncio.run(stream_answer(PostReason("question -> answer"), question="What is 6 * 7?"))
    assert pred.answer == "forty two"
    assert pred.rationale == ""
    assert engine.stream_finished == [False]
    # the answer, its markers and the few tokens the listener buffers, not the 300-word rationale
    assert engine.streamed_tokens[0] < 30 < len(tokens(RATIONALE))


def test_stream_typed_multi_output_inside_a_composed_program():
    class Pipeline(dspy.Module):
        def __init__(self):
            super().__init__()
            self.restate = Direct("question -> givens")
            self.solve = PostReason("question, givens -> answer: int, unit")

        async def aforward(self, question):
            givens = (await self.restate.acall(question=question)).givens
            return await self.solve.acall(question=question, givens=givens)

    lm, engine = scripted_lm({"givens": "six boxes of seven", "answer": "42", "unit": "apples", "rationale": RATIONALE})
    with dspy.context(lm=lm):
        pred = asyncio.run(stream_answer(Pipeline(), question="How many apples?"))
    assert (pred.answer, pred.unit) == (42, "apples")
    assert len(engine.requests) == 2
    assert engine.stream_finished[-1] is False


def test_stream_needs_a_post_reason_module():
    with pytest.raises(TypeError, match="no PostReason"):
        asyncio.run(stream_answer(Direct("question -> answer"), question="q"))


class SyncSolve(dspy.Module):
    """The README's example: only a sync `forward`."""

    def __init__(self):
        super().__init__()
        self.restate = dspy.Predict("question -> givens")
        self.answer = PostReason("question, givens -> answer: float")

    def forward(self, question):
        givens = self.restate(question=question).givens
        return self.answer(question=question, givens=givens)


def record_sync_streams(engine):
    """Make the engine's sync streams (used by a sync program) record how far they were read."""
    stream = engine.stream

    def recorded(request):
        emitted, finished = 0, False
        try:
            for event in stream(request):
                emitted += isinstance(event, StreamDeltaEvent)
                yield event
            finished = True
        finally:
            engine.streamed_tokens.append(emitted)
            engine.stream_finished.append(finished)

    engine.stream = recorded


def test_stream_a_sync_only_program_and_cut_its_worker_thread_off():
    lm, engine = scripted_lm({"givens": "six sevens", "answer": "42", "rationale": RATIONALE})
    record_sync_streams(engine)
    with dspy.context(lm=lm):
        pred = asyncio.run(stream_answer(SyncSolve(), question="What is 6 * 7?"))
    assert pred.answer == 42.0
    assert pred.rationale == ""
    assert len(engine.requests) == 2
    # the thread was awaited, so by now its stream is closed, well before the rationale's end
    assert engine.stream_finished == [False]
    assert engine.streamed_tokens[0] < 30 < len(tokens(RATIONALE))


@pytest.mark.parametrize("program", [PostReason("question -> answer"), SyncSolve()], ids=["async", "sync"])
def test_malformed_completion_raises_completion_parse_error_itself(program):
    def script(user):  # the restating step works, the answer comes back malformed
        return "I think it is 42, no markers at all." if "answer" in requested_order(user) else {"givens": "g"}

    lm, _ = scripted_lm(script)
    with dspy.context(lm=lm), pytest.raises(CompletionParseError) as raised:
        asyncio.run(stream_answer(program, question="q"))
    assert raised.value.completion == "I think it is 42, no markers at all."
    assert isinstance(raised.value.__cause__, AdapterParseError)
