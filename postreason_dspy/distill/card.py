"""The dataset card (DIR/README.md): what the data is, where it came from, what it may and may not be used for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postreason_dspy.distill.filters import COPY_NGRAM, COPY_THRESHOLD, REASONS
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


OUTCOMES = ("kept", "rationalized", "rejected", "failed", "test_overlap")


def dataset_card(sources: list[tuple[Provenance, DistillStats]], guard: LeakageGuard | None, rationalize: bool,
                 adapter: str, copy_threshold: float = COPY_THRESHOLD) -> str:
    """The card's markdown for data distilled from one or more benchmarks (one column of counts per source)."""
    abouts = [about for about, _ in sources]
    title = ", ".join(about.benchmark_title or about.benchmark for about in abouts)
    teachers = sorted({about.source_model or "unknown" for about in abouts})
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
        f"- Teacher model (it answered and justified every record): {', '.join(f'`{t}`' for t in teachers)}",
        f"- Prompt format: {adapter}",
    ]
    for about in abouts:
        lines += [
            f"- Benchmark `{about.benchmark}` ({about.benchmark_title or about.benchmark}), split `{about.split}`"
            + (f", read from {about.data_source}" if about.data_source else "")
            + f"; licence of the source data: {about.licence}; program: {about.strategy or 'unknown'} strategy, "
            f"hash `{about.program_hash or 'unknown'}`" + (f" (`{about.program_file}`)" if about.program_file else ""),
        ]
    lines.append("")
    warnings = [about.official_test_warning for about in abouts if about.official_test_warning]
    if warnings:
        lines += ["## Warning: official test data", "", *warnings, ""]
    lines += _filter_section(sources, rationalize, copy_threshold)
    lines += ["## Leakage check", ""]
    if guard is None:
        lines.append("No leakage check was run.")
    else:
        lines.append(f"Checked against the test splits of: {', '.join(guard.checked) or 'none'}.")
        if guard.unchecked:
            lines += ["", "Could not be checked:", ""]
            lines += [f"- `{name}`: {reason}" for name, reason in guard.unchecked.items()]
    overlaps = {key: names for _, stats in sources for key, names in stats.overlaps.items()}
    if overlaps:
        lines += ["", f"Dropped as test questions ({len(overlaps)}):", ""]
        lines += [f"- `{key}`: in {', '.join(names)}" for key, names in overlaps.items()]
    lines += [
        "",
        "## Record format",
        "",
        "`train.jsonl`, one record per line: `id`, `example_id`, `messages` (system, demos, user, assistant), "
        "`spans` (`answer` and `justification`: [start, end) character offsets into the assistant message's "
        "content; `values`: one [start, end) per answer field, its value alone), `rationalized`, `recovered`, "
        "`predictor`, `adapter`, `benchmark`, `split`, `source_model`, `program_hash`. The same records are saved "
        "with `datasets` under `dataset/` (`load_from_disk`).",
        "",
    ]
    return "\n".join(lines)


def _filter_section(sources: list[tuple[Provenance, DistillStats]], rationalize: bool,
                    copy_threshold: float) -> list[str]:
    kept = "kept only examples the program, run in full mode, answered correctly (the benchmark's own metric)"
    if rationalize:
        kept += "; for examples it got wrong, the model was given the gold answer and asked to justify it " \
                "(records marked `rationalized`; a justification that says the answer was given is rejected)"
    kept += (f"; an example whose justification only repeats one of its inputs, or in which {copy_threshold:.0%} "
             f"or more of the justification's word {COPY_NGRAM}-grams occur in an input field, is rejected")
    reasons = sorted({reason for _, stats in sources for reason in stats.rejections})
    rows = [(name, [getattr(stats, name) for _, stats in sources]) for name in OUTCOMES[:3]]
    rows += [(f"rejected: {REASONS.get(reason, reason)}", [stats.rejections.get(reason, 0) for _, stats in sources])
             for reason in reasons]
    rows += [(name, [getattr(stats, name) for _, stats in sources]) for name in (*OUTCOMES[3:], "records")]
    several = len(sources) > 1
    heads = [about.benchmark for about, _ in sources] + ["total"] if several else ["examples"]
    return [
        "## Filter and counts",
        "",
        f"Filter: {kept}. Every example was checked against the test split of every benchmark whose data was "
        "on the machine (hash of the normalized question text); matches were dropped.",
        "",
        f"| outcome | {' | '.join(heads)} |",
        "|---|" + "---|" * len(heads),
        *(f"| {name} | {' | '.join(str(c) for c in ([*counts, sum(counts)] if several else counts))} |"
          for name, counts in rows),
        "",
        "`records` counts chat records (one per predictor call); the other rows count examples.",
        "",
    ]
