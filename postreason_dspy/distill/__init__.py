"""Distil a program into post-reasoned fine-tuning data: `postreason distill PROGRAM --benchmark B --out DIR`.

The program runs in full mode (every PostReason writes its justification after its answer) over a
tuning split; each example it answers correctly (optionally: each it gets wrong, rationalized from
the gold answer) yields one record per predictor call, formatted by the program's own adapter.

Record contract (one JSON object per line of DIR/train.jsonl; `postreason finetune` reads it):

    {"id": "<example id>/<call index>",        unique per line
     "example_id": "<benchmark example id>",
     "messages": [{"role": "system", ...}, (demo user/assistant pairs...), {"role": "user", ...},
                  {"role": "assistant", "content": "..."}],          OpenAI fine-tuning format
     "spans": {"answer": [start, end], "justification": [start, end], "values": [[start, end], ...]},
     "rationalized": bool, "recovered": bool, "predictor": "solve.predict", "adapter": "ChatAdapter",
     "benchmark": "gsm8k", "split": "train", "source_model": "local", "program_hash": "..."}

`spans` are [start, end) character offsets into the assistant message's content and partition it:
the answer part runs from 0 to where the justification field's marker starts (`[[ ## rationale ## ]]`
with ChatAdapter, `<rationale>` with XMLAdapter); the justification part from there to the end
(with ChatAdapter it includes the closing `[[ ## completed ## ]]`). A predictor without a
justification (a direct step of a composed program) has an empty justification span [n, n].
`values` holds one span per answer field: the value alone, without its field marker.
Train on everything, mask the answer span and train on the justification only, or mask only the values.
`rationalized`: the model was given the gold answer and wrote the justification; `recovered`: the
answer was recovered from a completion that did not parse as a whole. An example whose justification
repeats or copies its inputs, or (rationalized) says the answer was given, is rejected (see `filters`).

DIR also holds examples.jsonl (every example's outcome: the resumable log), dataset/ (the records
as a `datasets.Dataset`, `load_from_disk`), README.md (the dataset card) and summary.json (counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import dspy
from dspy.adapters.base import Adapter

from postreason_dspy.decoding import active_adapter, strict_adapter
from postreason_dspy.distill.card import Provenance, dataset_card
from postreason_dspy.distill.filters import COPY_THRESHOLD
from postreason_dspy.distill.leakage import LeakageGuard, normalize_text, text_hash
from postreason_dspy.distill.output import unique_records, write_outputs
from postreason_dspy.distill.run import Distiller, DistillStats, distill_examples


def distill(
    program: dspy.Module,
    examples: Iterable[dspy.Example],
    metric: Callable[..., Any],
    out: str | Path,
    *,
    adapter: Adapter | None = None,
    rationalize: bool = False,
    guard: LeakageGuard | None = None,
    provenance: Provenance | None = None,
    copy_threshold: float = COPY_THRESHOLD,
    on_example: Callable[[DistillStats], None] | None = None,
) -> DistillStats:
    """Distil `program` over `examples` into folder `out` (see the module docstring); resumes a killed run.

    Uses the configured LM and `adapter` (default: the active one). `guard` drops test questions;
    `copy_threshold` is the copy filter's limit (filters.copied_share)."""
    out = Path(out)
    adapter = strict_adapter(adapter or active_adapter())
    provenance = provenance or Provenance()
    distiller = Distiller(program, metric, adapter, rationalize, guard, provenance.for_records(), copy_threshold)
    stats, lines = distill_examples(distiller, examples, out, on_example)
    card = dataset_card([(provenance, stats)], guard, rationalize, type(adapter).__name__, copy_threshold)
    write_outputs(out, stats.to_dict(), unique_records(lines), card)
    return stats


__all__ = ["DistillStats", "LeakageGuard", "Provenance", "distill", "normalize_text", "text_hash"]
