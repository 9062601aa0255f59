"""Export a (tuned) program's prompts for use outside DSPy.

Each predictor becomes the exact chat messages DSPy would send, with `{{field}}` placeholders where
the inputs go, plus what a caller needs to decode without DSPy: the output fields in order, the
marker that opens each, and, for post-reasoning predictors, the stop sequence of answer-only mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
from dspy.adapters.base import Adapter

from postreason_dspy.decoding import active_adapter, answer_only_stops, field_start_marker, strict_adapter
from postreason_dspy.modules import PostReason


def placeholder(name: str) -> str:
    """The text standing for input `name` in an exported prompt; substitute it with str.replace."""
    return "{{" + name + "}}"


def export_prompts(program: dspy.Module, adapter: Adapter | None = None) -> dict[str, Any]:
    """A JSON-ready description of every predictor's prompt in `program`."""
    adapter = strict_adapter(adapter or active_adapter())
    post_owners = {id(m.predict): m for _, m in program.named_sub_modules() if isinstance(m, PostReason)}
    predictors = []
    for name, predictor in program.named_predictors():
        signature = predictor.signature
        inputs = {field: placeholder(field) for field in signature.input_fields}
        owner = post_owners.get(id(predictor))
        predictors.append({
            "name": name,
            "messages": adapter.format(signature, predictor.demos, inputs),
            "inputs": list(signature.input_fields),
            "outputs": list(signature.output_fields),
            "output_markers": {field: field_start_marker(adapter, field) for field in signature.output_fields},
            "answer_only_stops": answer_only_stops(adapter, owner.rationale_field) if owner else None,
        })
    return {"adapter": type(adapter).__name__, "placeholder": placeholder("field"), "predictors": predictors}


def write_export(program: dspy.Module, path: str | Path, adapter: Adapter | None = None) -> Path:
    """Write `export_prompts(program)` as JSON to `path` (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(export_prompts(program, adapter), indent=2, ensure_ascii=False))
    tmp.replace(path)
    return path
