"""From example records to the study's numbers: per-setting accuracy, paired comparisons, headline figures.

Everything is recomputed from examples.jsonl, so a report of an interrupted or resumed run is as
exact as one of a finished run. Errored examples (the LM call failed for good) are left out of every
accuracy and comparison and counted separately; unparsable answers count as wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from statistics import mean
from typing import Any

from postreason_dspy.evaluation.config import BASELINE
from postreason_dspy.evaluation.records import ExampleRecord, Setting, grid
from postreason_dspy.evaluation.stats import (
    ALPHA,
    accuracy_interval,
    geometric_mean,
    mcnemar_exact,
    paired_bootstrap_interval,
    relative_improvement,
)
from postreason_dspy.scoring import accuracy


@dataclass(frozen=True)
class SettingStats:
    """One (model, benchmark, strategy): accuracy with its interval, and what an answer cost."""

    model: str
    benchmark: str
    strategy: str
    recorded: int
    scored: int
    correct: int
    errors: int
    parse_errors: int
    accuracy: float | None
    ci: tuple[float, float] | None
    ci_method: str | None
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    mean_latency_s: float | None
    output_tokens_per_s: float | None
    finish_reasons: dict[str, int]


@dataclass(frozen=True)
class Paired:
    """`treatment` against `baseline` on the examples both answered (same model and benchmark).

    `treatment_only`/`baseline_only` are McNemar's discordant pairs; ratios are of mean output tokens
    and mean LM latency over the pairs."""

    model: str
    benchmark: str
    treatment: str
    baseline: str
    pairs: int
    treatment_accuracy: float
    baseline_accuracy: float
    difference: float
    difference_ci: tuple[float, float]
    relative_improvement: float | None
    treatment_only: int
    baseline_only: int
    p_value: float
    token_ratio: float | None
    latency_ratio: float | None

    def reversed(self) -> Paired:
        """The same comparison read the other way: `baseline` against `treatment` (McNemar's p is symmetric,
        the difference and its interval change sign, the ratios invert)."""
        low, high = self.difference_ci
        return dataclasses.replace(
            self, treatment=self.baseline, baseline=self.treatment,
            treatment_accuracy=self.baseline_accuracy, baseline_accuracy=self.treatment_accuracy,
            difference=-self.difference, difference_ci=(-high, -low),
            relative_improvement=relative_improvement(self.baseline_accuracy, self.treatment_accuracy),
            treatment_only=self.baseline_only, baseline_only=self.treatment_only,
            token_ratio=_ratio(1.0, self.token_ratio), latency_ratio=_ratio(1.0, self.latency_ratio),
        )


@dataclass(frozen=True)
class Headline:
    """Across (model, benchmark) settings: how often `strategy` beats direct answer, by how much, at what cost.

    `significant_wins`/`significant_losses` count the wins and losses whose exact McNemar p is below
    `ALPHA`: a share of wins alone cannot tell an effect from noise. The mean relative improvement leaves
    out settings where direct answer scored 0; token and latency ratios are geometric means of the
    per-setting ratios."""

    strategy: str
    baseline: str
    settings: int
    wins: int
    ties: int
    losses: int
    win_share: float
    significant_wins: int
    significant_losses: int
    mean_relative_improvement: float | None
    relative_improvement_settings: int
    token_ratio: float | None
    latency_ratio: float | None


@dataclass(frozen=True)
class Summary:
    run_id: str
    complete: bool
    expected: int | None
    recorded: int
    errors: int
    settings: list[SettingStats]
    comparisons: list[Paired]
    headline: list[Headline]
    generated: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def accuracy(self, strategy: str) -> float | None:
        """`strategy`'s accuracy; None when it has no setting here (or no scored answer). A run that holds
        the strategy for several models or benchmarks has no one answer: ValueError."""
        row = _one([row for row in self.settings if row.strategy == strategy], strategy)
        return row.accuracy if row else None

    def comparison(self, treatment: str, baseline: str) -> Paired | None:
        """`treatment` against `baseline`, however the run recorded the pair (either way round); None when
        it did not compare them. Like `accuracy`, for a run of one model and benchmark."""
        rows = [row if row.treatment == treatment else row.reversed() for row in self.comparisons
                if {row.treatment, row.baseline} == {treatment, baseline}]
        return _one(rows, f"{treatment} against {baseline}")


def _one(rows: list[Any], what: str) -> Any:
    """The row of the one (model, benchmark) that `rows` come from, or None; from several, any would be a guess."""
    if len({(row.model, row.benchmark) for row in rows}) > 1:
        raise ValueError(f"{what} was measured for several models or benchmarks: no one figure to give")
    return rows[0] if rows else None


def _mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return mean(present) if present else None


def _groups(records: Sequence[ExampleRecord]) -> list[Any] | None:
    """Macro-averaging groups (BBH tasks) when the records carry them."""
    groups = [record.group for record in records]
    return groups if any(group is not None for group in groups) else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def setting_stats(setting: Setting, records: Sequence[ExampleRecord]) -> SettingStats:
    """Statistics of one setting's records."""
    scored = [record for record in records if not record.failed]
    flags = [bool(record.correct) for record in scored]
    acc = ci = method = None
    if scored:
        groups = _groups(scored)
        acc = accuracy(flags, groups)
        ci, method = accuracy_interval(flags, groups)
    tokens = [record.completion_tokens for record in scored if record.completion_tokens is not None]
    seconds = [record.latency_s or 0.0 for record in scored if record.completion_tokens is not None]
    reasons: dict[str, int] = {}
    for record in scored:
        reason = record.finish_reason or "unknown"
        reasons[reason] = reasons.get(reason, 0) + 1
    return SettingStats(
        model=setting.model,
        benchmark=setting.benchmark,
        strategy=setting.strategy,
        recorded=len(records),
        scored=len(scored),
        correct=sum(flags),
        errors=len(records) - len(scored),
        parse_errors=sum(record.status == "parse_error" for record in scored),
        accuracy=acc,
        ci=ci,
        ci_method=method,
        mean_prompt_tokens=_mean(record.prompt_tokens for record in scored),
        mean_completion_tokens=_mean(tokens),
        mean_latency_s=_mean(record.latency_s for record in scored),
        output_tokens_per_s=_ratio(sum(tokens), sum(seconds)) if tokens else None,
        finish_reasons=reasons,
    )


