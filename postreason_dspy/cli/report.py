"""`postreason report [RUN] [--compare OTHER]`: a run's tables in the terminal, and report.md with PNG plots.

    postreason report                      the latest run under runs/
    postreason report RUN --out DIR        files into DIR instead of RUN/report/
    postreason report RUN --compare OLD    also RUN against run OLD, paired by example id
"""

from __future__ import annotations

import argparse
from pathlib import Path

from postreason_dspy.cli.options import add_runs_dir_option
from postreason_dspy.evaluation import (
    RunStore,
    render_comparison,
    render_summary,
    terminal,
    write_comparison,
    write_report,
)
from postreason_dspy.tuning.report import report_tune_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` command."""
    parser = subparsers.add_parser(
        "report",
        help="tables, a markdown report and plots for an evaluation run; compare two runs",
        description="Recompute a run's statistics from its records (finished or not), print them, and write "
        "report.md and PNG plots.",
    )
    parser.add_argument("run", nargs="?", help="run id under --runs-dir, or a run directory (default: the latest)")
    parser.add_argument("--compare", metavar="OTHER", help="a second run: compare RUN (B) against it (A)")
    add_runs_dir_option(parser)
    parser.add_argument("--out", type=Path, help="directory for the files (default: RUN/report/)")
    parser.add_argument("--no-plots", action="store_true", help="markdown only")
    parser.set_defaults(func=run_report_command)


def run_report_command(args: argparse.Namespace) -> int:
    console = terminal()
    if report_tune_run(args.run, args.runs_dir, args.out, not args.no_plots, console):  # a `postreason tune` run
        return 0
    store = RunStore.open(args.run, args.runs_dir) if args.run else RunStore.latest(args.runs_dir)
    summary, files = write_report(store, args.out, with_plots=not args.no_plots)
    render_summary(summary, console)
    if args.compare:
        comparison, path = write_comparison(RunStore.open(args.compare, args.runs_dir), store, args.out)
        render_comparison(comparison, console)
        files.append(path)
    console.print("wrote " + ", ".join(str(path) for path in files), highlight=False)
    return 0
