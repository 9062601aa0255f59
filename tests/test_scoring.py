"""Answer extraction and matching on tricky, real-looking answers, per benchmark family."""

from __future__ import annotations

import threading

import dspy
import pytest

from postreason_dspy.scoring import (
    BBH_TASKS,
    BBHScorer,
    ChoiceScorer,
    answer_text,
    boxed_contents,
    extract_bbh,
    extract_choice,
    extract_math,
    extract_number,
    gsm8k_gold,
    math_equal,
    numbers_equal,
)

# ----- the answer field -----


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (dspy.Prediction(answer="18", rationale="16 - 3 - 4 = 9 eggs; 9 * 2 = 18"), "18"),
        (dspy.Prediction(answer="18. Justification: 16 - 3 - 4 = 9, and 9 * 2 = 18."), "18."),
        (dspy.Prediction(answer="B\n\n**Rationale:** the door contains iron"), "B"),
        (dspy.Prediction(answer="Answer: 7\nExplanation: 3 + 4"), "Answer: 7"),
        (dspy.Prediction(answer=None, parse_error="no answer field", completion="junk"), None),
        (dspy.Prediction(answer="Justification: I think it is 5"), None),
        (dspy.Prediction(answer=42), "42"),
        ("  The answer is 3.  ", "The answer is 3."),
        (None, None),
    ],
)
def test_answer_text_reads_the_answer_field_and_cuts_an_inline_justification(given, expected):
    assert answer_text(given) == expected


def test_boxed_contents_balances_braces():
    text = r"so $x = \boxed{\frac{1}{2}}$, and later \boxed{\left( 3, \frac{\pi}{2} \right)} or \boxed 7"
    assert boxed_contents(text) == [r"\frac{1}{2}", r"\left( 3, \frac{\pi}{2} \right)", "7"]
    assert boxed_contents(r"\boxed{unclosed {") == []


# ----- GSM8K: numbers -----


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("18", "18"),
        ("$18", "18"),
        ("$1,234.50", "1234.5"),
        ("18 dollars", "18"),
        ("She makes $18 every day.", "18"),
        ("18.", "18"),
        ("Answer: 18", "18"),
        ("**Answer:** $18.00", "18"),
        (r"\boxed{18}", "18"),
        (r"The total is \boxed{\$1,080}, from 12 boxes", "1080"),
        ("18 (16 - 3 - 4 = 9 eggs at $2 each)", "18"),  # two numbers: the first is the answer
        ("Answer: 3 + 4 = 7", "7"),  # a bare calculation: its result
        ("$12 \\times 3 = $36\nso she pays 36 - 0 = 36", "36"),
        ("The answer is 25, since 5 * 5 = 25", "25"),
        ("-7 degrees", "-7"),
        ("−3", "-3"),
        ("3/4 of a cup", "0.75"),
        (r"\frac{5}{2}", "2.5"),
        ("1/3", "1/3"),
        ("0.5", "0.5"),
        ("no idea", None),
        ("", None),
    ],
)
def test_extract_number(answer, number):
    assert extract_number(answer) == number


def test_gsm8k_reads_the_first_number_not_the_justifications_last():
    pred = dspy.Prediction(answer="18. Justification: 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars, not 20")
    assert extract_number(answer_text(pred)) == "18"
    completion = "[[ ## answer ## ]]\n18\n\n[[ ## rationale ## ]]\n9 eggs at $2 is 20"
    assert extract_number(answer_text(dspy.Prediction(answer="18", completion=completion))) == "18"


@pytest.mark.parametrize(
    ("answer", "gold", "equal"),
    [
        ("18", "18", True),
        ("18.0", "18", True),
        ("0.3333333", "1/3", True),
        ("2.5", "5/2", True),
        ("17", "18", False),
        ("1800", "18", False),
    ],
)
def test_numbers_equal(answer, gold, equal):
    assert numbers_equal(answer, gold) is equal


def test_gsm8k_gold_is_after_the_marks_with_commas_dropped():
    assert gsm8k_gold("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 1,080") == "1080"
    assert gsm8k_gold("72") == "72"


# ----- competition math: equivalence -----


@pytest.mark.parametrize(
    ("answer", "expression"),
    [
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"The answer is $\frac{\sqrt{3}}{2}$.", r"\frac{\sqrt{3}}{2}"),
        (r"$x = 5$ because the line crosses there", "x = 5"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)} Justification aside", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"Final answer: \(2\sqrt{2}\)", r"2\sqrt{2}"),
        ("[2,5)", "[2,5)"),
        ("204.", "204"),
        (r"\boxed{}", None),
        (None, None),
    ],
)
def test_extract_math(answer, expression):
    assert extract_math(answer) == expression