def paired(
    model: str,
    benchmark: str,
    treatment: tuple[str, Sequence[ExampleRecord]],
    baseline: tuple[str, Sequence[ExampleRecord]],
) -> Paired | None:
    """Compare two sets of records of the same examples, matched by example id; None if no example is shared."""
    base = {record.id: record for record in baseline[1] if not record.failed}
    pairs = [(record, base[record.id]) for record in treatment[1] if not record.failed and record.id in base]
    if not pairs:
        return None
    ours = [bool(record.correct) for record, _ in pairs]
    theirs = [bool(record.correct) for _, record in pairs]
    groups = _groups([record for record, _ in pairs])
    ours_acc, theirs_acc = accuracy(ours, groups), accuracy(theirs, groups)
    test = mcnemar_exact(ours, theirs)

    def cost(name: str, side: int) -> float | None:
        return _mean(getattr(pair[side], name) for pair in pairs)

    return Paired(
        model=model,
        benchmark=benchmark,
        treatment=treatment[0],
        baseline=baseline[0],
        pairs=len(pairs),
        treatment_accuracy=ours_acc,
        baseline_accuracy=theirs_acc,
        difference=ours_acc - theirs_acc,
        difference_ci=paired_bootstrap_interval(ours, theirs, groups),
        relative_improvement=relative_improvement(ours_acc, theirs_acc),
        treatment_only=test.treatment_only,
        baseline_only=test.baseline_only,
        p_value=test.p_value,
        token_ratio=_ratio(cost("completion_tokens", 0), cost("completion_tokens", 1)),
        latency_ratio=_ratio(cost("latency_s", 0), cost("latency_s", 1)),
    )


def headline(comparisons: Sequence[Paired], strategy: str, baseline: str = BASELINE) -> Headline | None:
    """The study's headline figures for `strategy` against `baseline` over every setting that has both."""
    rows = [row for row in comparisons if row.treatment == strategy and row.baseline == baseline]
    if not rows:
        return None
    wins = sum(row.treatment_accuracy > row.baseline_accuracy for row in rows)
    ties = sum(row.treatment_accuracy == row.baseline_accuracy for row in rows)
    improvements = [row.relative_improvement for row in rows if row.relative_improvement is not None]
    token_ratios = [row.token_ratio for row in rows if row.token_ratio is not None]
    latency_ratios = [row.latency_ratio for row in rows if row.latency_ratio is not None]
    return Headline(
        strategy=strategy,
        baseline=baseline,
        settings=len(rows),
        wins=wins,
        ties=ties,
        losses=len(rows) - wins - ties,
        win_share=wins / len(rows),
        significant_wins=sum(row.difference > 0 and row.p_value < ALPHA for row in rows),
        significant_losses=sum(row.difference < 0 and row.p_value < ALPHA for row in rows),
        mean_relative_improvement=mean(improvements) if improvements else None,
        relative_improvement_settings=len(improvements),
        token_ratio=geometric_mean(token_ratios) if len(token_ratios) == len(rows) else None,
        latency_ratio=geometric_mean(latency_ratios) if len(latency_ratios) == len(rows) else None,
    )


