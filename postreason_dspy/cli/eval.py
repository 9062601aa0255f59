"""`postreason eval`: compare answering strategies for one or many models across benchmarks.

    postreason eval [--model M ...] [--benchmark B ...] [--strategy direct,post,cot] [--limit 20] [--threads 1]
    postreason eval --suite offline     every benchmark whose data is on this machine (the study's comparison)
    postreason eval --program tuned.json[=NAME] [--pair NAME:post]   a saved program as a strategy of its own
    postreason eval --resume RUN        continue an interrupted run (failed examples are redone)

Each run is recorded under runs/<run-id>/ (see runs/README.md); `postreason report RUN` writes its report.
Exit code 1 when some examples failed for good (their errors are in the records; `--resume` retries them);
2 on bad input, or when the model server stopped answering (the message says how to resume); 130 (143)
when Ctrl-C (SIGTERM) stopped it after the LM calls in flight (its last line is the command that resumes it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from postreason_dspy.benchmarks.suites import SUITES, suite_benchmarks
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
    split_names,
)
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import (
    DEFAULT_STRATEGIES,
    EvalConfig,
    RunStore,
    render_summary,
    resume_run,
    start_run,
    terminal,
)
from postreason_dspy.evaluation.reuse import Source
from postreason_dspy.strategies import list_strategies

# Options that define what a run compares besides EvalConfig's flagged fields: a resumed run takes them all
# from its config.json.
SETTING_OPTIONS = ("model", "benchmark", "suite", "strategy", "data", "program", "pair", "reuse_from")


def _names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated and comma-separated values, in order, without duplicates."""
    if values is None:
        return None
    names = [name for value in values for name in split_names(value)]
    return tuple(dict.fromkeys(names))


def _programs(values: list[str] | None) -> dict[str, str]:
    """--program PATH (labelled by the file's stem) or --program PATH=NAME, in order."""
    found: dict[str, str] = {}
    for value in values or []:
        path, sep, label = value.rpartition("=")
        if not sep:
            path, label = value, Path(value).stem
        label = label.strip()
        if not label or "," in label:
            raise ConfigurationError(f"--program {value}: the label must be a name without commas")
        if label in found:
            raise ConfigurationError(f"two program files are labelled {label!r}: name them with --program PATH=NAME")
        found[label] = path
    return found


def _pairs(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """--pair TREATMENT:BASELINE, repeatable."""
    pairs = []
    for value in values or []:
        treatment, sep, baseline = value.rpartition(":")
        if not sep or not treatment or not baseline:
            raise ConfigurationError(f"--pair takes TREATMENT:BASELINE (two strategies or labels), not {value!r}")
        pairs.append((treatment, baseline))
    return tuple(pairs)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser(
        "eval",
        help="compare direct answer, post-reasoning and chain-of-thought on benchmarks",
        description="Run every (model, benchmark, strategy) setting on the same examples, one strategy at a time, "
        "and record each answer under RUNS_DIR/<run-id>/.",
    )
    add_model_option(parser, repeatable=True)
    add_api_base_option(parser)
    parser.add_argument("--benchmark", action="append", metavar="B",
                        help="benchmark name(s), repeatable or comma-separated; bbh:<task> for one BBH task "
                        "(default: gsm8k; see `postreason benchmarks`)")
    parser.add_argument("--suite", action="append", metavar="NAME",
                        help=f"named sets of benchmarks, comma-separated, added to --benchmark: {', '.join(SUITES)} "
                        "(offline: every benchmark whose data is on this machine; a family: its part of that)")
    parser.add_argument("--strategy", action="append", metavar="S",
                        help=f"strategies, comma-separated, from {', '.join(list_strategies())} "
                        f"(default: {','.join(DEFAULT_STRATEGIES)})")
    parser.add_argument("--program", action="append", metavar="PATH[=NAME]",
                        help="a saved program file (program.json) evaluated as a strategy of its own, labelled NAME "
                        "(default: the file's stem); repeatable")
    parser.add_argument("--pair", action="append", metavar="TREATMENT:BASELINE",
                        help="also compare these two strategies or labels on the same examples (every strategy is "
                        "compared with direct anyway); repeatable")
    parser.add_argument("--reuse-from", action="append", metavar="RUN",
                        help="an earlier run whose answers stand for whole settings of this one (same model weights, "
                        "questions, split, max tokens, temperature; a built-in strategy): copied, not asked again; "
                        "repeatable, earlier ones first")
    add_config_options(parser, EvalConfig)
    add_data_option(parser)
    add_runs_dir_option(parser)
    add_run_id_option(parser)
    parser.add_argument("--resume", metavar="RUN", help="continue run RUN (an id under --runs-dir, or a directory)")
    add_no_progress_option(parser)
    parser.set_defaults(func=run_eval_command)


def _config(args: argparse.Namespace) -> EvalConfig:
    listed = _names(args.benchmark) or ()
    suites = suite_benchmarks(_names(args.suite)) if args.suite else ()
    benchmarks = tuple(dict.fromkeys((*listed, *suites))) or EvalConfig().benchmarks
    strategies = {} if args.strategy is None else {"strategies": _names(args.strategy)}
    return config_from_args(
        EvalConfig, args, models=_names(args.model) or (default_model(),), benchmarks=benchmarks, **strategies,
        api_base=args.api_base, data=data_paths(args.data, benchmarks), programs=_programs(args.program),
        pairs=_pairs(args.pair),
    )


def run_eval_command(args: argparse.Namespace) -> int:
    console = terminal()
    live = None if args.no_progress else console
    if args.resume:
        refuse_settings_on_resume(args, (*SETTING_OPTIONS, *setting_dests(EvalConfig), "run_id"),
                                  "only --threads, --retries and --api-base may change")
        store = RunStore.open(args.resume, args.runs_dir)
        _, summary = resume_run(store, threads=args.threads, retries=args.retries, api_base=args.api_base,
                                console=live)
    else:
        sources = [Source.open(run, args.runs_dir) for run in args.reuse_from or ()]
        store, summary = start_run(_config(args), args.runs_dir, run_id=args.run_id, console=live, reuse=sources)
    render_summary(summary, console)
    console.print(f"records: {store.path}   report files: [bold]postreason report {store.path}[/]", highlight=False)
    if summary.errors:
        console.print(f"[yellow]{summary.errors} examples failed; their errors are recorded. "
                      f"Retry them with `postreason eval --resume {store.path}`.[/]", highlight=False)
        return 1
    return 0
