"""`postreason distill PROGRAM --benchmark B --split train --out DIR`: post-reasoned fine-tuning data.

    postreason distill runs/RUN/program.json --split train --limit 200 --out runs/sft-gsm8k
    postreason distill RUN --rationalize --out DIR        also justify the gold answer where the model was wrong

Run again with the same --out to resume. Writes DIR/train.jsonl, DIR/dataset/, DIR/README.md (see
postreason_dspy.distill for the record format).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from postreason_dspy.distill.program import TUNING_SPLITS, DistillJob, run_distill_job
from postreason_dspy.evaluation import terminal
from postreason_dspy.export import ADAPTERS
from postreason_dspy.export.program import load_program_file
from postreason_dspy.models import LOCAL, resolve_lm


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `distill` command."""
    parser = subparsers.add_parser(
        "distill",
        help="turn a program's correct post-reasoned answers into fine-tuning data (train.jsonl + dataset)",
        description="Run PROGRAM in full mode over a tuning split, keep the examples it answers correctly, and "
        "write one chat record per predictor call with the spans of its answer and justification.",
    )
    parser.add_argument("program", help="a program.json, a tune run folder, or a run id under --runs-dir")
    parser.add_argument("--benchmark", help="default: the program's benchmark")
    parser.add_argument("--split", choices=TUNING_SPLITS, default="train", help="default: train")
    parser.add_argument("--limit", type=int, help="examples to take (default: the whole split)")
    parser.add_argument("--seed", type=int, default=0, help="order of the examples before --limit (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (run again with it to resume)")
    parser.add_argument("--rationalize", action="store_true",
                        help="for examples answered wrongly, have the model justify the gold answer (marked)")
    parser.add_argument("--adapter", choices=tuple(ADAPTERS), help="default: the program file's, else chat")
    parser.add_argument("--data", metavar="PATH", help="read the benchmark from a local file")
    parser.add_argument("--max-tokens", type=int, default=1024, help="per call; justifications are long "
                        "(default: 1024)")
    parser.add_argument("--temperature", type=float, default=0.0, help="default: 0.0")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run ids are looked up")
    parser.add_argument("--model", help="'local' or a DSPy/litellm model string (default: the program's model, "
                        "else $POSTREASON_MODEL, else local)")
    parser.add_argument("--api-base", default=os.environ.get("POSTREASON_API_BASE"),
                        help="server URL for the model (default: $POSTREASON_API_BASE, else the provider's own)")
    parser.set_defaults(func=run_distill_command)


def run_distill_command(args: argparse.Namespace) -> int:
    console = terminal()
    saved, _ = load_program_file(args.program, args.runs_dir)
    model = args.model or saved.model or os.environ.get("POSTREASON_MODEL", LOCAL)
    lm = resolve_lm(model, api_base=args.api_base, temperature=args.temperature, max_tokens=args.max_tokens)
    job = DistillJob(program=args.program, out=args.out, benchmark=args.benchmark, split=args.split, limit=args.limit,
                     seed=args.seed, rationalize=args.rationalize, adapter=args.adapter, model=model,
                     data=args.data, runs_dir=args.runs_dir)
    stats, about, guard = run_distill_job(job, lm, say=lambda text: console.print(f"[bold yellow]{text}[/]"))
    table = Table(title=f"distilled {about.benchmark} ({about.split}) into {args.out}")
    for name in ("kept", "rationalized", "rejected", "failed", "test_overlap", "records"):
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(stats, name)) for name in ("kept", "rationalized", "rejected", "failed",
                                                            "test_overlap", "records")))
    console.print(table)
    if stats.overlaps:
        console.print("skipped as test questions: " + ", ".join(
            f"{key} ({', '.join(names)})" for key, names in stats.overlaps.items()), highlight=False)
    if guard.unchecked:
        console.print("not checked for test overlap: " + ", ".join(guard.unchecked), highlight=False)
    if about.official_test_warning:
        console.print(f"[bold yellow]{about.official_test_warning}[/]")
    if stats.failed:
        console.print(f"[yellow]{stats.failed} examples failed; run the same command again to retry them.[/]")
    return 1 if stats.failed else 0
