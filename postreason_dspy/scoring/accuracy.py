"""Accuracy over correctness flags: a plain share, or a macro mean over groups (BBH: per task)."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(correct: Sequence[bool], groups: Sequence[object] | None = None) -> float:
    """The share correct; with `groups` (e.g. BBH tasks), the mean of the per-group shares."""
    if not correct:
        raise ValueError("no examples to score")
    if groups is None:
        return sum(map(bool, correct)) / len(correct)
    if len(groups) != len(correct):
        raise ValueError(f"{len(correct)} flags but {len(groups)} groups")
    per_group: dict[object, list[bool]] = {}
    for ok, group in zip(correct, groups, strict=True):
        per_group.setdefault(group, []).append(bool(ok))
    return sum(sum(flags) / len(flags) for flags in per_group.values()) / len(per_group)
