"""A run's directory: its config, one JSONL line per (setting, example), a summary; atomic writes and resume.

    runs/<run-id>/config.json      the resolved config (models described, never their keys), written once
    runs/<run-id>/examples.jsonl   one line per finished example and setting, appended as each one ends
    runs/<run-id>/summary.json     statistics per setting, paired comparisons, headline figures
    runs/<run-id>/report/          `postreason report`: report.md and PNG plots

JSON files are replaced atomically (temporary file, fsync, rename). Each example line is written in
one append and fsynced, so a killed run leaves at most one torn last line; reading skips it, and
`compact()` (run before resuming) rewrites the file without it, keeping one line per example.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.scrub import scrub, secret_values

CONFIG = "config.json"
EXAMPLES = "examples.jsonl"
SUMMARY = "summary.json"
REPORT_DIR = "report"

RecordKey = tuple[str, str, str, str]


def record_key(record: dict[str, Any]) -> RecordKey:
    """(model, benchmark, strategy, example id): a record's identity; a run holds one record per key."""
    return record["model"], record["benchmark"], record["strategy"], record["id"]


def new_run_id() -> str:
    """A sortable, unique run id: the UTC time and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader (or a crash) sees the old file or the new one, never half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(frozen=True)
class Compaction:
    """What `compact()` did: records kept, error records dropped (to be redone), torn or duplicate lines dropped."""

    kept: int
    errors_dropped: int
    lines_dropped: int


class RunStore:
    """Reads and writes one run directory. `append` is thread-safe; every write is scrubbed of secrets."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._secrets = secret_values()

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def examples_path(self) -> Path:
        return self.path / EXAMPLES

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    @classmethod
    def create(cls, runs_dir: Path, config: dict[str, Any], run_id: str | None = None) -> RunStore:
        """A new run directory holding `config`; refuses to reuse an existing run's directory."""
        run_id = run_id or new_run_id()
        if not run_id or Path(run_id).name != run_id or run_id.startswith("."):
            raise ConfigurationError(f"a run id must be a plain directory name, not {run_id!r}")
        path = runs_dir / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ConfigurationError(
                f"run {path} already exists: continue it with `--resume {run_id}` or choose another --run-id"
            ) from None
        store = cls(path)
        store.write_json(CONFIG, config)
        store.examples_path.touch()
        return store

    @classmethod
    def open(cls, run: str | Path, runs_dir: Path) -> RunStore:
        """An existing run, named by its directory or by its id under `runs_dir`."""
        for candidate in (Path(run), runs_dir / str(run)):
            if (candidate / CONFIG).is_file():
                return cls(candidate)
        raise ConfigurationError(f"no run {str(run)!r}: neither {run} nor {runs_dir / str(run)} holds a {CONFIG}")

    @classmethod
    def latest(cls, runs_dir: Path) -> RunStore:
        """The most recently started run under `runs_dir`."""
        runs = [path for path in runs_dir.glob(f"*/{CONFIG}") if path.is_file()]
        if not runs:
            raise ConfigurationError(f"no runs under {runs_dir}: start one with `postreason eval`")
        return cls(max(runs, key=lambda path: path.stat().st_mtime).parent)

    # ----- JSON files -----

    def write_json(self, name: str, data: Any) -> None:
        text = json.dumps(scrub(data, self._secrets), indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(self.path / name, text)

    def read_json(self, name: str) -> Any:
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"run {self.path} has no {name}") from None

    def read_config(self) -> dict[str, Any]:
        return self.read_json(CONFIG)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.write_json(SUMMARY, summary)

    # ----- example records -----

    def append(self, record: dict[str, Any]) -> None:
        """Add one finished example: a single fsynced append, so it is either wholly there or not at all."""
        line = (json.dumps(scrub(record, self._secrets), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.examples_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def _read(self) -> tuple[dict[RecordKey, dict[str, Any]], int]:
        """Records by key (a later line replaces an earlier one) and the number of unusable lines."""
        try:
            text = self.examples_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, 0
        records: dict[RecordKey, dict[str, Any]] = {}
        bad = 0
        lines = text.split("\n")
        complete, tail = lines[:-1], lines[-1]  # a last piece without "\n" is a torn write
        bad += bool(tail.strip())
        for line in complete:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record_key(record)
            except (json.JSONDecodeError, KeyError, TypeError):
                bad += 1
                continue
            bad += key in records
            records[key] = record
        return records, bad

    def records(self) -> list[dict[str, Any]]:
        """Every finished example's record, one per (model, benchmark, strategy, id), in the order written."""
        return list(self._read()[0].values())

    def compact(self) -> Compaction:
        """Before resuming: rewrite examples.jsonl atomically without torn or duplicate lines and without
        error records (those examples are redone); every finished example keeps its one line."""
        records, bad = self._read()
        kept = [record for record in records.values() if record.get("status") != "error"]
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in kept)
        atomic_write_text(self.examples_path, lines)
        return Compaction(kept=len(kept), errors_dropped=len(records) - len(kept), lines_dropped=bad)
