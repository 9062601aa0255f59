"""One file lock for every "one process at a time" rule: a run folder, a search folder, the local server.

Built on `filelock` (an `flock` on POSIX), so the lock goes with its process: a killed holder frees it at
once and no stale lock file has to be cleaned up. A caller either waits for the lock (starting the local
server) or, naming what is busy, fails at once with a `BusyError` that says so (resuming a running run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from postreason_dspy.errors import BusyError


@contextmanager
def exclusive(path: Path, busy: str | None = None) -> Iterator[None]:
    """Hold the lock file `path` for the block. Without `busy`, wait for it; with `busy`, raise
    `BusyError(busy)` at once if another holder (another process, or another lock object here) has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=-1 if busy is None else 0)
    try:
        lock.acquire()
    except Timeout:
        raise BusyError(busy) from None
    try:
        yield
    finally:
        lock.release()
