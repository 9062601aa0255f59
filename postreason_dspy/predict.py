"""`StrictPredict`: a `dspy.Predict` that makes exactly one LM call and saves its field layout.

Every strategy (direct, post, cot) predicts through it, so they are compared on equal terms, and a
saved state can only be loaded into a program with the same fields in the same order (DSPy itself
matches saved fields by position and would silently swap descriptions).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import dspy
from dspy.adapters.base import Adapter
from dspy.signatures.signature import Signature
from dspy.utils.exceptions import AdapterParseError

from postreason_dspy.decoding import field_end_marker, field_start_marker, strict_adapter
from postreason_dspy.errors import CompletionParseError, StateMismatchError, UnsupportedAdapterError

OnParseError = Literal["raise", "mark"]

LAYOUT_KEY = "postreason_layout"


def field_layout(signature: type[Signature]) -> dict[str, list[str]]:
    """Names of the input and output fields, in order: what a saved state must agree with."""
    return {"inputs": list(signature.input_fields), "outputs": list(signature.output_fields)}


class StrictPredict(dspy.Predict):
    """Predict with no JSON fallback and a typed outcome for malformed completions.

    `on_parse_error="raise"` raises `CompletionParseError` (with the raw completion);
    `"mark"` returns a prediction whose outputs are None and whose `parse_error` and `completion`
    say what came back, so an evaluation can record it and go on.

    `trailing_text_field` names a last output field of free text (post-reasoning's rationale) that
    must never cost the fields before it: when the whole completion does not parse (XML with a `<`
    in the justification, or cut off by max_tokens inside it), the text before the field's marker
    is parsed alone and the field gets the raw text after the marker. No second LM call is made.
    """

    def __init__(
        self,
        signature: str | type[Signature],
        on_parse_error: OnParseError = "raise",
        trailing_text_field: str | None = None,
        **config: Any,
    ):
        super().__init__(signature, **config)
        if on_parse_error not in ("raise", "mark"):
            raise ValueError(f"on_parse_error must be 'raise' or 'mark', not {on_parse_error!r}")
        if trailing_text_field is not None and list(self.signature.output_fields)[-1] != trailing_text_field:
            raise ValueError(f"trailing_text_field {trailing_text_field!r} is not the last output field")
        self.on_parse_error = on_parse_error
        self.trailing_text_field = trailing_text_field

    def forward(self, **kwargs: Any) -> dspy.Prediction:
        adapter = strict_adapter()
        with dspy.context(adapter=adapter):
            try:
                return super().forward(**kwargs)
            except AdapterParseError as exc:
                return self._parse_before_trailing_field(adapter, exc) or self._unparsed(exc)

    async def aforward(self, **kwargs: Any) -> dspy.Prediction:
        adapter = strict_adapter()
        with dspy.context(adapter=adapter):
            try:
                return await super().aforward(**kwargs)
            except AdapterParseError as exc:
                return self._parse_before_trailing_field(adapter, exc) or self._unparsed(exc)

    def _parse_before_trailing_field(self, adapter: Adapter, exc: AdapterParseError) -> dspy.Prediction | None:
        field = self.trailing_text_field
        if field is None or not exc.lm_response:
            return None
        try:
            marker = field_start_marker(adapter, field)
        except UnsupportedAdapterError:
            return None
        start = re.search(re.escape(marker), exc.lm_response, re.IGNORECASE)  # small models write <Rationale>
        if start is None:
            return None
        try:
            fields = adapter.parse(self.signature, exc.lm_response[: start.start()])
        except AdapterParseError:
            return None
        tail = exc.lm_response[start.end() :]
        fields[field] = re.split(re.escape(field_end_marker(adapter, field)), tail, flags=re.IGNORECASE)[0].strip()
        return dspy.Prediction(**fields)

    def _unparsed(self, exc: AdapterParseError) -> dspy.Prediction:
        completion = exc.lm_response
        if self.on_parse_error == "raise":
            parsed = f"; it held only {list(exc.parsed_result)}" if exc.parsed_result else ""
            raise CompletionParseError(
                f"{exc.adapter_name} could not parse the completion into "
                f"{list(self.signature.output_fields)}{parsed}. Completion: {completion[:300]!r}",
                completion=completion,
            ) from exc
        outputs = dict.fromkeys(self.signature.output_fields)
        return dspy.Prediction(**outputs, parse_error=str(exc), completion=completion)

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        state = super().dump_state(json_mode=json_mode)
        state[LAYOUT_KEY] = field_layout(self.signature)
        return state

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> StrictPredict:
        check_layout(self.signature, state)
        state = {k: v for k, v in state.items() if k != LAYOUT_KEY}
        return super().load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state)


def check_layout(signature: type[Signature], state: dict[str, Any]) -> None:
    """Refuse a predictor state whose fields are not this signature's fields, in this order.

    States saved by plain DSPy carry no field names; for those the saved field prefixes (which DSPy
    derives from the names) must match ours position by position.
    """
    ours = field_layout(signature)
    saved = state.get(LAYOUT_KEY)
    if saved is not None:
        if saved != ours:
            raise StateMismatchError(
                f"saved state has fields {saved}, this program has {ours}; "
                "it was saved from a program with a different field layout "
                "(e.g. chain-of-thought vs post-reasoning) and cannot be loaded here"
            )
        return
    saved_prefixes = [f["prefix"] for f in state.get("signature", {}).get("fields", [])]
    our_prefixes = [f.json_schema_extra["prefix"] for f in signature.fields.values()]
    if saved_prefixes != our_prefixes:
        raise StateMismatchError(
            f"saved state (no field names recorded) has field prefixes {saved_prefixes}, this program "
            f"has {our_prefixes}; refusing to load it, since DSPy would match fields by position"
        )
