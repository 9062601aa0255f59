"""The task programs with the scripted fake LM: every strategy runs, and composition calls its modules in order."""

from __future__ import annotations

import asyncio

import dspy
import pytest

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.programs.composed import GivensThenAnswer
from postreason_dspy.programs.free_form import FreeForm
from postreason_dspy.programs.math_word import MathWord
from postreason_dspy.programs.multiple_choice import MultipleChoice, render_options, shuffle_options
from postreason_dspy.testing import requested_order, scripted_lm

VALUES = {
    "answer": "42",
    "rationale": "Six sevens are forty-two.",
    "reasoning": "7 * 6 = 42",
    "givens": "a = 7\nb = 6",
}
PROGRAMS = [
    pytest.param(MathWord, {"question": "What is 7 * 6?"}, id="math_word"),
    pytest.param(MultipleChoice, {"question": "7 * 6?", "options": "A. 42\nB. 41"}, id="multiple_choice"),
    pytest.param(FreeForm, {"question": "7 * 6?", "answer_format": "an integer"}, id="free_form"),
    pytest.param(GivensThenAnswer, {"question": "What is 7 * 6?"}, id="composed"),
]
ORDERS = {
    "direct": ["answer"],
    "post": ["answer", "rationale"],
    "post_full": ["answer", "rationale"],
    "cot": ["reasoning", "answer"],
}


@pytest.mark.parametrize(("program_class", "inputs"), PROGRAMS)
@pytest.mark.parametrize("strategy", list(ORDERS))
def test_every_program_runs_with_every_strategy(program_class, inputs, strategy):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        pred = program_class(strategy)(**inputs)
    assert pred.answer == ("A" if program_class is MultipleChoice else "42")  # "42" is option A's text
    answering = engine.requests[-1]
    assert requested_order(answering.messages[-1]["content"]) == ORDERS[strategy]
    if strategy == "post":
        assert answering.stop == ("\n[[",)
        assert pred.rationale == ""
    if strategy == "post_full":
        assert pred.rationale == VALUES["rationale"]


def test_composition_restates_the_givens_then_answers_with_them():
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        pred = GivensThenAnswer("post")(question="What is 7 * 6?")
    first, second = (request.messages[-1]["content"] for request in engine.requests)
    assert requested_order(first) == ["givens"]
    assert requested_order(second) == ["answer", "rationale"]
    assert "a = 7\nb = 6" in second  # the second step sees the first step's output
    assert pred.answer == "42"
    program = GivensThenAnswer("cot")
    assert [name for name, _ in program.named_predictors()] == ["restate.predict", "solve.predict"]


def test_composition_answers_even_when_restating_fails_to_parse():
    def script(user_message):
        return "no fields at all" if requested_order(user_message) == ["givens"] else VALUES

    lm, engine = scripted_lm(script)
    with dspy.context(lm=lm):
        pred = GivensThenAnswer("post", on_parse_error="mark")(question="What is 7 * 6?")
    assert pred.answer == "42"
    assert len(engine.requests) == 2
    assert "a = 7" not in engine.requests[1].prompt


def test_programs_run_asynchronously():
    lm, engine = scripted_lm(VALUES)

    async def run():
        with dspy.context(lm=lm):
            return await GivensThenAnswer("post").acall(question="What is 7 * 6?")

    assert asyncio.run(run()).answer == "42"
    assert len(engine.requests) == 2


def test_kwargs_reach_the_strategy():
    lm, engine = scripted_lm(lambda _user: "garbage without field markers")
    with dspy.context(lm=lm):
        pred = MathWord("direct", on_parse_error="mark", max_tokens=50)(question="What is 7 * 6?")
    assert pred.answer is None and pred.completion == "garbage without field markers"
    assert engine.requests[0].max_tokens == 50


def test_options_render_as_lettered_lines():
    assert render_options(["dry  palms", "wet\npalms", "oil"]) == "A. dry palms\nB. wet palms\nC. oil"
    assert render_options([str(n) for n in range(10)]).splitlines()[-1] == "J. 9"
    with pytest.raises(ValueError, match="2 to 10 options"):
        render_options(["only one"])
    with pytest.raises(ValueError, match="2 to 10 options"):
        render_options([str(n) for n in range(11)])


def test_shuffle_is_fixed_per_key_and_tracks_the_gold_option():
    choices = ["right", "wrong 1", "wrong 2", "wrong 3"]
    shuffled, gold = shuffle_options(choices, 0, key="gpqa:rec7")
    assert shuffle_options(choices, 0, key="gpqa:rec7") == (shuffled, gold)
    assert shuffled[gold] == "right" and sorted(shuffled) == sorted(choices)
    positions = {shuffle_options(choices, 0, key=f"gpqa:rec{n}")[1] for n in range(40)}
    assert positions == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("name", "program_class"),
    [("gsm8k", MathWord), ("aime", MathWord), ("gpqa", MultipleChoice), ("mmlu", MultipleChoice), ("bbh", FreeForm)],
)
def test_each_benchmark_builds_its_family_program(name, program_class):
    program = get_benchmark(name).program("cot")
    assert isinstance(program, program_class)
    assert "reasoning" in next(iter(program.predictors())).signature.output_fields
