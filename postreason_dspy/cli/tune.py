"""`postreason tune`: tune post-reasoning per model on a benchmark's tuning split, then measure it on held-out test.

    postreason tune --model local --benchmark commonsense_qa --trials 16 --dev-size 50 --limit 200
    postreason tune --resume RUN            continue an interrupted tune run (nothing finished is redone)
    postreason tune ... --storage postgresql://host/db --study NAME     one study shared by several machines

Writes runs/<run-id>/ (see postreason_dspy.tuning.run); `postreason report RUN` shows it.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from postreason_dspy import interrupt
from postreason_dspy.cli.config_options import add_config_options, config_from_args, setting_dests
from postreason_dspy.cli.options import (
    add_api_base_option,
    add_data_option,
    add_model_option,
    add_no_progress_option,
    add_run_id_option,
    add_runs_dir_option,
    data_paths,
    default_model,
    refuse_settings_on_resume,
)
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.formatting import pct
from postreason_dspy.secrets import redact
from postreason_dspy.tuning import TuneConfig, TuneRun
from postreason_dspy.tuning.report import render_tune_summary

SEARCH_TITLE = "the search (its settings: postreason_dspy.optimizers.settings.SearchSettings)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` command: its run settings are `TuneConfig`'s flagged fields, the search's among them."""
    parser = subparsers.add_parser(
        "tune",
        help="tune post-reasoning wording and demos per model; measure tuned vs untuned vs direct on held-out test",
        description="Per model: search post-reasoning instructions and bootstrapped demos with Optuna on the "
        "benchmark's tuning split (train for demos, dev for selection), save the best program, then evaluate "
        "direct, the untuned program and the tuned one on the same held-out test questions, and recommend one.",
    )
    add_model_option(parser, repeatable=True)
    add_api_base_option(parser)
    parser.add_argument("--benchmark", metavar="B", help="the benchmark to tune on (see `postreason benchmarks`)")
    add_config_options(parser, TuneConfig, {"search": SEARCH_TITLE})
    add_data_option(parser)
    parser.add_argument("--resume", metavar="RUN", help="continue tune run RUN (id or directory)")
    add_runs_dir_option(parser)
    add_run_id_option(parser)
    add_no_progress_option(parser)
    parser.set_defaults(func=run_tune_command)


def _config(args: argparse.Namespace) -> TuneConfig:
    if not args.benchmark:
        raise ConfigurationError("give --benchmark (see `postreason benchmarks`)")
    return config_from_args(
        TuneConfig, args, models=tuple(dict.fromkeys(args.model or [default_model()])), benchmark=args.benchmark,
        api_base=args.api_base, data=data_paths(args.data, (args.benchmark,)).get(args.benchmark),
    )


class TrialProgress:
    """A rich progress bar for one model's search: trials done/planned, best dev so far, LM calls, tokens, ETA."""

    def __init__(self, console: Console, model: str):
        self.model = model
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("trials"),
            TextColumn("best dev {task.fields[best]}"), TextColumn("{task.fields[calls]} LM calls"),
            TextColumn("{task.fields[tokens]} tokens"), TextColumn("last: {task.fields[last]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )
        self.task: Any = None

    def __call__(self, record: Any, state: dict[str, Any]) -> None:
        best = pct(state["best"])
        fields = {"best": best, "calls": state["lm_calls"], "tokens": state["input_tokens"] + state["output_tokens"],
                  "last": record.state}
        if self.task is None:
            self.task = self.progress.add_task(f"tune {self.model}", total=state["planned"],
                                               completed=state["counted"], **fields)
        self.progress.update(self.task, completed=state["counted"], **fields)


@contextmanager
def search_progress(console: Console, model: str) -> Iterator[TrialProgress]:
    """The live bar while `model`'s search runs (closed before the held-out evaluation shows its own)."""
    console.print(f"[dim]tuning {model}: bootstrapping demo sets, then trials[/]", highlight=False)
    bar = TrialProgress(console, model)
    with bar.progress:
        yield bar


def _resume_command(run: TuneRun) -> str:
    """`--resume`, with --storage when tune.json could not keep the URL's password (the user supplies it)."""
    command = f"postreason tune --resume {shlex.quote(str(run.path))}"
    storage = run.config.storage
    if storage and redact(storage) != storage:
        command += f" --storage {shlex.quote(redact(storage))}"
    return command


def run_tune_command(args: argparse.Namespace) -> int:
    console = Console()
    live = None if args.no_progress else console
    kwargs: dict[str, Any] = {"console": live}
    if live is not None:
        kwargs["progress"] = lambda model: search_progress(live, model)
    if args.resume:
        # the options that define a tune run: `--resume` takes them from tune.json
        refuse_settings_on_resume(args, ("model", "benchmark", "data", "run_id", *setting_dests(TuneConfig)))
        run = TuneRun.open(args.resume, args.runs_dir, storage=args.storage, **kwargs)
    else:
        run = TuneRun.create(args.runs_dir, _config(args), args.run_id, **kwargs)
    console.print(f"[dim]tune run {run.path}[/]", highlight=False)
    with interrupt.resume_with(_resume_command(run)):
        summary = run.run()
    render_tune_summary(summary, console)
    console.print(f"summary: {run.path / 'summary.json'}   report: [bold]postreason report {run.path}[/]",
                  highlight=False)
    return 0
