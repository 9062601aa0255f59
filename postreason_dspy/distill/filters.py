"""The filters a justification must pass to be trained on, and the reasons an example is rejected.

A student learns what its records show: a justification that repeats or copies its inputs teaches it
to repeat its inputs (the LoRA adapter trained on the 0.5B model's CommonsenseQA records opened its answers
with `[[ ## question ## ]]`), and one that says the answer was given teaches it to cite a hint it never
has. Three filters, each a `Rejection` with its own reason (the dataset card counts them):

- `repeats_input`: the justification is one input over again (difflib ratio of the normalized texts).
- `copies_inputs`: at least `threshold` of the justification's word trigrams occur in an input field.
  On the 115 records of results/finetune-qwen2.5-coder-0.5b-records/distill-train.jsonl the copied
  share was 32% on average; by tenths (0-10%, 10-20%, ... 90-100%) the records numbered 33, 25, 14,
  6, 5, 5, 7, 5, 5, 10: 32 at least half copied. Past 40% the records read as the question with its
  answer put in ("The music in a room with no other noise would be silent"); below 30% they add
  reasons of their own. At the default, 40%, the filter rejects 37 of the 115, 14 of them records
  that the other two filters kept.
- `cites_hint` (rationalized records only): the justification says the answer was given.

Besides the filters, a record whose completion stopped at the token limit (`truncated`) is not trained
on: its reply is cut mid-sentence, and the record would still end with the adapter's end marker
(the 1.5B model's MMLU justifications reached distill's 1,024-token limit in 3 of its first 168 calls).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher
from typing import Any

from postreason_dspy.distill.leakage import normalize_text

COPY_NGRAM = 3  # word trigrams: a shared name or option text is one or two words, a copied clause is more
COPY_THRESHOLD = 0.4
# A justification this close to one of the call's inputs (difflib ratio of the normalized texts) only
# repeats it: 16 of 115 CommonsenseQA records of the 0.5B model did.
RESTATES = 0.85
# A rationalized justification that says the answer was given (the 0.5B model wrote the
# instruction's first sentence into 26 of 115) would teach the student to cite a hint it never has.
CITES_THE_HINT = re.compile(
    r"\b(answer|option|it)\s+(is|was|has been)\s+(given|provided|supplied)\b"
    r"|\b(given|provided)\s+(with|in|among)\s+the\s+inputs?\b",
    re.IGNORECASE,
)
# Why an example was rejected, as the dataset card words it.
REASONS = {
    "wrong_answer": "answered wrongly (not rationalized)",
    "repeats_input": "justification only repeats an input",
    "copies_inputs": "justification copies its inputs",
    "cites_hint": "rationalization says the answer was given",
    "rationalizing_failed": "no usable rationalization",
    "no_post_call": "no post-reasoning call to rationalize",
    "truncated": "completion stopped at the token limit",
}


class Rejection(Exception):
    """A justification not worth training on; `reason` is a key of REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def ngrams(text: str, n: int = COPY_NGRAM) -> list[tuple[str, ...]]:
    """The word n-grams of `text`'s normalized words, in order (none for a text of fewer than n words)."""
    words = normalize_text(text).split()
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def copied_share(justification: str, inputs: Iterable[Any], n: int = COPY_NGRAM) -> float:
    """The share of the justification's word n-grams that occur in any one input (0 for fewer than n words)."""
    said = ngrams(justification, n)
    if not said:
        return 0.0
    given = {gram for value in inputs for gram in ngrams(str(value), n)}
    return sum(gram in given for gram in said) / len(said)


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


def check_copying(justification: str, inputs: dict[str, Any], threshold: float = COPY_THRESHOLD) -> None:
    """Raise a Rejection if `justification` repeats one input or copies too much of them."""
    if repeated := restated_input(justification, inputs):
        raise Rejection("repeats_input", f"the justification only repeats the input `{repeated}`")
    share = copied_share(justification, inputs.values())
    if share >= threshold:
        raise Rejection("copies_inputs", f"{share:.0%} of the justification's word {COPY_NGRAM}-grams are copied "
                                         f"from its inputs (the limit is {threshold:.0%})")


def check_hint(justification: str) -> None:
    """Raise a Rejection if a rationalized justification says the answer was given."""
    if cited := CITES_THE_HINT.search(justification):
        raise Rejection("cites_hint", f"the justification says the answer was given ({cited.group(0)!r})")
