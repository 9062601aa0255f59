"""The study's figures as PNG files: accuracy per setting by strategy, relative improvement over direct
answer per setting, accuracy against output tokens per strategy (what each point of accuracy costs), and,
for a study merged across runs, a forest plot of the paired differences grouped by model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import itertools

import matplotlib.pyplot as plt

from postreason_dspy.evaluation.config import BASELINE
from postreason_dspy.evaluation.stats import ALPHA
from postreason_dspy.evaluation.summary import Paired, Summary
from postreason_dspy.io import atomic_path

COLORS = {"direct": "#7f7f7f", "post": "#1f77b4", "post_full": "#17becf", "cot": "#ff7f0e"}


def _color(strategy: str) -> str:
    return COLORS.get(strategy, "#9467bd")


def _setting_label(model: str, benchmark: str) -> str:
    return f"{model}\n{benchmark}"


def accuracy_by_setting(summary: Summary, path: Path) -> Path:
    """Grouped bars: one group per (model, benchmark), one bar per strategy, 95% intervals as error bars."""
    groups = list(dict.fromkeys((row.model, row.benchmark) for row in summary.settings))
    strategies = list(dict.fromkeys(row.strategy for row in summary.settings))
    width = 0.8 / len(strategies)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.5 * len(groups) * len(strategies)), 4.5))
    for offset, strategy in enumerate(strategies):
        rows = {(row.model, row.benchmark): row for row in summary.settings
                if row.strategy == strategy and row.accuracy is not None}
        xs = [index + (offset - (len(strategies) - 1) / 2) * width for index, key in enumerate(groups) if key in rows]
        scored = [rows[key] for key in groups if key in rows]
        heights = [100 * row.accuracy for row in scored]
        below = [100 * (row.accuracy - row.ci[0]) for row in scored]
        above = [100 * (row.ci[1] - row.accuracy) for row in scored]
        ax.bar(xs, heights, width, yerr=[below, above], capsize=3, label=strategy, color=_color(strategy))
    ax.set_xticks(range(len(groups)), [_setting_label(*key) for key in groups])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy by setting and strategy (95% CI)")
    ax.legend()
    return _save(fig, path)


def relative_improvement(summary: Summary, path: Path) -> Path:
    """Bars of (strategy - direct) / direct per setting; settings where direct scored 0 are marked n/a."""
    comparisons = [row for row in summary.comparisons if row.baseline == BASELINE]
    groups = list(dict.fromkeys((row.model, row.benchmark) for row in comparisons))
    strategies = list(dict.fromkeys(row.treatment for row in comparisons))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.5))
    width = 0.8 / max(1, len(strategies))
    for offset, strategy in enumerate(strategies):
        rows = {(row.model, row.benchmark): row for row in comparisons if row.treatment == strategy}
        xs, heights = [], []
        for index, key in enumerate(groups):
            row = rows.get(key)
            if row is None:
                continue
            x = index + (offset - (len(strategies) - 1) / 2) * width
            if row.relative_improvement is None:
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8, color=_color(strategy))
            else:
                xs.append(x)
                heights.append(100 * row.relative_improvement)
        ax.bar(xs, heights, width, color=_color(strategy), label=strategy)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), [_setting_label(*key) for key in groups])
    ax.set_ylabel("relative improvement over direct (%)")
    ax.set_title("Relative improvement over direct answer, per setting")
    ax.legend()
    return _save(fig, path)


def accuracy_vs_tokens(summary: Summary, path: Path) -> Path:
    """One point per setting and strategy: mean output tokens (log scale) against accuracy."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for strategy in dict.fromkeys(row.strategy for row in summary.settings):
        rows = [row for row in summary.settings if row.strategy == strategy
                and row.accuracy is not None and row.mean_completion_tokens]
        ax.scatter([row.mean_completion_tokens for row in rows], [100 * row.accuracy for row in rows],
                   label=strategy, color=_color(strategy), s=40)
    ax.set_xscale("log")
    ax.set_xlabel("mean output tokens per answer (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy against output tokens")
    ax.legend()
    return _save(fig, path)


def forest(rows: list[Paired], title: str, path: Path) -> Path:
    """One row per setting, top to bottom in `rows`' order (grouped by model): the difference in accuracy
    with its paired 95% interval; filled markers where McNemar's p is below 0.05, a line between models."""
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * len(rows)))
    ys = list(range(len(rows), 0, -1))
    for y, row in zip(ys, rows, strict=True):
        low, high = (100 * bound for bound in row.difference_ci)
        significant = row.p_value < ALPHA
        color = "#2ca02c" if row.difference > 0 else "#d62728" if row.difference < 0 else "#7f7f7f"
        ax.plot([low, high], [y, y], color=color, linewidth=1.6)
        ax.plot([100 * row.difference], [y], "o", color=color, markersize=6,
                markerfacecolor=color if significant else "white")
    for y, (above, below) in zip(ys[1:], itertools.pairwise(rows), strict=True):
        if above.model != below.model:
            ax.axhline(y + 0.5, color="#bbbbbb", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys, [f"{row.model} · {row.benchmark} (n={row.pairs})" for row in rows], fontsize=8)
    ax.set_ylim(0.4, len(rows) + 0.6)
    ax.set_xlabel(f"difference, percentage points (paired 95% CI); filled: McNemar p < {ALPHA:g}", fontsize=9)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    """Write through a temporary file, so an existing plot is replaced whole or not at all."""
    fig.tight_layout()
    try:
        with atomic_path(path) as partial:
            fig.savefig(partial, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def write_plots(summary: Summary, directory: Path) -> list[Path]:
    """All three figures into `directory`; the improvement figure only when a strategy was compared to direct."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [accuracy_by_setting(summary, directory / "accuracy_by_setting.png")]
    if any(row.baseline == BASELINE for row in summary.comparisons):
        paths.append(relative_improvement(summary, directory / "relative_improvement.png"))
    paths.append(accuracy_vs_tokens(summary, directory / "accuracy_vs_tokens.png"))
    return paths
