"""`PostReason`: a DSPy module used like `dspy.ChainOfThought`, but the answer comes first.

Being told that a justification will follow improves the answer; because the answer is written
first, `mode="answer_only"` can stop generation at the rationale's marker and pay only for the
answer's tokens, while `mode="full"` also returns the justification.
"""

from __future__ import annotations

from typing import Any, Literal

import dspy
from dspy.signatures.signature import Signature, ensure_signature

from postreason_dspy.decoding import active_adapter, answer_only_stops
from postreason_dspy.predict import OnParseError, PostReasonPredict
from postreason_dspy.signatures import (
    DEFAULT_INSTRUCTION,
    DEFAULT_RATIONALE_DESC,
    DEFAULT_RATIONALE_FIELD,
    post_reason_signature,
)

Mode = Literal["full", "answer_only"]
MODES: tuple[str, ...] = ("full", "answer_only")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return mode


class PostReason(dspy.Module):
    """Answer first, then justify.

    >>> answer = PostReason("question -> answer")(question="What is 7 * 6?").answer

    Args:
        signature: any DSPy signature (string or class), any number of inputs and typed outputs.
        mode: "full" (answer, then rationale) or "answer_only" (stop at the rationale's marker).
            Override per call with `module(..., mode="answer_only")`.
        rationale_field / rationale_desc: the justification field's name and description.
        instruction: the post-reasoning clause (default `DEFAULT_INSTRUCTION`), which may use `{outputs}`
            (the answer fields, back-quoted) and `{rationale}`; None for none. It is the module's own:
            added to every request after the signature's instructions, so an optimizer that rewrites
            those (MIPROv2, COPRO, GEPA) keeps it. Read or change it as `module.instruction`.
        on_parse_error: "raise" a `CompletionParseError`, or "mark" the prediction as unparsed.
        **config: default LM keyword arguments (temperature, max_tokens, stop...).
    """

    def __init__(
        self,
        signature: str | type[Signature],
        *,
        mode: Mode = "full",
        rationale_field: str = DEFAULT_RATIONALE_FIELD,
        rationale_desc: str = DEFAULT_RATIONALE_DESC,
        instruction: str | None = DEFAULT_INSTRUCTION,
        on_parse_error: OnParseError = "raise",
        **config: Any,
    ):
        super().__init__()
        self.mode = _check_mode(mode)
        self.rationale_field = rationale_field
        self.base_signature = ensure_signature(signature)  # what the optimizers re-word around
        extended = post_reason_signature(
            signature, rationale_field=rationale_field, rationale_desc=rationale_desc, instruction=None
        )
        self.predict = PostReasonPredict(
            extended, rationale_field=rationale_field, clause=instruction, on_parse_error=on_parse_error, **config
        )

    @property
    def instruction(self) -> str | None:
        """The post-reasoning clause (a template with `{outputs}`/`{rationale}`), kept by the predictor."""
        return self.predict.clause

    @instruction.setter
    def instruction(self, clause: str | None) -> None:
        self.predict.clause = clause

    def _call_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        mode = _check_mode(kwargs.pop("mode", self.mode))
        if mode == "answer_only":
            markers = answer_only_stops(active_adapter(), self.rationale_field, self.predict.signature.output_fields)
            config = dict(kwargs.pop("config", {}))
            stops = config.get("stop", self.predict.config.get("stop")) or []
            stops = [stops] if isinstance(stops, str) else list(stops)
            config["stop"] = [*markers, *(s for s in stops if s not in markers)]
            kwargs["config"] = config
        return kwargs

    def forward(self, **kwargs: Any) -> dspy.Prediction:
        return self.predict(**self._call_kwargs(kwargs))

    async def aforward(self, **kwargs: Any) -> dspy.Prediction:
        return await self.predict.acall(**self._call_kwargs(kwargs))


def with_mode(program: dspy.Module, mode: Mode) -> dspy.Module:
    """A copy of `program` in which every PostReason uses `mode` (e.g. "full" to collect justifications)."""
    _check_mode(mode)
    copy = program.deepcopy()
    for _, module in copy.named_sub_modules():
        if isinstance(module, PostReason):
            module.mode = mode
    return copy
