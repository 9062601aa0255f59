"""Score one candidate program on dev examples, one example at a time, counting what it cost.

`dspy.Evaluate` gives up after ten errors and takes the whole search down with it; this loop
scores an unparseable completion 0 for its example and goes on. Every LM call made while scoring is
counted (`postreason_dspy.usage.counting`: calls, input and output tokens), so each trial's record says
what it cost and `max_lm_calls` can stop a search between two examples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from postreason_dspy.errors import CompletionParseError
from postreason_dspy.usage import Usage, counting

Metric = Callable[..., Any]
Aggregate = Callable[[Sequence[dspy.Example], Sequence[bool]], float]

# What an unparseable (or unreadable) completion raises: scored 0 for its example, never fatal.
UNPARSED_ERRORS: tuple[type[BaseException], ...] = (CompletionParseError, AdapterParseError, ValueError)


@dataclass
class Scored:
    """A candidate's dev result: per-example correctness (in `examples` order) and what it cost.

    `stopped` is set when the LM-call cap was reached before every example was scored."""

    score: float
    correct: list[bool]
    unparsed: int
    usage: Usage
    seconds: float
    stopped: bool = False


def predict_correct(program: dspy.Module, example: dspy.Example, metric: Metric) -> tuple[bool, bool]:
    """(correct, unparsed) for one example: a completion that does not parse is wrong, not an error."""
    try:
        pred = program(**example.inputs())
    except UNPARSED_ERRORS:
        return False, True
    if pred.get("parse_error"):
        return False, True
    try:
        return bool(metric(example, pred)), False
    except UNPARSED_ERRORS:
        return False, True


def mean_score(examples: Sequence[dspy.Example], correct: Sequence[bool]) -> float:
    return sum(correct) / len(correct) if correct else 0.0


def score_program(
    program: dspy.Module,
    examples: Sequence[dspy.Example],
    metric: Metric,
    *,
    aggregate: Aggregate = mean_score,
    may_call: Callable[[Usage], bool] = lambda _usage: True,
) -> Scored:
    """Score `program` on `examples` in order (one LM stream keeps the server's prompt prefix cached).

    `may_call(usage so far)` is asked before each example; False stops scoring (`stopped=True`).
    Errors other than unparseable completions (the server is down...) propagate: the trial fails."""
    usage, correct, unparsed, stopped = Usage(), [], 0, False
    started = time.perf_counter()
    with counting(usage):
        for example in examples:
            if not may_call(usage):
                stopped = True
                break
            flag, bad = predict_correct(program, example, metric)
            correct.append(flag)
            unparsed += bad
    score = aggregate(examples[: len(correct)], correct) if correct else 0.0
    return Scored(score, correct, unparsed, usage, time.perf_counter() - started, stopped)
