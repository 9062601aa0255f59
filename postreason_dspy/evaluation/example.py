"""One example answered and recorded: the line of examples.jsonl built from what the program returned.

Scoring happens here, on the finished prediction, so a metric or extractor that raises marks that one
example instead of ending the run; and here a benchmark whose text must not be published (GPQA) has
everything that could quote it dropped before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import dspy

from postreason_dspy.evaluation.records import ExampleRecord, Setting
from postreason_dspy.usage import UsageCounter


class BenchmarkLike(Protocol):
    """What a run needs from a benchmark (see postreason_dspy.benchmarks.Benchmark)."""

    name: str
    family: str
    withhold_text: bool

    def load(
        self, split: str = ..., limit: int | None = ..., seed: int = ..., path: Any = ...
    ) -> list[dspy.Example]: ...
    def program(self, strategy: str = ..., **kwargs: Any) -> dspy.Module: ...
    def extract(self, pred_or_text: Any, example: dspy.Example | None = ...) -> str | None: ...
    def metric(self, example: dspy.Example, pred: Any, trace: Any = ...) -> bool: ...
    def source_description(self) -> str: ...


def _total(values: Sequence[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _score(bench: BenchmarkLike, example: dspy.Example, pred: dspy.Prediction) -> tuple[Any, bool | None, str | None]:
    """(answer, correct, problem): a metric or extractor that raises gives a problem instead of ending the run."""
    answer = None
    try:
        answer = bench.extract(pred, example)
        return answer, bool(bench.metric(example, pred)), None
    except Exception as exc:
        return answer, None, f"scoring failed: {type(exc).__name__}: {exc}"


WITHHELD = "text withheld"
_LETTER = re.compile(r"[A-Z]")


def _withheld(problem: str | None, error: Exception | None) -> str | None:
    """A problem's text without its message (a parse error quotes the completion): its kind and type only."""
    if problem is None:
        return None
    kind = "scoring failed: " if problem.startswith("scoring failed") else ""
    name = type(error).__name__ if error is not None else problem.removeprefix(kind).partition(":")[0]
    return f"{kind}{name} ({WITHHELD})"


def example_record(
    setting: Setting,
    bench: BenchmarkLike,
    example: dspy.Example,
    pred: dspy.Prediction | None,
    counter: UsageCounter | None,
    attempts: int,
    error: Exception | None,
) -> ExampleRecord:
    """One line of examples.jsonl: what was asked, what came back, whether it was right, what it cost.

    A metric or extractor that raises is recorded on the example (status "error", `error` says "scoring
    failed"), so one odd answer cannot end a run. For a benchmark that withholds its text (GPQA) the
    record keeps nothing that can quote it: no inputs and no completion, the answer only when it is an
    option letter, and of a parse error or failure only its type."""
    calls = counter.calls if counter is not None else []
    group_field = getattr(bench, "macro_average_by", None)
    parse_error = pred.get("parse_error") if pred is not None else None
    completion = calls[-1].completion if calls else None
    if completion is None and pred is not None:
        completion = pred.get("completion")
    answer, correct, problem = _score(bench, example, pred) if pred is not None else (None, None, None)
    if error is not None:
        problem = f"{type(error).__name__}: {error}"
    if bench.withhold_text:
        completion, problem = None, _withheld(problem, error)
        answer = answer if isinstance(answer, str) and _LETTER.fullmatch(answer) else None
        parse_error = f"unparsed ({WITHHELD})" if parse_error else None
    return ExampleRecord(
        model=setting.model,
        benchmark=setting.benchmark,
        strategy=setting.strategy,
        id=str(example.id),
        inputs=None if bench.withhold_text else example.inputs().toDict(),
        gold=str(example.answer),
        group=example.get(group_field) if group_field else None,
        status="error" if problem is not None else "parse_error" if parse_error else "ok",
        answer=answer,
        correct=correct,
        completion=completion,
        parse_error=parse_error,
        error=problem,
        prompt_tokens=_total([call.prompt_tokens for call in calls]),
        completion_tokens=_total([call.completion_tokens for call in calls]),
        latency_s=round(sum(call.latency_s for call in calls), 4) if calls else None,
        finish_reason=calls[-1].finish_reason if calls else None,
        lm_calls=len(calls),
        attempts=attempts,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