@pytest.mark.parametrize(
    ("answer", "gold", "equal"),
    [
        ("0.5", r"\frac{1}{2}", True),
        (r"\dfrac12", r"\frac{1}{2}", True),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
        ("(3, \\frac{\\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", True),
        ("x = 5", "5", True),
        ("[2, 5)", "[2,5)", True),
        ("10\\%", "10", True),
        ("0.75", r"\frac{3}{4}", True),
        ("0.7", r"\frac{3}{4}", False),
        ("(2,5]", "[2,5)", False),
        (r"\frac{\pi}{3}", r"\frac{\pi}{2}", False),
        ("9" * 400, "9", False),  # over the length bound: refused without parsing
    ],
)
def test_math_equal(answer, gold, equal):
    assert math_equal(answer, gold) is equal


def test_math_equal_works_in_worker_threads():
    results = []

    def check():
        results.append(math_equal("0.5", r"\frac{1}{2}") and not math_equal("0.6", r"\frac{1}{2}"))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 4


# ----- multiple choice: letters -----

OPTIONS = ["bank", "library", "department store", "mall", "new york"]


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B)", "B"),
        ("B. library", "B"),
        ("B: library, where books are", "B"),
        ("b)", "B"),
        ("**C**", "C"),
        ("C\nBecause stores have revolving doors", "C"),
        ("Answer: D", "D"),
        ("The answer is (E).", "E"),
        ("The correct option is A", "A"),
        ("Option A is tempting, but the answer is C", "C"),
        (r"\boxed{C}", "C"),
        (r"\boxed{\text{(D)}}", "D"),
        ("department store", "C"),  # the option's text itself
        ("Department store, since it has many visitors", "C"),
        ("A bank has them for security", None),  # "A" is an article here; "bank" is not at the start
        ("I would say (D) over (B)", None),  # two letters in parentheses: ambiguous
        ("F", None),  # out of range for five options
        ("", None),
    ],
)
def test_extract_choice(answer, letter):
    assert extract_choice(answer, letters="ABCDE", choices=OPTIONS) == letter


def test_option_text_needs_the_options_and_refuses_duplicated_options():
    assert extract_choice("department store", letters="ABCDE") is None
    assert extract_choice("bent", letters="ABCD", choices=["bent", "bent", "crooked", "curved"]) is None
    assert extract_choice("J", choices=[f"option {n}" for n in range(10)]) == "J"


def test_choice_scorer_limits_letters_to_the_examples_options():
    example = dspy.Example(question="q", choices=["yes", "no", "maybe"], answer="B")
    scorer = ChoiceScorer()
    assert scorer.extract("D", example) is None
    assert scorer.extract("maybe", example) == "C"
    assert scorer.extract("D") == "D"  # without the example any of A-J


# ----- BBH: exact match per task format -----


def test_bbh_has_27_tasks_each_with_a_format():
    assert len(BBH_TASKS) == 27
    assert set(BBH_TASKS.values()) == {
        "multiple_choice",
        "boolean",
        "yes_no",
        "valid_invalid",
        "integer",
        "brackets",
        "word_list",
    }


@pytest.mark.parametrize(
    ("task", "answer", "expected"),
    [
        ("date_understanding", "(C)", "(C)"),
        ("date_understanding", "C. 05/01/2021", "(C)"),
        ("reasoning_about_colored_objects", "(R)", "(R)"),
        ("boolean_expressions", "False.", "False"),
        ("boolean_expressions", "true", "True"),
        ("sports_understanding", "yes", "Yes"),
        ("navigate", "No, you end up two steps left", "No"),
        ("formal_fallacies", "invalid", "invalid"),
        ("formal_fallacies", "The argument is deductively valid.", "valid"),
        ("object_counting", "There are 7 objects", "7"),
        ("multistep_arithmetic_two", "-42", "-42"),
        ("multistep_arithmetic_two", "2.5", None),
        ("dyck_languages", "])}", "] ) }"),
        ("dyck_languages", "] ) }", "] ) }"),
        ("word_sorting", "Apple, banana, cherry.", "apple banana cherry"),
        ("word_sorting", "apple banana cherry", "apple banana cherry"),
        ("web_of_lies", "maybe", None),
    ],
)
def test_extract_bbh(task, answer, expected):
    assert extract_bbh(answer, BBH_TASKS[task]) == expected


def test_bbh_scorer_reads_the_examples_task():
    scorer = BBHScorer()
    example = dspy.Example(question="q", task="sports_understanding", answer="Yes")
    assert scorer.extract("yes, plausible", example) == "Yes"
    assert BBHScorer("hyperbaton").extract("(A) is right") == "(A)"
    assert scorer.extract("Yes.\nmore") == "Yes"  # task unknown: the first line, as written
