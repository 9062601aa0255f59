"""Retry transient LM failures (rate limits, timeouts, dropped connections) with exponential backoff.

The harness retries whole example attempts itself, with DSPy's own retries switched off on the LM:
each attempt is then timed on its own (backoff sleeps never count as latency), the record says how
many attempts an example took, and the failure that remains after the last one is recorded, not raised.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from dspy.utils.exceptions import is_retryable_lm_error

from postreason_dspy.errors import CompletionParseError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Worth another try: DSPy's retryable LM errors (rate limit, timeout, server, transport), or a
    connection or timeout error anywhere in the exception's cause chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, CompletionParseError):
            return False
        if isinstance(current, Exception) and is_retryable_lm_error(current):
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` extra attempts after the first; delays double from `base_delay_s` up to `max_delay_s`,
    with jitter so threads that failed together do not retry together. A server's retry-after hint wins."""

    retries: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay(self, attempt: int, exc: BaseException) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 = the first)."""
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and 0 <= hint <= self.max_delay_s:
            return float(hint)
        backoff = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return backoff * random.uniform(0.5, 1.0)


def with_retries(
    policy: RetryPolicy, attempt: Callable[[], T], sleep: Callable[[float], None] = time.sleep
) -> tuple[T | None, int, Exception | None]:
    """Run `attempt` until it succeeds or fails for good; returns (result, attempts made, final error).

    Only `Exception`s are caught: an interrupt still stops the run."""
    number = 0
    while True:
        number += 1
        try:
            return attempt(), number, None
        except Exception as exc:
            if number > policy.retries or not is_transient(exc):
                return None, number, exc
            sleep(policy.delay(number - 1, exc))
