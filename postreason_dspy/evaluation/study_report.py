"""The merged study as people read it: a terminal table, report.md, study.json and the forest plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from postreason_dspy.evaluation.records import RunStore
from postreason_dspy.evaluation.report import markdown_table, output_directory, rich_table, significance
from postreason_dspy.evaluation.study import PooledTest, Study, StudyHeadline, StudyRow, build_study
from postreason_dspy.formatting import interval, p_value, pct, points, ratio
from postreason_dspy.io import atomic_write_text

# The study this project implements (arXiv 2605.06165): post-reasoning against a direct answer.
PAPER_WIN_SHARE = 0.8819
PAPER_MEAN_GAIN = 0.1737

COLUMNS = ("model", "benchmark", "n", "majority", "direct", "post", "diff", "95% CI", "W/L", "McNemar p", "tokens",
           "run")


def _study_row(row: StudyRow) -> list[str]:
    c = row.comparison
    mark = " *" if row.significant else ""
    majority = pct(row.majority) if row.majority is not None else "–"
    return [c.model, c.benchmark, str(c.pairs), majority, pct(c.baseline_accuracy), pct(c.treatment_accuracy),
            points(c.difference) + mark, interval(c.difference_ci, signed=True),
            f"{c.treatment_only}/{c.baseline_only}", p_value(c.p_value), ratio(c.token_ratio), row.run]


def _test_text(test: PooledTest) -> str:
    return f"{test.name}: {test.counts}, p {p_value(test.p_value)}"


def headline_lines(line: StudyHeadline) -> list[str]:
    """The headline as sentences; the study's own figures beside ours where the scope is every model."""
    f = line.figures
    scope = f"on {line.model}" if line.model else "over every setting"
    paper = line.model is None
    gain = (f"mean relative improvement {pct(f.mean_relative_improvement, signed=True)}"
            if f.mean_relative_improvement is not None else "mean relative improvement undefined")
    return [
        f"{f.strategy} beats {f.baseline} in {f.wins} of {f.settings} settings ({pct(f.win_share)}"
        + (f"; the study: {PAPER_WIN_SHARE:.2%}" if paper else "")
        + f"; {f.ties} tied, {f.losses} lost), "
        f"{significance(f.significant_wins, f.significant_losses)} ({scope})",
        gain + (f" (the study: {PAPER_MEAN_GAIN:+.2%})" if paper else "")
        + f" over {f.relative_improvement_settings} settings"
        + (f"; left out: {'; '.join(line.left_out)}" if line.left_out else ""),
        f"output tokens {ratio(f.token_ratio)} of {f.baseline}'s (geometric mean of the per-setting ratios)",
        "pooled: " + _test_text(line.pooled),
        "pooled: " + _test_text(line.sign_test),
    ]


HOW_TO_READ = """\
## How to read this

- One row per (model, benchmark): both strategies answered the same `n` questions. *diff* is
  post - direct in percentage points, `*` where the exact McNemar p is below 0.05; *95% CI* is a paired
  percentile bootstrap; *W/L* are the discordant pairs (post right and direct wrong / the reverse);
  *tokens* is post's mean output tokens over direct's. *majority* is the share of the most common right
  answer among these questions, what always giving that one answer scores: near it, a difference can
  come from a change of answer bias alone (e.g. answering "yes" more often), not from better answers.
- **Wins** count settings where post's accuracy is higher; **significantly** better or worse means
  McNemar p < 0.05 in that setting. The mean relative improvement is the mean of (post - direct) / direct
  over the settings where direct scored above 0 (the study's measure).
- **Pooled tests.** Cochran-Mantel-Haenszel on the paired outcomes, stratified by question: with matched
  pairs as strata it is McNemar's test on the discordant pairs summed over all settings, computed exactly.
  It uses every question and tests for a common direction (larger settings weigh more). The exact sign
  test over settings asks the study's own question (in how many settings does post win?), one vote per
  setting, ties left out.
- The study: arXiv 2605.06165 (post-reasoning beats a direct answer in 88.19% of 117 settings,
  mean relative gain +17.37%).
"""


def markdown(study: Study, commands: Sequence[str], plot: Path | None) -> str:
    lines = [f"# The study's table: {study.treatment} against {study.baseline}", ""]
    lines += [f"- runs: {', '.join(study.runs)}"]
    lines += [f"- command of run: `{command}`" for command in commands]
    lines.append("")
    lines += ["## Headline", ""] + [f"- {text}." for text in headline_lines(study.headline)]
    lines.append("")
    if len(study.by_model) > 1:
        for line in study.by_model:
            lines += [f"### {line.model}", ""]
            lines += [f"- {text}." for text in headline_lines(line)]
            lines.append("")
    lines += ["## Settings", "", *markdown_table(COLUMNS, [_study_row(row) for row in study.rows])]
    benchmarks = {row.comparison.benchmark: set() for row in study.rows}
    for row in study.rows:
        benchmarks[row.comparison.benchmark].add(row.comparison.model)
    partial = [f"{bench} (only {', '.join(sorted(models))})" for bench, models in benchmarks.items()
               if len(models) < len(study.models)]
    if partial:
        lines += [f"Measured on only some models: {'; '.join(partial)}.", ""]
    if study.missing:
        lines += ["Not in the table: " + "; ".join(study.missing) + ".", ""]
    if plot is not None:
        lines += [f"![forest plot]({plot.name})", ""]
    lines.append(HOW_TO_READ)
    return "\n".join(lines)


def render_study(study: Study, console: Console) -> None:
    console.print(rich_table(f"The study's table: {study.treatment} against {study.baseline}", COLUMNS,
                         [_study_row(row) for row in study.rows]))
    for text in headline_lines(study.headline):
        console.print(text, highlight=False)
    if len(study.by_model) > 1:
        for line in study.by_model:
            console.print(headline_lines(line)[0], highlight=False)


def write_study(
    stores: Sequence[RunStore], out: Path, treatment: str = "post", with_plots: bool = True
) -> tuple[Study, list[Path]]:
    """Merge the runs and write report.md, study.json and forest.png into `out`; returns the files."""
    study = build_study(stores, treatment)
    out = output_directory(out)
    plot = None
    if with_plots:
        from postreason_dspy.evaluation.plots import forest  # matplotlib: only when plotting

        plot = forest([row.comparison for row in study.rows],
                      f"{study.treatment} - {study.baseline} by setting", out / "forest.png")
    commands = [str(store.read_config().get("command")) for store in stores]
    report, data = out / "report.md", out / "study.json"
    scrub = stores[0].scrub
    atomic_write_text(report, scrub(markdown(study, commands, plot)))
    atomic_write_text(data, scrub(json.dumps({**study.to_dict(), "commands": commands}, indent=1)) + "\n")
    return study, [report, data, *([plot] if plot else [])]
