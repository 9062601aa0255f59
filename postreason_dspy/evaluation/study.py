"""The study's table across runs and models: post-reasoning against direct answer, setting by setting.

`postreason report RUN [RUN ...] --study` merges evaluation runs (of one model each, or several) into
the form the study reports: one row per (model, benchmark) with both accuracies, the paired difference
and its interval, the discordant pairs, McNemar's p and the output-token ratio; then the headline over
all settings, with how many wins and losses are significant, and two pooled tests:

- Cochran-Mantel-Haenszel on the paired outcomes, stratified by question. With matched pairs as strata
  it reduces to McNemar's test on the discordant pairs summed over all settings (Σ post-only against
  Σ direct-only), computed here exactly (binomial). It uses every question and asks whether post and
  direct differ in a common direction; larger settings weigh more.
- An exact sign test over settings (wins against losses, ties left out). It asks the study's own
  question, in how many settings post wins, with each setting one vote whatever its size.

Each row also carries the *majority* share: how often the most common right answer is the right one
among the paired questions, i.e. what always giving that one answer scores. A model near chance can move
its accuracy toward that floor by changing its letter bias alone, which a reader should see beside the
difference.

Models are named by the weights a local server served (`local_model` in the run's config), so two runs
of `--model local` against the 0.5B and the 1.5B model stay two models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.config import BASELINE
from postreason_dspy.evaluation.records import ExampleRecord, RunStore, Setting
from postreason_dspy.evaluation.stats import ALPHA, binomial_two_sided
from postreason_dspy.evaluation.summary import Headline, Paired, by_setting, headline, summarize


@dataclass(frozen=True)
class StudyRow:
    """One (model, benchmark) setting: `comparison` is treatment against baseline, from run `run`;
    `majority` is the share of its most common right answer (None where no answer key was recorded)."""

    run: str
    comparison: Paired
    majority: float | None = None

    @property
    def significant(self) -> bool:
        return self.comparison.p_value < ALPHA


@dataclass(frozen=True)
class PooledTest:
    """A test over all settings at once: which one, what it counted, its two-sided p."""

    name: str
    favourable: int
    unfavourable: int
    p_value: float
    counts: str


@dataclass(frozen=True)
class StudyHeadline:
    """The study's figures over some settings (all models, or one `model`): `figures` are the run
    headline's (wins, their significance, mean relative gain, token ratio), plus the pooled tests.

    `left_out` names the settings the mean relative improvement cannot use (direct scored 0), with why."""

    model: str | None
    figures: Headline
    left_out: list[str]
    pooled: PooledTest
    sign_test: PooledTest

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON: the figures beside the scope, what was left out and the tests."""
        return {"model": self.model, **asdict(self.figures), "left_out": self.left_out,
                "pooled": asdict(self.pooled), "sign_test": asdict(self.sign_test)}


@dataclass(frozen=True)
class Study:
    """Merged settings in model order, the headline over all of them, and one per model."""

    runs: list[str]
    treatment: str
    baseline: str
    rows: list[StudyRow]
    headline: StudyHeadline
    by_model: list[StudyHeadline]
    missing: list[str]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(row.comparison.model for row in self.rows))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: rows flattened with their run, so a script can read the table without this package."""
        data = asdict(self)
        data["headline"] = self.headline.to_dict()
        data["by_model"] = [line.to_dict() for line in self.by_model]
        data["rows"] = [{"run": row.run, **asdict(row.comparison), "majority": row.majority,
                         "significant": row.significant}
                        for row in self.rows]
        data["models"] = self.models
        return data


def model_names(config: dict[str, Any]) -> dict[str, str]:
    """Each model label of a run's config, mapped to the weights its local server served where known."""
    described = config.get("models", {})
    return {name: str(info.get("local_model") or name) for name, info in described.items()}


def majority_share(treatment: Sequence[ExampleRecord], baseline: Sequence[ExampleRecord]) -> float | None:
    """The share of the most common gold answer among the questions both answered (paired as `paired` pairs)."""
    base = {record.id for record in baseline if not record.failed}
    golds = [record.gold for record in treatment if not record.failed and record.id in base]
    if not golds or any(gold is None for gold in golds):
        return None
    return Counter(golds).most_common(1)[0][1] / len(golds)


