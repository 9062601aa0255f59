"""The one file lock, contended by a real second process: a waiter waits, a busy caller is refused at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postreason_dspy.errors import BusyError, ConfigurationError
from postreason_dspy.locks import exclusive

HOLDER = """
import sys, time
from pathlib import Path
from postreason_dspy.locks import exclusive
lock, marker, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
with exclusive(lock):
    print("held", flush=True)
    time.sleep(seconds)
    marker.write_text("released")
"""


def _holder(tmp_path: Path, seconds: float) -> tuple[subprocess.Popen[str], Path, Path]:
    """A second process holding the lock for `seconds`; returned once it holds it."""
    lock, marker = tmp_path / "run" / ".lock", tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(marker), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child, lock, marker


def test_a_busy_caller_is_refused_at_once_with_the_message_it_gave(tmp_path):
    child, lock, _ = _holder(tmp_path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(BusyError, match=r"^run r is in use$") as refused, exclusive(lock, busy="run r is in use"):
            pass
        assert time.monotonic() - started < 5 and isinstance(refused.value, ConfigurationError)
    finally:
        child.kill()
        child.wait()


def test_a_waiting_caller_gets_the_lock_once_the_holder_lets_it_go(tmp_path):
    child, lock, marker = _holder(tmp_path, 0.5)
    with exclusive(lock):
        assert marker.read_text() == "released"  # not before the holder's block ended
    assert child.wait(10) == 0


def test_a_killed_holder_frees_the_lock(tmp_path):
    child, lock, _ = _holder(tmp_path, 30)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    with exclusive(lock, busy="still held"):
        pass


def test_one_process_gets_the_lock_once_and_again_after_releasing_it(tmp_path):
    lock = tmp_path / "new" / "folder" / ".lock"  # a missing folder is made
    with exclusive(lock, busy="held"), pytest.raises(BusyError, match="held"), exclusive(lock, busy="held"):
        pass
    with exclusive(lock, busy="held"):
        pass
