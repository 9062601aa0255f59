"""The `postreason` command: one sub-command module per concern, each exposing `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from rich.console import Console

from postreason_dspy import interrupt
from postreason_dspy.cli.plugins import load_plugins
from postreason_dspy.errors import PostReasonError

# Sub-command modules under postreason_dspy.cli; each defines register(subparsers) that sets `func`.
COMMAND_MODULES: tuple[str, ...] = ("local", "benchmarks", "eval", "report", "export", "distill", "tune", "finetune")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="postreason",
        description="Post-reasoning for DSPy: answer first, justify after.",
        epilog="Benchmarks and strategies of your own: POSTREASON_PLUGINS=module,path/to/file.py "
        "(imported before every command).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"postreason_dspy.cli.{name}").register(subparsers)
    return parser


def run_entry(work: Callable[[], int | None], resume: str | None = None) -> int:
    """Run a command's or a script's `work` as the process's entry point: a `PostReasonError` (bad input, a
    missing file, an unreachable server) is one "error:" line and exit code 2, not a traceback, and
    SIGINT/SIGTERM stop it with 130/143 and `resume`, the command line that goes on (postreason_dspy.interrupt)."""

    def command() -> int:
        try:
            return int(work() or 0)
        except PostReasonError as exc:
            if interrupt.requested():
                raise  # stopping: the interrupt's exit code and resume line, not this error's
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            return 2

    return interrupt.run_command(command, resume=resume)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `postreason` console script; returns the process exit code: 2 for bad input,
    130/143 when SIGINT/SIGTERM stopped the command, else the command's own."""

    def command() -> int:
        load_plugins()  # before the parser: help texts list the strategies plugins register
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # for a command's resume line
        return int(args.func(args) or 0)

    return run_entry(command)

if __name__ == "__main__":
    sys.exit(main())
