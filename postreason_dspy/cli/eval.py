"""`postreason eval`: compare answering strategies for one or many models across benchmarks.

    postreason eval [--model M ...] [--benchmark B ...] [--strategy direct,post,cot] [--limit 20] [--threads 1]
    postreason eval --resume RUN        continue an interrupted run (failed examples are redone)

Each run is recorded under runs/<run-id>/ (see runs/README.md); `postreason report RUN` writes its report.
Exit code 1 when some examples failed for good (their errors are in the records; `--resume` retries them).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import (
    DEFAULT_LIMIT,
    DEFAULT_STRATEGIES,
    EvalConfig,
    RunStore,
    render_summary,
    resume_run,
    start_run,
    terminal,
)
from postreason_dspy.models import LOCAL
from postreason_dspy.strategies import STRATEGIES

# Options that define what a run compares: a resumed run takes them from its config.json.
SETTING_OPTIONS = ("model", "benchmark", "strategy", "limit", "split", "seed", "max_tokens", "temperature", "data")


def _names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated and comma-separated values, in order, without duplicates."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return tuple(dict.fromkeys(names))


def _limit(text: str) -> int | str:
    if text.lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', not {text!r}") from None


def _data(values: list[str] | None, benchmarks: tuple[str, ...]) -> dict[str, str]:
    """--data PATH (one benchmark) or --data NAME=PATH."""
    found: dict[str, str] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep:
            if len(benchmarks) != 1:
                raise ConfigurationError("with several benchmarks, give --data as NAME=PATH")
            name, path = benchmarks[0], value
        found[name.strip()] = path
    return found


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser(
        "eval",
        help="compare direct answer, post-reasoning and chain-of-thought on benchmarks",
        description="Run every (model, benchmark, strategy) setting on the same examples, one strategy at a time, "
        "and record each answer under RUNS_DIR/<run-id>/.",
    )
    parser.add_argument("--model", action="append", metavar="M",
                        help=f"model to evaluate, repeatable: '{LOCAL}' (the embedded server) or a DSPy/litellm model "
                        f"string such as openai/gpt-4o-mini (default: $POSTREASON_MODEL or {LOCAL})")
    parser.add_argument("--api-base", default=os.environ.get("POSTREASON_API_BASE"),
                        help="server URL for the models (default: $POSTREASON_API_BASE, else each provider's own); "
                        "keys come only from the environment")
    parser.add_argument("--benchmark", action="append", metavar="B",
                        help="benchmark name(s), repeatable or comma-separated; bbh:<task> for one BBH task "
                        "(default: gsm8k; see `postreason benchmarks`)")
    parser.add_argument("--strategy", action="append", metavar="S",
                        help=f"strategies, comma-separated, from {', '.join(STRATEGIES)} "
                        f"(default: {','.join(DEFAULT_STRATEGIES)})")
    parser.add_argument("--limit", type=_limit, help=f"examples per benchmark, or 'all' (default: {DEFAULT_LIMIT})")
    parser.add_argument("--split", choices=("test", "dev", "train"), help="default: test")
    parser.add_argument("--seed", type=int, help="order of the examples before --limit cuts (default: 0)")
    parser.add_argument("--max-tokens", type=int, help="per LM call (default: 512)")
    parser.add_argument("--temperature", type=float, help="default: 0.0")
    parser.add_argument("--data", action="append", metavar="[NAME=]PATH",
                        help="read a benchmark from a local file (see `postreason benchmarks show NAME`)")
    parser.add_argument("--threads", type=int, help="examples in flight at once (default: 1; the local server "
                        "answers one request at a time, remote APIs gain from more)")
    parser.add_argument("--retries", type=int, help="retries of a transient LM error, with backoff (default: 3)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default: runs)")
    parser.add_argument("--run-id", help="name the run directory (default: time and a random suffix)")
    parser.add_argument("--resume", metavar="RUN", help="continue run RUN (an id under --runs-dir, or a directory)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.set_defaults(func=run_eval_command)


def _config(args: argparse.Namespace) -> EvalConfig:
    defaults = EvalConfig()
    benchmarks = _names(args.benchmark) or defaults.benchmarks
    values = {
        "models": _names(args.model) or (os.environ.get("POSTREASON_MODEL", LOCAL),),
        "benchmarks": benchmarks,
        "strategies": _names(args.strategy) or defaults.strategies,
        "limit": defaults.limit if args.limit is None else None if args.limit == "all" else args.limit,
        "split": args.split or defaults.split,
        "seed": defaults.seed if args.seed is None else args.seed,
        "max_tokens": defaults.max_tokens if args.max_tokens is None else args.max_tokens,
        "temperature": defaults.temperature if args.temperature is None else args.temperature,
        "api_base": args.api_base,
        "data": _data(args.data, benchmarks),
        "threads": defaults.threads if args.threads is None else args.threads,
        "retries": defaults.retries if args.retries is None else args.retries,
    }
    return EvalConfig(**values)


def run_eval_command(args: argparse.Namespace) -> int:
    console = terminal()
    live = None if args.no_progress else console
    if args.resume:
        fixed = (*SETTING_OPTIONS, "run_id")
        given = [f"--{name.replace('_', '-')}" for name in fixed if getattr(args, name) is not None]
        if given:
            raise ConfigurationError(
                f"--resume continues a run with its own settings; drop {', '.join(given)} "
                "(only --threads, --retries and --api-base may change)"
            )
        store = RunStore.open(args.resume, args.runs_dir)
        _, summary = resume_run(store, threads=args.threads, retries=args.retries, api_base=args.api_base,
                                console=live)
    else:
        store, summary = start_run(_config(args), args.runs_dir, run_id=args.run_id, console=live)
    render_summary(summary, console)
    console.print(f"records: {store.path}   report files: [bold]postreason report {store.path}[/]", highlight=False)
    if summary.errors:
        console.print(f"[yellow]{summary.errors} examples failed; their errors are recorded. "
                      f"Retry them with `postreason eval --resume {store.path}`.[/]", highlight=False)
        return 1
    return 0
