"""Demo sets for the search: bootstrapped from the model's own correct, justified outputs.

The teacher is the program with every `PostReason` in full mode, so a demo of a post-reasoning
predictor carries the justification the model wrote for an answer it got right; an example whose
trace lacks one is not used. Each training example is run at most once: the demo sets are different
draws from one pool of successful traces, of sizes k, k-1, ..., 1 in turn (so the number of demos is
searched too; 0 is the program's own, or no, demos). The first sets are disjoint; once the pool (at most
`POOL_SETS` sets' worth of examples, so a budget that asks for many sets does not pay for many
bootstraps) is used up, further sets are random draws from it. Labeled examples (no justification)
join a set only when `max_labeled_demos > 0` asks for them.

A set is offered in two styles: `justified` (the model's answer and its justification) and `bare`
(the same answer with the justification left empty, as `dspy.BootstrapFewShotWithRandomSearch`'s demos
of a post-reasoning program are): the race decides whether a justification in the demos helps the model.

Demo sets are plain JSON with a hash of their content, so a resumed search (or another worker of the
same study) uses exactly the same sets and can check it does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy import PostReason, with_mode
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import atomic_write_json, json_id
from postreason_dspy.optimizers.scoring import UNPARSED_ERRORS, Metric
from postreason_dspy.usage import Usage, counting

DemoSets = dict[str, Any]  # {"hash", "given", "sets": [{"id", "example_ids", "demos": [[demo, ...] per predictor]}]}
DEMO_STYLES = ("justified", "bare")
POOL_SETS = 5  # sets' worth of distinct training examples bootstrapped, at most; more sets are drawn from them


def example_id(example: dspy.Example) -> str:
    """The example's own id, or one derived from its inputs."""
    given = example.get("id")
    return str(given) if given is not None else json_id(example.inputs().toDict())


def rationale_fields(program: dspy.Module) -> list[str | None]:
    """Per predictor (in `program.predictors()` order): the rationale field of its PostReason, or None."""
    owners = {id(m.predict): m.rationale_field for _, m in program.named_sub_modules() if isinstance(m, PostReason)}
    return [owners.get(id(predictor)) for predictor in program.predictors()]


def _trace_demos(teacher: dspy.Module, example: dspy.Example, metric: Metric) -> list[list[dict]] | None:
    """Per predictor, the demos one correct run of `teacher` on `example` yields; None if it is wrong or unjustified."""
    predictors = teacher.predictors()
    rationales = rationale_fields(teacher)
    with dspy.context(trace=[]):
        try:
            pred = teacher(**example.inputs())
        except UNPARSED_ERRORS:
            return None
        trace = list(dspy.settings.trace)
        try:
            if pred.get("parse_error") or not metric(example, pred, trace):
                return None
        except UNPARSED_ERRORS:
            return None
    demos: list[list[dict]] = [[] for _ in predictors]
    for predictor, inputs, outputs in trace:
        index = next((i for i, p in enumerate(predictors) if p is predictor), None)
        if index is None:
            continue
        demo = {**inputs, **outputs.toDict()}
        demo.pop("config", None)
        rationale = rationales[index]
        if rationale is not None and not str(demo.get(rationale) or "").strip():
            return None
        demos[index].append(demo)
    return demos


