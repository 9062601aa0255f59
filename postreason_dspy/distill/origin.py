"""Whether a benchmark's tuning split is official test data.

For test-only sources (offline GSM8K, BBH, AIME, HMMT, AMC, MATH-500...) the train split is a
hashed share of the official test set (`splits.tuning_origin` says "carved"), so data distilled from
it is official test questions: fine for tuning here (our held-out test items are disjoint), wrong
for training a model that someone will evaluate on that benchmark elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from postreason_dspy.benchmarks import Benchmark
from postreason_dspy.benchmarks.sources import HubSource
from postreason_dspy.benchmarks.splits import tuning_origin

# Sources whose published "train" items are in fact another official test set.
TEST_AS_TRAIN: dict[tuple[str, str], str] = {
    ("math500", "package"): "MATH's official test set (the 4,500 MATH test problems outside MATH-500)",
}


def official_test_origin(bench: Benchmark, path: str | Path | None = None) -> str | None:
    """The official evaluation set the tuning split (train, dev) comes from, or None if it has its own."""
    source = bench.source(path)
    known = TEST_AS_TRAIN.get((bench.split_key, source.kind))
    if known:
        return known
    if isinstance(source, HubSource):  # its published splits are known without downloading it again
        published = set(source.splits.values())
    else:
        published = {split for split, _ in bench.published_items(path)}
    kind, _ = tuning_origin(published, bench.split_key, source.kind)
    return f"{bench.title}'s official evaluation set ({source.describe()})" if kind == "carved" else None


def overlap_warning(bench: Benchmark, origin: str) -> str:
    return (
        f"This data overlaps {origin}: do not use it to train a model that will be evaluated on "
        f"{bench.title} anywhere else."
    )
