"""Which program to use, per model: chosen on the dev split, then confirmed (or not) on held-out test.

The choice is made before the test split is looked at, so the test figure is an honest check of it.
A tie on dev goes to the simpler, cheaper option (direct, then the untuned program): tuning has to
beat what it started from, not match it.
"""

from __future__ import annotations

from collections.abc import Mapping

OPTIONS: tuple[str, ...] = ("direct", "untuned", "tuned")  # in order of preference on a tie
WORDING = {"direct": "direct answer", "untuned": "untuned post-reasoning", "tuned": "tuned post-reasoning"}


def recommend(dev: Mapping[str, float | None], test: Mapping[str, float | None]) -> dict[str, object]:
    """The dev-chosen option, and whether test agrees (its test accuracy is the best of the three, ties allowed)."""
    scored = [name for name in OPTIONS if dev.get(name) is not None]
    if not scored:
        return {"recommendation": None, "confirmed_on_test": None, "recommendation_text": "no dev scores"}
    best = max(scored, key=lambda name: (dev[name], -OPTIONS.index(name)))
    on_test = {name: test.get(name) for name in OPTIONS if test.get(name) is not None}
    confirmed = None if best not in on_test else all(on_test[best] >= value for value in on_test.values())
    verdict = {True: "confirmed on test", False: "not confirmed on test", None: "not yet measured on test"}[confirmed]
    figures = f"dev {dev[best]:.1%}" + (f", test {on_test[best]:.1%}" if best in on_test else "")
    return {
        "recommendation": best,
        "confirmed_on_test": confirmed,
        "recommendation_text": f"{WORDING[best]} (chosen on dev: {figures}; {verdict})",
    }
