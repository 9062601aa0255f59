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
from postreason_dspy.cli.options import (
    add_api_base_option,
    add_data_option,
    add_model_option,
    add_no_progress_option,
    add_run_id_option,
    add_runs_dir_option,
    count_or,
    count_or_all,
    data_paths,
    default_model,
    refuse_settings_on_resume,
)
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.optimizers.post_reason_search import PRUNERS, SELECTIONS
from postreason_dspy.secrets import redact
from postreason_dspy.tuning import TuneConfig, TuneRun
from postreason_dspy.tuning.report import render_tune_summary

# Options that define a tune run: `--resume` takes them from tune.json.
SETTING_OPTIONS = ("model", "benchmark", "program_strategy", "trials", "train_size", "dev_size", "limit",
                   "study", "max_lm_calls", "seed", "data", "run_id", "adapters", "rationale_fields", "propose",
                   "prompt_model", "minibatch", "pruner", "select", "demo_sets", "max_demos", "demo_styles",
                   "direct_candidate")



def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` command."""
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
    parser.add_argument("--program-strategy", choices=("post", "post_full"),
                        help="the program tuned (default: post)")
    parser.add_argument("--trials", type=int, help="counted trials per model, baseline included (default 16)")
    parser.add_argument("--train-size", type=count_or_all,
                        help="training questions demos are drawn from (default 40)")
    parser.add_argument("--dev-size", type=count_or_all, help="dev questions candidates are scored on (default 50)")
    parser.add_argument("--limit", type=count_or_all,
                        help="held-out test questions of the final comparison (default 200)")
    parser.add_argument("--demo-sets", type=count_or("auto"), metavar="N|auto", help="bootstrapped demo sets "
                        "offered (default auto: as many as the budget can try)")
    parser.add_argument("--max-demos", type=int, help="demos in the largest set; sets hold k, k-1, ..., 1 (default 3)")
    parser.add_argument("--demo-styles", type=_names, metavar="LIST", help="demos with the model's justification "
                        "('justified'), with it left empty ('bare'), or both (default justified,bare)")
    parser.add_argument("--no-direct-candidate", dest="direct_candidate", action="store_const", const=False,
                        help="race post-reasoning candidates only (default: a direct answer with each demo set "
                        "races too, so the recommendation may be a direct program)")
    parser.add_argument("--storage", metavar="URL", help="an Optuna storage shared by several machines, e.g. "
                        "postgresql://user@host/db (default: an SQLite file in the run folder)")
    parser.add_argument("--study", metavar="NAME", help="the study's name in --storage (default: derived from "
                        "benchmark, model, program, splits and seed, so every worker finds the same study)")
    parser.add_argument("--max-lm-calls", type=int, metavar="C", help="stop the search cleanly after C LM calls")
    parser.add_argument("--with-cot", action="store_true", help="also evaluate chain-of-thought on test")
    parser.add_argument("--with-direct-demos", action="store_true",
                        help="also evaluate on test a direct answer given the tuned program's demos (without their "
                        "justifications): separates the demos' share of the gain from post-reasoning's")
    search = parser.add_argument_group("search dimensions and efficiency (all off by default)")
    search.add_argument("--adapters", type=_names, metavar="LIST", help="also search the output format among "
                        "these adapters, e.g. chat,xml,plain (the program keeps the one chosen)")
    search.add_argument("--rationale-fields", type=_names, metavar="LIST", help="also search the rationale "
                        "field's name (and description) among these, e.g. justification,explanation,verification")
    search.add_argument("--propose", type=int, metavar="N", help="ask the prompt model for N more clause wordings "
                        "(shown train examples and the signature); valid ones join the candidates")
    search.add_argument("--prompt-model", metavar="M", help="the model that proposes wordings (default: the model "
                        "being tuned)")
    search.add_argument("--minibatch", type=int, metavar="K", help="race candidates on dev questions from K at a "
                        "time and eliminate those that fall behind (survivors are scored on all of dev)")
    search.add_argument("--pruner", choices=PRUNERS, help="with --minibatch: 'bound' (exact: cannot beat the best), "
                        "'halving' (successive halving: also keep only the top third at K, 3K, 9K... questions) "
                        "or 'median' (also Optuna's MedianPruner); default bound")
    search.add_argument("--select", choices=SELECTIONS, help="'best' dev accuracy (default), or "
                        "'cheapest-within-ci': fewest output tokens per answer within the 95%% Wilson interval "
                        "of the best")
    parser.add_argument("--seed", type=int, help="splits' order and the sampler's seed (default 0)")
    add_data_option(parser)
    parser.add_argument("--resume", metavar="RUN", help="continue tune run RUN (id or directory)")
    add_runs_dir_option(parser)
    add_run_id_option(parser)
    add_no_progress_option(parser)
    parser.set_defaults(func=run_tune_command)


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list: 'chat,xml' -> ('chat', 'xml')."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def _config(args: argparse.Namespace) -> TuneConfig:
    if not args.benchmark:
        raise ConfigurationError("give --benchmark (see `postreason benchmarks`)")
    defaults = TuneConfig(models=("x",), benchmark=args.benchmark)

    def size(value: int | str | None, default: int | None) -> int | None:
        return default if value is None else None if value == "all" else int(value)

    return TuneConfig(
        models=tuple(dict.fromkeys(args.model or [default_model()])),
        benchmark=args.benchmark,
        program_strategy=args.program_strategy or defaults.program_strategy,
        trials=defaults.trials if args.trials is None else args.trials,
        train_size=size(args.train_size, defaults.train_size),
        dev_size=size(args.dev_size, defaults.dev_size),
        limit=size(args.limit, defaults.limit),
        num_demo_sets=None if args.demo_sets in (None, "auto") else args.demo_sets,
        max_demos=defaults.max_demos if args.max_demos is None else args.max_demos,
        demo_styles=args.demo_styles or defaults.demo_styles,
        direct_candidate=defaults.direct_candidate if args.direct_candidate is None else args.direct_candidate,
        storage=args.storage,
        study=args.study,
        max_lm_calls=args.max_lm_calls,
        with_cot=args.with_cot,
        with_direct_demos=args.with_direct_demos,
        seed=defaults.seed if args.seed is None else args.seed,
        api_base=args.api_base,
        data=data_paths(args.data, (args.benchmark,)).get(args.benchmark),
        adapters=args.adapters or (),
        rationale_fields=args.rationale_fields or (),
        proposals=args.propose or 0,
        prompt_model=args.prompt_model,
        minibatch=args.minibatch,
        pruner=args.pruner or defaults.pruner,
        select=args.select or defaults.select,
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
        best = "-" if state["best"] is None else f"{state['best']:.1%}"
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
        refuse_settings_on_resume(args, SETTING_OPTIONS)
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
