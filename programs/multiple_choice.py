"""Multiple choice (GPQA, MMLU-Pro, MMLU, ARC-Challenge, CommonsenseQA): options lettered A-J, answer a letter.

Options are always rendered the same way, one per line as "A. text", whatever letters or digits
the dataset used; GPQA, which publishes the correct answer first, is shuffled with a fixed seed
per question so the gold letter does not give itself away and stays the same on every run.

Answer discipline: the answer field holds one of the offered letters and nothing else. The prompt
asks for the letter alone (the field's description, which the post-reasoning clause defers to), and
`MultipleChoice` reads what the model wrote as the letter it names: "B", "(B)", "B) dairy farm",
"B. dairy farm", "**B**", "The answer is B", or an option's own text ("dairy farm"). An answer that
names no offered option is kept out of the field: the prediction's answer is None and its
`parse_error` says what was written (a wrong answer, not an exception, whatever `on_parse_error`).
The signature stays `str` (one static prompt for every option count, so saved and exported
programs need no per-question variant); the letters are checked against the options each question
offers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import dspy

from postreason_dspy import make_strategy
from postreason_dspy.scoring import LETTERS
from postreason_dspy.scoring.choice import extract_choice

OPTION_LINE = re.compile(r"^([A-J])\. ?(.*)$", re.MULTILINE)


def render_options(choices: Sequence[str]) -> str:
    """ "A. first\\nB. second\\n..." for 2 to 10 options."""
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"a multiple-choice question needs 2 to {len(LETTERS)} options, got {len(choices)}")
    return "\n".join(f"{letter}. {' '.join(str(text).split())}" for letter, text in zip(LETTERS, choices, strict=False))


def shuffle_options(choices: Sequence[str], gold: int, key: str) -> tuple[list[str], int]:
    """`choices` in an order fixed by `key` (e.g. the question's id), and the new index of the gold option."""
    order = list(range(len(choices)))
    random.Random(key).shuffle(order)
    return [choices[i] for i in order], order.index(gold)


class AnswerChoice(dspy.Signature):
    """Answer the multiple-choice question."""

    question: str = dspy.InputField()
    options: str = dspy.InputField(desc="one option per line, each after its letter")
    answer: str = dspy.OutputField(desc="the letter of the correct option alone, e.g. B, without the option's text")


def offered_options(options: str) -> tuple[str, list[str]]:
    """The letters and texts of `options` as `render_options` writes them ("A. text" lines);
    all of A-J (texts unknown) when the text is not in that form."""
    found = OPTION_LINE.findall(options)
    letters = "".join(letter for letter, _ in found)
    if not found or not LETTERS.startswith(letters):
        return LETTERS, []
    return letters, [text for _, text in found]


def read_letter(answer: str | None, options: str) -> str | None:
    """The offered option's letter that `answer` names (see the module docstring), or None."""
    letters, texts = offered_options(options)
    return extract_choice(answer, letters=letters, choices=texts or None)


class MultipleChoice(dspy.Module):
    """Pick one option with any strategy (direct, post, post_full, cot); the answer is the option's letter."""

    def __init__(self, strategy: str = "post", **kwargs: Any):
        super().__init__()
        self.choose = make_strategy(strategy, AnswerChoice, **kwargs)

    def forward(self, question: str, options: str) -> dspy.Prediction:
        return self._letter_only(self.choose(question=question, options=options), options)

    async def aforward(self, question: str, options: str) -> dspy.Prediction:
        return self._letter_only(await self.choose.acall(question=question, options=options), options)

    def _letter_only(self, pred: dspy.Prediction, options: str) -> dspy.Prediction:
        written = pred.get("answer")
        if written is None:  # already unparsed (marked)
            return pred
        letter = read_letter(written, options)
        if letter is not None:
            pred.answer = letter
            return pred
        pred.answer = None
        pred.parse_error = f"the answer {written[:200]!r} names none of the options {offered_options(options)[0]}"
        return pred
