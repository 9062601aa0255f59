"""Short free-form answers (TriviaQA, NQ-Open): exact match after SQuAD normalization, against any gold alias.

These datasets list every acceptable spelling of the answer ("Sunset Boulevard", "Sunset Blvd"...), and
score exact match after the SQuAD script's normalization: lower case, no punctuation, no articles
(a, an, the), single spaces. The example keeps the aliases (`aliases`) beside its canonical `answer`;
as a multiple-choice answer written as an option's text is read as that option's letter, an answer that
is one of the example's aliases is read as the canonical answer, so the metric's comparison with the
gold answer accepts every alias.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

from postreason_dspy.scoring.text import boxed_contents

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
# "Answer: X", "The answer is X", "Final answer: X" before the answer itself.
_CUE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is\b|:)\s*", re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """The SQuAD normalization: lower case, punctuation and articles removed, whitespace collapsed."""
    text = str(text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_short_answer(text: str | None) -> str | None:
    """The normalized answer: the first `\\boxed{}` if any, else the first non-empty line, without an answer cue."""
    if not text:
        return None
    boxed = boxed_contents(text)
    source = boxed[0] if boxed else text
    line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return normalize_answer(_CUE.sub("", line)) or None


def matches_any(answer: str, aliases: Iterable[str]) -> bool:
    """Whether `answer` equals one of `aliases` once both are normalized."""
    said = normalize_answer(answer)
    return bool(said) and any(said == normalize_answer(alias) for alias in aliases)


class ShortAnswerScorer:
    """TriviaQA, NQ-Open: a short answer, right when it equals any of the example's `aliases` (SQuAD-normalized)."""

    def extract(self, text: str | None, example: Any = None) -> str | None:
        answer = extract_short_answer(text)
        if answer is None or example is None:
            return answer
        aliases = getattr(example, "aliases", None) or ()
        return normalize_answer(example.answer) if matches_any(answer, aliases) else answer

    def matches(self, answer: str, gold: str) -> bool:
        return matches_any(answer, (gold,))
