"""Distil a saved program on a benchmark: the checks around `distill` that the command needs.

Refuses benchmarks whose text must not be written (GPQA), guards against every test split on this
machine, warns when the tuning split is official test data, and keeps one folder to one setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy.benchmarks import Benchmark, get_benchmark, list_benchmarks
from postreason_dspy.distill import distill
from postreason_dspy.distill.card import Provenance
from postreason_dspy.distill.leakage import LeakageGuard
from postreason_dspy.distill.origin import official_test_origin, overlap_warning
from postreason_dspy.distill.run import DistillStats
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.export import program_adapter
from postreason_dspy.export.program import check_exportable, load_program_file, program_hash, refuse_withheld
from postreason_dspy.io import settings_changed

SETTINGS_FILE = "distill.json"
TUNING_SPLITS = ("train", "dev")


@dataclass
class DistillJob:
    """One `postreason distill` invocation, resolved."""

    program: str | Path
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


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """One folder holds one distillation: refuse to mix another program or setting into it."""
    if changed := settings_changed(out / SETTINGS_FILE, settings):
        raise ConfigurationError(
            f"{out} holds a distillation with other settings ({', '.join(changed)} differ); use another --out"
        )


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
    say: Callable[[str], None] = print,
    on_example: Callable[[DistillStats], None] | None = None,
) -> tuple[DistillStats, Provenance, LeakageGuard]:
    """Distil job.program on its benchmark with `lm`; `guard_benchmarks` defaults to every registered benchmark."""
    saved, path = load_program_file(job.program, job.runs_dir)
    check_exportable(saved)  # a GPQA program's demos would be written into every record
    bench = _benchmark(job, saved.benchmark)
    adapter = program_adapter(saved, job.adapter)
    about = Provenance(
        benchmark=bench.name, benchmark_title=bench.title, licence=bench.licence, split=job.split,
        source_model=job.model or saved.model, program_hash=program_hash(saved), program_file=str(path),
        strategy=saved.strategy, data_source=bench.source(job.data).describe(),
    )
    _check_settings(job.out, {"program_hash": about.program_hash, "benchmark": bench.name, "split": job.split,
                              "seed": job.seed, "rationalize": job.rationalize, "adapter": type(adapter).__name__,
                              "source_model": about.source_model})
    origin = official_test_origin(bench, job.data)
    if origin:
        about.official_test_warning = overlap_warning(bench, origin)
        say(about.official_test_warning)
    examples = bench.load(job.split, job.limit, job.seed, path=job.data)
    paths = {bench.name: job.data} if job.data else None
    checked = list(list_benchmarks() if guard_benchmarks is None else guard_benchmarks)
    if bench.name not in {other.name for other in checked}:
        checked.append(bench)  # bbh:<task>, or a file named with --data
    guard = LeakageGuard.from_benchmarks(checked, paths)
    with dspy.context(lm=lm):
        program = saved.build(bind_adapter=job.adapter is None)  # --adapter runs it in the format asked for
        stats = distill(program, examples, bench.metric, job.out, adapter=adapter, rationalize=job.rationalize,
                        guard=guard, provenance=about, on_example=on_example)
    return stats, about, guard
