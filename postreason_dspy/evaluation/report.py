"""The study's comparison as people read it: rich tables in the terminal, a markdown report with plots.

Tables: accuracy per setting with its 95% interval and cost; each strategy against direct answer on
the same examples (difference with its paired-bootstrap interval, relative improvement, exact McNemar
p-value, token and latency ratios); the headline figures across settings; optionally two runs side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.config import BASELINE
from postreason_dspy.evaluation.records import RunStore
from postreason_dspy.evaluation.stats import ALPHA
from postreason_dspy.evaluation.summary import (
    Headline,
    Paired,
    RunComparison,
    SettingStats,
    Summary,
    compare_runs,
    summarize,
)
from postreason_dspy.formatting import interval, number, p_value, pct, plural, points, ratio
from postreason_dspy.io import atomic_write_text

SETTING_COLUMNS = ("model", "benchmark", "strategy", "n", "accuracy", "95% CI", "unparsed", "failed",
                   "out tokens", "latency s")
PAIRED_COLUMNS = ("model", "benchmark", "strategy", "pairs", "acc", "direct", "diff", "95% CI",
                  "relative", "W/L", "McNemar p", "tokens", "latency")
PAIR_COLUMNS = ("model", "benchmark", "treatment", "baseline", "pairs", "treatment acc", "baseline acc", "diff",
                "95% CI", "relative", "W/L", "McNemar p", "tokens", "latency")
COMPARE_COLUMNS = ("model", "benchmark", "strategy", "pairs", "run A", "run B", "B - A", "95% CI",
                   "B only/A only", "McNemar p")


def _setting_row(row: SettingStats) -> list[str]:
    return [row.model, row.benchmark, row.strategy, f"{row.scored}", pct(row.accuracy), interval(row.ci),
            str(row.parse_errors), str(row.errors), number(row.mean_completion_tokens), number(row.mean_latency_s, 2)]


def _paired_row(row: Paired) -> list[str]:
    return [row.model, row.benchmark, row.treatment, str(row.pairs), pct(row.treatment_accuracy),
            pct(row.baseline_accuracy), points(row.difference), interval(row.difference_ci, signed=True),
            pct(row.relative_improvement, signed=True), f"{row.treatment_only}/{row.baseline_only}",
            p_value(row.p_value), ratio(row.token_ratio), ratio(row.latency_ratio)]


def _pair_row(row: Paired) -> list[str]:
    cells = _paired_row(row)
    return [*cells[:3], row.baseline, *cells[3:]]


def _against_direct(summary: Summary) -> tuple[list[Paired], list[Paired]]:
    """The comparisons with direct answer, and those of the run's other named pairs."""
    direct = [row for row in summary.comparisons if row.baseline == BASELINE]
    return direct, [row for row in summary.comparisons if row.baseline != BASELINE]


def _compare_row(row: Paired) -> list[str]:
    return [row.model, row.benchmark, row.treatment, str(row.pairs), pct(row.baseline_accuracy),
            pct(row.treatment_accuracy), points(row.difference), interval(row.difference_ci, signed=True),
            f"{row.treatment_only}/{row.baseline_only}", p_value(row.p_value)]


def significance(wins: int, losses: int) -> str:
    """How many wins and losses a test can tell from noise, said beside every count of wins."""
    return (f"{wins} significantly better and {losses} significantly worse "
            f"(exact McNemar p < {ALPHA:g})")


def headline_text(line: Headline) -> str:
    """One sentence per strategy: the study's headline figures."""
    improvement = (
        f"mean relative improvement {pct(line.mean_relative_improvement, signed=True)} "
        f"(over {plural(line.relative_improvement_settings, 'setting')} with direct accuracy > 0)"
        if line.mean_relative_improvement is not None
        else "relative improvement undefined (direct accuracy is 0 everywhere)"
    )
    return (
        f"{line.strategy} beats {line.baseline} in {line.wins} of {plural(line.settings, 'setting')} "
        f"({pct(line.win_share)}; {plural(line.ties, 'tie')}, {plural(line.losses, 'loss', 'losses')}), "
        f"{significance(line.significant_wins, line.significant_losses)}; "
        f"{improvement}; output tokens {ratio(line.token_ratio)}, "
        f"latency {ratio(line.latency_ratio)} of {line.baseline}'s"
    )


def rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < 3 else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def terminal() -> Console:
    """A console for the tables: the terminal's width, or a wide one when output goes to a file or pipe
    (Rich would otherwise wrap every cell at 80 columns)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def render_summary(summary: Summary, console: Console) -> None:
    """Print the run's tables and headline to the terminal."""
    state = "complete" if summary.complete else f"{summary.recorded} of {summary.expected or '?'} recorded"
    console.print(f"[bold]run {summary.run_id}[/] ({state}, {summary.errors} failed)", highlight=False)
    console.print(rich_table("Accuracy by setting", SETTING_COLUMNS, [_setting_row(row) for row in summary.settings]))
    direct, others = _against_direct(summary)
    if direct:
        rows = [_paired_row(row) for row in direct]
        console.print(rich_table("Against direct answer, on the same examples", PAIRED_COLUMNS, rows))
    if others:
        console.print(rich_table("Other pairs, on the same examples", PAIR_COLUMNS, [_pair_row(row) for row in others]))
    for line in summary.headline:
        console.print(f"[bold]{line.strategy}[/]: {headline_text(line)}", highlight=False)


