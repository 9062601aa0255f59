"""How a prediction is decoded: one LM call in the adapter's own format, and where to stop for answer-only.

DSPy's ChatAdapter retries a failed parse with JSONAdapter, a silent second LM call in another
format. That breaks both the cost claim and fair comparisons, so every strategy here runs with the
fallback switched off.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import dspy
from dspy.adapters.base import Adapter
from dspy.adapters.chat_adapter import ChatAdapter
from dspy.adapters.json_adapter import JSONAdapter
from dspy.adapters.xml_adapter import XMLAdapter

from postreason_dspy.adapters import PlainTextAdapter, field_label
from postreason_dspy.errors import UnsupportedAdapterError


def active_adapter() -> Adapter:
    """The adapter DSPy would use now (the configured one, else ChatAdapter)."""
    return dspy.settings.adapter or ChatAdapter()


def strict_adapter(adapter: Adapter | None = None) -> Adapter:
    """A copy of `adapter` (default: the active one) that never falls back to a second LM call."""
    adapter = adapter or active_adapter()
    if isinstance(adapter, ChatAdapter) and adapter.use_json_adapter_fallback:
        adapter = copy.copy(adapter)
        adapter.use_json_adapter_fallback = False
    return adapter


def field_start_marker(adapter: Adapter, field_name: str) -> str:
    """The text that opens `field_name` in `adapter`'s output format: the stop sequence for answer-only.

    JSON output has no marker that is safe to stop at (the object would be left unclosed), and
    other adapters do not write fields in declaration order, so both are refused.
    """
    if isinstance(adapter, JSONAdapter):
        raise UnsupportedAdapterError(
            f"answer-only decoding cannot work with {type(adapter).__name__}: a JSON object cut before "
            "its last key does not parse. Use dspy.ChatAdapter(), dspy.XMLAdapter() or PlainTextAdapter(), "
            "or mode='full'."
        )
    if isinstance(adapter, PlainTextAdapter):
        return f"{field_label(field_name)}:"
    if isinstance(adapter, XMLAdapter):
        return f"<{field_name}>"
    if isinstance(adapter, ChatAdapter):
        return f"[[ ## {field_name} ## ]]"
    raise UnsupportedAdapterError(
        f"answer-only decoding is not supported with {type(adapter).__name__}; "
        "use dspy.ChatAdapter(), dspy.XMLAdapter() or PlainTextAdapter(), or mode='full'."
    )


def answer_only_stops(adapter: Adapter, field_name: str, others: Iterable[str] = ()) -> list[str]:
    """The stop sequences of answer-only decoding: the start of the rationale's marker.

    Every token of a stop sequence is generated (and paid for) before the server stops, so the stop is
    the shortest text that can only be the rationale's start. ChatAdapter: when `others` (the
    signature's output fields) hold a single answer field besides the rationale, the next field marker
    after the answer is the rationale's, so the stop is its line break and first bracket, `\n[[` (two
    tokens fewer than `[[ ## rationale`, measured on Qwen2.5's tokenizer: a one-letter answer costs 8
    tokens instead of 10, a direct answer 6). One line break, not the blank line ChatAdapter writes:
    Qwen2.5-Coder-0.5B opened the rationale after a single one in 474 of 2,800 answers of the study,
    and a blank-line stop let it write the whole rationale. With several answer fields it is
    `[[ ## rationale`, or the whole marker when another field starts with the same name. XML:
    `<rationale` (also capitalised: Qwen2.5-Coder-0.5B writes `<Rationale>`). A plain-text label stops
    only at the start of a line (so "the rationale: ..." inside an answer does not cut it), as written,
    in lower case or in capitals.
    """
    marker = field_start_marker(adapter, field_name)
    if isinstance(adapter, PlainTextAdapter):
        return list(dict.fromkeys(f"\n{spelling}" for spelling in (marker, marker.lower(), marker.upper())))
    answers = {other for other in others if other != field_name}
    ambiguous = any(other.startswith(field_name) for other in answers)
    if isinstance(adapter, XMLAdapter):
        end = ">" if ambiguous else ""
        return list(dict.fromkeys([f"<{field_name}{end}", f"<{field_name[:1].upper()}{field_name[1:]}{end}"]))
    if len(answers) == 1:
        return ["\n[["]
    return [marker if ambiguous else marker.removesuffix(" ## ]]")]


def field_end_marker(adapter: Adapter, field_name: str) -> str | None:
    """The text that closes `field_name` when it is the last output field (XML: its closing tag); None when
    the field runs to the end of the completion (plain text)."""
    if isinstance(adapter, PlainTextAdapter):
        return None
    if isinstance(adapter, XMLAdapter):
        return f"</{field_name}>"
    return "[[ ## completed ## ]]"
