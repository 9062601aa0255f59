"""Against the real local model (temperature 0): answer-only decoding gives the full mode's answer
at the cost of a direct answer.

Greedy answers depend on the server's prompt-cache state (notes/local-model.md), so each mode runs
over all questions in turn, after the same warm-up request: every call then meets the same cache.
"""

from __future__ import annotations

from statistics import mean

import dspy
import pytest

from postreason_dspy import make_strategy
from postreason_dspy.benchmarks import get_benchmark

pytestmark = pytest.mark.integration

N_QUESTIONS = 20
N_XML_QUESTIONS = 10
N_WINOGRANDE = 10  # 7 of these ran on into the rationale on the 0.5B with the old stop
MARKER_ALLOWANCE = 2  # answer-only pays for the stop's own tokens (a line break and `[[`): at most 2 more than direct


def run_mode(
    lm: dspy.LM, strategy: str, examples: list[dspy.Example], adapter: dspy.Adapter | None = None
) -> list[tuple[dspy.Prediction, int]]:
    program = make_strategy(strategy, "question -> answer", on_parse_error="mark")
    with dspy.context(lm=lm, adapter=adapter, track_usage=True):
        lm("Say OK.", max_tokens=2)  # same cache state for every mode
        results = []
        for example in examples:
            pred = program(question=example.question)
            (usage,) = pred.get_lm_usage().values()
            results.append((pred, usage["completion_tokens"]))
    return results


@pytest.fixture(scope="module")
def gsm8k():
    return get_benchmark("gsm8k").load(split="test", limit=N_QUESTIONS)


@pytest.fixture(scope="module")
def runs(real_lm, gsm8k):
    return {strategy: run_mode(real_lm, strategy, gsm8k) for strategy in ("post_full", "post", "direct", "cot")}


def test_answer_only_returns_the_full_modes_answer(runs, gsm8k):
    bench = get_benchmark("gsm8k")
    full = [(pred.answer or "").strip() for pred, _ in runs["post_full"]]
    short = [(pred.answer or "").strip() for pred, _ in runs["post"]]
    assert sum(bool(answer) for answer in full) >= N_QUESTIONS - 2
    assert len(gsm8k) == N_QUESTIONS
    assert short == full
    assert [bench.extract(p) for p, _ in runs["post"]] == [bench.extract(p) for p, _ in runs["post_full"]]


def test_full_mode_writes_a_justification_after_the_answer(runs):
    rationales = [pred.rationale for pred, _ in runs["post_full"] if pred.answer]
    assert rationales and all(r.strip() for r in rationales)
    assert all(pred.rationale == "" for pred, _ in runs["post"])


def test_answer_only_costs_what_a_direct_answer_costs(runs):
    tokens = {strategy: mean(t for _, t in results) for strategy, results in runs.items()}
    assert tokens["post"] <= tokens["direct"] + MARKER_ALLOWANCE, tokens
    assert tokens["post"] * 3 < tokens["post_full"], tokens
    assert tokens["post"] * 3 < tokens["cot"], tokens


def test_answer_only_returns_the_full_modes_answer_with_the_xml_adapter(real_lm, gsm8k):
    """The model often writes `<Rationale>` for `<rationale>`: both stop answer-only, and full mode
    keeps its answer when the justification's tags do not match."""
    examples = gsm8k[:N_XML_QUESTIONS]
    full, short = (run_mode(real_lm, strategy, examples, dspy.XMLAdapter()) for strategy in ("post_full", "post"))
    full_answers = [pred.answer for pred, _ in full]
    assert sum(answer is not None for answer in full_answers) >= N_XML_QUESTIONS - 2
    assert [pred.answer for pred, _ in short] == full_answers
    assert mean(t for _, t in short) * 3 < mean(t for _, t in full)


def test_answer_only_stops_on_winogrande_where_the_rationale_follows_one_line_break(real_lm):
    """Under the post clause the 0.5B model opened the rationale after a single line break in 115 of the
    study's 200 WinoGrande answers (`B\\n[[ ## rationale ## ]]`); the stop must catch that too."""
    bench = get_benchmark("winogrande")
    examples = bench.load(split="test", limit=N_WINOGRANDE, seed=0)
    cost = {}
    for strategy in ("direct", "post"):
        program = bench.program(strategy, on_parse_error="mark")
        with dspy.context(lm=real_lm, track_usage=True):
            real_lm("Say OK.", max_tokens=2)
            preds = [program(**example.inputs()) for example in examples]
        cost[strategy] = mean(next(iter(p.get_lm_usage().values()))["completion_tokens"] for p in preds)
        if strategy == "post":
            assert [p.rationale for p in preds] == [""] * len(preds)
    assert cost["post"] <= cost["direct"] + MARKER_ALLOWANCE, cost
