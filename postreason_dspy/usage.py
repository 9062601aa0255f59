"""What LM calls cost: one DSPy callback, `UsageCounter`, for the evaluation records and the optimizers' budgets.

It counts every LM call that ends while it is installed, failed ones too since they cost a request (calls,
input and output tokens, thread-safe, into a `Usage`), and keeps each answered call's completion, token
counts, finish reason and latency (`LMCall`). Two ways to install it:

- `counting(usage)`: for a block, on every LM (an optimizer's trial, a bootstrap, a whole compile), so a
  trial's record says what it cost and `max_lm_calls` can stop a search between two examples;
- `counted_copy(lm)`: on a private `lm.copy()`, for one example's attempt. DSPy 3.4.1 keeps usage on
  `lm.history` entries (without a latency) and shares one history per LM object, so under threads entries
  of different examples interleave; the copy shares the HTTP client but has its own history and callbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback


@dataclass
class Usage:
    """LM calls and tokens; `add` is thread-safe."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, calls: int, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self.calls += calls
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens

    def to_dict(self) -> dict[str, int]:
        return {"lm_calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


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


def finish_reason(response: Any) -> str | None:
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


class UsageCounter(BaseCallback):
    """Counts every LM call that ends into `usage`; `calls` keeps the answered ones, in the order they ended."""

    def __init__(self, usage: Usage | None = None):
        self.usage = usage if usage is not None else Usage()
        self.calls: list[LMCall] = []
        self._started: dict[str, tuple[Any, float, int]] = {}

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._started[call_id] = instance, time.perf_counter(), len(getattr(instance, "history", []))

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        instance, started, before = self._started.pop(call_id, (None, time.perf_counter(), 0))
        latency = time.perf_counter() - started
        # No new entry when history is switched off (dspy.settings.disable_history): then only the text is known.
        history = getattr(instance, "history", [])
        entry = history[-1] if len(history) > before else {}
        tokens = entry.get("usage") or {}
        prompt_tokens, completion_tokens = tokens.get("prompt_tokens"), tokens.get("completion_tokens")
        self.usage.add(1, int(prompt_tokens or 0), int(completion_tokens or 0))
        if exception is None and instance is not None:
            self.calls.append(LMCall(
                completion=_first_text(outputs),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish_reason(entry.get("response")),
                latency_s=latency,
            ))


@contextmanager
def counting(usage: Usage) -> Iterator[Usage]:
    """Count the LM calls made inside the block, on any LM, into `usage`."""
    with dspy.context(callbacks=[*dspy.settings.get("callbacks", []), UsageCounter(usage)]):
        yield usage


def counted_copy(lm: dspy.LM) -> tuple[dspy.LM, UsageCounter]:
    """A private copy of `lm` carrying its own counter: after a program ran on the copy, `counter.calls` holds
    exactly its calls, whatever other threads did with `lm` meanwhile."""
    copy, counter = lm.copy(), UsageCounter()
    copy.callbacks = [*copy.callbacks, counter]
    return copy, counter
