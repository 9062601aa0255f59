"""`StrictPredict`: a `dspy.Predict` that makes exactly one LM call and saves its field layout.

Every strategy (direct, post, cot) predicts through it, so they are compared on equal terms, and a
saved state can only be loaded into a program with the same fields in the same order (DSPy itself
matches saved fields by position and would silently swap descriptions).
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any, Literal, get_args, get_origin

import dspy
from dspy.adapters.base import Adapter
from dspy.signatures.signature import Signature, ensure_signature
from dspy.utils.exceptions import AdapterParseError

from postreason_dspy.decoding import field_end_marker, field_start_marker, strict_adapter
from postreason_dspy.errors import CompletionParseError, StateMismatchError, UnsupportedAdapterError
from postreason_dspy.signatures import DEFAULT_INSTRUCTION, LEGACY_DEFAULT_INSTRUCTION, fill_clause

OnParseError = Literal["raise", "mark"]

LAYOUT_KEY = "postreason_layout"
# An option letter leading an answer: "B", "B.", "B)", "(B)", "[B]", "**B**", "B. dairy farm", "B: text";
# not "Because ...", "A man ...", "B dairy farm".
LEADING_LETTER = re.compile(r"^\W*?[(\[]?([A-Z])(?:[.):\]]|(?=\W*$))")
CLAUSE_KEY = "postreason_clause"


def _field_layout(signature: type[Signature]) -> dict[str, list[str]]:
    """Names of the input and output fields, in order: what a saved state must agree with."""
    return {"inputs": list(signature.input_fields), "outputs": list(signature.output_fields)}


class StrictPredict(dspy.Predict):
    """Predict with no JSON fallback and a typed outcome for malformed completions.

    `on_parse_error="raise"` raises `CompletionParseError` (with the raw completion);
    `"mark"` returns a prediction whose outputs are None and whose `parse_error` and `completion`
    say what came back, so an evaluation can record it and go on.

    A letter-typed output field (a `Literal` of single capital letters, e.g. `Literal["A", "B", "C"]`)
    written as "B. dairy farm", "(B)" or "B) text" is read as its letter ("B"), which DSPy's own parse
    refuses; an answer that does not lead with one of the field's letters still fails to parse.

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

    def request_signature(self, signature: type[Signature] | None = None) -> type[Signature]:
        """The signature a request is formatted from: `signature` (default: this predictor's) as it is here;
        subclasses add what they own (PostReasonPredict: the post-reasoning clause)."""
        return self.signature if signature is None else signature

    def _with_request_signature(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        signature = ensure_signature(kwargs.pop("signature", self.signature))
        return {**kwargs, "signature": self.request_signature(signature)}

    def forward(self, **kwargs: Any) -> dspy.Prediction:
        adapter = strict_adapter()
        with dspy.context(adapter=adapter):
            try:
                return super().forward(**self._with_request_signature(kwargs))
            except AdapterParseError as exc:
                return self._recover(adapter, exc) or self._unparsed(exc)

    async def aforward(self, **kwargs: Any) -> dspy.Prediction:
        adapter = strict_adapter()
        with dspy.context(adapter=adapter):
            try:
                return await super().aforward(**self._with_request_signature(kwargs))
            except AdapterParseError as exc:
                return self._recover(adapter, exc) or self._unparsed(exc)

    def _recover(self, adapter: Adapter, exc: AdapterParseError) -> dspy.Prediction | None:
        """The prediction in a completion the adapter refused, read with letter fields tolerated; else None."""
        if exc.lm_response and _letter_fields(self.signature):
            with suppress(AdapterParseError):
                return dspy.Prediction(**self._parse(adapter, exc.lm_response))
        return self._parse_before_trailing_field(adapter, exc)

    def _parse(self, adapter: Adapter, completion: str) -> dict[str, Any]:
        """`adapter.parse`, with each letter-typed field read as the letter its text leads with."""
        letters = _letter_fields(self.signature)
        relaxed = self.signature
        for name in letters:
            relaxed = relaxed.with_updated_fields(name, type_=str)
        fields = adapter.parse(relaxed, completion)
        for name, allowed in letters.items():
            found = LEADING_LETTER.match(str(fields[name]).strip())
            if found is None or found.group(1) not in allowed:
                raise AdapterParseError(
                    adapter_name=type(adapter).__name__, signature=self.signature, lm_response=completion,
                    message=f"{name} {fields[name][:100]!r} does not lead with one of {', '.join(allowed)}",
                )
            fields[name] = found.group(1)
        return fields

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
            fields = self._parse(adapter, exc.lm_response[: start.start()])
        except AdapterParseError:
            return None
        tail = exc.lm_response[start.end() :]
        end = field_end_marker(adapter, field)
        fields[field] = (re.split(re.escape(end), tail, flags=re.IGNORECASE)[0] if end else tail).strip()
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
        state[LAYOUT_KEY] = _field_layout(self.signature)
        return state

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> StrictPredict:
        _check_layout(self.signature, state)
        state = {k: v for k, v in state.items() if k != LAYOUT_KEY}
        return super().load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state)


