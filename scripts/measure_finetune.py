"""Post-reason tuning measured end to end on the local model: distill, fine-tune, evaluate base and tuned.

    python scripts/measure_finetune.py --benchmark commonsense_qa --base qwen2.5-coder-0.5b \\
        --epochs 3 --max-minutes 40 --limit 200 --run-id ft-csqa-0.5b

Steps, each skipped when its output is complete and resumed when it is partial (run the same command
again after an interruption):
1. the untuned post-reasoning program of the benchmark -> runs/RUN/program.json;
2. base model served: `postreason distill` over the tuning split (--rationalize) -> runs/RUN/distill/;
3. server stopped (2 cores): `postreason finetune --loss LOSS` (a held-out dev loss with early stopping, then
   the post-training check of the served adapter) -> runs/RUN/adapter/; an adapter that fails the check stops here;
4. base model served: `postreason eval --strategy direct,post --limit N` (test split) -> run RUN-base;
5. the adapter served on the same base: the same eval -> run RUN-tuned;
6. the four arms paired by example id (McNemar p, paired bootstrap interval), with the training time
   and tokens/s -> results/finetune-<base>.json, .md and -loss.png (--results-dir).
A retraining (another loss, more epochs, a fixed mask) can `--reuse` an earlier run: its program, distilled
data and base evaluation are taken as they are (same base model, same questions), and only steps 3 and 5 run.
A new distillation of the same questions (e.g. with other filters) can `--reuse-base` the base evaluation only.
Every step is an ordinary `postreason` command, printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from postreason_dspy import interrupt
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli.options import command_line
from postreason_dspy.evaluation.records import ExampleRecord, RunStore, Setting
from postreason_dspy.evaluation.summary import paired, setting_stats
from postreason_dspy.finetune.data import LOSS_MODES
from postreason_dspy.formatting import interval, pct
from postreason_dspy.io import atomic_write_json, atomic_write_text

POSTREASON = str(Path(sys.executable).with_name("postreason"))
ARMS = (("base", "direct"), ("base", "post"), ("tuned", "post"), ("tuned", "direct"))
# (treatment, baseline): the study's claim is the first two; the rest separate prompt from training.
PAIRS = (
    ("tuned post", "base direct"),
    ("tuned post", "base post"),
    ("base post", "base direct"),
    ("tuned direct", "base direct"),
    ("tuned post", "tuned direct"),
)


def postreason(*args: str, check: bool = True) -> None:
    """Run one `postreason` command, echoed; a failure stops the script with that command's exit code
    (unless `check` is False: the caller looks at what the command left)."""
    print("$ postreason " + " ".join(args), flush=True)
    code = interrupt.call([POSTREASON, *args])  # a signal is passed on to it, then stops this script
    if code and check:
        sys.exit(code)


def serve(*args: str) -> None:
    postreason("local", "down")
    postreason("local", "up", *args)


def complete_run(runs_dir: Path, run_id: str) -> bool:
    path = runs_dir / run_id / "summary.json"
    return path.exists() and bool(json.loads(path.read_text()).get("complete"))


def evaluate(args: argparse.Namespace, run_id: str) -> None:
    if complete_run(args.runs_dir, run_id):
        return
    started = (args.runs_dir / run_id / "config.json").exists()
    where = ["--resume", run_id] if started else ["--model", "local", "--benchmark", args.benchmark,
                                                  "--strategy", "direct,post", "--limit", str(args.limit),
                                                  "--run-id", run_id]
    postreason("eval", *where, "--runs-dir", str(args.runs_dir), "--no-progress")


def distill_done(folder: Path) -> bool:
    return (folder / "summary.json").exists()


def base_run(args: argparse.Namespace) -> str:
    return f"{args.reuse or args.reuse_base or args.run_id}-base"


def run_steps(args: argparse.Namespace) -> tuple[Path, Path]:
    """Steps 1-5; returns the distill folder and the fine-tuning output folder."""
    home = args.runs_dir / args.run_id
    source = args.runs_dir / args.reuse if args.reuse else home
    program, distilled, adapter = source / "program.json", source / "distill", home / "adapter"
    if args.reuse and not (distill_done(distilled) and complete_run(args.runs_dir, base_run(args))):
        sys.exit(f"--reuse {args.reuse}: its distilled data or its base evaluation is not finished")
    if args.reuse_base and not complete_run(args.runs_dir, base_run(args)):
        sys.exit(f"--reuse-base {args.reuse_base}: its base evaluation is not finished")
    if not program.exists():
        save_program(get_benchmark(args.benchmark).program("post"), program, benchmark=args.benchmark,
                     strategy="post", model="local")
    if not distill_done(distilled):  # examples that fail (e.g. an answer naming no option) are counted, not retried
        serve("--model", args.base)
        postreason("distill", str(program), "--split", "train", "--limit", str(args.distill_limit),
                   "--rationalize", "--out", str(distilled), check=False)
        if not distill_done(distilled):
            sys.exit(f"postreason distill wrote no {distilled / 'summary.json'}")
    if not (adapter / "finetune.json").exists():
        postreason("local", "down")
        resume = ["--resume"] if (adapter / "state.json").exists() else []
        postreason("finetune", str(distilled), "--out", str(adapter), "--base", args.base, "--loss", args.loss,
                   "--epochs", str(args.epochs), "--max-minutes", str(args.max_minutes), "--runs-dir",
                   str(args.runs_dir), "--run-id", f"{args.run_id}-finetune", "--no-progress", *resume)
    failure = (json.loads((adapter / "finetune.json").read_text()).get("check") or {}).get("failure")
    if failure:
        sys.exit(f"{adapter}: {failure}")
    if not complete_run(args.runs_dir, base_run(args)):
        serve("--model", args.base)
        evaluate(args, base_run(args))
    if not complete_run(args.runs_dir, f"{args.run_id}-tuned"):
        serve("--adapter", str(adapter))
        evaluate(args, f"{args.run_id}-tuned")
    postreason("local", "down")
    return distilled, adapter


def arms(base: list[ExampleRecord], tuned: list[ExampleRecord]) -> dict[str, list[ExampleRecord]]:
    """The four arms by label ("base direct" ... "tuned post"), each the records of one strategy."""
    runs = {"base": base, "tuned": tuned}
    return {f"{model} {strategy}": [record for record in runs[model] if record.strategy == strategy]
            for model, strategy in ARMS}


def summarize(base: list[ExampleRecord], tuned: list[ExampleRecord], benchmark: str) -> dict[str, Any]:
    """Accuracy, interval and cost per arm; each pair of PAIRS on the examples both answered."""
    by_arm = arms(base, tuned)
    stats = [asdict(setting_stats(Setting(label.split()[0], benchmark, label.split()[1]), records))
             for label, records in by_arm.items()]
    comparisons = []
    for treatment, baseline in PAIRS:
        row = paired("local", benchmark, (treatment, by_arm[treatment]), (baseline, by_arm[baseline]))
        if row is not None:
            comparisons.append(asdict(row))
    return {"arms": stats, "pairs": comparisons}


def training_figures(record: dict[str, Any]) -> dict[str, Any]:
    losses = record.get("losses") or []
    return {
        "device": record.get("device"), "steps": record.get("steps"), "seconds": record.get("seconds"),
        "tokens": record.get("tokens"), "loss_tokens": record.get("loss_tokens"),
        "tokens_per_s": record.get("tokens_per_s"), "records": record.get("data", {}).get("used"),
        "config": record.get("config"), "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None, "dev_records": record.get("data", {}).get("dev", {}).get("used"),
        "dev_losses": record.get("dev_losses"), "best_step": record.get("best_step"),
        "best_dev_loss": record.get("best_dev_loss"), "stopped_early": record.get("stopped_early"),
        "check": (record.get("check") or {}).get("status"),
    }


def markdown(result: dict[str, Any]) -> str:
    train = result["training"]
    lines = [
        f"# Post-reason tuning: {result['base']} on {result['benchmark']}", "",
        f"`{result['command']}` (commit {result['commit']}, {result['generated']})", "",
        f"Distilled: {json.dumps(result['distill'])}", "",
        f"Training: {train['steps']} steps, {train['seconds']} s on {train['device']}, {train['tokens']} tokens "
        f"({train['tokens_per_s']} tokens/s), loss {train['loss_first']} -> {train['loss_last']}; "
        f"dev loss on {train['dev_records']} held-out records: lowest {train['best_dev_loss']} at step "
        f"{train['best_step']} (kept; stopped early: {train['stopped_early']}); post-training check: {train['check']}",
        "",
        "| arm | n | accuracy | 95% CI | output tokens | latency s |", "|---|---|---|---|---|---|",
    ]
    for arm in result["arms"]:
        lines.append(f"| {arm['model']} {arm['strategy']} | {arm['scored']} | {pct(arm['accuracy'])} | "
                     f"{interval(arm['ci'])} | "
                     f"{arm['mean_completion_tokens'] or 0:.1f} | {arm['mean_latency_s'] or 0:.2f} |")
    lines += ["", "| treatment vs baseline | pairs | difference | 95% CI | wins/losses | McNemar p |",
              "|---|---|---|---|---|---|"]
    for row in result["pairs"]:
        lines.append(f"| {row['treatment']} vs {row['baseline']} | {row['pairs']} | {100 * row['difference']:+.1f} | "
                     f"{interval(row['difference_ci'], signed=True)} | "
                     f"{row['treatment_only']}/{row['baseline_only']} | {row['p_value']:.3g} |")
    return "\n".join(lines) + "\n"


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default="commonsense_qa")
    parser.add_argument("--base", default="qwen2.5-coder-0.5b", choices=("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"))
    parser.add_argument("--distill-limit", type=int, default=500, help="tuning-split examples to distill")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--loss", default="justification", choices=LOSS_MODES, help="postreason finetune --loss")
    parser.add_argument("--max-minutes", type=float, default=40.0, help="training-time budget")
    parser.add_argument("--limit", type=int, default=200, help="held-out test questions per arm")
    parser.add_argument("--run-id", required=True)
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--reuse", metavar="RUN", help="an earlier run: reuse its distilled data and base eval")
    reuse.add_argument("--reuse-base", metavar="RUN", help="an earlier run: reuse its base eval only")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    distilled, adapter = run_steps(args)
    base = RunStore.open(base_run(args), args.runs_dir).records()
    tuned = RunStore.open(f"{args.run_id}-tuned", args.runs_dir).records()
    record = json.loads((adapter / "finetune.json").read_text())
    result = {
        "command": "python scripts/measure_finetune.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": commit(),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark": args.benchmark,
        "base": args.base,
        "runs": {"base": base_run(args), "tuned": f"{args.run_id}-tuned",
                 "finetune": f"{args.run_id}-finetune"},
        "distill": {key: value for key, value in json.loads((distilled / "summary.json").read_text()).items()
                    if key in ("kept", "rationalized", "rejected", "failed", "test_overlap", "records")},
        "training": training_figures(record),
        **summarize(base, tuned, args.benchmark),
    }
    stem = f"finetune-{args.base}"
    atomic_write_json(args.results_dir / f"{stem}.json", result)
    atomic_write_text(args.results_dir / f"{stem}.md", markdown(result))
    loss_png = args.runs_dir / f"{args.run_id}-finetune" / "loss.png"
    if loss_png.exists():
        shutil.copyfile(loss_png, args.results_dir / f"{stem}-loss.png")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    rerun = command_line("python", "scripts/measure_finetune.py", *sys.argv[1:])
    raise SystemExit(interrupt.run_command(main, resume=rerun))
