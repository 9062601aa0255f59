"""A run's directory: its config, one typed record per (setting, example), a summary; crash-safe writes and resume.

    runs/<run-id>/config.json      the resolved config (models described, never their keys), written once,
                                   marked {"kind": "eval"} (postreason_dspy.run_folder)
    runs/<run-id>/examples.jsonl   one `ExampleRecord` line per finished example and setting, appended as each ends
    runs/<run-id>/summary.json     statistics per setting, paired comparisons, headline figures
    runs/<run-id>/report/          `postreason report`: report.md and PNG plots

Every file goes through postreason_dspy.io (atomic replacement, fsynced appends, torn-line repair),
and everything written is scrubbed of secrets first. config.json carries `record_format`: a run of
another format is refused with a clear error instead of being misread.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import JsonlLog, atomic_write_json
from postreason_dspy.locks import exclusive
from postreason_dspy.run_folder import CONFIG, EVAL, RunFolder, new_run_id
from postreason_dspy.secrets import scrub, secret_values

EXAMPLES = "examples.jsonl"
SUMMARY = "summary.json"
REPORT_DIR = "report"
LOCK = ".lock"

# The version of examples.jsonl's line layout, written to config.json. Runs made before the field existed
# wrote exactly the layout of version 1 (the field was added without renaming anything), so its absence reads as 1.
RECORD_FORMAT = 1


@dataclass(frozen=True, order=True)
class Setting:
    """One cell of a run's grid: a model answering a benchmark with a strategy (or a program file's label)."""

    model: str
    benchmark: str
    strategy: str

    @property
    def label(self) -> str:
        return f"{self.model} · {self.benchmark} · {self.strategy}"


def grid(models: Iterable[str], benchmarks: Iterable[str], strategies: Iterable[str]) -> list[Setting]:
    """Every setting in run order: for each model and benchmark, one strategy after another."""
    strategies, benchmarks = list(strategies), list(benchmarks)
    return [Setting(m, b, s) for m in models for b in benchmarks for s in strategies]


@dataclass(frozen=True)
class ExampleRecord:
    """One line of examples.jsonl: what was asked, what came back, whether it was right, what it cost.

    `status` is "ok", "parse_error" (counted wrong) or "error" (the LM call failed for good, or scoring
    raised: left out of accuracy and redone by --resume). Field names are the documented JSONL keys."""

    model: str
    benchmark: str
    strategy: str
    id: str
    status: str
    inputs: dict[str, Any] | None = None
    gold: str | None = None
    group: str | None = None
    answer: str | None = None
    correct: bool | None = None
    completion: str | None = None
    parse_error: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    lm_calls: int | None = None
    attempts: int | None = None
    finished_at: str | None = None

    @property
    def setting(self) -> Setting:
        return Setting(self.model, self.benchmark, self.strategy)

    @property
    def key(self) -> tuple[Setting, str]:
        """A record's identity: a run holds one record per setting and example id."""
        return self.setting, self.id

    @property
    def failed(self) -> bool:
        return self.status == "error"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ExampleRecord:
        """A record from a JSONL line; ValueError when the line is not one (missing identity, wrong types)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = [name for name in IDENTITY if not isinstance(data.get(name), str)]
        if missing:
            raise ValueError(f"no {missing[0]!r}")
        return cls(**{name: data.get(name) for name in FIELDS})


IDENTITY = ("model", "benchmark", "strategy", "id", "status")
FIELDS = tuple(field.name for field in dataclasses.fields(ExampleRecord))


def _parse(line: Any) -> ExampleRecord | None:
    try:
        return ExampleRecord.from_dict(line)
    except ValueError:
        return None


def check_record_format(document: dict[str, Any], where: str) -> None:
    """Refuse a config.json whose records this version cannot read."""
    found = document.get("record_format", RECORD_FORMAT)
    if found != RECORD_FORMAT:
        raise ConfigurationError(
            f"{where} holds records of format {found!r}; this postreason-dspy reads format {RECORD_FORMAT} "
            "(use the version that wrote the run)"
        )


@dataclass(frozen=True)
class Compaction:
    """What `compact()` did: records kept, error records dropped (to be redone), torn or duplicate lines dropped."""

    kept: int
    errors_dropped: int
    lines_dropped: int


class RunStore:
    """Reads and writes one run directory. `append` is thread-safe; every write is scrubbed of secrets:
    the values of secret-looking environment variables, any URL's password, and `extra_secrets`."""

    def __init__(self, path: Path, extra_secrets: Sequence[str] = ()):
        self.path = path
        self._log = JsonlLog(path / EXAMPLES)
        self._secrets = sorted({*secret_values(), *(s for s in extra_secrets if s)}, key=len, reverse=True)
        self._config: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def examples_path(self) -> Path:
        return self.path / EXAMPLES

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    def add_secrets(self, values: Iterable[str]) -> None:
        """Also scrub `values` (an API key, a URL's password) from everything this store writes from now on."""
        self._secrets = sorted({*self._secrets, *(v for v in values if v)}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        """`value` as this store would write it."""
        return scrub(value, self._secrets)

    @classmethod
    def create(
        cls, runs_dir: Path, config: dict[str, Any], run_id: str | None = None, extra_secrets: Sequence[str] = ()
    ) -> RunStore:
        """A new evaluation run folder holding `config` and the record format; refuses an existing folder."""
        run_id = run_id or new_run_id()
        store = cls(runs_dir / run_id, extra_secrets)  # only a path until the folder is made
        RunFolder.create(runs_dir, EVAL, store.scrub({"record_format": RECORD_FORMAT, **config}), run_id,
                         resume_hint=f"continue it with `--resume {run_id}` or choose another --run-id")
        store.examples_path.touch()
        return store

    @classmethod
    def open(cls, run: str | Path, runs_dir: Path) -> RunStore:
        """An existing evaluation run, named by its directory or by its id under `runs_dir`; its config must be
        readable."""
        store = cls(RunFolder.open(run, runs_dir, EVAL).path)
        store.read_config()
        return store

    @classmethod
    def latest(cls, runs_dir: Path) -> RunStore:
        """The most recently started evaluation run under `runs_dir` (never a tune, fine-tuning, distillation or
        comparison folder beside it)."""
        store = cls(RunFolder.latest(runs_dir, EVAL).path)
        store.read_config()
        return store

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for one process: a second `--resume` of a running run gets a clear error, not a race."""
        with exclusive(self.path / LOCK, busy=f"run {self.path} is in use by another `postreason eval` (started or "
                       "resumed); wait for it to finish, or stop it, then resume"):
            yield

    # ----- JSON files -----

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_json(self.path / name, self.scrub(data))
        if name == CONFIG:
            self._config = None

    def read_json(self, name: str) -> Any:
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"run {self.path} has no {name}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{self.path / name} is corrupt (not valid JSON: {exc})") from None

    def read_config(self) -> dict[str, Any]:
        """config.json, checked: a JSON object of a record format this version reads, with the run's settings."""
        if self._config is None:
            document = self.read_json(CONFIG)
            where = str(self.path / CONFIG)
            if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
                raise ConfigurationError(f"{where} is corrupt (no run settings in it)")
            check_record_format(document, where)
            self._config = document
        return self._config

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.write_json(SUMMARY, summary)

    # ----- example records -----

    def append(self, record: ExampleRecord) -> None:
        """Add one finished example: a single fsynced append, so it is either wholly there or not at all."""
        self._log.append(self.scrub(record.to_dict()))

    def _read(self) -> tuple[dict[tuple[Setting, str], ExampleRecord], int]:
        """Records by key (a later line replaces an earlier one) and the number of unusable lines."""
        lines, bad = self._log.read()
        records: dict[tuple[Setting, str], ExampleRecord] = {}
        for line in lines:
            record = _parse(line)
            if record is None:
                bad += 1
                continue
            bad += record.key in records
            records[record.key] = record
        return records, bad

    def records(self) -> list[ExampleRecord]:
        """Every finished example's record, one per (setting, example id), in the order written."""
        return list(self._read()[0].values())

    def compact(self) -> Compaction:
        """Before resuming: rewrite examples.jsonl atomically without torn or duplicate lines and without
        error records (those examples are redone); every finished example keeps its one line."""
        records, bad = self._read()
        kept = [record for record in records.values() if not record.failed]
        self._log.rewrite([record.to_dict() for record in kept])
        return Compaction(kept=len(kept), errors_dropped=len(records) - len(kept), lines_dropped=bad)
