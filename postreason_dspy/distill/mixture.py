"""`postreason distill --benchmark a,b,c`: one training set from several benchmarks' tuning splits.

One benchmark's tuning split gives a few hundred records at most; the study trains on a mixture. Each
benchmark is distilled on its own into OUT/<benchmark>/ (a complete, resumable distillation with its
own card and settings), all behind one leakage guard; OUT/train.jsonl, dataset/, README.md and
summary.json then hold every source's records, and the card counts each source in its own column.
Record and example ids get the benchmark as a prefix (`gsm8k/<example id>/<call>`), so they stay unique.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy.benchmarks import Benchmark, get_benchmark
from postreason_dspy.distill.card import Provenance, dataset_card
from postreason_dspy.distill.job import DistillJob, build_guard, check_settings, run_distill_job
from postreason_dspy.distill.leakage import LeakageGuard
from postreason_dspy.distill.output import read_train, write_outputs
from postreason_dspy.distill.run import DistillStats
from postreason_dspy.errors import ConfigurationError


def source_folder(out: Path, benchmark: str) -> Path:
    """Where one source's own distillation lives (`bbh:date` -> OUT/bbh-date)."""
    return out / re.sub(r"[^\w.-]+", "-", benchmark)


def combined(stats: Iterable[DistillStats]) -> DistillStats:
    """The sum of several distillations' counts."""
    total = DistillStats()
    for part in stats:
        for item in fields(DistillStats):
            mine, theirs = getattr(total, item.name), getattr(part, item.name)
            if isinstance(mine, dict):
                for key, value in theirs.items():
                    mine[key] = mine.get(key, 0) + value if isinstance(value, int) else value
            else:
                setattr(total, item.name, mine + theirs)
    return total


def prefixed(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its benchmark before its ids."""
    source = record["benchmark"]
    return {**record, "id": f"{source}/{record['id']}", "example_id": f"{source}/{record['example_id']}"}


def run_mixture(
    job: DistillJob,
    benchmarks: list[str],
    lm: dspy.LM,
    *,
    data: dict[str, str] | None = None,
    limits: dict[str, int | None] | None = None,
    guard_benchmarks: Iterable[Benchmark] | None = None,
    say: Callable[[str], None] = print,
) -> tuple[DistillStats, list[tuple[Provenance, DistillStats]], LeakageGuard]:
    """Distil every benchmark of `benchmarks` (read from the files `data` names, by benchmark; each cut to its
    entry in `limits`, else job.limit) and merge them into job.out; job.benchmark and job.data are not used."""
    if len(set(benchmarks)) != len(benchmarks):
        raise ConfigurationError(f"--benchmark names a benchmark twice: {','.join(benchmarks)}")
    check_settings(job.out, {"benchmarks": benchmarks})  # a one-benchmark distillation's settings differ too
    guard = build_guard([get_benchmark(name) for name in benchmarks], guard_benchmarks, data)
    sources = []
    for name in benchmarks:
        say(f"distilling {name} into {source_folder(job.out, name)}")
        part = replace(job, benchmark=name, out=source_folder(job.out, name), data=(data or {}).get(name),
                       limit=(limits or {}).get(name, job.limit))
        stats, about, _ = run_distill_job(part, lm, guard=guard, say=say)
        sources.append((about, stats))
    records = [prefixed(record) for about, _ in sources
               for record in read_train(source_folder(job.out, about.benchmark))]
    total = combined(stats for _, stats in sources)
    adapters = ", ".join(sorted({record["adapter"] for record in records})) or "unknown"
    card = dataset_card(sources, guard, job.rationalize, adapters, job.copy_threshold)
    summary = {**total.to_dict(), "sources": {about.benchmark: stats.to_dict() for about, stats in sources}}
    write_outputs(job.out, summary, records, card)
    return total, sources, guard
