"""Statistics against known values, and the summary's figures on constructed records."""

from __future__ import annotations

import math

import pytest

from postreason_dspy.evaluation.records import ExampleRecord
from postreason_dspy.evaluation.stats import (
    accuracy_interval,
    bootstrap_accuracy_interval,
    geometric_mean,
    mcnemar_exact,
    paired_bootstrap_interval,
    relative_improvement,
    wilson_interval,
)
from postreason_dspy.evaluation.summary import compare_runs, summarize
from postreason_dspy.scoring import accuracy


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (8, 10, (0.4902, 0.9433)),
        (0, 10, (0.0, 0.2775)),  # upper bound z^2 / (n + z^2)
        (10, 10, (0.7225, 1.0)),
        (50, 100, (0.4038, 0.5962)),
    ],
)
def test_wilson_interval_known_values(successes, n, expected):
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize(
    ("treatment_only", "baseline_only", "p_value"),
    [
        (1, 6, 0.125),  # 2 * (C(7,0) + C(7,1)) / 2^7
        (0, 5, 0.0625),  # 2 / 2^5
        (2, 10, 0.0385742),  # R: binom.test(2, 12)$p.value
        (3, 3, 1.0),
        (0, 0, 1.0),
    ],
)
def test_exact_mcnemar_known_values(treatment_only, baseline_only, p_value):
    concordant = [(True, True)] * 4 + [(False, False)] * 3  # concordant pairs carry no information
    pairs = concordant + [(True, False)] * treatment_only + [(False, True)] * baseline_only
    result = mcnemar_exact([t for t, _ in pairs], [b for _, b in pairs])
    assert (result.treatment_only, result.baseline_only) == (treatment_only, baseline_only)
    assert result.p_value == pytest.approx(p_value, abs=1e-6)


def test_mcnemar_is_symmetric():
    a = [True, True, False, True, False, True, True, False]
    b = [False, True, False, False, False, True, False, True]
    assert mcnemar_exact(a, b).p_value == mcnemar_exact(b, a).p_value


def test_accuracy_plain_and_macro():
    flags = [True, False, True, True, True, True]
    groups = ["a", "a", "b", "b", "b", "b"]
    assert accuracy(flags) == pytest.approx(5 / 6)
    assert accuracy(flags, groups) == pytest.approx((0.5 + 1.0) / 2)


def test_accuracy_interval_picks_its_method():
    flags = [True] * 8 + [False] * 2
    (low, high), method = accuracy_interval(flags)
    assert method == "wilson" and (low, high) == wilson_interval(8, 10)
    _, method = accuracy_interval(flags, ["a"] * 5 + ["b"] * 5)
    assert method == "bootstrap"


def test_bootstrap_intervals_degenerate_cases_are_exact():
    same = [True, False, True, False]
    assert paired_bootstrap_interval(same, same) == (0.0, 0.0)
    assert paired_bootstrap_interval([True] * 5, [False] * 5) == (1.0, 1.0)
    assert bootstrap_accuracy_interval([True] * 7) == (1.0, 1.0)


def test_paired_bootstrap_brackets_the_difference_and_is_reproducible():
    treatment = [True] * 30 + [False] * 10  # 75%
    baseline = [True] * 20 + [False] * 20  # 50%
    low, high = paired_bootstrap_interval(treatment, baseline)
    assert low < 0.25 < high
    assert low > 0.05 and high < 0.45
    assert paired_bootstrap_interval(treatment, baseline) == (low, high)


def test_stratified_bootstrap_keeps_every_group():
    # Group "a" is always right, group "b" always wrong: every resample's macro accuracy is exactly 0.5,
    # which plain resampling (that can drop a group's examples) would not give.
    flags = [True] * 9 + [False]
    groups = ["a"] * 9 + ["b"]
    assert bootstrap_accuracy_interval(flags, groups) == (0.5, 0.5)


