"""The programs an optimizer comparison (scripts/compare_optimizers.py) pits against each other, named once so
that the comparison's records and their pooling across benchmarks (scripts/pool_comparisons.py) agree."""

from __future__ import annotations

OURS, OURS_HALF, MIPRO, BFSRS, GEPA = "ours_B", "ours_half_B", "miprov2_B", "bfsrs_B", "gepa_B"
DSPY_ARMS = (MIPRO, BFSRS, GEPA)
LABELS = {OURS: "ours, B", OURS_HALF: "ours, B/2", MIPRO: "MIPROv2, B", BFSRS: "random search, B", GEPA: "GEPA, B"}
