"""Distil a saved program on a benchmark: the checks around `distill` that the command needs.

Refuses benchmarks whose text must not be written (GPQA), guards against every test split on this
machine, warns when the tuning split is official test data, and keeps one folder to one setting.
Without a program file, the benchmark's own untuned post-reasoning program is used (saved in the folder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy.benchmarks import Benchmark, get_benchmark, list_benchmarks
from postreason_dspy.benchmarks.program_file import (
    check_exportable,
    load_program_file,
    program_adapter,
    program_hash,
    refuse_withheld,
    save_program,
)
from postreason_dspy.distill import distill
from postreason_dspy.distill.card import Provenance
from postreason_dspy.distill.filters import COPY_THRESHOLD
from postreason_dspy.distill.leakage import LeakageGuard
from postreason_dspy.distill.origin import official_test_origin, overlap_warning
from postreason_dspy.distill.run import DistillStats, distill_folder
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import refuse_changes, settings_changed
from postreason_dspy.models import describe_lm

SETTINGS_FILE = "distill.json"
TUNING_SPLITS = ("train", "dev")


@dataclass
class DistillJob:
    """One `postreason distill` invocation, resolved."""

    program: str | Path | None  # None: the benchmark's own untuned post-reasoning program
    out: Path
    benchmark: str | None = None
    split: str = "train"
    limit: int | None = None
    seed: int = 0
    rationalize: bool = False
    adapter: str | None = None
    model: str | None = None  # the model string the records name as their source
    data: str | Path | None = None
    runs_dir: str | Path = "runs"
    copy_threshold: float = COPY_THRESHOLD


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """One folder holds one distillation: refuse to mix another program or setting (or another run) into it."""
    distill_folder(out)
    refuse_changes(settings_changed(out / SETTINGS_FILE, settings), f"{out} holds a distillation with other settings",
                   "use another --out")


def teacher_name(model: str, lm: dspy.LM) -> str:
    """The teacher as the card and records name it: `model`, with the weights the local server runs."""
    served = describe_lm(lm).get("local_model")
    return f"{model} ({served})" if served else model


def program_file(job: DistillJob) -> str | Path:
    """The program to distil: job.program, else the benchmark's untuned post program saved in job.out."""
    if job.program is not None:
        return job.program
    if not job.benchmark:
        raise ConfigurationError("give a program, or --benchmark to distil each benchmark's own post program")
    bench = get_benchmark(job.benchmark)
    refuse_withheld(bench, "distilled data")
    path = job.out / "program.json"
    save_program(bench.program("post"), path, benchmark=bench.name, strategy="post", keep_same=True)
    return path


def _benchmark(job: DistillJob, program_benchmark: str) -> Benchmark:
    bench = get_benchmark(job.benchmark or program_benchmark)
    own = get_benchmark(program_benchmark)
    if bench.family != own.family:
        raise ConfigurationError(
            f"the program answers {own.name} ({own.family}); {bench.name} is {bench.family}: its inputs do not fit"
        )
    if job.split not in TUNING_SPLITS:
        raise ConfigurationError(f"distill draws from a tuning split ({', '.join(TUNING_SPLITS)}), not {job.split!r}")
    refuse_withheld(bench, "distilled data")
    return bench


def run_distill_job(
    job: DistillJob,
    lm: dspy.LM,
    *,
    guard_benchmarks: Iterable[Benchmark] | None = None,
    guard: LeakageGuard | None = None,
    say: Callable[[str], None] = print,
    on_example: Callable[[DistillStats], None] | None = None,
) -> tuple[DistillStats, Provenance, LeakageGuard]:
    """Distil job.program on its benchmark with `lm`; `guard` (else one over `guard_benchmarks`, by default every
    registered benchmark) drops test questions."""
    saved, path = load_program_file(program_file(job), job.runs_dir)
    check_exportable(saved)  # a GPQA program's demos would be written into every record
    bench = _benchmark(job, saved.benchmark)
    adapter = program_adapter(saved, job.adapter)
    about = Provenance(
        benchmark=bench.name, benchmark_title=bench.title, licence=bench.licence, split=job.split,
        source_model=teacher_name(job.model or saved.model or "unknown", lm), program_hash=program_hash(saved),
        program_file=str(path), strategy=saved.strategy, data_source=bench.source(job.data).describe(),
    )
    examples = bench.load(job.split, job.limit, job.seed, path=job.data)  # bad data fails before DIR is written
    check_settings(job.out, {"program_hash": about.program_hash, "benchmark": bench.name, "split": job.split,
                              "seed": job.seed, "rationalize": job.rationalize, "adapter": type(adapter).__name__,
                              "source_model": about.source_model, "copy_threshold": job.copy_threshold})
    origin = official_test_origin(bench, job.data)
    if origin:
        about.official_test_warning = overlap_warning(bench, origin)
        say(about.official_test_warning)
    if guard is None:
        guard = build_guard([bench], guard_benchmarks, {bench.name: job.data} if job.data else None)
    with dspy.context(lm=lm):
        program = saved.build(bind_adapter=job.adapter is None)  # --adapter runs it in the format asked for
        stats = distill(program, examples, bench.metric, job.out, adapter=adapter, rationalize=job.rationalize,
                        guard=guard, provenance=about, copy_threshold=job.copy_threshold, on_example=on_example)
    return stats, about, guard


def build_guard(distilled: Iterable[Benchmark], guard_benchmarks: Iterable[Benchmark] | None = None,
                paths: dict[str, str | Path] | None = None) -> LeakageGuard:
    """A guard over `guard_benchmarks` (default: every registered one) and the benchmarks being distilled."""
    checked = list(list_benchmarks() if guard_benchmarks is None else guard_benchmarks)
    names = {other.name for other in checked}
    checked += [bench for bench in distilled if bench.name not in names]  # bbh:<task>, or a file named with --data
    return LeakageGuard.from_benchmarks(checked, paths)
