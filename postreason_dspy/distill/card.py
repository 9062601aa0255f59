"""The dataset card (DIR/README.md): what the data is, where it came from, what it may and may not be used for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postreason_dspy.distill.leakage import LeakageGuard
from postreason_dspy.distill.run import DistillStats


@dataclass
class Provenance:
    """Where the distilled data comes from, for the card and each record."""

    benchmark: str = "unknown"
    benchmark_title: str = ""
    licence: str = "not stated"
    split: str = "train"
    source_model: str | None = None
    program_hash: str | None = None
    program_file: str | None = None
    strategy: str | None = None
    data_source: str = ""
    official_test_warning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def for_records(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "split": self.split, "source_model": self.source_model,
                "program_hash": self.program_hash}


def dataset_card(stats: DistillStats, about: Provenance, guard: LeakageGuard | None, rationalize: bool,
                 adapter: str) -> str:
    """The card's markdown."""
    title = about.benchmark_title or about.benchmark
    lines = [
        "---",
        f"pretty_name: Post-reasoned {title} (distilled with postreason-dspy)",
        "tags: [post-reasoning, distillation, chat]",
        "---",
        "",
        f"# Post-reasoned fine-tuning data: {title}",
        "",
        "Chat records (OpenAI fine-tuning format) in which the model gives its answer first and then justifies it.",
        "",
        "## Source",
        "",
        f"- Benchmark: `{about.benchmark}` ({title}), split `{about.split}`"
        + (f", read from {about.data_source}" if about.data_source else ""),
        f"- Licence of the source data: {about.licence}",
        f"- Source model: `{about.source_model or 'unknown'}`",
        f"- Program: {about.strategy or 'unknown'} strategy, hash `{about.program_hash or 'unknown'}`"
        + (f" (`{about.program_file}`)" if about.program_file else ""),
        f"- Prompt format: {adapter}",
        "",
    ]
    if about.official_test_warning:
        lines += ["## Warning: official test data", "", about.official_test_warning, ""]
    kept = "kept only examples the program, run in full mode, answered correctly (the benchmark's own metric)"
    if rationalize:
        kept += "; for examples it got wrong, the model was given the gold answer and asked to justify it " \
                "(records marked `rationalized`; a justification that says the answer was given is rejected)"
    kept += "; an example whose justification only repeats one of its inputs is rejected"
    lines += [
        "## Filter and counts",
        "",
        f"Filter: {kept}. Every example was checked against the test split of every benchmark whose data was "
        "on the machine (hash of the normalized question text); matches were dropped.",
        "",
        "| outcome | examples |",
        "|---|---|",
        *(f"| {name} | {getattr(stats, name)} |"
          for name in ("kept", "rationalized", "rejected", "failed", "test_overlap")),
        "",
        f"Records (one per predictor call): {stats.records}.",
        "",
        "## Leakage check",
        "",
    ]
    if guard is None:
        lines.append("No leakage check was run.")
    else:
        lines.append(f"Checked against the test splits of: {', '.join(guard.checked) or 'none'}.")
        if guard.unchecked:
            lines += ["", "Could not be checked:", ""]
            lines += [f"- `{name}`: {reason}" for name, reason in guard.unchecked.items()]
    if stats.overlaps:
        lines += ["", f"Dropped as test questions ({stats.test_overlap}):", ""]
        lines += [f"- `{key}`: in {', '.join(names)}" for key, names in stats.overlaps.items()]
    lines += [
        "",
        "## Record format",
        "",
        "`train.jsonl`, one record per line: `id`, `example_id`, `messages` (system, demos, user, assistant), "
        "`spans` (`answer` and `justification`: [start, end) character offsets into the assistant message's "
        "content), `rationalized`, `recovered`, `predictor`, `adapter`, `benchmark`, `split`, `source_model`, "
        "`program_hash`. The same records are saved with `datasets` under `dataset/` (`load_from_disk`).",
        "",
    ]
    return "\n".join(lines)
