"""The Optuna side of the search: opening a study, and the workers that share it (`Workers`).

A study lives in any Optuna storage: in memory, an SQLite file in the run folder (the default of
`postreason tune`), or a shared PostgreSQL database that several machines work on at once. Each
running trial carries a heartbeat (a user attribute refreshed by a thread); a RUNNING trial whose
heartbeat is older than the grace period belongs to a process that died, so it is failed and its
parameters are queued again, to be re-run without counting against the budget. Workers that ask for
the last trial of the budget at once hand the surplus back, and a worker whose budget is held by
others' running trials waits for them.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def worker_seed(seed: int, private: bool) -> int:
    """The sampler's seed: `seed` in a private study; per worker in a shared one, or every worker would
    propose the same candidates."""
    own = seed if private else int(json_id([seed, socket.gethostname(), os.getpid()]), 16)
    return own % 2**31


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


class Workers:
    """This process among the workers of one study: a heartbeat on its running trial, the trials dead workers
    left behind, and the last trial of the budget, which only one worker may take.

    In a private storage (`private`: the run folder's own file, or memory) no other worker runs, so every
    RUNNING trial found at the start was left by a process that died; in a shared one, only a trial silent for
    `grace_period` seconds is. `on_retired` sees each trial retired."""

    def __init__(
        self, study: optuna.Study, *, private: bool, heartbeat_interval: float, grace_period: float,
        on_retired: Callable[[FrozenTrial], None] = lambda _t: None,
    ):
        self.study, self.private = study, private
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.on_retired = on_retired

    def retire_stale(self, at_start: bool = False) -> None:
        """Fail and queue again the trials of workers that died (at the start of a private study: all of them)."""
        grace = 0.0 if at_start and self.private else self.grace_period
        retire_stale_trials(self.study, grace, self.on_retired)

    def rest_is_running(self, taken: int, budget: int) -> bool:
        """Whether the trials running now (other workers') would complete the budget `taken` trials leave."""
        return taken + len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) >= budget

    def wait(self) -> None:
        """Let other workers' trials run a moment; retire those whose worker died meanwhile."""
        time.sleep(min(self.heartbeat_interval, 1.0))
        self.retire_stale()

    def hand_back_surplus(self, trial: optuna.Trial, taken: int, budget: int) -> bool:
        """Two workers that asked for the last trial at once: the later one hands `trial` back (pruned, its
        queued parameters queued again) and returns True."""
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if taken + sum(t.number < trial.number for t in running) < budget:
            return False
        fixed = self.study._storage.get_trial_system_attrs(trial._trial_id).get("fixed_params")
        self.study.tell(trial, state=TrialState.PRUNED)
        if fixed is not None:
            attrs = {key: value for key, value in trial.user_attrs.items() if key != HEARTBEAT}
            self.study.enqueue_trial(fixed, user_attrs=attrs)
        time.sleep(min(self.heartbeat_interval, 1.0))
        return True

    @contextmanager
    def beating(self, trial: optuna.Trial) -> Iterator[None]:
        """A heartbeat on `trial` while the block runs, so other workers know this one is alive."""
        heartbeat = Heartbeat(self.study, trial, self.heartbeat_interval)
        try:
            yield
        finally:
            heartbeat.stop()
