"""The output formats (DSPy adapters) by name, and `PlainTextAdapter`, the one this package adds.

`ADAPTERS` is the one registry of output formats: the command line's `--adapter`/`--adapters` take its
short names (chat, xml, plain), and a tuned program, a tune run and `with_adapter` record the class name
("PlainTextAdapter") that `adapter_name` gives for any spelling.

`PlainTextAdapter` writes fields as plain `Label: value` lines, the format small models follow best:

    Answer: B
    Rationale: The question asks ...

One `Label:` line opens each field; the label is the field's name title-cased, underscores as spaces
(`final_answer` -> `Final Answer:`). Models write such lines far more reliably than ChatAdapter's
`[[ ## answer ## ]]` headers or XML tags, and answer-only decoding stops at the next field's label
(`postreason_dspy.decoding.answer_only_stops`). Labels are read case-insensitively, also in
markdown bold (`**Answer:**`); a label line of a field already read is kept as text of the current
field, so a justification that quotes "Answer: ..." stays whole. Typed values go through DSPy's own
`parse_value`, as with ChatAdapter.
"""

from __future__ import annotations

import re
from typing import Any

import dspy
from dspy.adapters.base import Adapter
from dspy.adapters.chat_adapter import ChatAdapter, FieldInfoWithName
from dspy.adapters.utils import apply_output_field_defaults, format_field_value, get_annotation_name, parse_value
from dspy.signatures.signature import Signature
from dspy.utils.callback import BaseCallback
from dspy.utils.exceptions import AdapterParseError

from postreason_dspy.errors import ConfigurationError

DECORATION = r"[\s*_#]*"  # markdown a model may wrap a label in: **Answer:**, __Answer__:, ## Answer:


def field_label(name: str) -> str:
    """The label of field `name`: 'final_answer' -> 'Final Answer'."""
    return " ".join(word[:1].upper() + word[1:] for word in name.split("_") if word)


def _label_pattern(labels: dict[str, str]) -> re.Pattern[str]:
    """A line that opens one of `labels` (field name -> label): group 1 the label, the rest of the line after it."""
    alternatives = "|".join(re.escape(label) for label in sorted(labels.values(), key=len, reverse=True))
    return re.compile(rf"^{DECORATION}({alternatives}){DECORATION}:{DECORATION}", re.IGNORECASE)


def plain_sections(text: str, names: list[str]) -> dict[str, str]:
    """The text of each field of `names` found in `text`: from its label line to the next new field's label."""
    labels = {name: field_label(name) for name in names}
    by_label = {label.lower(): name for name, label in labels.items()}
    pattern = _label_pattern(labels)
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = pattern.match(line)
        name = by_label[match.group(1).lower()] if match else None
        if name is not None and name not in found:
            current = name
            rest = line[match.end() :].strip()
            found[name] = [rest] if rest else []
        elif current is not None:
            found[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


class PlainTextAdapter(ChatAdapter):
    """Inputs and outputs as `Label: value` lines (see the module docstring).

    Never falls back to JSONAdapter (a second LM call in another format) unless asked to.
    Streaming single fields is not supported: DSPy's stream listeners know only its own adapters.
    """

    def __init__(self, callbacks: list[BaseCallback] | None = None, use_json_adapter_fallback: bool = False,
                 **kwargs: Any):
        super().__init__(callbacks=callbacks, use_json_adapter_fallback=use_json_adapter_fallback, **kwargs)

    def format_field_with_value(self, fields_with_values: dict[FieldInfoWithName, Any]) -> str:
        parts = []
        for field, value in fields_with_values.items():
            text = str(format_field_value(field_info=field.info, value=value))
            gap = "\n" if "\n" in text else " "  # a value of several lines starts on its own line
            parts.append(f"{field_label(field.name)}:{gap}{text}")
        return "\n\n".join(parts).strip()

    def format_field_structure(self, signature: type[Signature]) -> str:
        return super().format_field_structure(signature).removesuffix("[[ ## completed ## ]]").strip()

    def format_user_message_content(
        self,
        signature: type[Signature],
        inputs: dict[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        fields = {
            FieldInfoWithName(name=k, info=v): inputs[k] for k, v in signature.input_fields.items() if k in inputs
        }
        messages = [prefix, self.format_field_with_value(fields)]
        if main_request:
            messages.append(self.user_message_output_requirements(signature))
        return "\n\n".join((*messages, suffix)).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        def typed(annotation: Any) -> str:
            return "" if annotation is str else f" (a valid Python {get_annotation_name(annotation)})"

        lines = ", then ".join(
            f"`{field_label(name)}:`{typed(field.annotation)}" for name, field in signature.output_fields.items()
        )
        return f"Respond with the output fields, each on a line that starts with its label: {lines}."

    def format_assistant_message_content(
        self, signature: type[Signature], outputs: dict[str, Any], missing_field_message: str | None = None
    ) -> str:
        fields = {
            FieldInfoWithName(name=k, info=v): outputs.get(k, missing_field_message)
            for k, v in signature.output_fields.items()
        }
        return self.format_field_with_value(fields)

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        fields = {}
        for name, text in plain_sections(completion, list(signature.output_fields)).items():
            try:
                fields[name] = parse_value(text, signature.output_fields[name].annotation)
            except ValueError as exc:
                raise AdapterParseError(
                    adapter_name="PlainTextAdapter", signature=signature, lm_response=completion,
                    message=f"Failed to parse field {name} with value {text!r} from the LM response: {exc}",
                ) from exc
        fields = apply_output_field_defaults(signature, fields)
        if fields.keys() != signature.output_fields.keys():
            raise AdapterParseError(
                adapter_name="PlainTextAdapter", signature=signature, lm_response=completion, parsed_result=fields
            )
        return fields


ADAPTERS: dict[str, type[Adapter]] = {"chat": ChatAdapter, "xml": dspy.XMLAdapter, "plain": PlainTextAdapter}


def adapter_class(name: str) -> type[Adapter]:
    """The adapter `name` names, in any case: a short name ("xml") or a class name ("XMLAdapter");
    a ConfigurationError if unknown."""
    key = name.lower().removesuffix("adapter")
    key = "plain" if key == "plaintext" else key
    if key not in ADAPTERS:
        classes = ", ".join(cls.__name__ for cls in ADAPTERS.values())
        raise ConfigurationError(f"unknown adapter {name!r}; choose from {', '.join(ADAPTERS)} (or {classes})")
    return ADAPTERS[key]


def adapter_name(name: str) -> str:
    """The class name of adapter `name` ("xml" -> "XMLAdapter"): what programs and runs record."""
    return adapter_class(name).__name__


def active_adapter_name() -> str:
    """The name of the adapter DSPy would use now (ChatAdapter unless one is configured)."""
    adapter = dspy.settings.adapter
    if adapter is None:
        return ChatAdapter.__name__
    # subclasses first: XMLAdapter and PlainTextAdapter are ChatAdapters too
    found = (cls.__name__ for cls in reversed(ADAPTERS.values()) if isinstance(adapter, cls))
    return next(found, type(adapter).__name__)
