"""Which program to use, per model: chosen on the dev split, then confirmed (or not) on held-out test.

The choice is made before the test split is looked at, so the test figure is an honest check of it.
A tie on dev goes to the simpler, cheaper option (direct, then the untuned program): tuning has to
beat what it started from, not match it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from postreason_dspy.formatting import p_value as p_text
from postreason_dspy.formatting import pct

OPTIONS: tuple[str, ...] = ("direct", "untuned", "tuned")  # in order of preference on a tie
WORDING = {"direct": "direct answer", "untuned": "untuned post-reasoning", "tuned": "tuned post-reasoning"}
TUNED_WORDING = {"post": WORDING["tuned"], "direct": "tuned direct answer (the search's direct candidate, "
                 "with its demos, beat post-reasoning)"}


SIGNIFICANCE = 0.05
# McNemar's p on test of two options, in either order (the test is symmetric); None when not measured.
PValue = Callable[[str, str], float | None]


def recommend(
    dev: Mapping[str, float | None], test: Mapping[str, float | None],
    p_value: PValue | None = None, tuned_format: str = "post",
) -> dict[str, object]:
    """The dev-chosen option, and whether test agrees: its test accuracy is the best of the three (ties
    allowed), and `significant_on_test` says whether it beat each other option at McNemar p < 0.05
    (`p_value(a, b)`, e.g. from `Summary.comparison`). A point estimate alone is not a confirmation, so the
    text says which.
    `tuned_format` is the tuned program's answer format ("direct" when a direct candidate won the search),
    which the text names."""
    scored = [name for name in OPTIONS if dev.get(name) is not None]
    if not scored:
        return {"recommendation": None, "confirmed_on_test": None, "significant_on_test": None,
                "recommendation_text": "no dev scores"}
    best = max(scored, key=lambda name: (dev[name], -OPTIONS.index(name)))
    on_test = {name: test.get(name) for name in OPTIONS if test.get(name) is not None}
    confirmed = None if best not in on_test else all(on_test[best] >= value for value in on_test.values())
    others = {name: p_value(best, name) if p_value else None for name in on_test if name != best}
    significant = None
    if confirmed is not None and others and all(value is not None for value in others.values()):
        significant = confirmed and all(value < SIGNIFICANCE for value in others.values())
    verdict = {True: "confirmed on test", False: "not confirmed on test", None: "not yet measured on test"}[confirmed]
    if confirmed and significant is False:
        verdict = "best on test, but not significantly"
    if confirmed is not None and significant is not None:
        verdict += " (McNemar p " + ", ".join(f"{p_text(value)} vs {name}" for name, value in others.items()) + ")"
    wording = {**WORDING, "tuned": TUNED_WORDING[tuned_format]}
    figures = f"dev {pct(dev[best])}" + (f", test {pct(on_test[best])}" if best in on_test else "")
    return {
        "recommendation": best,
        "confirmed_on_test": confirmed,
        "significant_on_test": significant,
        "recommendation_text": f"{wording[best]} (chosen on dev: {figures}; {verdict})",
    }

