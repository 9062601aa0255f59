"""Which trials count and which one wins.

`PostReasonSearch` keeps its trials in an Optuna study, where a finished trial may be a duplicate of an
earlier candidate (not counted), pruned on a minibatch (counted toward the budget, never chosen) or
complete. These rules, and the line each trial leaves in trials.jsonl, are kept here in one place so the
search, a resumed search and a rebuild from the storage alone (`candidates.rebuild_from_study`) count and
choose alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

STATES = ("complete", "duplicate", "pruned", "failed", "interrupted")
DUPLICATE_OF = "duplicate_of"
MINIBATCH_PRUNED = "minibatch_pruned"


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Finished trials that count toward the budget: complete and not duplicates, in trial order."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if DUPLICATE_OF not in t.user_attrs]


def tried_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count toward `num_trials`: the counted ones and those pruned on a minibatch."""
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if t.user_attrs.get(MINIBATCH_PRUNED) and DUPLICATE_OF not in t.user_attrs]
    return sorted([*counted_trials(study), *pruned], key=lambda t: t.number)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best counted trial; ties go to the earliest (the baseline wins a tie)."""
    trials = counted_trials(study)
    return max(trials, key=lambda t: (t.value, -t.number)) if trials else None


def cheapest_within_ci(study: optuna.Study, n: int) -> FrozenTrial | None:
    """Of the counted trials whose dev score lies within the 95% Wilson interval of the best's (`n` dev
    examples), the one with the fewest output tokens per answer; ties go to the better score, then the earlier."""
    from postreason_dspy.evaluation.stats import wilson_interval  # evaluation sits above the optimizers

    best = best_trial(study)
    if best is None:
        return None
    low, _ = wilson_interval(round(best.value * n), n)
    close = [t for t in counted_trials(study) if t.value >= low - 1e-12]
    return min(close, key=lambda t: (t.user_attrs.get("answer_tokens", float("inf")), -t.value, t.number))


@dataclass
class TrialRecord:
    """One line of trials.jsonl (`state` is one of STATES)."""

    number: int
    state: str
    params: dict[str, int]
    instructions: list[str]
    demo_set_ids: list[str]
    demo_ids: list[list[str]]
    dev_score: float | None
    lm_calls: int
    input_tokens: int
    output_tokens: int
    seconds: float
    baseline: bool
    unparsed: int = 0
    answer_tokens: float | None = None
    adapter: str | None = None
    rationale_fields: list[str | None] | None = None
    duplicate_of: int | None = None
    retry_of: int | None = None
    note: str | None = None
    format: str | None = None  # "post" or "direct" when the answer format is searched
    demo_style: str | None = None  # "justified" or "bare" for a bootstrapped demo set
    eliminated: dict | None = None  # a raced candidate's elimination: the rule and its evidence (see racing)