def test_relative_improvement_and_ratios():
    assert relative_improvement(0.6, 0.5) == pytest.approx(0.2)
    assert relative_improvement(0.4, 0.5) == pytest.approx(-0.2)
    assert relative_improvement(0.3, 0.0) is None
    assert geometric_mean([2.0, 0.5]) == pytest.approx(1.0)
    assert geometric_mean([4.0, 1.0]) == pytest.approx(2.0)
    assert geometric_mean([]) is None


def record(benchmark, strategy, index, correct, tokens=10, latency=1.0, status=None, group=None):
    return ExampleRecord(
        model="m", benchmark=benchmark, strategy=strategy, id=f"q{index}",
        status=status or "ok", correct=None if status == "error" else correct, group=group,
        prompt_tokens=100, completion_tokens=tokens, latency_s=latency, finish_reason="stop",
    )


def constructed_records():
    """Two settings. b1: direct 5/10, post 7/10 (post right on 3 direct missed, wrong on 1 direct got).
    b2: direct 4/8, post 4/8 (one swap each way). Post costs 12 vs 10 tokens on b1, 10 vs 10 on b2."""
    records = []
    direct_b1 = [True] * 5 + [False] * 5
    post_b1 = [True] * 4 + [False] + [True] * 3 + [False] * 2
    for i, (d, p) in enumerate(zip(direct_b1, post_b1, strict=True)):
        records.append(record("b1", "direct", i, d, tokens=10, latency=2.0))
        records.append(record("b1", "post", i, p, tokens=12, latency=2.2))
    direct_b2 = [True] * 4 + [False] * 4
    post_b2 = [True] * 3 + [False, True] + [False] * 3
    for i, (d, p) in enumerate(zip(direct_b2, post_b2, strict=True)):
        records.append(record("b2", "direct", i, d))
        records.append(record("b2", "post", i, p))
    records.append(record("b2", "direct", 8, None, status="error"))
    records.append(record("b2", "post", 8, True))
    return records


def test_summary_figures_on_constructed_records():
    summary = summarize(constructed_records(), "run")
    stats = {(row.benchmark, row.strategy): row for row in summary.settings}
    assert stats["b1", "post"].accuracy == pytest.approx(0.7)
    assert stats["b1", "post"].ci == pytest.approx(wilson_interval(7, 10))
    assert stats["b2", "direct"].errors == 1 and stats["b2", "direct"].scored == 8
    assert stats["b2", "post"].accuracy == pytest.approx(5 / 9)  # its own 9 scored examples
    assert stats["b1", "direct"].output_tokens_per_s == pytest.approx(5.0)

    rows = {row.benchmark: row for row in summary.comparisons}
    b1, b2 = rows["b1"], rows["b2"]
    assert (b1.pairs, b1.treatment_only, b1.baseline_only) == (10, 3, 1)
    assert b1.p_value == pytest.approx(0.625)  # 2 * (1 + 4) / 16
    assert b1.difference == pytest.approx(0.2)
    assert b1.relative_improvement == pytest.approx(0.4)
    assert b1.token_ratio == pytest.approx(1.2) and b1.latency_ratio == pytest.approx(1.1)
    assert b2.pairs == 8  # the example direct failed on is not paired
    assert (b2.treatment_accuracy, b2.baseline_accuracy, b2.p_value) == (0.5, 0.5, 1.0)

    (line,) = summary.headline
    assert (line.strategy, line.settings, line.wins, line.ties, line.losses) == ("post", 2, 1, 1, 0)
    assert line.win_share == 0.5
    assert (line.significant_wins, line.significant_losses) == (0, 0)  # b1's win has p 0.625
    assert line.mean_relative_improvement == pytest.approx((0.4 + 0.0) / 2)
    assert line.token_ratio == pytest.approx(math.sqrt(1.2 * 1.0))
    assert summary.errors == 1 and summary.expected is None and not summary.complete


