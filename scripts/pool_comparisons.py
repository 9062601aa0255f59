"""Pool several optimizer comparisons (scripts/compare_optimizers.py, one per benchmark) against ours at B.

    python scripts/pool_comparisons.py results/compare-csqa-1.5b-b300-race results/compare-arc-1.5b-b300-race \\
        --out results/pooled-compare-1.5b-b300

Each FOLDER holds compare.json and its held-out test records: the run folder `test/` (runs/<id>/) or the
copy `test-examples.jsonl` kept under results/. For every other program of the comparison (ours at B/2,
each DSPy optimizer, the untuned program, direct answer) against ours at B, per benchmark and pooled over
the benchmarks: both accuracies on the questions both answered, the discordant pairs, McNemar p (pooled:
the exact test on the pooled discordant pairs, the study's Cochran-Mantel-Haenszel), LM calls, tokens and
minutes of tuning. Then issue 23's targets, each said met or not met: ours at B at least as accurate as
every DSPy optimizer at B on every benchmark, and ours at B/2 at least as accurate as MIPROv2 at B.
Writes OUT/pooled.json and OUT/pooled.md (with --out) and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from postreason_dspy.cli import run_entry
from postreason_dspy.evaluation.records import ExampleRecord, RunStore
from postreason_dspy.evaluation.report import markdown_table
from postreason_dspy.evaluation.study import StudyRow, headline_of
from postreason_dspy.evaluation.summary import Paired, paired
from postreason_dspy.formatting import p_value, pct, points
from postreason_dspy.io import JsonlLog, atomic_write_json, atomic_write_text
from postreason_dspy.tuning.comparison_arms import DSPY_ARMS, MIPRO, OURS, OURS_HALF

COST = ("lm_calls", "input_tokens", "output_tokens", "seconds")


def test_records(folder: Path) -> list[ExampleRecord]:
    """The comparison's held-out answers: its test run, or the results/ copy of that run's records."""
    if (folder / "test" / "config.json").is_file():
        return RunStore.open("test", folder).records()
    copy = folder / "test-examples.jsonl"
    if copy.is_file():
        lines, _ = JsonlLog(copy).read()
        return [ExampleRecord.from_dict(line) for line in lines]
    sys.exit(f"{folder}: no test/ run and no test-examples.jsonl, so no held-out answers to pair")


def read_comparison(folder: Path) -> tuple[dict[str, Any], dict[str, list[ExampleRecord]]]:
    """compare.json and the test records by program label."""
    if not (folder / "compare.json").is_file():
        sys.exit(f"{folder}: no compare.json, so not a comparison of scripts/compare_optimizers.py")
    document = json.loads((folder / "compare.json").read_text())
    by_label: dict[str, list[ExampleRecord]] = {}
    for record in test_records(folder):
        by_label.setdefault(record.strategy, []).append(record)
    if OURS not in by_label:
        sys.exit(f"{folder}: no test answers of {OURS}")
    return document, by_label


def versus(benchmark: str, records: dict[str, list[ExampleRecord]], treatment: str, baseline: str) -> Paired:
    """`treatment` against `baseline` on the questions both answered."""
    row = paired("local", benchmark, (treatment, records[treatment]), (baseline, records[baseline]))
    if row is None:
        sys.exit(f"{treatment} and {baseline} share no answered question on {benchmark}")
    return row


def cost(document: dict[str, Any], label: str) -> dict[str, Any]:
    """What tuning cost the program labelled `label` (nothing for the untuned program and direct answer)."""
    found = document["optimizers"].get(label) or {}
    return {name: found.get(name) for name in COST}


def benchmark_rows(document: dict[str, Any], records: dict[str, list[ExampleRecord]]
                   ) -> list[tuple[Paired, dict[str, Any]]]:
    """Every other program of one comparison against ours at B (the tuned ones first), with its cost."""
    labels = [label for label in [*document["optimizers"], *records] if label in records and label != OURS]
    return [(versus(document["benchmark"], records, OURS, label),
             {**cost(document, label), "reused": bool((document["optimizers"].get(label) or {}).get("reused_from"))})
            for label in dict.fromkeys(labels)]


def pooled_row(label: str, rows: Sequence[tuple[Paired, dict[str, Any]]]) -> dict[str, Any]:
    """One program over every benchmark: accuracies over all pairs, the exact McNemar on the pooled discordant
    pairs (study.headline_of), summed costs (None where a benchmark has none)."""
    comparisons = [comparison for comparison, _ in rows]
    pooled = headline_of([StudyRow(c.benchmark, c) for c in comparisons], OURS, label).pooled
    pairs = sum(c.pairs for c in comparisons)

    def total(name: str) -> float | None:
        values = [costs[name] for _, costs in rows]
        return None if None in values else sum(values)

    return {"arm": label, "benchmarks": [c.benchmark for c in comparisons], "pairs": pairs,
            "ours_accuracy": sum(c.treatment_accuracy * c.pairs for c in comparisons) / pairs,
            "arm_accuracy": sum(c.baseline_accuracy * c.pairs for c in comparisons) / pairs,
            "ours_only": pooled.favourable, "arm_only": pooled.unfavourable, "p_value": pooled.p_value,
            "test": pooled.name, **{name: total(name) for name in COST}}


def target(name: str, checks: list[tuple[str, bool | None]]) -> dict[str, Any]:
    """A target over (where, held) checks: met only when every check was measured and held."""
    unmet = [where for where, held in checks if held is not True]
    return {"target": name, "met": bool(checks) and not unmet, "checks": [
        {"where": where, "held": held} for where, held in checks], "unmet": unmet}


def targets(comparisons: Sequence[tuple[dict[str, Any], dict[str, list[ExampleRecord]]]]) -> list[dict[str, Any]]:
    """Issue 23's targets, from the point accuracies on each benchmark's paired questions."""
    at_b, half = [], []
    for document, records in comparisons:
        benchmark = document["benchmark"]
        for label in dict.fromkeys([*DSPY_ARMS, *document["optimizers"]]):
            if label.startswith("ours"):
                continue
            row = versus(benchmark, records, OURS, label) if label in records else None
            at_b.append((f"{benchmark}: {OURS} vs {label}" + ("" if row else " (not measured)"),
                         None if row is None else row.treatment_accuracy >= row.baseline_accuracy))
        row = versus(benchmark, records, OURS_HALF, MIPRO) if {OURS_HALF, MIPRO} <= set(records) else None
        half.append((f"{benchmark}: {OURS_HALF} vs {MIPRO}" + ("" if row else " (not measured)"),
                     None if row is None else row.treatment_accuracy >= row.baseline_accuracy))
    return [target("ours at B is at least as accurate as every DSPy optimizer at B on every benchmark", at_b),
            target("ours at B/2 is at least as accurate as MIPROv2 at B on every benchmark", half)]


def pool(folders: Sequence[Path]) -> dict[str, Any]:
    """Every comparison read, per benchmark and pooled, with the targets."""
    comparisons = [read_comparison(folder) for folder in folders]
    benchmarks = [document["benchmark"] for document, _ in comparisons]
    if len(set(benchmarks)) != len(benchmarks):
        sys.exit(f"two comparisons of the same benchmark ({', '.join(benchmarks)}): give one per benchmark")
    rows = [row for document, records in comparisons for row in benchmark_rows(document, records)]
    labels = list(dict.fromkeys(comparison.baseline for comparison, _ in rows))
    pooled = [pooled_row(label, [row for row in rows if row[0].baseline == label]) for label in labels]
    per_benchmark = {name: [{"arm": c.baseline, **asdict(c), **costs} for c, costs in rows if c.benchmark == name]
                     for name in benchmarks}
    return {
        "folders": [str(folder) for folder in folders], "reference": OURS,
        "settings": [{key: document.get(key) for key in ("benchmark", "model", "budget", "train_size", "dev_size",
                                                         "test_size", "command")} for document, _ in comparisons],
        "ours": {document["benchmark"]: cost(document, OURS) for document, _ in comparisons},
        "per_benchmark": per_benchmark, "pooled": pooled, "targets": targets(comparisons),
    }


def cost_cells(row: dict[str, Any]) -> list[str]:
    tokens = None if row["input_tokens"] is None else row["input_tokens"] + row["output_tokens"]
    return ["-" if row["lm_calls"] is None else str(row["lm_calls"]), "-" if tokens is None else f"{tokens:,}",
            "-" if row["seconds"] is None else f"{row['seconds'] / 60:.1f}"]


COLUMNS = ("benchmark", "program", "n", "program acc.", f"{OURS} acc.", f"{OURS} - program", "W/L (ours/program)",
           "McNemar p", "LM calls", "tokens", "minutes")


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Optimizers against ours at B, per benchmark and pooled", ""]
    lines += [f"- {s['benchmark']}: model {s['model']}, B = {s['budget']}, train {s['train_size']}, dev "
              f"{s['dev_size']}, test {s['test_size']}; `{s['command']}`" for s in result["settings"]]
    lines += [f"- {OURS} on {name}: LM calls / tokens / minutes " + " / ".join(cost_cells(row))
              for name, row in result["ours"].items()]
    rows = []
    for benchmark, entries in result["per_benchmark"].items():
        rows += [[benchmark, row["arm"] + (" (reused)" if row["reused"] else ""), str(row["pairs"]),
                  pct(row["baseline_accuracy"]), pct(row["treatment_accuracy"]), points(row["difference"]),
                  f"{row['treatment_only']}/{row['baseline_only']}", p_value(row["p_value"]), *cost_cells(row)]
                 for row in entries]
    rows += [["pooled", row["arm"], str(row["pairs"]), pct(row["arm_accuracy"]), pct(row["ours_accuracy"]),
              points(row["ours_accuracy"] - row["arm_accuracy"]), f"{row['ours_only']}/{row['arm_only']}",
              p_value(row["p_value"]), *cost_cells(row)] for row in result["pooled"]]
    lines += ["", *markdown_table(COLUMNS, rows), "## Targets", ""]
    for goal in result["targets"]:
        state = "met" if goal["met"] else "not met (" + "; ".join(goal["unmet"]) + ")"
        lines.append(f"- {goal['target']}: **{state}**.")
    lines += ["", "Pooled p: exact McNemar on the discordant pairs summed over the benchmarks (Cochran-Mantel-Haenszel "
              "stratified by question); targets compare point accuracies, the p-values say which differences a "
              "test can tell from noise.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLDER", help="one comparison per benchmark")
    parser.add_argument("--out", type=Path, help="write pooled.json and pooled.md here")
    args = parser.parse_args(argv)
    result = pool(args.folders)
    text = markdown(result)
    if args.out:
        atomic_write_json(args.out / "pooled.json", result)
        atomic_write_text(args.out / "pooled.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entry(main))