def bootstrap_demo_sets(
    student: dspy.Module,
    trainset: Sequence[dspy.Example],
    metric: Metric,
    *,
    num_sets: int,
    max_bootstrapped_demos: int,
    max_labeled_demos: int = 0,
    seed: int = 0,
    teacher: dspy.Module | None = None,
) -> tuple[DemoSets, Usage]:
    """`num_sets` demo sets drawn from the teacher's correct, justified outputs on `trainset`, and their cost.

    Set j holds `max_bootstrapped_demos - j % max_bootstrapped_demos` demos. Training examples are tried in
    the seed's order until the pool can fill the first `POOL_SETS` sets with distinct examples (or the
    trainset is used up); later sets (and all, when the pool is short) are random draws from the pool."""
    n_predictors = len(student.predictors())
    given = [[_plain(demo) for demo in predictor.demos] for predictor in student.predictors()]
    usage = Usage()
    sets: list[dict[str, Any]] = []
    if num_sets > 0 and max_bootstrapped_demos > 0:
        sizes = [max_bootstrapped_demos - j % max_bootstrapped_demos for j in range(num_sets)]
        full = with_mode(teacher or student, "full")
        order = list(trainset)
        random.Random(seed).shuffle(order)
        wanted = sum(sizes[:POOL_SETS])
        pool: list[tuple[str, list[list[dict]]]] = []
        with counting(usage):
            for example in order:
                if len(pool) >= wanted:
                    break
                demos = _trace_demos(full, example, metric)
                if demos is not None:
                    pool.append((example_id(example), demos))
        used = {eid for eid, _ in pool}
        labeled = [ex for ex in order if example_id(ex) not in used]
        start = 0
        for k in range(num_sets * 3):  # a few extra draws make up for ones that repeat an earlier set
            if len(sets) == num_sets or not pool:
                break
            rng = random.Random(f"{seed}:{k}")
            size = sizes[k % num_sets]
            chosen = pool[start : start + size]
            start += size
            if len(chosen) < size:  # past the disjoint sets: draws from the pool overlap
                chosen = rng.sample(pool, min(size, len(pool)))
            extra = rng.sample(labeled, min(max_labeled_demos, len(labeled)))
            demos = [[demo for _, per in chosen for demo in per[i]] for i in range(n_predictors)]
            for i in range(n_predictors):
                demos[i] += [{**ex.toDict(), "labeled": True} for ex in extra]
            ids = [eid for eid, _ in chosen] + [example_id(ex) for ex in extra]
            entry = {"id": json_id(demos), "example_ids": ids, "demos": demos}
            if all(entry["id"] != other["id"] for other in sets):
                sets.append(entry)
    document = {"given": given, "sets": sets}
    document["hash"] = json_id(document)
    return document, usage


def _plain(demo: Any) -> dict[str, Any]:
    return dict(demo.toDict() if hasattr(demo, "toDict") else demo)


def check_hash(document: DemoSets, where: str) -> DemoSets:
    """`document` if its content matches its hash; ConfigurationError otherwise."""
    body = {key: value for key, value in document.items() if key != "hash"}
    if document.get("hash") != json_id(body):
        raise ConfigurationError(f"the demo sets in {where} do not match their hash (edited or damaged)")
    return document


def read_demo_sets(path: Path) -> DemoSets | None:
    """The demo sets saved at `path`, checked against their hash; None if there are none."""
    if not path.is_file():
        return None
    try:
        return check_hash(json.loads(path.read_text(encoding="utf-8")), str(path))
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from None


def write_demo_sets(path: Path, document: DemoSets) -> None:
    atomic_write_json(path, document)


def demo_options(document: DemoSets, predictor: int) -> list[tuple[str, list[dict], list[str]]]:
    """Predictor `predictor`'s demo choices as (set id, demos, example ids): the program's own demos first
    (and no demos, when it has some), then each bootstrapped set."""
    given = document["given"][predictor]
    options = [("given:" + json_id(given), given, [str(d.get("id") or json_id(d)) for d in given])]
    if given:
        options.append(("none", [], []))
    options += [(entry["id"], entry["demos"][predictor], entry["example_ids"]) for entry in document["sets"]]
    return options


def styled(demos: Sequence[dict], rationale: str | None, style: str) -> list[dict]:
    """`demos` of a predictor whose rationale field is `rationale` (None: not a PostReason) in `style`:
    `bare` empties the justification of each bootstrapped demo, `justified` keeps it."""
    if style == "justified" or rationale is None:
        return list(demos)
    return [demo if demo.get("labeled") else {**demo, rationale: ""} for demo in demos]


def as_demos(demos: Sequence[dict]) -> list[dspy.Example]:
    return [dspy.Example(augmented=not demo.get("labeled"), **demo) for demo in demos]
