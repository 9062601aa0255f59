"""Export a (tuned) program's prompts for use outside DSPy: `postreason export PROGRAM --format F`.

Formats: `messages` (JSON: each predictor's exact chat messages with `{{field}}` slots, settings,
answer-only stops, output markers and the parse rule), `text` (readable), `python` (a standalone
script, standard library only, for any OpenAI-compatible server), `jinja` (a template rendering the
messages), `dspy` (the program's DSPy JSON state, for `program.load`). Every one is rendered from
the program's own adapter, so filled in it gives the bytes DSPy sends (tests/test_export_fidelity.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import dspy
from dspy.adapters.base import Adapter
from dspy.utils.saving import get_dependency_versions

from postreason_dspy.benchmarks.program_file import (
    ProgramFile,
    check_exportable,
    describe,
    load_program_file,
    program_adapter,
    program_settings,
)
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.export.formats import RENDERERS
from postreason_dspy.export.prompts import export_prompts, placeholder
from postreason_dspy.export.standalone import render_messages
from postreason_dspy.io import atomic_write_json, atomic_write_text

FORMATS: tuple[str, ...] = ("messages", "text", "python", "jinja", "dspy")
SUFFIXES = {"messages": ".json", "text": ".txt", "python": ".py", "jinja": ".jinja", "dspy": ".json"}


def render_export(saved: ProgramFile, fmt: str, adapter: Adapter | None = None) -> str:
    """The text of export format `fmt` for a saved program (refused for GPQA programs with demos)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    check_exportable(saved)
    program = saved.build()
    if fmt == "dspy":
        state = {**program.dump_state(), "metadata": {"dependency_versions": get_dependency_versions()}}
        return json.dumps(state, indent=2, ensure_ascii=False) + "\n"
    data = export_prompts(
        program, adapter or program_adapter(saved), settings=program_settings(saved), about=describe(saved)
    )
    return RENDERERS[fmt](data)


def export_program(
    program: str | Path, fmt: str, out: str | Path | None = None, *, adapter: str | None = None,
    runs_dir: str | Path = "runs",
) -> Path:
    """Export PROGRAM (a program.json or a tune run) as `fmt` to `out` (default: beside the program file)."""
    saved, path = load_program_file(program, runs_dir)
    text = render_export(saved, fmt, program_adapter(saved, adapter))
    target = Path(out) if out else path.with_name(f"export-{fmt}{SUFFIXES[fmt]}")
    atomic_write_text(target, text)
    return target


def write_export(program: dspy.Module, path: str | Path, adapter: Adapter | None = None) -> Path:
    """Write `export_prompts(program)` (the `messages` format) as JSON to `path`, atomically."""
    path = Path(path)
    atomic_write_json(path, export_prompts(program, adapter))
    return path


__all__ = [
    "FORMATS",
    "export_program",
    "export_prompts",
    "placeholder",
    "render_export",
    "render_messages",
    "write_export",
]
