"""`postreason report RUN` for a tune run: per model the test table, the chosen wording and demos, and a
PNG of dev score by trial. Everything is read back from the run folder (summary.json, trials.jsonl,
program.json), so a report of an interrupted run shows what it got to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postreason_dspy.formatting import p_value, pct
from postreason_dspy.io import JsonlLog, atomic_path, atomic_write_text
from postreason_dspy.optimizers.post_reason_search import TRIALS
from postreason_dspy.run_folder import TUNE, RunFolder
from postreason_dspy.tuning.controls import DIRECT_DEMOS
from postreason_dspy.tuning.recommend import OPTIONS
from postreason_dspy.tuning.run import PROGRAM, SUMMARY, p_key

REPORT_DIR = "report"


def _short(text: Any, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def dev_by_trial_plot(trials: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Dev score of each scored trial (the baseline marked, duplicates hollow) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [t for t in trials if t["state"] in ("complete", "duplicate") and t.get("dev_score") is not None]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    complete = [t for t in scored if t["state"] == "complete"]
    ax.scatter([t["number"] for t in complete], [t["dev_score"] for t in complete], color="#1f77b4", label="trial")
    duplicates = [t for t in scored if t["state"] == "duplicate"]
    if duplicates:
        ax.scatter([t["number"] for t in duplicates], [t["dev_score"] for t in duplicates], facecolors="none",
                   edgecolors="#7f7f7f", label="duplicate (not re-scored)")
    baseline = [t for t in complete if t.get("baseline")]
    if baseline:
        ax.scatter([t["number"] for t in baseline], [t["dev_score"] for t in baseline], color="#d62728", s=60,
                   zorder=3, label="baseline (untuned)")
    best, xs, ys = None, [], []
    for trial in sorted(complete, key=lambda t: t["number"]):
        best = trial["dev_score"] if best is None else max(best, trial["dev_score"])
        xs.append(trial["number"])
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="#2ca02c", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("dev accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _demos(program_path: Path) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """The saved program's instructions and demos, per predictor."""
    if not program_path.is_file():
        return [], []
    state = json.loads(program_path.read_text(encoding="utf-8"))["state"]
    instructions, demos = [], []
    for predictor in state.values():
        if isinstance(predictor, dict) and "signature" in predictor:
            instructions.append(predictor["signature"].get("instructions", ""))
            demos.append(predictor.get("demos", []))
    return instructions, demos


def model_markdown(run: Path, model: str, row: dict[str, Any], plot: Path | None) -> list[str]:
    lines = [f"## {model}", "", f"**Recommendation: {row['recommendation_text']}**", ""]
    if row.get("tuned_format") == "direct":
        lines += ["The tuned program answers directly, without post-reasoning: a direct candidate carrying its demos "
                  "won the search's race against the post-reasoning ones.", ""]
    lines += ["| split | direct | untuned | tuned |", "|---|---|---|---|"]
    lines.append(f"| dev ({row['dev_size']} q) | " + " | ".join(pct(row["dev"].get(k)) for k in OPTIONS) + " |")
    lines.append(f"| test ({row['test_size']} q) | " + " | ".join(pct(row["test"].get(k)) for k in OPTIONS) + " |")
    if row["test"].get("cot") is not None:
        lines.append(f"\nchain-of-thought on test: {pct(row['test']['cot'])}")

    def p(a: str, b: str) -> str:  # runs from before the demos control lack its p-values
        return p_value(row["p_values"].get(p_key(a, b)))

    if row["test"].get(DIRECT_DEMOS) is not None:
        lines.append(f"\ndirect answer with the tuned program's demos (justifications dropped) on test: "
                     f"{pct(row['test'][DIRECT_DEMOS])}; McNemar p tuned vs it {p('tuned', DIRECT_DEMOS)}, "
                     f"it vs direct {p(DIRECT_DEMOS, 'direct')}")
    lines += ["", f"McNemar p on test: tuned vs untuned {p('tuned', 'untuned')}, tuned vs direct "
              f"{p('tuned', 'direct')}, untuned vs direct {p('untuned', 'direct')}.", "",
              f"Tuning: {row['trials']} trials ({row['duplicates']} duplicates not re-scored; stopped: "
              f"{row['stopped']}), {row['tuning_lm_calls']} LM calls, {row['tuning_tokens']['input']} input and "
              f"{row['tuning_tokens']['output']} output tokens, {row['tuning_minutes']} minutes. "
              f"Train {row['train_size']} / dev {row['dev_size']} questions; study `{row['study']}`.", ""]
    saved_instructions, demos = _demos(run / row["folder"] / PROGRAM)
    instructions = (row.get("best_trial") or {}).get("instructions") or saved_instructions  # as requests carry them
    for text, chosen in zip(instructions, demos, strict=False):
        lines += ["Chosen instructions:", "", *[f"> {line}" for line in text.splitlines()], ""]
        lines.append(f"Chosen demos ({len(chosen)}):" if chosen else "Chosen demos: none")
        for demo in chosen:
            fields = ", ".join(f"**{key}**: {_short(value)}" for key, value in demo.items()
                               if key not in ("augmented", "labeled", "id"))
            lines.append(f"- {fields}")
        lines.append("")
    if plot is not None:
        lines += [f"![dev score by trial]({plot.name})", ""]
    return lines


