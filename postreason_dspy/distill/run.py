"""The distillation loop: run the program in full mode, keep what it gets right, record every predictor call.

Each example's outcome (kept, rationalized, rejected, failed, test_overlap) and its records go to
DIR/examples.jsonl in one append, so a killed run resumes where it stopped (failed examples are tried
again); train.jsonl, the `datasets` copy and the card are rewritten from that log at the end. DIR/config.json
marks the folder {"kind": "distill"} (postreason_dspy.run_folder).

Wrong answers are rationalized RATIONALIZE_BATCH at a time, not one by one: the rationalizing prompt and
the program's prompt share almost nothing, so alternating them makes a server that reuses the previous
request's prompt prefix (llama.cpp) evaluate each prompt in full, while consecutive calls of one prompt
share its system message. A killed run asks the wrong answers still waiting for their rationalization again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dspy
from dspy.adapters.base import Adapter

from postreason_dspy import interrupt
from postreason_dspy.distill.filters import COPY_THRESHOLD, Rejection, check_copying, check_hint
from postreason_dspy.distill.leakage import LeakageGuard
from postreason_dspy.distill.records import Call, CallRecorder, chat_record
from postreason_dspy.errors import CompletionParseError, PostReasonError
from postreason_dspy.io import JsonlLog, json_id
from postreason_dspy.modules import PostReason, with_mode
from postreason_dspy.predict import StrictPredict
from postreason_dspy.run_folder import DISTILL, RunFolder, created

LOG_FILE = "examples.jsonl"
DONE = frozenset({"kept", "rationalized", "rejected", "test_overlap"})  # "failed" is tried again on resume
RATIONALIZE_BATCH = 8  # wrong answers rationalized in one go (see the module's docstring)
RATIONALIZE_INSTRUCTION = (
    "The correct answer is given with the inputs. Write only the justification: explain why that answer "
    "is correct, as you would after answering it yourself."
)


@dataclass
class DistillStats:
    """Counts of one distillation (over the whole log, so a resumed run reports the total)."""

    kept: int = 0
    rationalized: int = 0
    rejected: int = 0
    failed: int = 0
    test_overlap: int = 0
    duplicates: int = 0  # examples whose id was already seen in this input
    resumed: int = 0  # examples already done by an earlier run into the same folder
    records: int = 0
    rejections: dict[str, int] = field(default_factory=dict)  # reason (filters.REASONS) -> rejected examples
    overlaps: dict[str, list[str]] = field(default_factory=dict)  # example id -> benchmarks whose test split has it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def example_id(example: dspy.Example) -> str:
    """The example's own id, else a digest of its inputs."""
    return str(example.get("id") or json_id(dict(example.inputs().items())))


def _post_fields(program: dspy.Module) -> dict[int, str]:
    """id(predictor) -> its justification field, for every PostReason's predictor."""
    return {id(m.predict): m.rationale_field for _, m in program.named_sub_modules() if isinstance(m, PostReason)}


def rationalize(call: Call, example: dspy.Example, justification: str, copy_threshold: float = COPY_THRESHOLD
                ) -> dict[str, Any]:
    """Outputs for `call` with the gold answer and a justification the model writes for it (answer given as
    input); a Rejection if that justification fails a filter."""
    signature = call.predictor.signature
    answers = [name for name in signature.output_fields if name != justification]
    missing = [name for name in answers if example.get(name) is None]
    if missing:
        raise CompletionParseError(f"the example has no gold value for {', '.join(missing)}")
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in signature.input_fields.items()}
    for name in answers:
        fields[name] = (signature.output_fields[name].annotation, dspy.InputField(desc=f"the correct {name}, given"))
    rationale = signature.output_fields[justification]
    fields[justification] = (rationale.annotation, rationale)
    asked = dspy.make_signature(fields, f"{signature.instructions}\n\n{RATIONALIZE_INSTRUCTION}")
    predictor = StrictPredict(asked)
    predictor.demos = list(call.predictor.demos)
    gold = {name: example[name] for name in answers}
    recorder = CallRecorder()
    with dspy.context(callbacks=[*dspy.settings.get("callbacks", []), recorder]):
        text = str(predictor(**call.inputs(), **gold)[justification] or "").strip()
    if any(asked_call.truncated for asked_call in recorder.calls):
        raise Rejection("truncated", "the justification stopped at the token limit")
    if not text:
        raise CompletionParseError("the model wrote no justification for the gold answer")
    check_hint(text)
    check_copying(text, call.inputs(), copy_threshold)
    return {**gold, justification: text}


