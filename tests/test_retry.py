"""Retrying transient LM errors (tenacity underneath): attempts counted, backoff slept, the server's hint
honoured, permanent errors not retried, the final error returned rather than raised."""

from __future__ import annotations

import pytest
from dspy.utils.exceptions import LMAuthError, LMRateLimitError, LMServerError, LMTimeoutError

from postreason_dspy.evaluation.retry import RetryPolicy, with_retries


def failing(*errors, result="done"):
    queue = list(errors)

    def attempt():
        if queue:
            raise queue.pop(0)
        return result

    return attempt


def test_transient_errors_are_retried_with_backoff_and_counted():
    slept = []
    policy = RetryPolicy(retries=3, base_delay_s=1.0, max_delay_s=60.0)
    attempt = failing(LMServerError("boom", status=503), ConnectionResetError())
    assert with_retries(policy, attempt, sleep=slept.append) == ("done", 3, None)
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0  # doubling, with jitter


def test_the_servers_retry_after_hint_wins():
    slept = []
    attempt = failing(LMRateLimitError("slow down", status=429, retry_after=7.0))
    assert with_retries(RetryPolicy(retries=1), attempt, sleep=slept.append) == ("done", 2, None)
    assert slept == [7.0]


def test_permanent_errors_and_exhausted_retries_are_returned_not_raised():
    slept = []
    refused = LMAuthError("bad key", status=401)
    assert with_retries(RetryPolicy(retries=3), failing(refused), sleep=slept.append) == (None, 1, refused)
    timeouts = [LMTimeoutError(f"timeout {n}") for n in range(3)]
    result, attempts, error = with_retries(RetryPolicy(retries=2), failing(*timeouts), sleep=slept.append)
    assert (result, attempts, error) == (None, 3, timeouts[-1]) and len(slept) == 2


def test_an_interrupt_is_not_swallowed():
    with pytest.raises(KeyboardInterrupt):
        with_retries(RetryPolicy(retries=3), failing(KeyboardInterrupt()), sleep=lambda s: None)
