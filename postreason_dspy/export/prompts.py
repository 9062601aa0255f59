"""A program's prompts as data: each predictor's exact chat messages with `{{field}}` slots, and how to decode.

The messages come from the program's own adapter (`adapter.format`, what DSPy sends), with a slot
where each input goes; with them go the model settings, the answer-only stop sequences, the output
markers and the parse rule, so a caller can reproduce a call without DSPy (`standalone.py` does).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import dspy
from dspy.adapters.base import Adapter
from dspy.adapters.utils import get_annotation_name
from dspy.adapters.xml_adapter import XMLAdapter

from postreason_dspy.adapters import PlainTextAdapter
from postreason_dspy.decoding import (
    active_adapter,
    answer_only_stops,
    field_end_marker,
    field_start_marker,
    strict_adapter,
)
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.export.standalone import SLOT
from postreason_dspy.modules import PostReason
from postreason_dspy.predict import request_signature

EXPORT_FORMAT = "postreason-export"
EXPORT_VERSION = 1
DEFAULT_SETTINGS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 512}  # postreason eval's defaults
REASONING_FIELD = "reasoning"  # chain-of-thought's field before the answer


def placeholder(name: str) -> str:
    """The text standing for input `name` in an exported prompt."""
    return "{{" + name + "}}"


def served_model(model: str | None) -> str | None:
    """The name a server knows a model by: 'local' -> 'local', 'openai/gpt-4o-mini' -> 'gpt-4o-mini'."""
    return None if model is None else model.rsplit("/", 1)[-1]


def _slots_once(name: str, messages: list[dict[str, str]], inputs: list[str]) -> None:
    """Refuse a prompt whose fixed text (instructions, demos) itself contains an input's slot."""
    counts = Counter(slot for m in messages for slot in SLOT.findall(m["content"]) if slot in inputs)
    doubled = [slot for slot in inputs if counts[slot] != 1]
    if doubled:
        raise ConfigurationError(
            f"predictor {name}: its instructions or demos contain the text {placeholder(doubled[0])}, "
            "so the exported slots would be ambiguous"
        )


def parse_rule(adapter: Adapter) -> str:
    """How the standalone script reads a completion: "plain" (Label: lines), "xml" or "chat"."""
    if isinstance(adapter, PlainTextAdapter):
        return "plain"
    return "xml" if isinstance(adapter, XMLAdapter) else "chat"


def export_predictor(
    name: str, predictor: dspy.Predict, adapter: Adapter, rationale_field: str | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """One predictor's prompt and decoding rules (see the module docstring)."""
    signature = request_signature(predictor)  # with the post-reasoning clause its requests carry
    inputs = list(signature.input_fields)
    messages = adapter.format(signature, predictor.demos, {field: placeholder(field) for field in inputs})
    _slots_once(name, messages, inputs)
    outputs = list(signature.output_fields)
    justification = rationale_field or (REASONING_FIELD if outputs[0] == REASONING_FIELD else None)
    config = {key: predictor.config[key] for key in DEFAULT_SETTINGS if key in predictor.config}
    return {
        "name": name,
        "messages": messages,
        "inputs": [
            {"name": field, "serialize": "text" if info.annotation is str else "json"}
            for field, info in signature.input_fields.items()
        ],
        "outputs": [
            {"name": field, "type": get_annotation_name(info.annotation)}
            for field, info in signature.output_fields.items()
        ],
        "answer_fields": [field for field in outputs if field != justification],
        "justification_field": justification,
        "output_markers": {field: field_start_marker(adapter, field) for field in outputs},
        "end_marker": field_end_marker(adapter, outputs[-1]),
        "answer_only_stops": answer_only_stops(adapter, rationale_field, outputs) if rationale_field else None,
        "parse": parse_rule(adapter),
        "settings": {**settings, **config},
    }


def export_prompts(
    program: dspy.Module,
    adapter: Adapter | None = None,
    *,
    settings: dict[str, Any] | None = None,
    about: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of every predictor's prompt in `program`, formatted by `adapter`
    (default: the active one). `settings` (temperature, max_tokens) apply where a predictor sets none;
    `about` (benchmark, strategy, model, program_hash) is copied into the header."""
    adapter = strict_adapter(adapter or active_adapter())
    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    post = {id(m.predict): m.rationale_field for _, m in program.named_sub_modules() if isinstance(m, PostReason)}
    about = dict(about or {})
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        **about,
        "served_model": served_model(about.get("model")),
        "adapter": type(adapter).__name__,
        "placeholder": placeholder("field"),
        "predictors": [
            export_predictor(name, predictor, adapter, post.get(id(predictor)), settings)
            for name, predictor in program.named_predictors()
        ],
    }
