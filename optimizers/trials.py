"""Which trials count, which one wins, and what is written down about them.

`PostReasonSearch` keeps its trials in an Optuna study, where a finished trial may be a duplicate of an
earlier candidate (not counted), pruned on a minibatch (counted toward the budget, never chosen) or
complete. These rules, the line each trial leaves in trials.jsonl (`TrialLog`), the search's cost so far
and its record in search.json are kept here in one place so the search, a resumed search and a rebuild
from the storage alone (`candidates.rebuild_from_study`) count and choose alike.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from postreason_dspy.io import JsonlLog
from postreason_dspy.optimizers.racing import steps
from postreason_dspy.optimizers.settings import SearchSettings
from postreason_dspy.secrets import redact
from postreason_dspy.usage import Usage

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

    def add_cost(self, usage: Usage, seconds: float, unparsed: int, answered: int) -> None:
        """What scoring the trial cost, and its output tokens per answer."""
        self.lm_calls, self.input_tokens, self.output_tokens = usage.calls, usage.input_tokens, usage.output_tokens
        self.seconds, self.unparsed = round(seconds, 3), unparsed
        self.answer_tokens = round(usage.output_tokens / answered, 3) if answered else None

    @classmethod
    def retired(cls, trial: FrozenTrial) -> TrialRecord:
        """The line of a trial whose worker stopped mid-trial (it is queued again, see `study.retire_stale_trials`)."""
        return cls(number=trial.number, state="interrupted", params=dict(trial.params), instructions=[],
                   demo_set_ids=[], demo_ids=[], dev_score=None, lm_calls=0, input_tokens=0, output_tokens=0,
                   seconds=0.0, baseline=bool(trial.user_attrs.get("baseline")),
                   note="its worker stopped mid-trial; queued again")


def spent_calls(study: optuna.Study) -> int:
    """The LM calls the study has cost over every worker and session: bootstrap, proposals and trials."""
    calls = (study.user_attrs.get("bootstrap_usage") or {}).get("lm_calls", 0)
    calls += ((study.user_attrs.get("proposed_wordings") or {}).get("usage") or {}).get("lm_calls", 0)
    return calls + sum(t.user_attrs.get("lm_calls", 0) for t in study.get_trials(deepcopy=False))


def spent_seconds(study: optuna.Study) -> float:
    """The search's time over every session: bootstrap, proposals and each scored trial (a resume that
    scores nothing adds nothing)."""
    proposals = study.user_attrs.get("proposed_wordings") or {}
    parts = [study.user_attrs.get("bootstrap_usage"), proposals.get("usage")]
    seconds = sum((part or {}).get("seconds", 0) for part in parts)
    return round(seconds + sum(t.user_attrs.get("seconds", 0) for t in study.get_trials(deepcopy=False)), 3)


def progress(study: optuna.Study, planned: int) -> dict[str, Any]:
    """Where the search stands, for a progress display and search.json."""
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    return {
        "counted": len(tried_trials(study)),  # pruned-on-minibatch trials count toward the budget
        "planned": planned,
        "best": best.value if best is not None else None,
        "lm_calls": spent_calls(study),
        "input_tokens": sum(t.user_attrs.get("input_tokens", 0) for t in trials),
        "output_tokens": sum(t.user_attrs.get("output_tokens", 0) for t in trials),
    }


class TrialLog:
    """Where each trial's record goes: a line of trials.jsonl (with the worker and the time; no file without a
    run folder) and the caller's `on_trial(record, progress)`."""

    def __init__(self, path: Path | None, planned: int,
                 on_trial: Callable[[TrialRecord, dict[str, Any]], None] | None = None):
        self._log = JsonlLog(path) if path is not None else None
        self._planned = planned
        self._on_trial = on_trial

    def repair(self) -> None:
        """Cut a line torn by a killed process, so appending can go on."""
        if self._log is not None:
            self._log.repair()

    def emit(self, record: TrialRecord, study: optuna.Study) -> None:
        if self._log is not None:
            self._log.append({**asdict(record), "worker": f"{socket.gethostname()}:{os.getpid()}",
                              "finished_at": datetime.now(UTC).isoformat(timespec="seconds")})
        if self._on_trial is not None:
            self._on_trial(record, progress(study, self._planned))


def search_record(
    study: optuna.Study, settings: SearchSettings, *, storage: Any, stopped: str, seconds: float,
    chosen: FrozenTrial, n_dev: int, dimensions: dict[str, list[Any]],
) -> dict[str, Any]:
    """What the search did (search.json and the chosen program's `.record`): why it stopped, its cost, the
    trials' states, the chosen and the baseline trial, and what each optional dimension (`dimensions`: the
    searched choices by parameter name) did."""
    trials = study.get_trials(deepcopy=False)
    baseline = next((t for t in counted_trials(study) if t.user_attrs.get("baseline")), None)
    states = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    storage = storage if storage is None or isinstance(storage, str) else type(storage).__name__
    return {
        "study_name": study.study_name,
        "storage": redact(storage) if storage else "memory",
        "stopped": stopped,
        "max_lm_calls": settings.max_lm_calls,
        **progress(study, settings.num_trials),
        "duplicates": sum(DUPLICATE_OF in t.user_attrs for t in trials),
        "trial_states": states,
        "bootstrap": study.user_attrs.get("bootstrap_usage"),
        "demo_sets_hash": study.user_attrs["demo_sets"]["hash"],
        "best": {"number": chosen.number, "dev_score": chosen.value, "params": chosen.params,
                 "instructions": chosen.user_attrs["instructions"],
                 "demo_set_ids": chosen.user_attrs["demo_set_ids"],
                 "answer_tokens": chosen.user_attrs.get("answer_tokens"),
                 **{key: chosen.user_attrs[key] for key in ("adapter", "rationales", "format", "demo_style")
                    if key in chosen.user_attrs}},
        "baseline": {"number": baseline.number, "dev_score": baseline.value} if baseline else None,
        "seconds_this_session": round(seconds, 3),
        "seconds_total": spent_seconds(study),
        **_dimensions_record(study, settings, n_dev, dimensions),
    }


def _dimensions_record(
    study: optuna.Study, settings: SearchSettings, n_dev: int, dimensions: dict[str, list[Any]]
) -> dict[str, Any]:
    """What the optional dimensions did (nothing when none is on, so a default search records what it did)."""
    extra: dict[str, Any] = {}
    if settings.num_demo_sets is None:
        extra["demo_sets"] = len(study.user_attrs["demo_sets"]["sets"])
    for key in ("format", "demo_style"):
        if key in dimensions:
            extra[f"{key}s"] = dimensions[key]
    if settings.select != "best":
        best = best_trial(study)
        extra["select"] = settings.select
        extra["top_dev"] = {"number": best.number, "dev_score": best.value,
                            "answer_tokens": best.user_attrs.get("answer_tokens")}
    if settings.minibatch is not None:
        extra["minibatch"] = settings.minibatch
        extra["pruned_on_minibatch"] = len(tried_trials(study)) - len(counted_trials(study))
        rules = [t.user_attrs["eliminated"]["rule"] for t in tried_trials(study) if "eliminated" in t.user_attrs]
        extra["race"] = {"pruner": settings.pruner, "steps": steps(n_dev, settings.minibatch, settings.pruner),
                         "eliminated_by": {rule: rules.count(rule) for rule in sorted(set(rules))}}
    if "proposed_wordings" in study.user_attrs:
        extra["proposed_wordings"] = study.user_attrs["proposed_wordings"]
    return extra
