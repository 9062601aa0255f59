"""What a candidate is and how it is applied to a program.

A candidate of `PostReasonSearch` is one choice per predictor of an instruction wording, a demo set (in a
style: justified or bare) and (optionally) a rationale variant, plus the adapter the program carries; or,
when the search is given a direct program, that program carrying a demo set (the answer format is a
candidate too). These helpers list the wordings a program offers, build the program a candidate stands
for, and rebuild the chosen one from an Optuna storage alone. They sit apart from the search so that a
candidate can be built and inspected (by tests, or by tools reading a study back) without running a search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dspy
import optuna
from optuna.trial import FrozenTrial

from postreason_dspy import PostReason
from postreason_dspy.bound_adapter import with_adapter
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.optimizers import demos as demo_sets
from postreason_dspy.optimizers.space import RationaleVariant, set_rationale
from postreason_dspy.optimizers.trials import best_trial
from postreason_dspy.signatures import post_reason_instructions

Wording = dict[str, Any]  # {"instructions": the signature's text, "clause": the predictor's own clause (if it has one)}


def _owns_clause(predictor: dspy.Predict) -> bool:
    """Whether the predictor keeps the post-reasoning clause apart from its instructions (and adds it per request)."""
    return hasattr(predictor, "clause") and hasattr(predictor, "request_signature")


def current_wording(predictor: dspy.Predict) -> Wording:
    """The predictor's wording as it stands (its own clause too, if it keeps one)."""
    wording: Wording = {"instructions": predictor.signature.instructions}
    if _owns_clause(predictor):
        wording["clause"] = predictor.clause
    return wording


def prompt_instructions(predictor: dspy.Predict) -> str:
    """The instructions a request of `predictor` carries (its post-reasoning clause included)."""
    if _owns_clause(predictor):
        return predictor.request_signature().instructions
    return predictor.signature.instructions


def instruction_candidates(program: dspy.Module, wordings: Sequence[str]) -> list[list[Wording]]:
    """Per predictor (in `program.predictors()` order): its current wording first, then, for a PostReason's
    predictor, each post-reasoning wording (as its clause, or appended to its base instructions)."""
    owners = {id(m.predict): m for _, m in program.named_sub_modules() if isinstance(m, PostReason)}
    candidates = []
    for predictor in program.predictors():
        options = [current_wording(predictor)]
        owner = owners.get(id(predictor))
        if owner is not None:
            base = owner.base_signature
            outputs = list(base.output_fields)
            for wording in wordings:
                if _owns_clause(predictor):
                    option = {"instructions": predictor.signature.instructions, "clause": wording}
                else:
                    option = {"instructions": post_reason_instructions(
                        base.instructions, outputs, owner.rationale_field, wording)}
                if option not in options:
                    options.append(option)
        candidates.append(options)
    return candidates


def apply_candidate(
    program: dspy.Module,
    wordings: Sequence[Wording],
    demos: Sequence[Sequence[dict]],
    *,
    adapter: str | None = None,
    rationales: Sequence[RationaleVariant | None] | None = None,
) -> dspy.Module:
    """A copy of `program` with these wordings and demos, per predictor; optionally a rationale variant per
    predictor (None keeps it) and an adapter the copy carries."""
    candidate = program.deepcopy()
    owners = {id(m.predict): m for _, m in candidate.named_sub_modules() if isinstance(m, PostReason)}
    rationales = rationales or [None] * len(wordings)
    for predictor, wording, chosen, variant in zip(candidate.predictors(), wordings, demos, rationales, strict=True):
        predictor.signature = predictor.signature.with_instructions(wording["instructions"])
        if "clause" in wording and _owns_clause(predictor):
            predictor.clause = wording["clause"]
        owner = owners.get(id(predictor))
        if variant is not None and owner is not None:
            old = owner.rationale_field
            set_rationale(owner, tuple(variant))
            chosen = [{(variant[0] if key == old else key): value for key, value in demo.items()} for demo in chosen]
        predictor.demos = demo_sets.as_demos(chosen)
    return with_adapter(candidate, adapter) if adapter else candidate


def apply_direct(direct: dspy.Module, demos: Sequence[Sequence[dict]], *, adapter: str | None = None) -> dspy.Module:
    """A copy of `direct` (a program that answers without post-reasoning, its predictors paired in order with
    the searched program's) carrying `demos` per predictor, each reduced to that predictor's own fields (so a
    justification is dropped: a direct answer has no field for it)."""
    candidate = direct.deepcopy()
    predictors = candidate.predictors()
    if len(predictors) != len(demos):
        raise ConfigurationError(f"the direct program has {len(predictors)} predictors, the searched one "
                                 f"{len(demos)}: their demos do not pair up")
    for predictor, chosen in zip(predictors, demos, strict=True):
        keep = {*predictor.signature.fields, "labeled"}
        predictor.demos = demo_sets.as_demos([{key: value for key, value in demo.items() if key in keep}
                                              for demo in chosen])
    return with_adapter(candidate, adapter) if adapter else candidate


def rebuild_from_study(
    program: dspy.Module, study: optuna.Study, trial: FrozenTrial | None = None, direct: dspy.Module | None = None
) -> dspy.Module:
    """`program` (untuned) with the instructions and demos of `trial` (default: the best), from the storage alone;
    `direct` (the direct program the search was given) when the trial is a direct candidate."""
    trial = trial or best_trial(study)
    if trial is None:
        raise ConfigurationError(f"study {study.study_name!r} has no finished trial yet")
    document = demo_sets.check_hash(study.user_attrs["demo_sets"], f"study {study.study_name!r}")
    options = [{set_id: demos for set_id, demos, _ in demo_sets.demo_options(document, i)}
               for i in range(len(program.predictors()))]
    chosen = [options[i][set_id] for i, set_id in enumerate(trial.user_attrs["demo_set_ids"])]
    style = trial.user_attrs.get("demo_style") or "justified"
    chosen = [demo_sets.styled(demos, rationale, style)
              for demos, rationale in zip(chosen, demo_sets.rationale_fields(program), strict=True)]
    adapter = trial.user_attrs.get("adapter")
    if trial.user_attrs.get("format") == "direct":
        if direct is None:
            raise ConfigurationError(f"trial {trial.number} is a direct candidate: give the direct program too")
        return apply_direct(direct, chosen, adapter=adapter)
    return apply_candidate(program, trial.user_attrs["wordings"], chosen, adapter=adapter,
                           rationales=trial.user_attrs.get("rationales"))


def tuned_kwargs(rationales: Sequence[RationaleVariant | None] | None) -> dict[str, str]:
    """The constructor arguments that rebuild a program whose PostReason got rationale variant(s)
    `rationales` (a benchmark program passes them to its one post-reasoning step); {} when none changed."""
    chosen = {tuple(v) for v in rationales or () if v is not None}
    if not chosen:
        return {}
    if len(chosen) > 1:
        raise ConfigurationError("the predictors got different rationale fields: no one program_kwargs rebuilds it")
    name, desc = chosen.pop()
    return {"rationale_field": name, "rationale_desc": desc}
