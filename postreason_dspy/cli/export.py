"""`postreason export PROGRAM --format F [--out PATH]`: a tuned program's prompts for use outside DSPy.

    postreason export runs/RUN/program.json --format python --out solve.py
    postreason export RUN --format messages            RUN: a tune run id (RUN/<model> when it tuned several)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from postreason_dspy.adapters import ADAPTERS
from postreason_dspy.export import FORMATS, export_program


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` command."""
    parser = subparsers.add_parser(
        "export",
        help="write a tuned program's prompts as JSON messages, text, a Python script, Jinja or DSPy state",
        description="Export the exact prompts of a program.json (or a tune run) for use without DSPy.",
    )
    parser.add_argument("program", help="a program.json, a tune run folder, or a run id under --runs-dir "
                        "(RUN/<model> when the run tuned several models)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="messages: JSON with {{field}} slots, "
                        "settings, stops and markers; text: readable; python: standalone script (standard "
                        "library); jinja: a template; dspy: the program's DSPy JSON state")
    parser.add_argument("--out", type=Path, help="file to write (default: export-FORMAT.* beside the program file)")
    parser.add_argument("--adapter", choices=tuple(ADAPTERS),
                        help="the program's adapter (default: the one its file records, else chat)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run ids are looked up")
    parser.set_defaults(func=run_export_command)


def run_export_command(args: argparse.Namespace) -> int:
    path = export_program(args.program, args.format, args.out, adapter=args.adapter, runs_dir=args.runs_dir)
    Console().print(f"wrote {path}", highlight=False)
    return 0