def test_relative_improvement_skips_settings_where_direct_scored_zero():
    records = [record("b", "direct", i, False) for i in range(4)]
    records += [record("b", "post", i, i == 0) for i in range(4)]
    (line,) = summarize(records, "run").headline
    assert line.wins == 1 and line.mean_relative_improvement is None and line.relative_improvement_settings == 0


def test_headline_counts_only_wins_and_losses_below_alpha_as_significant():
    records = []
    for bench, direct_right, post_right in (("win", 0, 9), ("loss", 9, 0), ("noise", 1, 3)):
        records += [record(bench, "direct", i, i < direct_right) for i in range(10)]
        records += [record(bench, "post", i, i < post_right) for i in range(10)]
    (line,) = summarize(records, "run").headline
    assert (line.wins, line.losses) == (2, 1)
    assert (line.significant_wins, line.significant_losses) == (1, 1)  # 9/0 discordant: p 0.0039; 2/0: p 0.5


def test_macro_averaged_setting_uses_groups():
    records = [record("bbh", "direct", i, ok, group=g)
               for i, (ok, g) in enumerate([(True, "t1"), (False, "t1"), (True, "t2"), (True, "t2"), (True, "t2")])]
    (row,) = summarize(records, "run").settings
    assert row.accuracy == pytest.approx(0.75) and row.ci_method == "bootstrap"


def test_compare_runs_pairs_by_example_id():
    before = [record("b", "post", i, i < 2) for i in range(5)]
    after = [record("b", "post", i, i < 4) for i in range(1, 6)]  # q0 missing, q5 new
    comparison = compare_runs("A", before, "B", after)
    (row,) = comparison.rows
    assert row.pairs == 4  # q1..q4
    assert (row.baseline_accuracy, row.treatment_accuracy) == (0.25, 0.75)
    assert (row.treatment_only, row.baseline_only) == (2, 0)
    assert comparison.only_a == comparison.only_b == []


def config_of(strategies, pairs=()):
    return {"config": {"models": ["m"], "benchmarks": ["b1", "b2"], "strategies": list(strategies),
                       "pairs": [list(pair) for pair in pairs]},
            "benchmarks": {"b1": {"example_ids": [f"q{i}" for i in range(10)]},
                           "b2": {"example_ids": [f"q{i}" for i in range(9)]}}}


def test_every_strategy_is_compared_with_direct_and_named_pairs_too():
    records = constructed_records()
    records += [record(r.benchmark, "tuned", int(r.id[1:]), True) for r in records if r.strategy == "post"]
    summary = summarize(records, "run", config_of(("direct", "post", "tuned"), pairs=[("tuned", "post")]))
    pairs = [(row.benchmark, row.treatment, row.baseline) for row in summary.comparisons]
    assert pairs == [("b1", "post", "direct"), ("b1", "tuned", "direct"), ("b1", "tuned", "post"),
                     ("b2", "post", "direct"), ("b2", "tuned", "direct"), ("b2", "tuned", "post")]
    tuned_vs_post = next(row for row in summary.comparisons if row.treatment == "tuned" and row.baseline == "post")
    assert (tuned_vs_post.pairs, tuned_vs_post.treatment_only, tuned_vs_post.baseline_only) == (10, 3, 0)
    assert [(line.strategy, line.baseline) for line in summary.headline] == [
        ("post", "direct"), ("tuned", "direct"), ("tuned", "post")]
    assert summary.expected == 3 * (10 + 9)


def test_without_direct_only_named_pairs_are_compared():
    records = [r for r in constructed_records() if r.strategy == "post"]
    records += [record(r.benchmark, "tuned", int(r.id[1:]), True) for r in records]
    assert summarize(records, "run", config_of(("post", "tuned"))).comparisons == []
    summary = summarize(records, "run", config_of(("post", "tuned"), pairs=[("tuned", "post")]))
    assert {(row.treatment, row.baseline) for row in summary.comparisons} == {("tuned", "post")}
