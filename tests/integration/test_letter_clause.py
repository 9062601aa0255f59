"""Against the real model: the default clause keeps a user's letter-described answer field a letter.

A user's own program (their signature: `answer: str` described as "the letter of the correct
option"; their strict scorer: the stripped answer equals the gold letter) with the former default
clause made the 0.5B model write 'television' or 'The correct option is B. ...'. Both clauses run
answer-only over the same ARC-Challenge questions after the same warm-up; run with `-s` to see the table.
"""

from __future__ import annotations

import dspy
import pytest

from postreason_dspy import DEFAULT_INSTRUCTION, PostReason
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.scoring import LETTERS
from postreason_dspy.signatures import LEGACY_DEFAULT_INSTRUCTION

pytestmark = pytest.mark.integration

N_QUESTIONS = 25


class UsersChoice(dspy.Signature):
    """Answer the multiple-choice question."""

    question: str = dspy.InputField()
    options: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="the letter of the correct option")


def bare_letters(lm: dspy.LM, clause: str, examples: list[dspy.Example]) -> tuple[int, int, list[str]]:
    """(answers that are a bare offered letter, strictly correct answers, the answers) with `clause`."""
    program = PostReason(UsersChoice, mode="answer_only", instruction=clause, on_parse_error="mark")
    answers = []
    with dspy.context(lm=lm):
        lm("Say OK.", max_tokens=2)  # the same server cache state for both clauses
        for example in examples:
            answers.append((program(question=example.question, options=example.options).answer or "").strip())
    bare = sum(answer in LETTERS for answer in answers)
    correct = sum(answer == example.answer for answer, example in zip(answers, examples, strict=True))
    return bare, correct, answers


def test_the_default_clause_keeps_the_letter_contract_at_least_as_well_as_the_old_one(real_lm):
    examples = get_benchmark("arc_challenge").load(split="test", limit=N_QUESTIONS, seed=0)
    new_bare, new_correct, new_answers = bare_letters(real_lm, DEFAULT_INSTRUCTION, examples)
    old_bare, old_correct, old_answers = bare_letters(real_lm, LEGACY_DEFAULT_INSTRUCTION, examples)
    print(f"\nclause   bare letters   strictly correct   (of {len(examples)})")
    print(f"default  {new_bare:>12}   {new_correct:>16}   e.g. {new_answers[:5]}")
    print(f"old      {old_bare:>12}   {old_correct:>16}   e.g. {old_answers[:5]}")
    assert new_bare >= old_bare
