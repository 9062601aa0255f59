"""Find the program to export or distil: a program.json file, or a tune run (one program.json per model).

    PROGRAM = path/to/program.json | a tune run folder | RUN (an id under runs/) | RUN/<model-slug>

Also the facts every export and dataset card states about it (benchmark, strategy, model, hash),
and the refusal for benchmarks whose text must not be written to files (GPQA).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postreason_dspy.benchmarks import Benchmark, get_benchmark
from postreason_dspy.benchmarks.program_file import ProgramFile, has_demos, read_program
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import json_id

PROGRAM_FILE = "program.json"


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


def refuse_withheld(bench: Benchmark, what: str) -> None:
    """Raise for a benchmark whose text must never be written to a file (GPQA), naming what was refused."""
    if bench.withhold_text:
        raise ConfigurationError(
            f"{bench.name} ({bench.title}) must never be stored in plain text, and {what} would hold its "
            "questions; nothing was written"
        )


def check_exportable(saved: ProgramFile) -> Benchmark:
    """The program's benchmark; refuses a withheld benchmark's program with demos (they quote its questions)."""
    bench = get_benchmark(saved.benchmark)
    if has_demos(saved.state):
        refuse_withheld(bench, "this program's demos")
    return bench
