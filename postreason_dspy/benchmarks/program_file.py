"""`program.json`: a saved (tuned or hand-written) benchmark program that can be rebuilt from the file alone,
and what reads it: `eval --program`, export and distillation.

DSPy's own saved state holds instructions and demos but not which program they belong to. This file
wraps it with the benchmark, the answering strategy and the constructor arguments that rebuild the
module, and the model it was tuned for, so nothing else is needed:

    {"format": "postreason-program", "version": 1, "benchmark": "commonsense_qa", "strategy": "post",
     "program_kwargs": {...}, "model": "local", "metadata": {...}, "state": {<program.dump_state()>}}

`metadata["adapter"]` ("ChatAdapter", "XMLAdapter" or "PlainTextAdapter"), when present, is the output
format the program was tuned with: `build` returns the program bound to it (`postreason_dspy.bound_adapter`),
so it runs with that adapter wherever it is loaded; export and distillation read the same key
(`program_adapter`).

A command names a program as PROGRAM (`program_path`):

    PROGRAM = path/to/program.json | a tune run folder | RUN (an id under runs/) | RUN/<model-slug>

Loading checks the field layout of every predictor (`StateMismatchError` on a mismatch) and never
unpickles anything. A benchmark whose text must not be written to files (GPQA) is refused wherever its
questions would be: a saved program's demos, an export, a distilled dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
from dspy.adapters.base import Adapter

from postreason_dspy.adapters import adapter_class
from postreason_dspy.benchmarks.base import Benchmark
from postreason_dspy.benchmarks.registry import get_benchmark
from postreason_dspy.bound_adapter import with_adapter
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import atomic_write_json, json_id

PROGRAM_FORMAT = "postreason-program"
PROGRAM_VERSION = 1
PROGRAM_FILE = "program.json"


@dataclass
class ProgramFile:
    """A saved benchmark program: what to rebuild it from, and its DSPy state."""

    benchmark: str
    strategy: str
    state: dict[str, Any]
    model: str | None = None
    program_kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def build(self, overrides: dict[str, Any] | None = None, *, bind_adapter: bool = True) -> dspy.Module:
        """The benchmark's program for this strategy, with the saved instructions and demos loaded.

        `overrides` are merged into the saved constructor arguments (e.g. the evaluator's on_parse_error="mark");
        a recorded `metadata["adapter"]` binds the program to that adapter, unless `bind_adapter` is False (a
        caller that runs it under an adapter of its own choosing, e.g. distillation with `--adapter`)."""
        kwargs = {**self.program_kwargs, **(overrides or {})}
        program = get_benchmark(self.benchmark).program(self.strategy, **kwargs)
        program.load_state(self.state)
        adapter = self.metadata.get("adapter")
        return with_adapter(program, str(adapter)) if adapter and bind_adapter else program

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROGRAM_FORMAT,
            "version": PROGRAM_VERSION,
            "benchmark": self.benchmark,
            "strategy": self.strategy,
            "program_kwargs": self.program_kwargs,
            "model": self.model,
            "metadata": self.metadata,
            "state": self.state,
        }


def _has_demos(state: Any) -> bool:
    """Whether a DSPy state (any nesting) holds a non-empty `demos` list."""
    if isinstance(state, dict):
        return bool(state.get("demos")) or any(_has_demos(value) for value in state.values())
    if isinstance(state, list):
        return any(_has_demos(value) for value in state)
    return False


def refuse_withheld(bench: Benchmark, what: str, outcome: str = "nothing was written") -> None:
    """Raise for a benchmark whose text must never be written to a file (GPQA), naming what was refused."""
    if bench.withhold_text:
        raise ConfigurationError(
            f"{bench.name} ({bench.title}) must never be stored in plain text, and {what} would hold its "
            f"questions; {outcome}"
        )


def check_exportable(saved: ProgramFile) -> Benchmark:
    """The program's benchmark; refuses a withheld benchmark's program with demos (they quote its questions)."""
    bench = get_benchmark(saved.benchmark)
    if _has_demos(saved.state):
        refuse_withheld(bench, "this program's demos")
    return bench


def save_program(
    program: dspy.Module,
    path: str | Path,
    *,
    benchmark: str,
    strategy: str,
    model: str | None = None,
    program_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    keep_same: bool = False,
) -> ProgramFile:
    """Write `program` (built by `get_benchmark(benchmark).program(strategy, **program_kwargs)`) to `path`.

    Refuses a program with demos for a benchmark that withholds its text (GPQA): demos quote its questions.
    `keep_same` leaves an existing file untouched when it holds the same program (metadata aside, but for
    the adapter it binds): an evaluation resumed on that file checks its content, which a rewrite with
    newer metadata would change."""
    state = program.dump_state()
    bench = get_benchmark(benchmark)
    if _has_demos(state):
        refuse_withheld(bench, "this program's demos", f"{path} was not written")
    saved = ProgramFile(
        benchmark=benchmark,
        strategy=strategy,
        state=state,
        model=model,
        program_kwargs=dict(program_kwargs or {}),
        metadata=dict(metadata or {}),
    )
    path = Path(path)
    if keep_same and path.is_file():
        existing = read_program(path)
        if _identity(existing) == _identity(saved):
            return existing
    atomic_write_json(path, saved.to_dict())
    return saved


def _identity(saved: ProgramFile) -> str:
    """What makes two program files the same program: all but the metadata, and the adapter it binds."""
    return json_id({**saved.to_dict(), "metadata": {"adapter": saved.metadata.get("adapter")}})


def read_program(path: str | Path) -> ProgramFile:
    """The program file at `path`; a ConfigurationError that says what is wrong with a file that is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"no program file at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} is not a program file (not valid JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != PROGRAM_FORMAT:
        raise ConfigurationError(
            f"{path} is not a {PROGRAM_FORMAT} file (write one with `postreason tune` or `save_program`)"
        )
    if data.get("version") != PROGRAM_VERSION:
        raise ConfigurationError(
            f"{path} is a {PROGRAM_FORMAT} file of version {data.get('version')!r}; "
            f"this postreason-dspy reads version {PROGRAM_VERSION}"
        )
    try:
        return ProgramFile(
            benchmark=data["benchmark"],
            strategy=data["strategy"],
            state=data["state"],
            model=data.get("model"),
            program_kwargs=data.get("program_kwargs") or {},
            metadata=data.get("metadata") or {},
        )
    except KeyError as exc:
        raise ConfigurationError(f"{path} lacks the field {exc.args[0]!r} of a program file") from None


def load_program(path: str | Path) -> tuple[dspy.Module, ProgramFile]:
    """Rebuild the program saved at `path`; returns it with the file's description."""
    saved = read_program(path)
    return saved.build(), saved


def program_path(program: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The program.json that PROGRAM names (see the module docstring); a ConfigurationError saying why not."""
    given = Path(program).expanduser()
    candidates = [given] if given.exists() else [Path(runs_dir) / program]
    path = candidates[0]
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigurationError(f"no program file or tune run {program!r} (looked for {given} and {path})")
    if (path / PROGRAM_FILE).is_file():
        return path / PROGRAM_FILE
    found = sorted(sub for sub in path.iterdir() if (sub / PROGRAM_FILE).is_file())
    if not found:
        raise ConfigurationError(f"{path} holds no {PROGRAM_FILE} (nor a folder with one): is it a tune run?")
    if len(found) > 1:
        names = ", ".join(f"{program}/{sub.name}" for sub in found)
        raise ConfigurationError(f"{path} holds a program for each of {len(found)} models; name one: {names}")
    return found[0] / PROGRAM_FILE


def load_program_file(program: str | Path, runs_dir: str | Path = "runs") -> tuple[ProgramFile, Path]:
    """The program file PROGRAM names, and its path."""
    path = program_path(program, runs_dir)
    return read_program(path), path


def program_hash(saved: ProgramFile) -> str:
    """A digest of what defines the program (benchmark, strategy, constructor arguments, DSPy state)."""
    return json_id(
        {"benchmark": saved.benchmark, "strategy": saved.strategy, "kwargs": saved.program_kwargs, "state": saved.state}
    )


def describe(saved: ProgramFile) -> dict[str, Any]:
    """The header of an export, and the provenance of a distilled dataset."""
    return {
        "benchmark": saved.benchmark,
        "strategy": saved.strategy,
        "model": saved.model,
        "program_hash": program_hash(saved),
    }


def program_adapter(saved: ProgramFile, name: str | None = None) -> Adapter:
    """The adapter the program runs with: `name` ("chat"/"xml"/"plain"), else the file's metadata, else ChatAdapter."""
    return adapter_class(name or str(saved.metadata.get("adapter") or "chat"))()


def program_settings(saved: ProgramFile) -> dict[str, Any]:
    """Temperature and max_tokens the program was tuned with, where its file records them."""
    return {key: saved.metadata[key] for key in ("temperature", "max_tokens") if key in saved.metadata}