def study_rows(
    store: RunStore, treatment: str = "post", baseline: str = BASELINE
) -> tuple[list[StudyRow], list[str]]:
    """One run's settings that have both strategies, and labels of those that lack one."""
    config = store.read_config()
    records = store.records()
    summary = summarize(records, store.run_id, config)
    grouped = by_setting(records)
    names = model_names(config)
    rows = [
        StudyRow(store.run_id, replace(row, model=names.get(row.model, row.model)),
                 majority_share(grouped.get(Setting(row.model, row.benchmark, treatment), []),
                                grouped.get(Setting(row.model, row.benchmark, baseline), [])))
        for row in summary.comparisons
        if row.treatment == treatment and row.baseline == baseline
    ]
    paired = {(row.comparison.model, row.comparison.benchmark) for row in rows}
    present = {(names.get(s.model, s.model), s.benchmark) for s in summary.settings}
    missing = [f"{model} / {bench} in {store.run_id}: no {treatment} and {baseline} answers to the same questions"
               for model, bench in sorted(present - paired)]
    return rows, missing


def _pooled(rows: Sequence[StudyRow]) -> PooledTest:
    ours = sum(row.comparison.treatment_only for row in rows)
    theirs = sum(row.comparison.baseline_only for row in rows)
    return PooledTest("Cochran-Mantel-Haenszel (paired, stratified by question: exact McNemar on the pooled "
                      "discordant pairs)", ours, theirs, binomial_two_sided(ours, theirs),
                      f"{ours} questions only the treatment answered right, {theirs} only the baseline")


def _sign_test(wins: int, losses: int) -> PooledTest:
    return PooledTest("exact sign test over settings (ties left out)", wins, losses,
                      binomial_two_sided(wins, losses), f"{wins} settings won, {losses} lost")


def headline_of(rows: Sequence[StudyRow], treatment: str, baseline: str, model: str | None = None) -> StudyHeadline:
    """The headline over `rows` (at least one setting of `treatment` against `baseline`)."""
    comparisons = [row.comparison for row in rows]
    figures = headline(comparisons, treatment, baseline)
    if figures is None:
        raise ValueError("a headline needs at least one setting")
    left_out = [f"{c.model} / {c.benchmark}: direct answer scored 0, so a relative gain is undefined"
                for c in comparisons if c.relative_improvement is None]
    return StudyHeadline(model, figures, left_out, _pooled(rows), _sign_test(figures.wins, figures.losses))


def build_study(stores: Sequence[RunStore], treatment: str = "post", baseline: str = BASELINE) -> Study:
    """Merge the runs' settings; a (model, benchmark) measured in two runs is refused rather than guessed."""
    if not stores:
        raise ConfigurationError("--study needs at least one run")
    rows: list[StudyRow] = []
    missing: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for store in stores:
        found, lacking = study_rows(store, treatment, baseline)
        missing += lacking
        for row in found:
            key = (row.comparison.model, row.comparison.benchmark)
            if key in seen:
                raise ConfigurationError(
                    f"{key[0]} / {key[1]} is in both run {seen[key]} and run {row.run}: give the study one of them"
                )
            seen[key] = row.run
            rows.append(row)
    if not rows:
        raise ConfigurationError(
            f"no setting in {', '.join(store.run_id for store in stores)} has both {treatment} and {baseline} "
            f"answers: run them with `postreason eval --strategy {baseline},{treatment}`"
        )
    models = list(dict.fromkeys(row.comparison.model for row in rows))
    rows.sort(key=lambda row: models.index(row.comparison.model))  # grouped by model, run order within
    return Study(
        runs=[store.run_id for store in stores],
        treatment=treatment,
        baseline=baseline,
        rows=rows,
        headline=headline_of(rows, treatment, baseline),
        by_model=[headline_of([r for r in rows if r.comparison.model == m], treatment, baseline, m) for m in models],
        missing=missing,
    )
