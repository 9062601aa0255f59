"""Answer extraction and matching per benchmark family, reading the answer field first."""

from postreason_dspy.scoring.accuracy import accuracy
from postreason_dspy.scoring.bbh import BBH_LETTERS, BBH_TASKS, FORMAT_HINTS, extract_bbh
from postreason_dspy.scoring.choice import LETTERS, extract_choice
from postreason_dspy.scoring.math_equiv import extract_math, math_equal
from postreason_dspy.scoring.numeric import extract_number, gsm8k_gold, numbers_equal
from postreason_dspy.scoring.scorers import BBHScorer, ChoiceScorer, MathScorer, NumericScorer, Scorer
from postreason_dspy.scoring.short_answer import ShortAnswerScorer, extract_short_answer, normalize_answer
from postreason_dspy.scoring.text import answer_text, boxed_contents

__all__ = [
    "BBH_LETTERS",
    "BBH_TASKS",
    "FORMAT_HINTS",
    "LETTERS",
    "BBHScorer",
    "ChoiceScorer",
    "MathScorer",
    "NumericScorer",
    "Scorer",
    "ShortAnswerScorer",
    "accuracy",
    "answer_text",
    "boxed_contents",
    "extract_bbh",
    "extract_choice",
    "extract_math",
    "extract_number",
    "extract_short_answer",
    "gsm8k_gold",
    "math_equal",
    "normalize_answer",
    "numbers_equal",
]
