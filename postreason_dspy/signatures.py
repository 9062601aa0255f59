"""The post-reasoning signature transform: every original output first, then a rationale.

This is the mirror image of `dspy.ChainOfThought`, which *prepends* a reasoning field. Appending it
keeps the answer's tokens first, so a caller can stop generation at the rationale's marker.
"""

from __future__ import annotations

import dspy
from dspy.signatures.signature import Signature, ensure_signature

DEFAULT_RATIONALE_FIELD = "rationale"

DEFAULT_RATIONALE_DESC = "a justification of the answer above, written after it"

# The post-reasoning clause. It defers to each answer field's own description and type: told only to
# "give your final answer first", a 0.5B model wrote 'television' in a field described as "the letter
# of the correct option".
DEFAULT_INSTRUCTION = (
    "Give your final answer first, in {outputs}, written exactly in the form each field's description and "
    "type ask for (nothing more, no working before it). Only after the answer, in `{rationale}`, justify it "
    "step by step: "
    "your justification will be checked, so commit to the answer you can best defend."
)

# The default clause before that change, recognised in saved programs whose instructions still carry it.
LEGACY_DEFAULT_INSTRUCTION = (
    "Give your final answer first, in {outputs}, with no working before it. "
    "Only after the answer, in `{rationale}`, justify it step by step: "
    "your justification will be checked, so commit to the answer you can best defend."
)


def post_reason_signature(
    signature: str | type[Signature],
    *,
    rationale_field: str = DEFAULT_RATIONALE_FIELD,
    rationale_desc: str = DEFAULT_RATIONALE_DESC,
    instruction: str | None = DEFAULT_INSTRUCTION,
) -> type[Signature]:
    """Return `signature` in post-reasoning form, for building a predictor of your own.

    `PostReason` does not bake the clause into the instructions (an optimizer that rewrites them
    would delete it): it calls this with `instruction=None` and its predictor adds the clause to
    every request (`postreason_dspy.predict.PostReasonPredict`).

    The rationale is a plain `str` (not `dspy.Reasoning`, which native-reasoning models fill from
    hidden thinking that comes *before* the answer) with a default of "", so a completion cut at the
    rationale's marker still parses. `instruction` may use `{outputs}` (the original output fields,
    back-quoted) and `{rationale}`; it is appended to the signature's own instructions. Pass
    `instruction=None` to keep the instructions unchanged.
    """
    signature = ensure_signature(signature)
    if rationale_field in signature.fields:
        raise ValueError(
            f"signature already has a field named {rationale_field!r}; pick another rationale_field"
        )
    extended = signature.append(
        rationale_field, dspy.OutputField(desc=rationale_desc, default=""), type_=str
    )
    if instruction is None:
        return extended
    return extended.with_instructions(
        post_reason_instructions(signature.instructions, list(signature.output_fields), rationale_field, instruction)
    )


def fill_clause(instruction: str, outputs: list[str], rationale_field: str) -> str:
    """The post-reasoning `instruction` with `{outputs}` (back-quoted names) and `{rationale}` filled in."""
    names = ", ".join(f"`{name}`" for name in outputs)
    return instruction.format(outputs=names, rationale=rationale_field)


def post_reason_instructions(base: str, outputs: list[str], rationale_field: str, instruction: str) -> str:
    """`base` instructions followed by the post-reasoning `instruction`, filled in for these fields."""
    return f"{base}\n\n{fill_clause(instruction, outputs, rationale_field)}"
