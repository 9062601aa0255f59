"""Chat records to token ids and loss masks that follow the records' character spans.

The conversation is rendered with the tokenizer's own chat template, and the reply's place in that
text is found by rendering the prompt alone (with the generation prompt): the reply starts where
the prompt ends. The text is tokenized once with offsets (a fast tokenizer), and a token is in the
loss when its characters overlap the chosen span, so a token that straddles the span's edge, or
one byte-level piece of a multi-byte character, is trained on whole.

`--loss format` trains the whole reply but the answer fields' values: the field markers, the
justification and the end of turn. A token that touches a value is left out whole, so no piece of a
(possibly rationalized) answer is trained, while the markers that hold the reply's format are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.finetune.data import LOSS_MODES, Record


@dataclass(frozen=True)
class Encoded:
    """Token ids of a whole chat and the positions whose token is predicted with loss."""

    id: str
    input_ids: list[int]
    loss_positions: list[int]  # indices into input_ids; position 0 never (nothing predicts it)


def reply_span(record: Record, mode: str, suffix: str) -> tuple[int, int]:
    """The span of the reply (content offsets) a loss mode trains on. A span that reaches the end of the
    reply (`all`; `justification` as distill writes it) also takes the template's end-of-turn text
    (`suffix`, e.g. "<|im_end|>"), so the model learns to stop: without it, an adapter trained on
    justifications only kept writing past `[[ ## completed ## ]]` (measured on the 0.5B model)."""
    if mode not in LOSS_MODES:
        raise ConfigurationError(f"unknown loss mode {mode!r}; choose from {', '.join(LOSS_MODES)}")
    start, end = (0, len(record.reply)) if mode in ("all", "format") else record.spans[mode]
    return start, end + len(suffix) if end == len(record.reply) else end


def masked_spans(record: Record, mode: str) -> tuple[tuple[int, int], ...]:
    """The spans (content offsets) whose tokens a mode leaves out: the answer values in `format`, else none."""
    if mode != "format":
        return ()
    if record.values is None:
        raise ConfigurationError(f"record {record.id} has no spans.values, which --loss format needs: distil the "
                                 "data again with this version of `postreason distill`")
    return record.values


def render(tokenizer: Any, record: Record) -> tuple[str, int, str]:
    """The chat as text, where the reply starts in it, and the end-of-turn text after the reply."""
    full = tokenizer.apply_chat_template(record.messages, tokenize=False)
    prompt = tokenizer.apply_chat_template(record.messages[:-1], tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt) or not full[len(prompt):].startswith(record.reply):
        raise ConfigurationError(f"record {record.id}: the chat template does not place the reply after the prompt")
    after = full[len(prompt) + len(record.reply):]
    return full, len(prompt), after[: len(after.rstrip())]


def encode(tokenizer: Any, record: Record, mode: str) -> Encoded:
    """Token ids of the rendered chat and the positions of the tokens overlapping the mode's span (and none of
    the spans it masks)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigurationError("loss masks need a fast tokenizer (character offsets); this one is not")
    text, reply_start, suffix = render(tokenizer, record)
    start, end = reply_span(record, mode, suffix)
    start, end = start + reply_start, end + reply_start
    masked = [(first + reply_start, last + reply_start) for first, last in masked_spans(record, mode)]
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    positions = [
        index
        for index, (first, last) in enumerate(encoding["offset_mapping"])
        if index > 0 and first < end and last > start and last > first
        and not any(first < hide_end and last > hide_start for hide_start, hide_end in masked)
    ]
    return Encoded(record.id, list(encoding["input_ids"]), positions)
