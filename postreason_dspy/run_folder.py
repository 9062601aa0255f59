"""One run folder, whatever made it: created once (an existing folder is refused, never overwritten), opened
again by id or path to resume, and marked with its kind, so a command looking for "the latest evaluation run"
never takes a fine-tuning record for one.

    runs/<run-id>/config.json   {"kind": "eval" | "finetune" | "compare" | "distill", ...}
    runs/<run-id>/tune.json     {"kind": "tune", ...}   (a tune run's settings always lived there)

Folders written before the marker existed are recognised by their files (`folder_kind`): tune.json makes a
tune run, finetune.json a fine-tuning record, compare.json or settings.json an optimizer comparison,
distill.json a distillation; what is left with a config.json and an examples.jsonl is an evaluation run
(even when its config.json is corrupt, so that opening it says so instead of skipping it silently).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import atomic_write_json

EVAL, TUNE, FINETUNE, COMPARE, DISTILL = "eval", "tune", "finetune", "compare", "distill"
KINDS = (EVAL, TUNE, FINETUNE, COMPARE, DISTILL)
NAMES = {EVAL: "an evaluation run", TUNE: "a tune run", FINETUNE: "a fine-tuning record",
         COMPARE: "an optimizer comparison", DISTILL: "a distillation"}
MADE_BY = {EVAL: "postreason eval", TUNE: "postreason tune", FINETUNE: "postreason finetune",
           COMPARE: "python scripts/compare_optimizers.py", DISTILL: "postreason distill"}
CONFIG = "config.json"
CONFIG_FILES = {TUNE: "tune.json"}  # every other kind keeps its config in config.json
# Files that name a folder's kind when its config carries no marker (folders from before it), checked in order.
LEGACY_MARKS = (("tune.json", TUNE), ("finetune.json", FINETUNE), ("compare.json", COMPARE),
                ("settings.json", COMPARE), ("distill.json", DISTILL))


def config_file(kind: str) -> str:
    return CONFIG_FILES.get(kind, CONFIG)


def _marker(path: Path) -> str | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if kind in KINDS else None


def folder_kind(path: Path) -> str | None:
    """What made the folder at `path` (one of KINDS), or None when it is no run folder."""
    for name in dict.fromkeys(config_file(kind) for kind in KINDS):
        if (kind := _marker(path / name)) is not None:
            return kind
    for name, kind in LEGACY_MARKS:
        if (path / name).is_file():
            return kind
    if (path / CONFIG).is_file() and (path / "examples.jsonl").is_file():
        return EVAL
    return None


def check_run_id(run_id: str) -> None:
    if not run_id or Path(run_id).name != run_id or run_id.startswith("."):
        raise ConfigurationError(f"a run id must be a plain directory name, not {run_id!r}")


def new_run_id() -> str:
    """A sortable, unique run id: the UTC time and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def created() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunFolder:
    """A run's folder and its kind. The config file holds the kind first, then what the command records."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / config_file(self.kind)

    def write_config(self, document: dict[str, Any]) -> None:
        atomic_write_json(self.config_path, {"kind": self.kind, **document})

    @classmethod
    def create(
        cls, runs_dir: Path, kind: str, document: dict[str, Any], run_id: str | None = None, *, resume_hint: str
    ) -> RunFolder:
        """A new folder holding `document` as its config; an existing one is refused with `resume_hint`
        (how to continue it instead)."""
        run_id = run_id or new_run_id()
        check_run_id(run_id)
        path = runs_dir / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ConfigurationError(f"run {path} already exists: {resume_hint}") from None
        folder = cls(path, kind)
        folder.write_config(document)
        return folder

    @classmethod
    def ensure(cls, path: Path, kind: str, document: dict[str, Any]) -> RunFolder:
        """The folder at `path` for a command that resumes by running again: reopened when it is a `kind`
        folder, else created with `document` as its config (refused when it holds another kind of run, or a
        config file of something else)."""
        found, folder = folder_kind(path), cls(path, kind)
        if found not in (None, kind) or (found is None and folder.config_path.exists()):
            what = NAMES[found] if found else f"a {config_file(kind)} of something else"
            raise ConfigurationError(f"{path} holds {what}, not {NAMES[kind]}: choose another folder")
        if not folder.config_path.exists():  # new, or from before the marker: marked now
            path.mkdir(parents=True, exist_ok=True)
            folder.write_config(document)
        return folder

    @staticmethod
    def locate(run: str | Path, runs_dir: Path, kind: str) -> Path | None:
        """The `kind` folder that `run` names (a directory, or an id under `runs_dir`), or None."""
        for candidate in (Path(run), runs_dir / str(run)):
            if folder_kind(candidate) == kind:
                return candidate
        return None

    @classmethod
    def open(cls, run: str | Path, runs_dir: Path, kind: str) -> RunFolder:
        """An existing `kind` folder named by its directory or its id under `runs_dir`; a clear error for a
        folder of another kind or none."""
        path = cls.locate(run, runs_dir, kind)
        if path is not None:
            return cls(path, kind)
        for candidate in (Path(run), runs_dir / str(run)):
            if (other := folder_kind(candidate)) is not None:
                raise ConfigurationError(f"{candidate} is {NAMES[other]}, not {NAMES[kind]}")
        places = list(dict.fromkeys(str(place) for place in (Path(run), runs_dir / str(run))))
        where = f"neither {places[0]} nor {places[1]} holds" if len(places) == 2 else f"{places[0]} does not hold"
        raise ConfigurationError(f"no run {str(run)!r}: {where} {NAMES[kind]} (a {config_file(kind)})")

    @classmethod
    def latest(cls, runs_dir: Path, kind: str) -> RunFolder:
        """The most recently started `kind` folder under `runs_dir` (by its config's time); folders of other
        kinds are passed over."""
        paths = [path for path in runs_dir.iterdir() if folder_kind(path) == kind] if runs_dir.is_dir() else []
        if not paths:
            raise ConfigurationError(f"no run under {runs_dir} is {NAMES[kind]}: start one with `{MADE_BY[kind]}`")
        return cls(max(paths, key=lambda path: (path / config_file(kind)).stat().st_mtime), kind)