def by_setting(records: Iterable[ExampleRecord]) -> dict[Setting, list[ExampleRecord]]:
    """Records grouped by setting, in the order the settings first appear."""
    grouped: dict[Setting, list[ExampleRecord]] = {}
    for record in records:
        grouped.setdefault(record.setting, []).append(record)
    return grouped


def planned_settings(config: dict[str, Any] | None) -> list[Setting]:
    """The settings a run's config.json plans, in run order (none without a config)."""
    if config is None:
        return []
    run = config["config"]
    return grid(run["models"], run["benchmarks"], run["strategies"])


def _expected(config: dict[str, Any] | None) -> int | None:
    if config is None:
        return None
    per_benchmark = {name: len(info["example_ids"]) for name, info in config["benchmarks"].items()}
    return sum(per_benchmark.get(setting.benchmark, 0) for setting in planned_settings(config))


def comparison_pairs(strategies: Sequence[str], extra: Sequence[Sequence[str]] = ()) -> list[tuple[str, str]]:
    """(treatment, baseline) pairs to compare: every strategy against direct answer when it ran, then `extra`."""
    pairs = [(name, BASELINE) for name in strategies if name != BASELINE] if BASELINE in strategies else []
    return list(dict.fromkeys([*pairs, *((str(a), str(b)) for a, b in extra)]))


def summarize(records: Sequence[ExampleRecord], run_id: str, config: dict[str, Any] | None = None) -> Summary:
    """The run's summary. `config` (the run's config.json) gives the settings' order, the expected count
    and any extra pairs to compare."""
    grouped = by_setting(records)
    order = [key for key in dict.fromkeys([*planned_settings(config), *grouped]) if key in grouped]
    settings = [setting_stats(key, grouped[key]) for key in order]
    strategies = list(dict.fromkeys(key.strategy for key in order))
    extra = config["config"].get("pairs", []) if config is not None else []
    pairs = comparison_pairs(strategies, extra)
    comparisons = []
    for key in order:  # in the settings' order, each treatment's pairs where it stands
        for treatment, baseline in pairs:
            theirs = grouped.get(Setting(key.model, key.benchmark, baseline))
            if treatment != key.strategy or theirs is None:
                continue
            row = paired(key.model, key.benchmark, (treatment, grouped[key]), (baseline, theirs))
            if row is not None:
                comparisons.append(row)
    lines = (headline(comparisons, *pair) for pair in dict.fromkeys((r.treatment, r.baseline) for r in comparisons))
    expected = _expected(config)
    return Summary(
        run_id=run_id,
        complete=expected is not None and len(records) == expected,
        expected=expected,
        recorded=len(records),
        errors=sum(record.failed for record in records),
        settings=settings,
        comparisons=comparisons,
        headline=[line for line in lines if line is not None],
    )


@dataclass(frozen=True)
class RunComparison:
    """The same settings in two runs (e.g. before and after a prompt change), paired by example id;
    in each row `treatment` and `baseline` name the strategy, taken from `run_b` and `run_a`."""

    run_a: str
    run_b: str
    rows: list[Paired]
    only_a: list[Setting]
    only_b: list[Setting]


def compare_runs(
    run_a: str, records_a: Sequence[ExampleRecord], run_b: str, records_b: Sequence[ExampleRecord]
) -> RunComparison:
    """Run B against run A, setting by setting, on the examples both runs answered."""
    a, b = by_setting(records_a), by_setting(records_b)
    rows = []
    for key in a:
        if key in b:
            row = paired(key.model, key.benchmark, (key.strategy, b[key]), (key.strategy, a[key]))
            if row is not None:
                rows.append(row)
    return RunComparison(run_a, run_b, rows, [key for key in a if key not in b], [key for key in b if key not in a])
