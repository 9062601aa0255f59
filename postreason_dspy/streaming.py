"""Stream a post-reasoning program and return its answer the moment the answer is complete.

The justification is cut off: the consumer's task group is cancelled after the answer field's last
chunk, which closes the HTTP stream, so the server stops generating. (Breaking out of
`dspy.streamify`'s loop instead leaves anyio's "cancel scope in a different task" error.)
A program with only a sync `forward` runs in a worker thread, which the cancellation reaches at its
next streamed chunk (sync code that streams nothing more runs to its end first). The thread is awaited,
not abandoned as `dspy.asyncify` does: an abandoned thread can block forever on the stopped event loop.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import dspy
from dspy.adapters.utils import parse_value
from dspy.streaming import StreamListener, StreamResponse

from postreason_dspy.adapters import PlainTextAdapter
from postreason_dspy.decoding import active_adapter, field_start_marker
from postreason_dspy.errors import UnsupportedAdapterError
from postreason_dspy.modules import PostReason


def _find_post_reason(program: dspy.Module) -> PostReason:
    """The PostReason whose answer is the program's answer: the program itself, or its last PostReason."""
    if isinstance(program, PostReason):
        return program
    found = [module for _, module in program.named_sub_modules() if isinstance(module, PostReason)]
    if not found:
        raise TypeError(f"{type(program).__name__} contains no PostReason module to stream an answer from")
    return found[-1]


def _has_async_forward(program: dspy.Module) -> bool:
    """Whether the program's own implementation is `aforward` (the nearest class defining either wins)."""
    for cls in type(program).__mro__:
        if "aforward" in vars(cls):
            return True
        if "forward" in vars(cls):
            return False
    return False


class _Streamed(dspy.Module):
    """What `dspy.streamify` runs: `program`, natively async or in an awaited worker thread.

    It also keeps the cause of the program's failure, which `dspy.streamify` drops (`raise ... from None`).
    """

    def __init__(self, program: dspy.Module):
        super().__init__()
        self.program = program
        self.causes: dict[int, BaseException | None] = {}  # id(failure) -> its cause

    def cause_of(self, failure: BaseException) -> BaseException | None:
        return self.causes.get(id(failure), failure.__cause__)

    async def aforward(self, **inputs: Any) -> dspy.Prediction:
        try:
            if _has_async_forward(self.program):
                return await self.program.acall(**inputs)
            return await anyio.to_thread.run_sync(functools.partial(self.program, **inputs))
        except Exception as exc:
            # Once cut off, the thread fails at its next chunk: report the cancellation, not that failure.
            await anyio.lowlevel.checkpoint()
            self.causes[id(exc)] = exc.__cause__
            raise


def _single_failure(error: BaseExceptionGroup) -> BaseException | None:
    """The one exception inside a (possibly nested) exception group, or None when it holds several."""
    leaves = []
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        else:
            leaves.append(current)
    return leaves[0] if len(leaves) == 1 else None


async def stream_answer(program: dspy.Module, **inputs: Any) -> dspy.Prediction:
    """Run `program` streaming, and return its post-reasoning answer fields as soon as they are written.

    The returned prediction holds the answer fields (parsed to their declared types) and an empty
    rationale; the rest of the generation is cancelled. When nothing streams (a cache hit), the full
    prediction is returned as it came. A failure of the program is raised as itself, with its cause.
    """
    post = _find_post_reason(program)
    adapter = active_adapter()
    if isinstance(adapter, PlainTextAdapter):
        raise UnsupportedAdapterError(
            "stream_answer cannot stream with PlainTextAdapter (DSPy's stream listeners know only its own "
            "adapters); use dspy.ChatAdapter() or dspy.XMLAdapter(), or call the program with mode='answer_only'"
        )
    field_start_marker(adapter, post.rationale_field)  # refuses adapters that cannot stream fields
    signature = post.predict.signature
    answer_fields = [name for name in signature.output_fields if name != post.rationale_field]
    listeners = [StreamListener(signature_field_name=name, predict=post.predict) for name in answer_fields]
    streamed = _Streamed(program)
    streaming = dspy.streamify(streamed, stream_listeners=listeners, is_async_program=True)

    chunks: dict[str, list[str]] = {name: [] for name in answer_fields}
    finished: set[str] = set()
    outcome: dict[str, dspy.Prediction] = {}

    async def consume(scope: anyio.CancelScope) -> None:
        # Cancel from inside the loop, never `break`: the stream's own task group must unwind in this task.
        async for value in streaming(**inputs):
            if isinstance(value, StreamResponse):
                chunks[value.signature_field_name].append(value.chunk)
                if value.is_last_chunk:
                    finished.add(value.signature_field_name)
                if finished == set(answer_fields):
                    scope.cancel()
            elif isinstance(value, dspy.Prediction):
                outcome["final"] = value

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(consume, group.cancel_scope)
    except BaseExceptionGroup as error:
        failure = _single_failure(error)
        if failure is None:
            raise
        raise failure from streamed.cause_of(failure)

    if "final" in outcome:
        return outcome["final"]
    answers = {
        name: parse_value("".join(chunks[name]).strip(), signature.output_fields[name].annotation)
        for name in answer_fields
    }
    return dspy.Prediction(**answers, **{post.rationale_field: ""})