def render_comparison(comparison: RunComparison, console: Console) -> None:
    """Print run B against run A."""
    title = f"Run B ({comparison.run_b}) against run A ({comparison.run_a}), on the examples both answered"
    console.print(rich_table(title, COMPARE_COLUMNS, [_compare_row(row) for row in comparison.rows]))
    for run, keys in ((comparison.run_a, comparison.only_a), (comparison.run_b, comparison.only_b)):
        if keys:
            console.print(f"only in {run}: " + ", ".join(key.label for key in keys), highlight=False)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return [*lines, ""]


DEFINITIONS = """\
## How to read this

- **accuracy**: share of scored examples answered correctly (unparsable answers count as wrong; examples whose
  LM call failed for good are left out and counted as errors). BBH is macro-averaged over its tasks.
- **95% CI** of an accuracy: Wilson score interval (bootstrap within tasks for macro averages).
- **Against direct answer**: on the examples both strategies answered. *difference* is in percentage points (pp),
  with a paired percentile bootstrap interval (2,000 resamples); *relative* is (strategy - direct) / direct;
  *W/L* are McNemar's discordant pairs (strategy right and direct wrong / the reverse), and *McNemar p*
  the exact two-sided test on them; *tokens* and *latency* are ratios of means (output tokens, LM latency).
- **Headline**: across (model, benchmark) settings, the share where the strategy's accuracy is higher than
  direct answer's, how many of those wins and of the losses are significant (exact McNemar p < 0.05), the
  mean relative improvement (settings where direct scored 0 are left out), and the
  geometric means of the token and latency ratios.
"""


def markdown(summary: Summary, config: dict[str, Any], plots: Sequence[Path] = ()) -> str:
    """The report of one run as markdown; `plots` are linked by file name (they sit beside the report)."""
    settings = config["config"]
    lines = [f"# Post-reasoning evaluation: run {summary.run_id}", ""]
    lines.append(f"- command: `{config.get('command')}`")
    lines.append(f"- created: {config.get('created')}; summary generated {summary.generated}")
    state = "complete" if summary.complete else "incomplete"
    lines.append(f"- examples recorded: {summary.recorded} of {summary.expected} ({state}); failed: {summary.errors}")
    for name, model in config.get("models", {}).items():
        described = ", ".join(f"{key}={value}" for key, value in model.items() if value is not None)
        lines.append(f"- model `{name}`: {described}")
    for name, bench in config.get("benchmarks", {}).items():
        lines.append(f"- benchmark `{name}` ({bench['family']}): {len(bench['example_ids'])} examples of the "
                     f"{settings['split']} split (seed {settings['seed']}), from {bench['source']}")
    lines.append("")
    if summary.headline:
        lines += ["## Headline", ""]
        lines += [f"- **{line.strategy}**: {headline_text(line)}." for line in summary.headline]
        lines.append("")
    lines += ["## Accuracy by setting", ""]
    lines += markdown_table(SETTING_COLUMNS, [_setting_row(row) for row in summary.settings])
    direct, others = _against_direct(summary)
    if direct:
        lines += ["## Against direct answer, on the same examples", ""]
        lines += markdown_table(PAIRED_COLUMNS, [_paired_row(row) for row in direct])
    if others:
        lines += ["## Other pairs, on the same examples", ""]
        lines += markdown_table(PAIR_COLUMNS, [_pair_row(row) for row in others])
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{plot.stem.replace('_', ' ')}]({plot.name})" for plot in plots]
        lines.append("")
    lines.append(DEFINITIONS)
    return "\n".join(lines)


def comparison_markdown(comparison: RunComparison) -> str:
    """Run B against run A as markdown."""
    lines = [f"# Run {comparison.run_b} (B) against run {comparison.run_a} (A)", "",
             "Paired by example id; the interval is a paired bootstrap, the p-value an exact McNemar test.", ""]
    lines += markdown_table(COMPARE_COLUMNS, [_compare_row(row) for row in comparison.rows])
    for run, keys in ((comparison.run_a, comparison.only_a), (comparison.run_b, comparison.only_b)):
        if keys:
            lines += [f"Only in {run}: " + ", ".join(key.label for key in keys), ""]
    return "\n".join(lines)


def output_directory(path: Path) -> Path:
    """`path` as a directory to write into, made if missing; a clear error if something else is there."""
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"--out {path} is a file, not a directory: name a directory for the report files")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot make the report directory {path}: {exc.strerror or exc}") from None
    return path


def write_report(store: RunStore, out: Path | None = None, with_plots: bool = True) -> tuple[Summary, list[Path]]:
    """Recompute the run's summary from its records and write report.md (and the plots) into `out`
    (default: the run's report/ directory). Returns the summary and the files written."""
    config = store.read_config()
    summary = summarize(store.records(), store.run_id, config)
    out = output_directory(out or store.report_dir)
    plots: list[Path] = []
    if with_plots and summary.settings:
        from postreason_dspy.evaluation.plots import write_plots  # matplotlib: only when plotting

        plots = write_plots(summary, out)
    report = out / "report.md"
    atomic_write_text(report, store.scrub(markdown(summary, config, plots)))
    return summary, [report, *plots]


def write_comparison(store_a: RunStore, store_b: RunStore, out: Path | None = None) -> tuple[RunComparison, Path]:
    """Compare run B with run A and write the markdown (default: into run B's report/ directory)."""
    comparison = compare_runs(store_a.run_id, store_a.records(), store_b.run_id, store_b.records())
    out = output_directory(out or store_b.report_dir)
    path = out / f"compare-{store_a.run_id}.md"
    atomic_write_text(path, store_b.scrub(comparison_markdown(comparison)))
    return comparison, path
