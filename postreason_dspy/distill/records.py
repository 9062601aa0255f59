"""Fine-tuning records from predictor calls: chat messages in the program's adapter format, with spans.

A `CallRecorder` (a DSPy callback) sees every predictor call of a program run, including a call
whose answer StrictPredict recovered from a malformed completion (that call never reaches DSPy's
trace). `chat_record` turns one call into OpenAI fine-tuning messages plus the character spans of
the answer part and of the justification part of the assistant message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.adapters.base import Adapter
from dspy.utils.callback import BaseCallback

from postreason_dspy.decoding import field_start_marker
from postreason_dspy.predict import request_signature
from postreason_dspy.usage import finish_reason

SENTINEL = "\x00postreason-justification\x00"


@dataclass
class Call:
    """One predictor call: the predictor, its keyword arguments, and what came back."""

    predictor: dspy.Predict
    kwargs: dict[str, Any]
    outputs: Any = None
    error: BaseException | None = None
    recovered: bool = False  # the adapter failed to parse the whole completion; the answer was recovered
    truncated: bool = False  # a completion of this call stopped at the token limit (finish reason "length")

    def inputs(self) -> dict[str, Any]:
        return {name: self.kwargs[name] for name in self.predictor.signature.input_fields if name in self.kwargs}

    def output_values(self) -> dict[str, Any]:
        return {name: self.outputs.get(name) for name in self.predictor.signature.output_fields}


@dataclass
class CallRecorder(BaseCallback):
    """Records every `dspy.Predict` call made while it is in `dspy.context(callbacks=[...])` (one thread)."""

    calls: list[Call] = field(default_factory=list)
    _open: dict[str, Call] = field(default_factory=dict)
    _lms: dict[str, tuple[Any, int]] = field(default_factory=dict)  # LM call id -> (the LM, its history's length)

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if isinstance(instance, dspy.Predict):
            call = Call(instance, dict(inputs.get("kwargs") or {}))
            self._open[call_id] = call
            self.calls.append(call)

    def on_module_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
        call = self._open.pop(call_id, None)
        if call is not None:
            call.outputs, call.error = outputs, exception

    def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        if exception is not None and self._open:
            list(self._open.values())[-1].recovered = True

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._lms[call_id] = instance, len(getattr(instance, "history", []))

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
        lm, before = self._lms.pop(call_id, (None, 0))
        history = getattr(lm, "history", [])  # no new entry when dspy.settings.disable_history is on
        ended = finish_reason(history[-1].get("response")) if len(history) > before else None
        if exception is None and self._open and ended == "length":
            list(self._open.values())[-1].truncated = True


def value_spans(adapter: Adapter, signature: type[dspy.Signature], outputs: dict[str, Any], content: str,
                names: list[str]) -> list[list[int]]:
    """The spans [start, end) of the values of output fields `names` in `content`, each found by formatting the
    reply again with that value replaced by a sentinel: what comes before and after it is the field's format."""
    spans = []
    for name in names:
        probe = adapter.format_assistant_message_content(signature, {**outputs, name: SENTINEL})
        start = probe.index(SENTINEL)
        after = probe[start + len(SENTINEL):]
        end = len(content) - len(after)
        if not (content.startswith(probe[:start]) and content.endswith(after) and start <= end):
            raise AssertionError(f"{type(adapter).__name__} did not write the value of {name!r} where expected")
        spans.append([start, end])
    return sorted(spans)


def assistant_content(
    adapter: Adapter, signature: type[dspy.Signature], outputs: dict[str, Any], justification: str | None
) -> tuple[str, dict[str, list]]:
    """The assistant message for `outputs`, and the spans [start, end) of its answer and justification parts
    and of its answer values.

    The justification part runs from the justification field's marker (`[[ ## rationale ## ]]`,
    `<rationale>`, `Rationale:`) to the end (with ChatAdapter it includes the closing
    `[[ ## completed ## ]]`); the answer part is everything before it. Without a justification field
    the answer part is the whole message and the justification span is empty. `values` holds one span
    per other output field: its value alone, without the field's marker."""
    content = adapter.format_assistant_message_content(signature, outputs)
    values = value_spans(adapter, signature, outputs, content,
                         [name for name in signature.output_fields if name != justification])
    if justification is None:
        return content, {"answer": [0, len(content)], "justification": [len(content), len(content)], "values": values}
    marker = field_start_marker(adapter, justification)
    probe = adapter.format_assistant_message_content(signature, {**outputs, justification: SENTINEL})
    start = probe.rindex(marker, 0, probe.index(SENTINEL))  # the last marker before the value
    if not content[start:].startswith(marker):
        raise AssertionError(f"{type(adapter).__name__} did not write {marker!r} where expected")
    return content, {"answer": [0, start], "justification": [start, len(content)], "values": values}


def chat_record(
    adapter: Adapter, predictor: dspy.Predict, inputs: dict[str, Any], outputs: dict[str, Any],
    justification: str | None,
) -> dict[str, Any]:
    """`{"messages": [system, (demos...), user, assistant], "spans": {...}}` for one predictor call."""
    messages = adapter.format(request_signature(predictor), predictor.demos, inputs)
    content, spans = assistant_content(adapter, predictor.signature, outputs, justification)
    return {"messages": [*messages, {"role": "assistant", "content": content}], "spans": spans}
