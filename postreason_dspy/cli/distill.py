"""`postreason distill [PROGRAM] --benchmark B --split train --out DIR`: post-reasoned fine-tuning data.

    postreason distill runs/RUN/program.json --split train --limit 200 --out runs/sft-gsm8k
    postreason distill RUN --rationalize --out DIR        also justify the gold answer where the model was wrong
    postreason distill --benchmark gsm8k,arc_challenge,commonsense_qa --limit 300 --model local --out DIR
                      several benchmarks, each with its own post program, into one dataset

Run again with the same --out to resume. Writes DIR/train.jsonl, DIR/dataset/, DIR/README.md (see
postreason_dspy.distill for the record format).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from postreason_dspy import interrupt
from postreason_dspy.adapters import ADAPTERS
from postreason_dspy.benchmarks.program_file import load_program_file
from postreason_dspy.cli.options import (
    add_api_base_option,
    add_data_option,
    add_runs_dir_option,
    data_paths,
    limits_per_benchmark,
    rerun_command,
    split_names,
)
from postreason_dspy.distill.card import Provenance
from postreason_dspy.distill.filters import COPY_THRESHOLD
from postreason_dspy.distill.job import TUNING_SPLITS, DistillJob, run_distill_job
from postreason_dspy.distill.mixture import combined, run_mixture
from postreason_dspy.distill.run import DistillStats
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import terminal
from postreason_dspy.models import LOCAL, resolve_lm


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `distill` command."""
    parser = subparsers.add_parser(
        "distill",
        help="turn a program's correct post-reasoned answers into fine-tuning data (train.jsonl + dataset)",
        description="Run PROGRAM in full mode over a tuning split, keep the examples it answers correctly, and "
        "write one chat record per predictor call with the spans of its answer and justification.",
    )
    parser.add_argument("program", nargs="?",
                        help="a program.json, a tune run folder, or a run id under --runs-dir (default: each "
                        "benchmark's own untuned post-reasoning program)")
    parser.add_argument("--benchmark", help="default: the program's benchmark; several, comma-separated (a,b,c), "
                        "are distilled each into DIR/<benchmark>/ and merged into one dataset in DIR")
    parser.add_argument("--split", choices=TUNING_SPLITS, default="train", help="default: train")
    parser.add_argument("--limit", action="append", metavar="[NAME=]N",
                        help="examples to take from each benchmark, or 'all' (default: all); NAME=N for benchmark "
                        "NAME alone, e.g. --limit 300 --limit gsm8k=150; repeatable")
    parser.add_argument("--seed", type=int, default=0, help="order of the examples before --limit (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (run again with it to resume)")
    parser.add_argument("--rationalize", action="store_true",
                        help="for examples answered wrongly, have the model justify the gold answer (marked)")
    parser.add_argument("--copy-threshold", type=_share, default=COPY_THRESHOLD, metavar="SHARE",
                        help="reject a justification when this share or more of its word trigrams occur in an "
                        f"input field (default: {COPY_THRESHOLD})")
    parser.add_argument("--adapter", choices=tuple(ADAPTERS), help="default: the program file's, else chat")
    add_data_option(parser)
    parser.add_argument("--max-tokens", type=int, default=1024, help="per call; justifications are long "
                        "(default: 1024)")
    parser.add_argument("--temperature", type=float, default=0.0, help="default: 0.0")
    add_runs_dir_option(parser)
    parser.add_argument("--model", help="the teacher: 'local' (the model the local server runs, e.g. the student "
                        "itself) or a DSPy/litellm model string (default: the program's model, else "
                        "$POSTREASON_MODEL, else local); the card names it")
    add_api_base_option(parser)
    parser.set_defaults(func=run_distill_command)


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share in (0, 1], not {text}")
    return value


def run_distill_command(args: argparse.Namespace) -> int:
    console = terminal()
    saved = load_program_file(args.program, args.runs_dir)[0] if args.program else None
    benchmarks = split_names(args.benchmark or "")
    benchmarks = benchmarks or ([saved.benchmark] if saved else [])
    if not benchmarks:
        raise ConfigurationError("give a PROGRAM, or --benchmark to distil each benchmark's own post program")
    data = data_paths(args.data, tuple(benchmarks))
    limits = limits_per_benchmark(args.limit, tuple(benchmarks))
    model = args.model or (saved.model if saved else None) or os.environ.get("POSTREASON_MODEL", LOCAL)
    lm = resolve_lm(model, api_base=args.api_base, temperature=args.temperature, max_tokens=args.max_tokens)
    job = DistillJob(program=args.program, out=args.out, benchmark=benchmarks[0], split=args.split,
                     limit=limits[benchmarks[0]], seed=args.seed, rationalize=args.rationalize,
                     adapter=args.adapter, model=model, data=data.get(benchmarks[0]), runs_dir=args.runs_dir,
                     copy_threshold=args.copy_threshold)
    say = lambda text: console.print(f"[bold yellow]{text}[/]")  # noqa: E731
    with interrupt.resume_with(rerun_command(args)):  # the same command continues where it stopped
        if len(benchmarks) > 1:
            stats, sources, guard = run_mixture(job, benchmarks, lm, data=data, limits=limits, say=say)
        else:
            stats, about, guard = run_distill_job(job, lm, say=say)
            sources = [(about, stats)]
    console.print(counts_table(sources, args.out))
    if stats.overlaps:
        console.print("skipped as test questions: " + ", ".join(
            f"{key} ({', '.join(names)})" for key, names in stats.overlaps.items()), highlight=False)
    if guard.unchecked:
        console.print("not checked for test overlap: " + ", ".join(guard.unchecked), highlight=False)
    for about, _ in sources:
        if about.official_test_warning:
            console.print(f"[bold yellow]{about.official_test_warning}[/]")
    if stats.failed:
        console.print(f"[yellow]{stats.failed} examples failed; run the same command again to retry them.[/]")
    return 1 if stats.failed else 0


def counts_table(sources: list[tuple[Provenance, DistillStats]], out: Path) -> Table:
    """One row per source (and their total when there are several): what each outcome counted."""
    names = ("kept", "rationalized", "rejected", "failed", "test_overlap", "records")
    table = Table(title=f"distilled {', '.join(f'{a.benchmark} ({a.split})' for a, _ in sources)} into {out}")
    for name in ("source", *names):
        table.add_column(name, justify="left" if name == "source" else "right")
    rows = [(about.benchmark, stats) for about, stats in sources]
    if len(rows) > 1:
        rows.append(("total", combined(stats for _, stats in sources)))
    for label, stats in rows:
        table.add_row(label, *(str(getattr(stats, name)) for name in names))
    return table
