"""Shared by the benchmark tests: a program run on a scripted model scores all right, then all wrong."""

from __future__ import annotations

from collections.abc import Callable

import dspy

from postreason_dspy.benchmarks import Benchmark
from postreason_dspy.testing import scripted_lm


def assert_scores_all_or_nothing(
    bench: Benchmark, strategy: str, examples: list[dspy.Example], answer_with: Callable[[bool], Callable]
) -> None:
    """`answer_with(wrong)` scripts the model's replies: right ones score 1.0, wrong ones 0.0, one call each."""
    for wrong, expected in ((False, 1.0), (True, 0.0)):
        lm, engine = scripted_lm(answer_with(wrong))
        program = bench.program(strategy)
        with dspy.context(lm=lm):
            flags = [bench.metric(ex, program(**ex.inputs())) for ex in examples]
        assert bench.accuracy(examples, flags) == expected
        assert len(engine.requests) == len(examples)
