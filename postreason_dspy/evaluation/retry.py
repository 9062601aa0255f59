"""Retry transient LM failures (rate limits, timeouts, dropped connections) with exponential backoff (tenacity).

The harness retries whole example attempts itself, with DSPy's own retries switched off on the LM:
each attempt is then timed on its own (backoff sleeps never count as latency), the record says how
many attempts an example took, and the failure that remains after the last one is recorded, not raised.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from dspy import lm15
from dspy.utils.exceptions import LMTransportError, is_retryable_lm_error

from postreason_dspy import interrupt
from postreason_dspy.errors import CompletionParseError

T = TypeVar("T")


# Connection failures of the HTTP clients under DSPy (litellm/openai, httpx), named to avoid importing them.
CONNECTION_ERROR_NAMES = frozenset({"APIConnectionError", "ConnectError"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and its causes, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """Worth another try: DSPy's retryable LM errors (rate limit, timeout, server, transport), or a
    connection or timeout error anywhere in the exception's cause chain."""
    for link in _chain(exc):
        if isinstance(link, CompletionParseError):
            return False
        if isinstance(link, Exception) and is_retryable_lm_error(link):
            return True
        if isinstance(link, ConnectionError | TimeoutError):
            return True
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
    policy: RetryPolicy, attempt: Callable[[], T], sleep: Callable[[float], None] = interrupt.sleep
) -> tuple[T | None, int, Exception | None]:
    """Run `attempt` until it succeeds or fails for good; returns (result, attempts made, final error).

    Only `Exception`s are caught: an interrupt still stops the run, also in the middle of a back-off
    (the default `sleep` ends at a signal)."""
    made = 0

    def counted() -> T:
        nonlocal made
        made += 1
        return attempt()

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.retries + 1),
        retry=tenacity.retry_if_exception(is_transient),
        wait=lambda state: policy.delay(state.attempt_number - 1, state.outcome.exception()),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(counted), made, None
    except Exception as exc:
        return None, made, exc


def is_connection_failure(exc: BaseException) -> bool:
    """The server could not be reached at all (refused, reset, unreachable), as opposed to a timeout, a rate
    limit or an error the server answered with: the sign of a dead server, which retrying cannot cure."""
    for link in _chain(exc):
        if isinstance(link, TimeoutError) or "Timeout" in type(link).__name__:
            return False
        if isinstance(link, ConnectionError | LMTransportError | lm15.TransportError):
            return True
        if type(link).__name__ in CONNECTION_ERROR_NAMES:
            return True
    return False
