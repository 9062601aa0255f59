"""The Optuna side of the search: opening a study, heartbeats, and trials left behind by a dead worker.

A study lives in any Optuna storage: in memory, an SQLite file in the run folder (the default of
`postreason tune`), or a shared PostgreSQL database that several machines work on at once. Each
running trial carries a heartbeat (a user attribute refreshed by a thread); a RUNNING trial whose
heartbeat is older than the grace period belongs to a process that died, so it is failed and its
parameters are queued again, to be re-run without counting against the budget.
"""

from __future__ import annotations

import importlib.util
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import json_id
from postreason_dspy.secrets import redact

HEARTBEAT = "heartbeat"
RETRY_OF = "retry_of"


def default_study_name(**parts: Any) -> str:
    """A name fixed by what the search is about (benchmark, model, program, splits, seed): never a fresh study."""
    return "postreason-" + json_id(parts)


def storage_url(url: str) -> str:
    """`url` with a PostgreSQL driver that is installed: SQLAlchemy reads plain postgresql:// as psycopg2,
    while the `distributed` extra installs psycopg 3."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    rest = url.split("://", 1)[1]
    for module, scheme in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}://{rest}"
    raise ConfigurationError(
        "a PostgreSQL storage needs a driver: pip install 'postreason-dspy[distributed]' (psycopg)"
    )


def check_storage(url: str) -> None:
    """Fail with one line, before anything is written, when the storage at `url` cannot be opened."""
    try:
        optuna.storages.RDBStorage(storage_url(url))
    except ConfigurationError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(f"cannot open the Optuna storage {redact(url)}: {reason}") from exc


def open_study(storage: str | optuna.storages.BaseStorage | None, study_name: str, seed: int) -> optuna.Study:
    """Create or load `study_name` in `storage` (None: in memory), maximizing, with a seeded TPE sampler."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if isinstance(storage, str):
        storage = storage_url(storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.create_study(
                direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True),
                storage=storage,
                study_name=study_name,
                load_if_exists=True,
            )
        except Exception as exc:
            if not isinstance(storage, str):
                raise
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigurationError(f"cannot open the Optuna storage {redact(storage)}: {reason}") from exc


class Heartbeat:
    """While a trial runs, refresh its heartbeat attribute every `interval` seconds (in a daemon thread)."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, interval: float):
        self._study, self._trial_id, self._interval = study, trial._trial_id, interval
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="postreason-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            self._study._storage.set_trial_user_attr(self._trial_id, HEARTBEAT, time.time())
        except UpdateFinishedTrialError:
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def last_sign_of_life(trial: FrozenTrial) -> float:
    beat = trial.user_attrs.get(HEARTBEAT)
    if isinstance(beat, int | float):
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else 0.0


def retire_stale_trials(
    study: optuna.Study, grace_period: float, on_retired: Callable[[FrozenTrial], None] = lambda _t: None
) -> list[FrozenTrial]:
    """Fail every RUNNING trial silent for more than `grace_period` seconds and queue its parameters again.

    Two workers may race to retire the same trial: the storage lets only one change its state, and only
    that one queues the retry."""
    now = time.time()
    retired = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if now - last_sign_of_life(trial) <= grace_period:
            continue
        try:
            changed = study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if changed:
            attrs = {key: value for key, value in trial.user_attrs.items() if key == "baseline"}
            study.enqueue_trial(trial.params, user_attrs={**attrs, RETRY_OF: trial.number}, skip_if_exists=False)
            retired.append(trial)
            on_retired(trial)
    return retired
