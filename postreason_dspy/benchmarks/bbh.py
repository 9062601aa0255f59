"""BIG-Bench Hard: all 27 tasks (macro-averaged), or one as `bbh:<task>`; data from the user's file or the hub."""

from __future__ import annotations

from functools import partial
from typing import Any

from postreason_dspy.benchmarks.base import Benchmark, Item, content_id
from postreason_dspy.benchmarks.records import pick, row_id
from postreason_dspy.benchmarks.sources import HubSource
from postreason_dspy.programs.free_form import FreeForm
from postreason_dspy.scoring import BBH_TASKS, FORMAT_HINTS, BBHScorer, extract_bbh

SCHEMA = (
    "input (or question); target; task (one of the 27 BBH task names; may be left out in a file "
    "loaded as bbh:<task>); optional id, split"
)


def bbh_item(fields: dict[str, Any], task: str | None = None) -> Item | None:
    """A BBH row, normalized in its task's answer format; None for a row of another task than `task`."""
    row_task = fields.get("task") or task
    if row_task is None:
        raise ValueError("no field 'task' (needed to load all of BBH; or load one task as bbh:<task>)")
    if row_task not in BBH_TASKS:
        raise ValueError(f"unknown BBH task {row_task!r}")
    if task is not None and row_task != task:
        return None
    answer_format = BBH_TASKS[row_task]
    gold = extract_bbh(str(pick(fields, "target")), answer_format)
    if gold is None:
        raise ValueError(f"the target {fields['target']!r} is not in the {answer_format} format of {row_task}")
    question = str(pick(fields, "input", "question"))
    item_id = row_id(fields, "id") or f"{row_task}-{content_id(question)}"
    extra = {"task": row_task, "answer_format": FORMAT_HINTS[answer_format]}
    return Item(question=question, answer=gold, id=item_id, extra=extra)


def bbh_benchmark(task: str | None = None) -> Benchmark:
    """All of BBH (task=None) or one task; both share the split key "bbh", so every item keeps its split."""
    tasks = tuple(BBH_TASKS) if task is None else (task,)
    return Benchmark(
        name="bbh" if task is None else f"bbh:{task}",
        licence="MIT (BIG-Bench Hard)",
        family="free_form",
        title="BIG-Bench Hard (27 tasks, macro-averaged)" if task is None else f"BIG-Bench Hard: {task}",
        schema=SCHEMA,
        normalize=partial(bbh_item, task=task),
        scorer=BBHScorer(task),
        program_factory=FreeForm,
        split_key="bbh",
        hub=HubSource("lukaemon/bbh", tasks, {"test": "test"}, config_field="task"),
        macro_average_by="task",
        note="BBH is published as one test split per task: 20% of each is held out for tuning.",
    )