class PostReasonPredict(StrictPredict):
    """The predictor of `PostReason`: it owns the post-reasoning clause and adds it to every request.

    The signature's instructions are the task's own, so an optimizer that rewrites them
    (`predictor.signature = predictor.signature.with_instructions(...)`: MIPROv2, COPRO, GEPA) tunes
    the task instruction and the clause stays; `clause` (with `{outputs}` and `{rationale}`) is tuned
    apart. The request's instructions are the signature's, a blank line, then the filled-in clause,
    unless they already hold it. Saved states carry the clause; a state saved before it was kept apart
    (the clause inside the instructions) loads with its instructions freed of the clause.
    """

    def __init__(
        self,
        signature: str | type[Signature],
        *,
        rationale_field: str,
        clause: str | None = DEFAULT_INSTRUCTION,
        on_parse_error: OnParseError = "raise",
        **config: Any,
    ):
        super().__init__(signature, on_parse_error=on_parse_error, trailing_text_field=rationale_field, **config)
        self.clause = clause

    def filled_clause(self, clause: str | None = None) -> str | None:
        """The clause (default: this predictor's) with this signature's field names filled in."""
        clause = self.clause if clause is None else clause
        if clause is None:
            return None
        outputs = [name for name in self.signature.output_fields if name != self.trailing_text_field]
        return fill_clause(clause, outputs, self.trailing_text_field)

    def request_signature(self, signature: type[Signature] | None = None) -> type[Signature]:
        signature = self.signature if signature is None else signature
        filled = self.filled_clause()
        if not filled or filled in signature.instructions:
            return signature
        return signature.with_instructions(f"{signature.instructions}\n\n{filled}")

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        return {**super().dump_state(json_mode=json_mode), CLAUSE_KEY: self.clause}

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> PostReasonPredict:
        state = dict(state)
        if CLAUSE_KEY in state:
            self.clause = state.pop(CLAUSE_KEY)
        elif "instructions" in state.get("signature", {}):
            signature = dict(state["signature"])
            signature["instructions"] = self._without_clause(signature["instructions"])
            state["signature"] = signature
        return super().load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state)

    def _without_clause(self, instructions: str) -> str:
        """Instructions saved with the clause inside (older states), without it: this predictor's clause or
        the former default (then replaced by this predictor's). Without a clause of its own, nothing is removed."""
        for clause in (self.clause, LEGACY_DEFAULT_INSTRUCTION) if self.clause else ():
            filled = self.filled_clause(clause)
            if filled and filled in instructions:
                return instructions.replace(filled, "").rstrip()
        return instructions


def _letter_fields(signature: type[Signature]) -> dict[str, tuple[str, ...]]:
    """The output fields typed as a `Literal` of single capital letters, with their letters."""
    found = {}
    for name, field in signature.output_fields.items():
        allowed = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
        if allowed and all(isinstance(a, str) and len(a) == 1 and "A" <= a <= "Z" for a in allowed):
            found[name] = allowed
    return found


def request_signature(predictor: dspy.Predict) -> type[Signature]:
    """The signature `predictor`'s requests are formatted from (with a PostReason clause, if it owns one):
    what to pass to `adapter.format` to reproduce its prompt."""
    if isinstance(predictor, StrictPredict):
        return predictor.request_signature()
    return predictor.signature


def _check_layout(signature: type[Signature], state: dict[str, Any]) -> None:
    """Refuse a predictor state whose fields are not this signature's fields, in this order.

    States saved by plain DSPy carry no field names; for those the saved field prefixes (which DSPy
    derives from the names) must match ours position by position.
    """
    ours = _field_layout(signature)
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