@dataclass
class Wrong:
    """An example the program answered wrongly, with its calls, waiting to be rationalized."""

    example: dspy.Example
    key: str
    calls: list[Call]
    pred: Any


@dataclass
class Distiller:
    """Runs one example at a time and turns its calls into records (see `distill`)."""

    program: dspy.Module
    metric: Callable[..., Any]
    adapter: Adapter
    rationalize: bool
    guard: LeakageGuard | None
    provenance: dict[str, Any]
    copy_threshold: float = COPY_THRESHOLD

    def __post_init__(self) -> None:
        self.teacher = with_mode(self.program, "full")
        self.names = {id(predictor): name for name, predictor in self.teacher.named_predictors()}
        self.post = _post_fields(self.teacher)

    def outcome(self, example: dspy.Example, key: str) -> dict[str, Any] | Wrong:
        """The log line for one example (its outcome and, when kept, its records), or, for a wrong answer
        to rationalize, the Wrong that `rationalized` finishes."""
        question = example.get("question")
        overlap = self.guard.matches(str(question)) if self.guard and question is not None else []
        if overlap:
            return {"id": key, "outcome": "test_overlap", "benchmarks": overlap}
        recorder = CallRecorder()
        callbacks = [*dspy.settings.get("callbacks", []), recorder]
        try:
            with dspy.context(adapter=self.adapter, callbacks=callbacks):
                pred = self.teacher(**example.inputs())
        except CompletionParseError as exc:
            return {"id": key, "outcome": "failed", "error": str(exc)}
        except PostReasonError:
            raise  # a configuration problem stops the run
        except Exception as exc:  # an LM error: recorded; the example is tried again on resume
            return {"id": key, "outcome": "failed", "error": f"{type(exc).__name__}: {exc}"}
        calls = [call for call in recorder.calls if id(call.predictor) in self.names]
        unparsed = [call for call in calls if call.outputs is None or call.outputs.get("parse_error")]
        if unparsed:
            return {"id": key, "outcome": "failed", "error": str(unparsed[0].outputs.get("parse_error", "no output"))}
        if self.metric(example, pred):
            if any(call.truncated for call in calls):
                return _rejected(key, pred, "truncated", "a completion stopped at the token limit")
            try:
                self.check_copying(calls)
            except Rejection as exc:
                return _rejected(key, pred, exc.reason, str(exc))
            return {"id": key, "outcome": "kept", "records": self.records(key, calls, {})}
        if not self.rationalize:
            return _rejected(key, pred, "wrong_answer")
        return Wrong(example, key, calls, pred)

    def check_copying(self, calls: list[Call]) -> None:
        """A Rejection if a correct example's justification repeats or copies its inputs."""
        for call in calls:
            field = self.post.get(id(call.predictor))
            if field:
                check_copying(str(call.outputs.get(field) or ""), call.inputs(), self.copy_threshold)

    def rationalized(self, wrong: Wrong) -> dict[str, Any]:
        """The log line of a wrong answer: rationalized with its records, or rejected."""
        example, key, calls, pred = wrong.example, wrong.key, wrong.calls, wrong.pred
        last = max((n for n, call in enumerate(calls) if id(call.predictor) in self.post), default=None)
        if last is None:
            return _rejected(key, pred, "no_post_call", "no post-reasoning call")
        if any(call.truncated for n, call in enumerate(calls) if n != last):  # `last`'s record is rewritten
            return _rejected(key, pred, "truncated", "a completion stopped at the token limit")
        try:
            with dspy.context(adapter=self.adapter):
                outputs = rationalize(calls[last], example, self.post[id(calls[last].predictor)], self.copy_threshold)
        except Rejection as exc:
            return _rejected(key, pred, exc.reason, f"rationalizing: {exc}")
        except CompletionParseError as exc:
            return _rejected(key, pred, "rationalizing_failed", f"rationalizing: {exc}")
        return {"id": key, "outcome": "rationalized", "answer": _answer(pred),
                "records": self.records(key, calls, {last: outputs})}

    def records(self, key: str, calls: list[Call], replaced: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        found = []
        for n, call in enumerate(calls):
            outputs = replaced.get(n, call.output_values())
            justification = self.post.get(id(call.predictor))
            record = chat_record(self.adapter, call.predictor, call.inputs(), outputs, justification)
            found.append({
                "id": f"{key}/{n}",
                "example_id": key,
                **record,
                "rationalized": n in replaced,
                "recovered": call.recovered and n not in replaced,
                "predictor": self.names[id(call.predictor)],
                "adapter": type(self.adapter).__name__,
                **self.provenance,
            })
        return found


def _answer(pred: Any) -> Any:
    return pred.get("answer") if hasattr(pred, "get") else None


def _rejected(key: str, pred: Any, reason: str, error: str | None = None) -> dict[str, Any]:
    line = {"id": key, "outcome": "rejected", "answer": _answer(pred), "reason": reason}
    return {**line, "error": error} if error else line


def distill_folder(out: Path) -> RunFolder:
    """OUT as a distillation's folder: marked {"kind": "distill"} the first time, refused if another run's."""
    return RunFolder.ensure(out, DISTILL, {"created": created()})


def distill_examples(
    distiller: Distiller,
    examples: Iterable[dspy.Example],
    out: str | Path,
    on_example: Callable[[DistillStats], None] | None = None,
) -> tuple[DistillStats, list[dict[str, Any]]]:
    """Append each new example's outcome to OUT/examples.jsonl; return the counts and the whole log. OUT is
    marked a distillation folder (refused if it is another run's)."""
    distill_folder(Path(out))
    log = JsonlLog(Path(out) / LOG_FILE)
    log.repair()
    earlier, _ = log.read(lambda line: isinstance(line, dict) and "id" in line and "outcome" in line)
    done = {line["id"] for line in earlier if line["outcome"] in DONE}
    stats, seen, waiting = DistillStats(), set(), []
    for example in examples:
        key = example_id(example)
        if key in seen:
            stats.duplicates += 1
        elif key in done:
            stats.resumed += 1
        else:
            interrupt.check()  # stopping: the examples not yet asked are left for the next run
            line = distiller.outcome(example, key)
            if isinstance(line, Wrong):
                waiting.append(line)
            else:
                log.append(line)
            if len(waiting) >= RATIONALIZE_BATCH:
                _rationalize(distiller, waiting, log)
        seen.add(key)
        if on_example:
            on_example(stats)
    _rationalize(distiller, waiting, log)
    lines = final_outcomes(log.read(lambda line: isinstance(line, dict) and "outcome" in line)[0])
    for line in lines:
        setattr(stats, line["outcome"], getattr(stats, line["outcome"]) + 1)
        stats.records += len(line.get("records", ()))
        if line["outcome"] == "test_overlap":
            stats.overlaps[line["id"]] = line["benchmarks"]
        if line["outcome"] == "rejected":
            reason = line.get("reason", "unrecorded")
            stats.rejections[reason] = stats.rejections.get(reason, 0) + 1
    return stats, lines


def _rationalize(distiller: Distiller, waiting: list[Wrong], log: JsonlLog) -> None:
    """Rationalize the waiting wrong answers one after another, logging each; empties `waiting`."""
    while waiting:
        interrupt.check()
        log.append(distiller.rationalized(waiting.pop(0)))


def final_outcomes(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per example id: its first finished outcome, else its last failure."""
    chosen: dict[str, dict[str, Any]] = {}
    for line in lines:
        current = chosen.get(line["id"])
        if current is None or (current["outcome"] == "failed"):
            chosen[line["id"]] = line
    return list(chosen.values())