def write_tune_report(run: Path, out: Path | None = None, with_plots: bool = True) -> tuple[str, list[Path]]:
    """report.md (and one PNG per model) for the tune run at `run`; returns the markdown and the files written."""
    summary = json.loads((run / SUMMARY).read_text(encoding="utf-8"))
    out = out or run / REPORT_DIR
    files: list[Path] = []
    lines = [f"# Tune run {summary['run_id']}: {summary['benchmark']} ({summary['program_strategy']})", "",
             f"`{summary['command']}`", "",
             "The recommendation is chosen on the dev split; the test split (never seen by the search) confirms it "
             "or not.", ""]
    for model, row in summary["models"].items():
        plot = None
        if with_plots:
            trials = JsonlLog(run / row["folder"] / TRIALS).read()[0]
            plot = dev_by_trial_plot(trials, f"{model}: dev score by trial", out / f"dev-by-trial-{row['folder']}.png")
            files.append(plot)
        lines += model_markdown(run, model, row, plot)
    text = "\n".join(lines)
    report = out / "report.md"
    atomic_write_text(report, text)
    return text, [report, *files]


def render_tune_summary(summary: dict[str, Any], console: Console) -> None:
    """Per model: dev and test figures of direct / untuned / tuned, p-values, cost, and the recommendation."""
    table = Table(title=f"Tune run {summary['run_id']}: {summary['benchmark']} (dev chooses, test confirms)")
    for column in ("model", "", "direct", "untuned", "tuned", "p tuned/untuned", "p tuned/direct", "LM calls",
                   "minutes"):
        table.add_column(column)
    for model, row in summary["models"].items():
        table.add_row(escape(model), f"dev (n={row['dev_size']})", *(pct(row["dev"].get(k)) for k in
                      ("direct", "untuned", "tuned")), "", "", str(row["tuning_lm_calls"]), str(row["tuning_minutes"]))
        table.add_row("", f"test (n={row['test_size']})", *(pct(row["test"].get(k)) for k in
                      ("direct", "untuned", "tuned")), p_value(row["p_values"][p_key("tuned", "untuned")]),
                      p_value(row["p_values"][p_key("tuned", "direct")]), "", "")
    console.print(table)
    for model, row in summary["models"].items():
        console.print(f"[bold]{escape(model)}[/]: use {escape(row['recommendation_text'])}", highlight=False)
        if row.get("note"):
            console.print(f"[yellow]note: {escape(row['note'])}[/]", highlight=False)


def tune_run_path(run: str | Path | None, runs_dir: Path) -> Path | None:
    """The tune run that `run` names (an id under `runs_dir` or a directory), or None if it names none."""
    return None if run is None else RunFolder.locate(run, runs_dir, TUNE)


def report_tune_run(
    run: str | Path | None, runs_dir: Path, out: Path | None, with_plots: bool, console: Console
) -> bool:
    """`postreason report RUN` for a tune run: print its table, write report.md and plots; False if RUN is none."""
    path = tune_run_path(run, runs_dir)
    if path is None:
        return False
    if not (path / SUMMARY).is_file():
        console.print(f"tune run {path} has no results yet: finish it with `postreason tune --resume {path}`")
        return True
    _, files = write_tune_report(path, out, with_plots=with_plots)
    render_tune_summary(json.loads((path / SUMMARY).read_text(encoding="utf-8")), console)
    console.print("wrote " + ", ".join(str(file) for file in files), highlight=False)
    return True
