"""Statistics for comparing answering strategies on the same examples.

Pure functions over correctness flags, so they can be checked against known values: Wilson and
(stratified) bootstrap intervals for an accuracy, the exact McNemar test and a paired bootstrap
interval for the difference between two strategies, and the relative improvement the study reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

LEVEL = 0.95
ALPHA = 0.05  # a difference is called significant when its test's p-value is below this
RESAMPLES = 2000
SEED = 0


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval for a binomial share: well-behaved at 0/n and n/n, unlike the normal one."""
    if n <= 0:
        raise ValueError("an interval needs at least one example")
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def _resample_indices(
    groups: Sequence[object] | None, n: int, resamples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Index sets, one per stratum (all examples when there are no groups), resampled with replacement.

    Resampling within each group keeps every group present, so a macro mean is always defined."""
    if groups is None:
        strata = [np.arange(n)]
    else:
        by_group: dict[object, list[int]] = {}
        for index, group in enumerate(groups):
            by_group.setdefault(group, []).append(index)
        strata = [np.asarray(indices) for indices in by_group.values()]
    return [members[rng.integers(0, len(members), size=(resamples, len(members)))] for members in strata]


def _bootstrap_means(values: np.ndarray, samples: list[np.ndarray]) -> np.ndarray:
    """Per resample: the mean of `values` (one stratum) or the mean of the stratum means (macro)."""
    return np.mean([values[indices].mean(axis=1) for indices in samples], axis=0)


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def bootstrap_accuracy_interval(
    correct: Sequence[bool],
    groups: Sequence[object] | None = None,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `scoring.accuracy(correct, groups)`, for macro-averaged benchmarks."""
    if not correct:
        raise ValueError("an interval needs at least one example")
    rng = np.random.default_rng(seed)
    samples = _resample_indices(groups, len(correct), resamples, rng)
    return _percentiles(_bootstrap_means(np.asarray(correct, dtype=float), samples), level)


def accuracy_interval(
    correct: Sequence[bool], groups: Sequence[object] | None = None, level: float = LEVEL
) -> tuple[tuple[float, float], str]:
    """The interval for an accuracy and the method used: Wilson for a plain share, bootstrap for a macro mean."""
    if groups is None:
        return wilson_interval(sum(map(bool, correct)), len(correct), level), "wilson"
    return bootstrap_accuracy_interval(correct, groups, level=level), "bootstrap"


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test on paired outcomes: only the discordant pairs carry information.

    `treatment_only`: pairs the treatment got right and the baseline wrong; `baseline_only`: the reverse."""

    treatment_only: int
    baseline_only: int
    p_value: float


def mcnemar_exact(treatment: Sequence[bool], baseline: Sequence[bool]) -> McNemar:
    """Two-sided exact McNemar test: a binomial test of the discordant pairs against p = 1/2."""
    if len(treatment) != len(baseline):
        raise ValueError(f"{len(treatment)} treatment flags but {len(baseline)} baseline flags")
    b = sum(1 for t, s in zip(treatment, baseline, strict=True) if t and not s)
    c = sum(1 for t, s in zip(treatment, baseline, strict=True) if s and not t)
    return McNemar(b, c, binomial_two_sided(b, c))


def binomial_two_sided(b: int, c: int) -> float:
    """Exact two-sided binomial test of b successes in b + c trials against p = 1/2 (1.0 when there are none).

    McNemar's test on discordant pairs, and the sign test over settings, are both this test."""
    if b < 0 or c < 0:
        raise ValueError(f"counts must not be negative: {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap_interval(
    treatment: Sequence[bool],
    baseline: Sequence[bool],
    groups: Sequence[object] | None = None,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(treatment) - accuracy(baseline), resampling examples as pairs."""
    if len(treatment) != len(baseline):
        raise ValueError(f"{len(treatment)} treatment flags but {len(baseline)} baseline flags")
    if not treatment:
        raise ValueError("an interval needs at least one pair")
    rng = np.random.default_rng(seed)
    samples = _resample_indices(groups, len(treatment), resamples, rng)
    difference = np.asarray(treatment, dtype=float) - np.asarray(baseline, dtype=float)
    return _percentiles(_bootstrap_means(difference, samples), level)


def relative_improvement(treatment_accuracy: float, baseline_accuracy: float) -> float | None:
    """(treatment - baseline) / baseline, the study's relative improvement; None when the baseline is 0."""
    if baseline_accuracy <= 0:
        return None
    return (treatment_accuracy - baseline_accuracy) / baseline_accuracy


def geometric_mean(values: Sequence[float]) -> float | None:
    """The mean of ratios (tokens, latency): None if there are none or one is not positive."""
    if not values or any(value <= 0 for value in values):
        return None
    return math.exp(sum(math.log(value) for value in values) / len(values))
