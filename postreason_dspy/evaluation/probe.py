"""What each LM call of one example cost: raw completion, token counts, finish reason, latency.

DSPy 3.4.1 keeps these on `lm.history` entries (without a latency) and shares one history per LM
object, so under threads entries from different examples interleave. Each example attempt therefore
calls the model through its own `lm.copy()` (which shares the HTTP client but has its own history and
callbacks) carrying this callback, which times the call and reads the entry the call just added.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback


@dataclass(frozen=True)
class LMCall:
    """One LM call as the server answered it."""

    completion: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    latency_s: float


def _first_text(outputs: Any) -> str | None:
    if not outputs:
        return None
    first = outputs[0]
    return first.get("text") if isinstance(first, dict) else str(first)


def _finish_reason(response: Any) -> str | None:
    """From the native engine's Response (or a list of them), or a litellm ModelResponse's first choice."""
    if isinstance(response, list | tuple):
        response = response[0] if response else None
    if response is None:
        return None
    reason = getattr(response, "finish_reason", None)
    if reason is None:
        choices = response.get("choices") if isinstance(response, dict) else getattr(response, "choices", None)
        if choices:
            first = choices[0]
            reason = first.get("finish_reason") if isinstance(first, dict) else getattr(first, "finish_reason", None)
    return None if reason is None else str(getattr(reason, "value", reason))


class CallProbe(BaseCallback):
    """Attach to a private copy of `lm`; after the program ran through `probe.lm`, `probe.calls` holds its calls."""

    def __init__(self, lm: dspy.LM):
        self.lm = lm.copy()
        self.lm.callbacks = [*self.lm.callbacks, self]
        self.calls: list[LMCall] = []
        self._started: dict[str, tuple[float, int]] = {}

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._started[call_id] = time.perf_counter(), len(self.lm.history)

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        started = self._started.pop(call_id, None)
        if started is None or exception is not None:
            return
        latency = time.perf_counter() - started[0]
        # No new entry when history is switched off (dspy.settings.disable_history): then only the text is known.
        entry = self.lm.history[-1] if len(self.lm.history) > started[1] else {}
        usage = entry.get("usage") or {}
        self.calls.append(LMCall(
            completion=_first_text(outputs),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=_finish_reason(entry.get("response")),
            latency_s=latency,
        ))
