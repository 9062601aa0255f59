"""The search's optional dimensions besides wording and demos: rationale fields and proposed wordings.

- A rationale variant renames a PostReason's justification field and re-describes it (justification,
  explanation, verification...). It changes the signature, so a saved program records it in its
  `program_kwargs` (`rationale_field`, `rationale_desc`) and is rebuilt with it.
- A prompt model proposes further clause wordings, grounded as MIPROv2 grounds its instructions: it is
  shown a few training examples, the program's signature, the post-reasoning idea and the clause in use
  (which shows a small model where the placeholders go). A proposal must use `{outputs}` and `{rationale}`
  and no other placeholder; others are dropped. Proposals are sampled (temperature 1.0, one rollout each,
  as MIPROv2 samples its instructions): at temperature 0 a small prompt model repeats one text.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

import dspy

from postreason_dspy import DEFAULT_INSTRUCTION, PostReason
from postreason_dspy.signatures import post_reason_signature
from postreason_dspy.usage import Usage, counting

RationaleVariant = tuple[str, str]  # (field name, description)

RATIONALE_VARIANTS: dict[str, str] = {
    "rationale": "a justification of the answer above, written after it",
    "justification": "why the answer above is right, written after it",
    "explanation": "an explanation of the answer above, written after it",
    "verification": "a step-by-step check that the answer above is right",
}

IDEA = (
    "Post-reasoning: the model writes its final answer first and justifies it afterwards. Being told a "
    "justification will follow improves the answer, and the answer can be read (and generation stopped) "
    "before the justification, so it costs no more than a direct answer. The clause is added after the "
    "task's own instructions; it must keep each answer field's own contract (its description and type)."
)
PROPOSAL_TEMPERATURE = 1.0


def rationale_variant(name: str) -> RationaleVariant:
    """(name, description) of a known variant, or (name, a generic description) for another field name."""
    if not name.isidentifier():
        raise ValueError(f"a rationale field must be a Python identifier, not {name!r}")
    return name, RATIONALE_VARIANTS.get(name, f"the {name.replace('_', ' ')} of the answer above, written after it")


def post_reason_owners(program: dspy.Module) -> dict[int, PostReason]:
    """id(predictor) -> the PostReason that owns it."""
    return {id(m.predict): m for _, m in program.named_sub_modules() if isinstance(m, PostReason)}


def set_rationale(module: PostReason, variant: RationaleVariant) -> None:
    """Rename and re-describe `module`'s rationale field in place; instructions, clause, demos and config stay
    (demos' justifications move to the new field name)."""
    name, desc = variant
    old = module.rationale_field
    predictor = module.predict
    signature = post_reason_signature(
        module.base_signature.with_instructions(predictor.signature.instructions),
        rationale_field=name, rationale_desc=desc, instruction=None,
    )
    predictor.signature = signature
    predictor.trailing_text_field = name
    module.rationale_field = name
    if old != name:
        for demo in predictor.demos:
            if old in demo:
                value = demo[old]
                del demo[old]
                demo[name] = value


def valid_wording(text: str) -> bool:
    """Whether `text` is a usable clause: it names `{outputs}` and `{rationale}` and no other placeholder."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        text.format(outputs="`answer`", rationale="rationale")
    except (ValueError, IndexError, KeyError):
        return False
    return fields == {"outputs", "rationale"} and 20 <= len(text) <= 1000


class ProposeClause(dspy.Signature):
    """Write one instruction clause for a language model that applies the idea below to this task: a new
    wording, better suited to the task than the clause in use. Use the placeholder {outputs} where the answer
    fields are named and {rationale} where the justification field is named, exactly as written here with
    braces, as the clause in use does. Keep every answer field's own format: the clause must not change what
    goes into an answer field. Write the clause only."""

    post_reasoning_idea: str = dspy.InputField()
    program_signature: str = dspy.InputField(desc="the task's inputs, outputs and instructions")
    task_examples: str = dspy.InputField(desc="a few examples of the task")
    clause_in_use: str = dspy.InputField(desc="the clause the program uses now, with its placeholders")
    proposal_number: int = dspy.InputField(desc="vary your proposals from one number to the next")
    clause: str = dspy.OutputField(desc="the clause, with {outputs} and {rationale}")


def describe_program(program: dspy.Module) -> str:
    """Each PostReason predictor's base signature: fields with descriptions and instructions."""
    parts = []
    for module in post_reason_owners(program).values():
        base = module.base_signature
        fields = [f"input {n}: {f.json_schema_extra.get('desc', '')}" for n, f in base.input_fields.items()]
        fields += [f"output {n}: {f.json_schema_extra.get('desc', '')}" for n, f in base.output_fields.items()]
        parts.append("\n".join([*fields, f"instructions: {base.instructions}"]))
    return "\n\n".join(parts)


def propose_wordings(
    program: dspy.Module, trainset: Sequence[dspy.Example], count: int, prompt_lm: dspy.LM | None, seed: int = 0,
    shown: int = 3,
) -> tuple[list[str], list[str], Usage]:
    """`count` clause proposals from `prompt_lm` (default: the configured LM): (valid ones, dropped ones, usage)."""
    rng = random.Random(seed)
    picked = rng.sample(list(trainset), min(shown, len(trainset)))
    examples = "\n\n".join(
        "\n".join(f"{key}: {value}" for key, value in ex.toDict().items() if key != "id") for ex in picked
    )
    propose = dspy.Predict(ProposeClause)
    described = describe_program(program)
    in_use = next((m.instruction for m in post_reason_owners(program).values() if m.instruction), DEFAULT_INSTRUCTION)
    usage, valid, dropped = Usage(), [], []
    with dspy.context(lm=prompt_lm or dspy.settings.lm), counting(usage):
        for number in range(count):
            try:
                text = str(propose(post_reasoning_idea=IDEA, program_signature=described,
                                   task_examples=examples, clause_in_use=in_use, proposal_number=number + 1,
                                   config={"temperature": PROPOSAL_TEMPERATURE,
                                           "rollout_id": rng.randrange(10**9)}).clause).strip()
            except (ValueError, RuntimeError) as exc:  # an unparseable proposal is dropped, not fatal
                dropped.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            (valid if valid_wording(text) and text not in valid else dropped).append(text)
    return valid, dropped, usage
