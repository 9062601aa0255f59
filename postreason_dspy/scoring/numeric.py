"""Numeric answers (GSM8K, BBH counting tasks): read one number from the answer and compare by value.

The number is the boxed one if any, else the one after an "answer is"/"Answer:" cue, else the FIRST
number of the answer field: with answer-first output, later numbers belong to the justification.
An answer that opens with a bare calculation ("3 + 4 = 7") is read as its result.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from postreason_dspy.scoring.text import boxed_contents

_SIGN = r"(?<![\w.])[-−]?"
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
NUMBER = re.compile(
    rf"\\[dt]?frac\{{\s*(?P<fnum>{_SIGN}\d+)\s*\}}\{{\s*(?P<fden>\d+)\s*\}}"  # \frac{3}{4}
    rf"|(?P<rnum>{_SIGN}\d+)\s*/\s*(?P<rden>\d+)(?![\d.])"  # 3/4
    rf"|(?P<num>{_SIGN}(?:{_DIGITS}))"  # -1,234.5
)
_TERM = r"(?:[\d\s.,$+\-−*/×÷x()^]|\\times|\\cdot|\\div)+"
CALCULATION = re.compile(rf"{_TERM}(?:={_TERM})+")
ANSWER_CUE = re.compile(r"\banswer\b(?:\s+is)?[\s:=*$\\(]*(?=[-−.\d\\])", re.IGNORECASE)

# Relative tolerance for comparing values written as decimals (0.3333333 vs 1/3).
TOLERANCE = Fraction(1, 10**6)


def _value(match: re.Match[str]) -> Fraction | None:
    if match.group("fden") is not None:
        numerator, denominator = match.group("fnum"), match.group("fden")
    elif match.group("rden") is not None:
        numerator, denominator = match.group("rnum"), match.group("rden")
    else:
        return Fraction(Decimal(match.group("num").replace(",", "").replace("−", "-")))
    if int(denominator) == 0:
        return None
    return Fraction(int(numerator.replace("−", "-")), int(denominator))


def first_number(text: str) -> Fraction | None:
    """The value of the first number in `text` (integers, decimals, thousands commas, a/b, \\frac{a}{b})."""
    for match in NUMBER.finditer(text):
        value = _value(match)
        if value is not None:
            return value
    return None


def _result_of_calculation(text: str) -> str:
    """The part after the last "=" when `text` opens with a line that is only a calculation, else `text`."""
    first_line = text.strip().split("\n", 1)[0]
    return first_line.rsplit("=", 1)[1] if CALCULATION.fullmatch(first_line) else text


def format_number(value: Fraction) -> str:
    """A canonical spelling: "18", "-2.5", or "1/3" when the decimal would not terminate."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    return format(Decimal(value.numerator) / Decimal(value.denominator), "f")


def extract_number(text: str | None) -> str | None:
    """The answer's number in canonical form, or None if it holds none."""
    if not text:
        return None
    candidates = [*boxed_contents(text)[:1]]
    cue = ANSWER_CUE.search(text)
    if cue:
        candidates.append(text[cue.end() :])
    candidates.append(text)
    for candidate in candidates:
        value = first_number(_result_of_calculation(candidate))
        if value is not None:
            return format_number(value)
    return None


def numbers_equal(answer: str, gold: str) -> bool:
    """Whether two canonical numbers are equal (to a relative 1e-6, for rounded decimals)."""
    a, b = first_number(answer), first_number(gold)
    if a is None or b is None:
        return False
    return abs(a - b) <= TOLERANCE * max(1, abs(b))


def gsm8k_gold(answer: str) -> str | None:
    """GSM8K's gold number: after the last '####' of a worked solution (or the whole field), commas dropped."""
    return extract_number(str(answer).rsplit("####", 1)[-1])
