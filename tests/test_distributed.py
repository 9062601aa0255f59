"""Many machines, one study: two worker processes share a study in a real PostgreSQL server; one is killed
mid-trial. The finished trials add up to the requested number, no trial number is repeated, the killed
trial is re-run by the other worker, and the best program is rebuilt from the storage alone."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from search_worker import start_worker

from postreason_dspy import PostReason
from postreason_dspy.io import JsonlLog
from postreason_dspy.optimizers.candidates import prompt_instructions, rebuild_from_study
from postreason_dspy.optimizers.study import open_study
from postreason_dspy.optimizers.trials import counted_trials

EXPERT = "An expert will review"

def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 (as the `postgres` user when we are root: initdb refuses root)."""
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries not found: install Debian's `postgresql` package "
                    "(`apt-get install -y postgresql`, done by `make test`)")
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install 'postreason-dspy[distributed]'")
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="postreason-pg-", dir="/tmp")  # not under pytest's root-only tmp dir
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = Path(root) / "data", _free_port()
    run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", f"{root}/server.log", "-w", "-t", "30", "start",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def wait_for(path: Path, worker: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def test_two_workers_one_killed_mid_trial_share_one_study(tmp_path, postgres_url):
    trials, study_name = 6, "two-workers"
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    # Worker A: 2 bootstrap calls, then 3 dev calls per trial: call 10 is inside its third trial.
    a = start_worker(a_dir, trials, 10, postgres_url, study_name, grace_period=1.5)
    wait_for(a_dir / "mid-trial", a)
    b = start_worker(b_dir, trials, -1, postgres_url, study_name, grace_period=1.5)
    wait_for(b_dir / "trials.jsonl", b)  # B is working beside A...
    os.kill(a.pid, signal.SIGKILL)  # ...when A dies in the middle of a trial
    a.wait()
    out, err = b.communicate(timeout=60)
    assert b.returncode == 0, err

    study = open_study(postgres_url, study_name, 0)
    counted = counted_trials(study)
    assert len(counted) == trials
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    assert len(numbers) == len(set(numbers))
    lines = JsonlLog(a_dir / "trials.jsonl").read()[0] + JsonlLog(b_dir / "trials.jsonl").read()[0]
    complete = [line["number"] for line in lines if line["state"] == "complete"]
    assert sorted(complete) == sorted(t.number for t in counted) and len(complete) == len(set(complete))
    assert {line["worker"] for line in lines if line["state"] == "complete"} >= {f"{socket.gethostname()}:{a.pid}"}
    # A's unfinished trial was failed by B and re-run with the same parameters, not counted twice.
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert len(failed) == 1
    retried = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.user_attrs.get("retry_of") == failed[0].number]
    assert len(retried) == 1 and retried[0].params == failed[0].params  # scored, or a duplicate of a scored one
    assert any(t.user_attrs.get("baseline") for t in counted)
    # B used the demo sets A bootstrapped (stored in the study).
    assert (a_dir / "demo_sets.json").read_text() == (b_dir / "demo_sets.json").read_text()

    # The best program, from the storage alone (a fresh process would do exactly this).
    fresh = optuna.load_study(study_name=study_name, storage=open_study(postgres_url, study_name, 0)._storage)
    best = rebuild_from_study(PostReason("question -> answer", mode="answer_only"), fresh)
    best_trial = max(counted, key=lambda t: (t.value, -t.number))
    assert prompt_instructions(best.predict) == best_trial.user_attrs["instructions"][0]
    assert float(out.split()[-1]) == best_trial.value
