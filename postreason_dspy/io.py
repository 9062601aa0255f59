"""Files that must survive a crash: atomic replacement, append-only JSONL that resumes, stable content ids.

Every writer in the package goes through here (run records, summaries, reports, plots, exports,
distilled data, tuning tables, server state), so each file is either the old one or the new one,
never half of either, and a JSONL file killed mid-append loses at most its torn last line. And what a
folder's files were made with is checked here too: `changed_settings` names the settings that changed,
`refuse_changes` refuses to go on with them, in one message shape for every command.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from postreason_dspy.errors import SettingsChangedError

FILE_MODE = 0o644


def _fsync_directory(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it is fsynced and renamed over `path`.

    For writers that want a file name (matplotlib's savefig, a library's save), not a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(descriptor)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp makes the file private (0600); records and reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text`: a reader (or a crash) sees the old file or the new one, never half of it."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: Path, data: Any) -> None:
    """`data` as indented UTF-8 JSON, replaced atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ----- "did the settings change since this folder was made?": one answer, one refusal -----


def changed_settings(
    earlier: Mapping[str, Any], now: Mapping[str, Any], names: Iterable[str] | None = None
) -> list[str]:
    """The names whose values differ between `earlier` and `now`, compared as a JSON file holds them (a tuple
    equals the list it was saved as): `names`, or every key of either, in order."""
    earlier, now = json.loads(json.dumps(earlier)), json.loads(json.dumps(now))
    keys = list(names) if names is not None else [*now, *(key for key in earlier if key not in now)]
    return [key for key in keys if earlier.get(key) != now.get(key)]


def settings_changed(path: Path, settings: dict[str, Any]) -> list[str]:
    """The keys whose values differ from the settings recorded at `path` by an earlier run into the same
    folder (none if there was no earlier run: then `settings` are recorded there). One folder, one setting."""
    if not path.is_file():
        atomic_write_json(path, settings)
        return []
    return changed_settings(json.loads(path.read_text(encoding="utf-8")), settings)


def refuse_changes(names: Sequence[str], what: str, remedy: str) -> None:
    """Refuse to go on with changed settings, in the one shape every such refusal has: "<what> (<names>);
    <remedy>", e.g. "runs/d holds a distillation with other settings (seed); use another --out".
    Does nothing when `names` is empty."""
    if names:
        raise SettingsChangedError(f"{what} ({', '.join(names)}); {remedy}")


class JsonlLog:
    """An append-only JSONL file: each `append` is one fsynced write of one line (thread-safe).

    A process killed mid-append leaves a torn last line (no newline): `read` skips it and counts it,
    `repair` cuts it off so appending can go on."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, record: Any) -> None:
        self.append_many([record])

    def append_many(self, records: list[Any]) -> None:
        """All of `records` in one write: after a crash they are all there or none is (torn tail aside)."""
        data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, data)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def read(self, accept: Callable[[Any], bool] = lambda _: True) -> tuple[list[Any], int]:
        """Every complete line that parses and that `accept` takes, in order, and how many lines were not."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], 0
        lines = text.split("\n")
        complete, tail = lines[:-1], lines[-1]  # a last piece without "\n" is a torn write
        records, bad = [], int(bool(tail.strip()))
        for line in complete:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if accept(record):
                records.append(record)
            else:
                bad += 1
        return records, bad

    def repair(self) -> bool:
        """Cut off a torn last line so the next append starts on a fresh line; True if one was cut."""
        with self._lock:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return False
            if not data or data.endswith(b"\n"):
                return False
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
                os.fsync(handle.fileno())
            return True

    def rewrite(self, records: list[Any]) -> None:
        """Replace the whole file with `records`, atomically."""
        with self._lock:
            atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def content_id(*parts: str) -> str:
    """An id derived from text, the same in every copy of a dataset: 16 hex digits of a SHA-256."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def json_id(data: Any) -> str:
    """A stable id of JSON-like `data` (keys sorted): for examples without one, demo sets, configs."""
    return content_id(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))
