"""`postreason report [RUN] [--compare OTHER]`: a run's tables in the terminal, and report.md with PNG plots.

    postreason report                      the latest evaluation run under runs/ (never a tune, finetune,
                                           distill or comparison folder: postreason_dspy.run_folder)
    postreason report RUN --out DIR        files into DIR instead of RUN/report/
    postreason report RUN --compare OLD    also RUN against run OLD, paired by example id
    postreason report R1 R2 ... --study    the study's table merged across runs and models (RUNS_DIR/study/)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from postreason_dspy.cli.options import add_runs_dir_option
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import (
    RunStore,
    render_comparison,
    render_summary,
    terminal,
    write_comparison,
    write_report,
)
from postreason_dspy.evaluation.study_report import render_study, write_study
from postreason_dspy.tuning.report import report_tune_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` command."""
    parser = subparsers.add_parser(
        "report",
        help="tables, a markdown report and plots for an evaluation run; compare two runs",
        description="Recompute a run's statistics from its records (finished or not), print them, and write "
        "report.md and PNG plots.",
    )
    parser.add_argument("run", nargs="*", help="run id under --runs-dir, or a run directory (default: the latest "
                        "evaluation run); several with --study")
    parser.add_argument("--compare", metavar="OTHER", help="a second run: compare RUN (B) against it (A)")
    parser.add_argument("--study", action="store_true",
                        help="merge the runs (of one or several models) into the study's table: post against "
                        "direct per (model, benchmark), the headline with its significance, pooled tests and a "
                        "forest plot (default --out: RUNS_DIR/study/)")
    parser.add_argument("--treatment", default="post", metavar="S",
                        help="with --study: the strategy compared with direct (default: post)")
    add_runs_dir_option(parser)
    parser.add_argument("--out", type=Path, help="directory for the files (default: RUN/report/)")
    parser.add_argument("--no-plots", action="store_true", help="markdown only")
    parser.set_defaults(func=run_report_command)


def run_study_command(args: argparse.Namespace, console: Console) -> int:
    if args.compare:
        raise ConfigurationError("--compare and --study do not go together: --study already merges the runs")
    stores = [RunStore.open(run, args.runs_dir) for run in args.run] or [RunStore.latest(args.runs_dir)]
    study, files = write_study(stores, args.out or args.runs_dir / "study", args.treatment, not args.no_plots)
    render_study(study, console)
    console.print("wrote " + ", ".join(str(path) for path in files), highlight=False)
    return 0


def run_report_command(args: argparse.Namespace) -> int:
    console = terminal()
    if args.study:
        return run_study_command(args, console)
    if len(args.run) > 1:
        raise ConfigurationError(f"{len(args.run)} runs given: report one run, or merge several with --study")
    run = args.run[0] if args.run else None
    if report_tune_run(run, args.runs_dir, args.out, not args.no_plots, console):  # a `postreason tune` run
        return 0
    store = RunStore.open(run, args.runs_dir) if run else RunStore.latest(args.runs_dir)
    summary, files = write_report(store, args.out, with_plots=not args.no_plots)
    render_summary(summary, console)
    if args.compare:
        comparison, path = write_comparison(RunStore.open(args.compare, args.runs_dir), store, args.out)
        render_comparison(comparison, console)
        files.append(path)
    console.print("wrote " + ", ".join(str(path) for path in files), highlight=False)
    return 0
