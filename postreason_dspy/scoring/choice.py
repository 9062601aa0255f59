"""Multiple-choice answers: read an option letter, however the model wrote it.

Accepted: "B", "(B)", "B)", "B. text", "B: text", "Answer: B", "the answer is (B)", "\\boxed{B}",
or the option's text itself ("department store") when the options are known.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from postreason_dspy.scoring.text import boxed_contents

LETTERS = "ABCDEFGHIJ"

_MARKUP = re.compile(r"\*\*|__|`|\\text\{([^{}]*)\}")
_WHOLE = re.compile(r"^\W*\(?([A-Za-z])\)?\W*$")
_LEADING = re.compile(r"^\(([A-Za-z])\)|^([A-Za-z])[.)]|^([A-Z])(?=\s*[:,;\]\n]|\s+[-–—]\s|\s+is\b|$)")
_CUE = r"(?i:\b(?:{})\b(?:\s+is)?)\s*[:\-]?\s*\(?([A-Z])\)?(?![A-Za-z])"
_CUES = (re.compile(_CUE.format("answer")), re.compile(_CUE.format("option|choice")))  # "answer" wins
_PARENS = re.compile(r"\(([A-Z])\)")


def _clean(text: str) -> str:
    return _MARKUP.sub(lambda m: m.group(1) or "", text).strip()


def _normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _by_option_text(text: str, choices: Sequence[str], letters: str) -> str | None:
    """The letter of the option whose text the answer is, or starts with (the longest such option).

    None when no option matches, or when the best match is the text of two options (a duplicated option).
    """
    said = _normalized(text)
    matches = {
        letters[i]: len(norm)
        for i, choice in enumerate(choices[: len(letters)])
        if (norm := _normalized(choice)) and (said == norm or said.startswith(norm + " "))
    }
    best = [letter for letter, size in matches.items() if size == max(matches.values())]
    return best[0] if len(best) == 1 else None


def extract_choice(
    text: str | None, letters: str = LETTERS, choices: Sequence[str] | None = None
) -> str | None:
    """The chosen option's letter (upper case, within `letters`), or None if the answer names no option."""
    if not text:
        return None
    boxed = boxed_contents(text)
    text = _clean(boxed[0] if boxed else text)
    found = None
    for pattern in (_WHOLE, _LEADING):
        match = pattern.search(text)
        if match:
            found = next(group for group in match.groups() if group).upper()
            break
    if found is None:
        found = next((match.group(1) for cue in _CUES if (match := cue.search(text))), None)
    if found is None and choices:
        found = _by_option_text(text, choices, letters)
    if found is None:
        distinct = set(_PARENS.findall(text))
        found = distinct.pop() if len(distinct) == 1 else None
    return found if found is not None and found in letters else None
