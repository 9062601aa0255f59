"""The distillation loop: run the program in full mode, keep what it gets right, record every predictor call.

Each example's outcome (kept, rationalized, rejected, failed, test_overlap) and its records go to
DIR/examples.jsonl in one append, so a killed run resumes where it stopped (failed examples are
tried again); train.jsonl, the `datasets` copy and the card are rewritten from that log at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import dspy
from dspy.adapters.base import Adapter

from postreason_dspy.distill.leakage import LeakageGuard, normalize_text
from postreason_dspy.distill.records import Call, CallRecorder, chat_record
from postreason_dspy.errors import CompletionParseError, PostReasonError
from postreason_dspy.io import JsonlLog, json_id
from postreason_dspy.modules import PostReason, with_mode
from postreason_dspy.predict import StrictPredict

LOG_FILE = "examples.jsonl"
DONE = frozenset({"kept", "rationalized", "rejected", "test_overlap"})  # "failed" is tried again on resume
RATIONALIZE_INSTRUCTION = (
    "The correct answer is given with the inputs. Write only the justification: explain why that answer "
    "is correct, as you would after answering it yourself."
)
# A rationalized justification that says the answer was given (the 0.5B model wrote the
# instruction's first sentence into 26 of 115) would teach the student to cite a hint it never has.
CITES_THE_HINT = re.compile(
    r"\b(answer|option|it)\s+(is|was|has been)\s+(given|provided|supplied)\b"
    r"|\b(given|provided)\s+(with|in|among)\s+the\s+inputs?\b",
    re.IGNORECASE,
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
    overlaps: dict[str, list[str]] = field(default_factory=dict)  # example id -> benchmarks whose test split has it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def example_id(example: dspy.Example) -> str:
    """The example's own id, else a digest of its inputs."""
    return str(example.get("id") or json_id(dict(example.inputs().items())))


# A justification this close to one of the call's inputs (difflib ratio of the normalized texts) only
# repeats it: 16 of 115 CommonsenseQA records of the 0.5B model did, and the adapter trained on them
# opened its answers by repeating the input fields.
RESTATES = 0.85


def restated_input(justification: str, inputs: dict[str, Any]) -> str | None:
    """The name of the input that `justification` merely repeats, if any."""
    said = normalize_text(justification)
    for name, value in inputs.items():
        given = normalize_text(str(value))
        if not (said and given):
            continue
        matcher = SequenceMatcher(None, said, given, autojunk=False)
        if all(ratio() >= RESTATES for ratio in (matcher.real_quick_ratio, matcher.quick_ratio, matcher.ratio)):
            return name
    return None


def repeats_an_input(justification: str, inputs: dict[str, Any]) -> str | None:
    """Why `justification` is not worth training on because it repeats an input, if it does."""
    repeated = restated_input(justification, inputs)
    return f"the justification only repeats the input `{repeated}`" if repeated else None


def _post_fields(program: dspy.Module) -> dict[int, str]:
    """id(predictor) -> its justification field, for every PostReason's predictor."""
    return {id(m.predict): m.rationale_field for _, m in program.named_sub_modules() if isinstance(m, PostReason)}


def rationalize(call: Call, example: dspy.Example, justification: str) -> dict[str, Any]:
    """Outputs for `call` with the gold answer and a justification the model writes for it (answer given as input)."""
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
    text = str(predictor(**call.inputs(), **gold)[justification] or "").strip()
    if not text:
        raise CompletionParseError("the model wrote no justification for the gold answer")
    if cited := CITES_THE_HINT.search(text):
        raise CompletionParseError(f"the justification says the answer was given ({cited.group(0)!r})")
    if repeated := repeats_an_input(text, call.inputs()):
        raise CompletionParseError(repeated)
    return {**gold, justification: text}


@dataclass
class Distiller:
    """Runs one example at a time and turns its calls into records (see `distill`)."""

    program: dspy.Module
    metric: Callable[..., Any]
    adapter: Adapter
    rationalize: bool
    guard: LeakageGuard | None
    provenance: dict[str, Any]

    def __post_init__(self) -> None:
        self.teacher = with_mode(self.program, "full")
        self.names = {id(predictor): name for name, predictor in self.teacher.named_predictors()}
        self.post = _post_fields(self.teacher)

    def outcome(self, example: dspy.Example, key: str) -> dict[str, Any]:
        """The log line for one example: its outcome and, when kept or rationalized, its records."""
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
            if repeated := self.restated(calls):
                return {"id": key, "outcome": "rejected", "answer": _answer(pred), "error": repeated}
            return {"id": key, "outcome": "kept", "records": self.records(key, calls, {})}
        if not self.rationalize:
            return {"id": key, "outcome": "rejected", "answer": _answer(pred)}
        return self.rationalized(example, key, calls, pred)

    def restated(self, calls: list[Call]) -> str | None:
        """Why a correct example's justification is not worth training on (it repeats an input), if it is not."""
        for call in calls:
            field = self.post.get(id(call.predictor))
            if field and (repeated := repeats_an_input(str(call.outputs.get(field) or ""), call.inputs())):
                return repeated
        return None

    def rationalized(self, example: dspy.Example, key: str, calls: list[Call], pred: Any) -> dict[str, Any]:
        last = max((n for n, call in enumerate(calls) if id(call.predictor) in self.post), default=None)
        if last is None:
            return {"id": key, "outcome": "rejected", "answer": _answer(pred), "error": "no post-reasoning call"}
        try:
            with dspy.context(adapter=self.adapter):
                outputs = rationalize(calls[last], example, self.post[id(calls[last].predictor)])
        except CompletionParseError as exc:
            return {"id": key, "outcome": "rejected", "answer": _answer(pred), "error": f"rationalizing: {exc}"}
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


def distill_examples(
    distiller: Distiller,
    examples: Iterable[dspy.Example],
    out: str | Path,
    on_example: Callable[[DistillStats], None] | None = None,
) -> tuple[DistillStats, list[dict[str, Any]]]:
    """Append each new example's outcome to OUT/examples.jsonl; return the counts and the whole log."""
    log = JsonlLog(Path(out) / LOG_FILE)
    log.repair()
    earlier, _ = log.read(lambda line: isinstance(line, dict) and "id" in line and "outcome" in line)
    done = {line["id"] for line in earlier if line["outcome"] in DONE}
    stats, seen = DistillStats(), set()
    for example in examples:
        key = example_id(example)
        if key in seen:
            stats.duplicates += 1
        elif key in done:
            stats.resumed += 1
        else:
            log.append(distiller.outcome(example, key))
        seen.add(key)
        if on_example:
            on_example(stats)
    lines = final_outcomes(log.read(lambda line: isinstance(line, dict) and "outcome" in line)[0])
    for line in lines:
        setattr(stats, line["outcome"], getattr(stats, line["outcome"]) + 1)
        stats.records += len(line.get("records", ()))
        if line["outcome"] == "test_overlap":
            stats.overlaps[line["id"]] = line["benchmarks"]
    return stats, lines


def final_outcomes(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per example id: its first finished outcome, else its last failure."""
    chosen: dict[str, dict[str, Any]] = {}
    for line in lines:
        current = chosen.get(line["id"])
        if current is None or (current["outcome"] == "failed"):
            chosen[line["id"]] = line
    return list(chosen.values())
