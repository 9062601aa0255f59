"""Racing: candidates scored on growing minibatches of dev questions, eliminated on the evidence so far.

With `minibatch`, a candidate is scored a few dev questions at a time, always in the same order, so any
two candidates' running scores after n questions are paired. After each step but the last one of
these rules may end it (its LM calls still count toward the budget):

- `bound` (always on): even with every remaining answer right it would stay below the best complete
  candidate;
- `halving` (successive halving, run asynchronously as ASHA does): steps grow geometrically (`minibatch`,
  `minibatch * ETA`, `minibatch * ETA**2`, ... then all of dev), and a candidate goes on from a step
  only if its score there is within the top 1/ETA of the scores every candidate that reached the step
  had there (the first to reach it goes on; the second must tie or beat it). The full dev set is spent
  only on survivors, so a budget of LM calls tries many more candidates;
- `median`: Optuna's MedianPruner, on fixed-size steps.

Each elimination is returned as evidence (rule, questions seen, score, and the cut or bound it fell
below), which the search writes into trials.jsonl. `demo_sets_for_budget` sizes the demo sets to what a
budget can try: more, cheaper candidates rather than a few.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import optuna
from optuna.trial import TrialState

ETA = 3  # successive halving keeps the top third at each step
MAX_DEMO_SETS = 48  # demo sets sized to a large budget stop here (each is a distinct draw from one pool)


def steps(n: int, minibatch: int | None, pruner: str) -> list[int]:
    """How many dev questions a candidate has been scored on at each point a rule may end it; the last is n."""
    if minibatch is None or minibatch >= n:
        return [n]
    if pruner != "halving":
        return [*range(minibatch, n, minibatch), n]
    points, size = [], minibatch
    while size * 2 <= n:  # a step past half of dev saves little: go to all of dev instead
        points.append(size)
        size *= ETA
    return [*points, n]


def cost_per_candidate(n: int, minibatch: int | None, pruner: str) -> float:
    """Expected dev questions scored per candidate when each step keeps 1/ETA of them (halving), else n."""
    points = steps(n, minibatch, pruner)
    if pruner != "halving":
        return float(n)
    return points[0] + sum((b - a) / ETA ** (i + 1) for i, (a, b) in enumerate(pairwise(points)))


def demo_sets_for_budget(
    max_lm_calls: int | None, num_trials: int, n_dev: int, n_train: int, minibatch: int | None, pruner: str
) -> int:
    """How many demo sets a search should offer: about one per candidate it can afford (the baseline's full
    dev pass and at most one bootstrap call per training example set aside), at least 1."""
    if max_lm_calls is None:
        return max(1, min(num_trials, MAX_DEMO_SETS))
    left = max_lm_calls - n_train - n_dev
    return max(1, min(num_trials, MAX_DEMO_SETS, int(left // cost_per_candidate(n_dev, minibatch, pruner))))


def halving_cut(study: optuna.Study, number: int, step: int, score: float) -> dict[str, Any] | None:
    """The evidence that ends trial `number` at `step` (its running `score`), or None if it goes on: the
    scores the other trials had at the same step (finished or still running; failed ones do not count)."""
    others = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False)
              if t.number != number and t.state != TrialState.FAIL and step in t.intermediate_values]
    values = sorted([*others, score], reverse=True)
    keep = max(1, len(values) // ETA)
    cutoff = values[keep - 1]
    if score >= cutoff - 1e-12:
        return None
    return {"rule": "halving", "n": step, "score": score, "cutoff": cutoff, "keep": keep, "reached": len(values),
            "eta": ETA}


def bound_cut(score_if_all_right: float, best: optuna.trial.FrozenTrial | None, step: int, score: float
              ) -> dict[str, Any] | None:
    """The evidence that a trial cannot beat the best complete one any more, or None."""
    if best is None or score_if_all_right >= best.value - 1e-12:
        return None
    return {"rule": "bound", "n": step, "score": score, "at_most": score_if_all_right, "best": best.value,
            "best_trial": best.number}


def describe(evidence: dict[str, Any], n: int) -> str:
    """One line for trials.jsonl's note and the progress display."""
    head = f"eliminated after {evidence['n']} of {n} (running {evidence['score']:.3f})"
    if evidence["rule"] == "halving":
        return (f"{head}: below {evidence['cutoff']:.3f}, the cut for the top {evidence['keep']} of the "
                f"{evidence['reached']} candidates scored on these {evidence['n']} questions (successive halving, "
                f"keep 1/{evidence['eta']})")
    if evidence["rule"] == "bound":
        return (f"{head}: at most {evidence['at_most']:.3f} < best {evidence['best']:.3f} "
                f"(trial {evidence['best_trial']})")
    return f"{head} by Optuna's median pruner"
