"""The study's three figures as PNG files: accuracy per setting by strategy, relative improvement over
direct answer per setting, and accuracy against output tokens per strategy (what each point of accuracy costs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt

from postreason_dspy.evaluation.config import BASELINE
from postreason_dspy.evaluation.summary import Summary
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
