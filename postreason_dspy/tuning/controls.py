"""A control that separates what tuning changed: a direct answer given the tuned program's demos.

A tuned post-reasoning program differs from a zero-shot direct answer in two ways at once: the
post-reasoning wording and its few-shot demos. The direct program with the same demos (their
justifications dropped, since a direct answer has no field for them) takes the demos' share out of
the comparison: tuned post vs this control measures what post-reasoning adds on top of the demos.
"""

from __future__ import annotations

from typing import Any

import dspy

from postreason_dspy.optimizers.candidates import apply_direct

DIRECT_DEMOS = "direct_demos"
DIRECT_DEMOS_FILE = "direct_demos.json"


def direct_with_demos(bench: Any, tuned: dspy.Module) -> dspy.Module | None:
    """The benchmark's direct program carrying `tuned`'s demos, each reduced to the direct signature's fields
    (so without its justification); None when `tuned` has no demos or its predictors do not pair up."""
    direct = bench.program("direct")
    sources = tuned.predictors()
    if len(sources) != len(direct.predictors()) or not any(predictor.demos for predictor in sources):
        return None
    return apply_direct(direct, [[dict(demo.toDict()) for demo in predictor.demos] for predictor in sources])
