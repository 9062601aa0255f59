"""Post-reason tuning measured end to end on the local model: self-distil, fine-tune, evaluate base and tuned.

    python scripts/measure_finetune.py --base qwen2.5-coder-1.5b \\
        --benchmark commonsense_qa,arc_challenge,mmlu,gsm8k,math500 --transfer sciq,piqa --limit 300 \\
        --loss format --epochs 3 --max-minutes 300 --run-id ft-mix-1.5b \\
        --base-run results/study/runs/study-1.5b-core --base-run results/study/runs/study-1.5b-new

Steps, each skipped when its output is complete and resumed when it is partial (run the same command
again after an interruption):
1. base model served: `postreason distill --benchmark a,b,c --model local --rationalize`, the model its own
   teacher over each training benchmark's tuning split -> runs/RUN/distill/; fewer than --min-records stops here;
2. server stopped (2 cores): `postreason finetune` (a held-out dev loss with early stopping, then the
   post-training check of the served LoRA adapter) -> runs/RUN/adapter/; one that fails the check stops here;
3. the base arms (direct and post on --limit test questions of every training and --transfer benchmark): each
   taken from a --base-run whose settings and questions match (same weights, split, max tokens, temperature,
   no data file or program in place of the strategy, an answer to every question), the rest evaluated with
   the base model served -> runs RUN-base, RUN-base-2, ...;
4. the LoRA adapter served on the same base (`local up --lora`): the same evaluation -> run RUN-tuned;
5. per benchmark the four arms paired by question id, the headline of tuned post against base post over all
   benchmarks (the study's "X of N settings", mean relative gain, pooled McNemar), output tokens per answer,
   tuned answers that open by repeating an input field -> results/finetune-<base>.json, .md, -loss.png and
   -records/ (--results-dir).
`--plan` prints which base arms are reused and what is left to evaluate, without running anything.
`--time-steps N` distils (step 1; or takes --time-data, an earlier distillation), trains N steps and prints
seconds per step and the whole run's estimated training time, so the run can be sized to the machine;
runs/RUN/timing.json keeps it.
`--stop-after distill|train` stops when that step is done (and the server is stopped), e.g. so that a queue can
give the rest of a working period to other work instead of starting a training it cannot finish.
`--reuse RUN` retrains from an earlier run's distilled data (its base evaluations become candidate base runs).
Every step is an ordinary `postreason` command, printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from statistics import mean
from typing import Any

from postreason_dspy import interrupt
from postreason_dspy.adapters import ADAPTERS
from postreason_dspy.cli import run_entry
from postreason_dspy.cli.options import command_line, limits_per_benchmark, split_names
from postreason_dspy.decoding import field_start_marker
from postreason_dspy.evaluation.records import ExampleRecord, Setting
from postreason_dspy.evaluation.report import markdown_table
from postreason_dspy.evaluation.reuse import EVAL, Arm, Plan, Source, Want, plan, question_ids
from postreason_dspy.evaluation.study import StudyHeadline, StudyRow, headline_of, model_names
from postreason_dspy.evaluation.study_report import headline_lines
from postreason_dspy.evaluation.summary import paired, setting_stats
from postreason_dspy.finetune.data import LOSS_MODES
from postreason_dspy.finetune.train import TrainConfig
from postreason_dspy.formatting import interval, number, p_value, pct, points
from postreason_dspy.io import atomic_write_json, atomic_write_text

POSTREASON = str(Path(sys.executable).with_name("postreason"))
STRATEGIES = ("direct", "post")
ARMS = ("base direct", "base post", "tuned post", "tuned direct")
# (treatment, baseline): the study's claim is the first; the rest separate prompt from training.
PAIRS = (
    ("tuned post", "base post"),
    ("tuned post", "base direct"),
    ("base post", "base direct"),
    ("tuned direct", "base direct"),
    ("tuned post", "tuned direct"),
)
TOKEN_SLACK = 2  # tuned post's output tokens per answer must stay within this many of base post's
# The study (arXiv 2605.06165) on post-reason tuning: tuned post beats the untuned prompt in this share of
# settings, by this mean relative gain.
PAPER_WIN_SHARE = 0.9111
PAPER_MEAN_GAIN = 0.0801


def postreason(*args: str, check: bool = True) -> None:
    """Run one `postreason` command, echoed; a failure stops the script with that command's exit code
    (unless `check` is False: the caller looks at what the command left)."""
    print("$ postreason " + " ".join(args), flush=True)
    code = interrupt.call([POSTREASON, *args])  # a signal is passed on to it, then stops this script
    if code and check:
        sys.exit(code)


class Server:
    """The local server, restarted only when another model is wanted (each start loads the weights)."""

    def __init__(self) -> None:
        self.serving: tuple[str, ...] | None = None

    def serve(self, *args: str) -> None:
        if self.serving != args:
            postreason("local", "down")
            postreason("local", "up", *args)
            self.serving = args

    def down(self) -> None:
        postreason("local", "down")
        self.serving = None


# ----- which base arms to evaluate -----


def groups(missing: Sequence[Arm]) -> list[tuple[list[str], tuple[str, ...]]]:
    """Missing arms as evaluation runs: benchmarks that lack the same strategies share one run."""
    lacking: dict[str, list[str]] = {}
    for benchmark, strategy in missing:
        lacking.setdefault(benchmark, []).append(strategy)
    runs: dict[tuple[str, ...], list[str]] = {}
    for benchmark, strategies in lacking.items():
        runs.setdefault(tuple(s for s in STRATEGIES if s in strategies), []).append(benchmark)
    return [(benchmarks, strategies) for strategies, benchmarks in runs.items()]


def own_base_runs(runs_dir: Path, run_id: str) -> list[str]:
    """This measurement's own base evaluations (RUN-base, RUN-base-2, ...) that were started, in order."""
    pattern = re.compile(rf"{re.escape(run_id)}-base(?:-(\d+))?")
    found = {int(match.group(1) or 1): match.group(0) for path in runs_dir.glob(f"{run_id}-base*/config.json")
             if (match := pattern.fullmatch(path.parent.name))}
    return [found[n] for n in sorted(found)]


def print_refusals(result: Plan) -> None:
    for line in result.refusals():
        print(f"base {line}", flush=True)


# ----- the steps -----


def complete_run(runs_dir: Path, run_id: str) -> bool:
    path = runs_dir / run_id / "summary.json"
    return path.exists() and bool(json.loads(path.read_text()).get("complete"))


def evaluate(args: argparse.Namespace, run_id: str, benchmarks: Sequence[str], strategies: Sequence[str]) -> None:
    """`postreason eval` of one run, started or resumed (a resumed run keeps the settings it started with)."""
    if complete_run(args.runs_dir, run_id):
        return
    started = (args.runs_dir / run_id / "config.json").exists()
    where = ["--resume", run_id] if started else [
        "--model", "local", "--benchmark", ",".join(benchmarks), "--strategy", ",".join(strategies),
        "--limit", str(args.limit), "--max-tokens", str(args.max_tokens), "--temperature", str(args.temperature),
        "--run-id", run_id]
    postreason("eval", *where, "--runs-dir", str(args.runs_dir), "--no-progress")


def distill(args: argparse.Namespace, server: Server) -> Path:
    """Step 1: the training data, distilled by the base model from its own answers (resumed when partial)."""
    if args.reuse:
        folder = args.runs_dir / args.reuse / "distill"
        if not (folder / "summary.json").exists():
            sys.exit(f"--reuse {args.reuse}: its distilled data is not finished ({folder / 'summary.json'})")
        return folder
    folder = args.runs_dir / args.run_id / "distill"
    if not (folder / "summary.json").exists():  # failed examples are counted, not retried: they fail the same way
        server.serve("--model", args.base)
        limit = [word for value in args.distill_limit or [] for word in ("--limit", value)]
        threshold = ["--copy-threshold", str(args.copy_threshold)] if args.copy_threshold else []
        rationalize = ["--rationalize"] if args.rationalize else []
        postreason("distill", "--benchmark", ",".join(args.benchmark), "--split", "train", *limit, *rationalize,
                   *threshold, "--model", "local", "--out", str(folder), "--runs-dir", str(args.runs_dir),
                   check=False)
        if not (folder / "summary.json").exists():
            sys.exit(f"postreason distill wrote no {folder / 'summary.json'}")
    records = json.loads((folder / "summary.json").read_text())["records"]
    if records < args.min_records:
        sys.exit(f"{folder}: {records} records after filtering, fewer than --min-records {args.min_records}. "
                 f"Distil more: remove {folder / 'summary.json'} and run again with a larger --distill-limit or more "
                 "benchmarks (examples already asked are kept), or accept them with --min-records")
    return folder


def adapter_folder(args: argparse.Namespace) -> Path:
    """Where this run's LoRA adapter is trained, checked and served from."""
    return args.runs_dir / args.run_id / "adapter"


def train_options(args: argparse.Namespace) -> list[str]:
    """The `postreason finetune` options given to this script (the others keep finetune's defaults)."""
    options = []
    for name in ("loss", "epochs", "max_minutes", "dev_share", "patience", "eval_every", "batch_size", "lr"):
        value = getattr(args, name)
        if value is not None:
            options += [f"--{name.replace('_', '-')}", str(value)]
    return options


def finetune(args: argparse.Namespace, server: Server, data: Path, out: Path, run_id: str, *extra: str) -> dict:
    """`postreason finetune` into `out` (continuing its checkpoint), unless it finished; its finetune.json."""
    if not (out / "finetune.json").exists():
        server.down()
        started = (out / "state.json").exists() or (args.runs_dir / run_id).exists()  # a checkpoint, or its record
        resume = ["--resume"] if started else []
        postreason("finetune", str(data), "--out", str(out), "--base", args.base, *train_options(args), *extra,
                   "--runs-dir", str(args.runs_dir), "--run-id", run_id, "--no-progress", *resume)
    return json.loads((out / "finetune.json").read_text())


def train(args: argparse.Namespace, server: Server, data: Path) -> dict:
    """Step 2: the LoRA adapter, checked; stops the script when the check failed."""
    lora = adapter_folder(args)
    check = [] if args.check is None else ["--check", str(args.check)]
    record = finetune(args, server, data, lora, f"{args.run_id}-finetune", *check)
    if (record.get("check") or {}).get("status") == "not run" and args.check != 0:
        server.down()  # e.g. the server could not start then: check the finished LoRA adapter now
        postreason("finetune", str(data), "--out", str(lora), "--check-only", *check, "--runs-dir",
                   str(args.runs_dir), check=False)
        record = json.loads((lora / "finetune.json").read_text())
    failure = (record.get("check") or {}).get("failure")
    if failure:
        sys.exit(f"{lora}: {failure}")
    return record


def base_sources(args: argparse.Namespace) -> list[Source]:
    """Candidate base runs in order: --base-run, then --reuse's and this run's own base evaluations."""
    names: list[str | Path] = list(args.base_run)
    if args.reuse:
        names += own_base_runs(args.runs_dir, args.reuse)
    names += own_base_runs(args.runs_dir, args.run_id)
    return [Source.open(name, args.runs_dir) for name in names]


def next_base_run(runs_dir: Path, run_id: str) -> str:
    taken = set(own_base_runs(runs_dir, run_id))
    return next(name for n in range(1, len(taken) + 2)
                if (name := f"{run_id}-base" + (f"-{n}" if n > 1 else "")) not in taken)


def base_arms(args: argparse.Namespace, server: Server, want: Want) -> Plan:
    """Step 3: every base arm, reused where a run matches and evaluated (base model served) where none does."""
    for run_id in own_base_runs(args.runs_dir, args.run_id):  # an interrupted one of ours: finish it first
        if not complete_run(args.runs_dir, run_id):
            server.serve("--model", args.base)
            evaluate(args, run_id, (), ())
    arms = [(benchmark, strategy) for benchmark in want.ids for strategy in STRATEGIES]
    result = plan(base_sources(args), arms, want)
    print_refusals(result)
    for benchmarks, strategies in groups(result.missing):
        server.serve("--model", args.base)
        evaluate(args, next_base_run(args.runs_dir, args.run_id), benchmarks, strategies)
    result = plan(base_sources(args), arms, want)
    if result.missing:
        print_refusals(result)
        sys.exit("base arms still missing after their evaluation: "
                 + ", ".join(f"{strategy} on {benchmark}" for benchmark, strategy in result.missing))
    return result


def tuned_arms(args: argparse.Namespace, server: Server, want: Want) -> Plan:
    """Step 4: both strategies of the LoRA adapter on every benchmark's questions, checked to be its answers."""
    run_id = f"{args.run_id}-tuned"
    if not complete_run(args.runs_dir, run_id):
        server.serve("--lora", str(adapter_folder(args)))
        evaluate(args, run_id, list(want.ids), STRATEGIES)
    source = Source.open(run_id, args.runs_dir)
    weights = model_names(source.store.read_config()).get("local", "")
    if not weights.startswith(f"{args.base}+lora-"):
        sys.exit(f"run {run_id} served {weights or 'unknown weights'}, not a LoRA adapter on {args.base}")
    result = plan([source], [(b, s) for b in want.ids for s in STRATEGIES], replace(want, weights=weights))
    if result.missing:
        print_refusals(result)
        sys.exit(f"run {run_id} lacks the tuned arms {result.missing}")
    return result


# ----- sizing -----


def time_training(args: argparse.Namespace, server: Server, data: Path) -> dict[str, Any]:
    """Train --time-steps steps (one dev-loss measurement, no check) and size the whole run from them."""
    steps = args.time_steps
    out = args.runs_dir / args.run_id / f"timing-{steps}"
    record = finetune(args, server, data, out, f"{args.run_id}-timing-{steps}", "--max-steps", str(steps),
                      "--eval-every", str(steps), "--check", "0")
    server.down()
    config = record["config"]
    per_step = record["seconds"] / record["steps"]
    per_dev = record["dev_seconds"] / len(record["dev_losses"]) if record.get("dev_losses") else 0.0
    per_epoch = math.ceil(record["data"]["used"] / config["batch_size"])
    planned = per_epoch * (args.epochs or TrainConfig.epochs)
    measurements = math.ceil(planned / (args.eval_every or TrainConfig.eval_every)) if per_dev else 0
    minutes = (planned * per_step + measurements * per_dev) / 60
    per_hundred = per_step * 100 / config["batch_size"] / 60
    timing = {
        "data": str(data), "steps_timed": record["steps"], "device": record["device"],
        "seconds_per_step": round(per_step, 2),
        "dev_seconds_per_measurement": round(per_dev, 2), "tokens_per_s": record.get("tokens_per_s"),
        "records": record["data"]["records"], "training_records": record["data"]["used"],
        "batch_size": config["batch_size"], "steps_per_epoch": per_epoch, "planned_steps": planned,
        "estimated_training_minutes": round(minutes, 1), "max_minutes": args.max_minutes,
        "minutes_per_100_records_per_epoch": round(per_hundred, 1),
    }
    atomic_write_json(args.runs_dir / args.run_id / "timing.json", timing)
    print(f"{per_step:.1f} s per step on {record['device']} ({record['steps']} steps timed; dev loss "
          f"{per_dev:.0f} s per measurement); {planned} steps ({per_epoch} per epoch over "
          f"{record['data']['used']} records) take about {minutes:.0f} minutes"
          + (f", cut at --max-minutes {args.max_minutes:g}" if args.max_minutes and args.max_minutes < minutes else "")
          + f"; {per_hundred:.1f} minutes per 100 training records and epoch")
    return timing


def print_plan(result: Plan, args: argparse.Namespace) -> None:
    """What would be reused and what evaluated, with the answers each costs and the base arms' mean latency."""
    for (benchmark, strategy), (run, _) in result.found.items():
        print(f"base {strategy} on {benchmark}: reused from {run}")
    print_refusals(result)
    for benchmarks, strategies in groups(result.missing):
        print(f"to evaluate with the base model: {','.join(strategies)} on {','.join(benchmarks)}")
    benchmarks = len(args.benchmark) + len(args.transfer)
    answers = (len(result.missing) + len(STRATEGIES) * benchmarks) * args.limit
    seconds = [record.latency_s for _, records in result.found.values() for record in records if record.latency_s]
    cost = f", about {answers * mean(seconds) / 3600:.1f} hours at the reused arms' mean latency" if seconds else ""
    print(f"answers to evaluate: {answers} ({len(result.missing)} base arms, {len(STRATEGIES) * benchmarks} tuned)"
          + cost)


# ----- the report -----


@cache
def input_markers(name: str) -> tuple[str, ...]:
    """How input field `name` opens in each adapter's format."""
    return tuple(field_start_marker(adapter(), name) for adapter in ADAPTERS.values())


def echoes(records: Sequence[ExampleRecord]) -> int:
    """Answers whose completion opens with an input field's marker (in any adapter's format): the reply
    repeats the prompt instead of answering."""
    return sum((record.completion or "").lstrip().startswith(tuple(marker for name in record.inputs or {}
                                                                    for marker in input_markers(name)))
               for record in records)


def prompts_differ(base: Sequence[ExampleRecord], tuned: Sequence[ExampleRecord]) -> int:
    """Questions whose prompt had another length in the two arms: a reused arm asked with another prompt (a
    LoRA adapter changes the answers, never the prompt)."""
    lengths = {record.id: record.prompt_tokens for record in base}
    return sum(lengths.get(record.id) not in (None, record.prompt_tokens) and record.prompt_tokens is not None
               for record in tuned)


def benchmark_result(benchmark: str, trained: bool, base: Plan, tuned: Plan) -> tuple[dict[str, Any], StudyRow]:
    """One benchmark's four arms, its pairs, output tokens and echoed inputs; its row of the headline."""
    by_arm, sources = {}, {}
    for label in ARMS:
        model, strategy = label.split()
        sources[label], by_arm[label] = (base if model == "base" else tuned).found[(benchmark, strategy)]
    stats = {label: asdict(setting_stats(Setting(label.split()[0], benchmark, label.split()[1]), records))
             for label, records in by_arm.items()}
    comparisons = [paired("local", benchmark, (treatment, by_arm[treatment]), (baseline, by_arm[baseline]))
                   for treatment, baseline in PAIRS]  # never None: every arm answered the same questions
    tokens = {label: stats[label]["mean_completion_tokens"] for label in ("base post", "tuned post")}
    within = None if None in tokens.values() else abs(tokens["tuned post"] - tokens["base post"]) <= TOKEN_SLACK
    row = {
        "benchmark": benchmark, "training_mix": trained, "sources": sources, "arms": stats,
        "pairs": [asdict(comparison) for comparison in comparisons],
        "output_tokens": {**tokens, "within": within},
        "echoed_inputs": {label: echoes(by_arm[label]) for label in ("tuned post", "tuned direct")},
        "prompts_differ": {strategy: prompts_differ(by_arm[f"base {strategy}"], by_arm[f"tuned {strategy}"])
                           for strategy in STRATEGIES},
    }
    return row, StudyRow(sources["base post"], comparisons[0])


def headlines(rows: Sequence[tuple[dict[str, Any], StudyRow]], base: str) -> list[StudyHeadline]:
    """Tuned post against base post over every benchmark, then over the training mix and the transfer ones."""
    scopes = [("every benchmark", rows), ("training mix", [r for r in rows if r[0]["training_mix"]]),
              ("transfer", [r for r in rows if not r[0]["training_mix"]])]
    return [headline_of([study for _, study in chosen], *PAIRS[0], model=f"{base}, {scope}")
            for scope, chosen in scopes if chosen]


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


def distill_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The distillation's counts, in total and per source benchmark, with rejections by reason."""
    keys = ("kept", "rationalized", "rejected", "failed", "test_overlap", "records", "rejections")
    sources = summary.get("sources", {})
    return {**{key: summary.get(key) for key in keys},
            "sources": {name: {key: part.get(key) for key in keys} for name, part in sources.items()}}


def benchmark_line(row: dict[str, Any]) -> list[str]:
    accuracy = {label: pct(row["arms"][label]["accuracy"]) for label in ARMS}
    pair = next(p for p in row["pairs"] if (p["treatment"], p["baseline"]) == PAIRS[0])
    tokens = row["output_tokens"]
    return [row["benchmark"], "training" if row["training_mix"] else "transfer", str(pair["pairs"]),
            *accuracy.values(), points(pair["difference"]), f"{pair['treatment_only']}/{pair['baseline_only']}",
            p_value(pair["p_value"]), number(tokens["base post"]), number(tokens["tuned post"]),
            {True: "yes", False: "**no**", None: "-"}[tokens["within"]],
            f"{row['echoed_inputs']['tuned post']}/{row['echoed_inputs']['tuned direct']}"]


BENCHMARK_COLUMNS = ("benchmark", "set", "n", *ARMS, "tuned post - base post", "W/L", "McNemar p",
                     "tokens base post", "tokens tuned post", f"within {TOKEN_SLACK}",
                     "tuned opens with input (post/direct)")
PAIR_COLUMNS = ("benchmark", "treatment vs baseline", "pairs", "difference", "95% CI", "W/L", "McNemar p")


def markdown(result: dict[str, Any]) -> str:
    train, data = result["training"], result["distill"]
    lines = [f"# Post-reason tuning: {result['base']}, trained on {', '.join(result['benchmarks'])}; "
             f"transfer: {', '.join(result['transfer']) or 'none'}", "",
             f"`{result['command']}` (commit {result['commit']}, {result['generated']})", "", "## Headline", "",
             f"- the study: tuned post beats the untuned prompt in {PAPER_WIN_SHARE:.2%} of settings, mean relative "
             f"gain {PAPER_MEAN_GAIN:+.2%}."]
    for line in result["headlines"]:
        lines += ["", f"### {line['model']}", "", *(f"- {text}." for text in line["text"])]
    echoed = result["echoed_inputs"]
    lines += ["", "### Format and cost", "",
              f"- tuned answers that open with an input field: {echoed['count']} of {echoed['answers']} (must be 0).",
              f"- tuned post's output tokens per answer within {TOKEN_SLACK} of base post's (answer-only): "
              f"{result['tokens_within']} of {len(result['per_benchmark'])} benchmarks.",
              f"- questions whose base and tuned prompts differ in length (must be 0, else a reused base arm was "
              f"asked another prompt): {result['prompts_differ']}.", "",
              "## Per benchmark", "",
              *markdown_table(BENCHMARK_COLUMNS, [benchmark_line(row) for row in result["per_benchmark"]])]
    rows = [[row["benchmark"], f"{p['treatment']} vs {p['baseline']}", str(p["pairs"]), points(p["difference"]),
             interval(p["difference_ci"], signed=True), f"{p['treatment_only']}/{p['baseline_only']}",
             p_value(p["p_value"])] for row in result["per_benchmark"] for p in row["pairs"]]
    sources = [[row["benchmark"], *(row["sources"][label] for label in ARMS)] for row in result["per_benchmark"]]
    lines += ["## Every pair", "", *markdown_table(PAIR_COLUMNS, rows),
              "## Where each arm comes from", "", *markdown_table(("benchmark", *ARMS), sources),
              "## Data and training", "",
              f"Distilled (the base model its own teacher): {data['records']} records; kept {data['kept']}, "
              f"rationalized {data['rationalized']}, rejected {data['rejected']} "
              f"({json.dumps(data['rejections'])}), failed {data['failed']}, test overlap {data['test_overlap']}. "
              "Per source: "
              + "; ".join(f"{name} {part['records']} records, rejected {json.dumps(part['rejections'])}"
                          for name, part in data["sources"].items()), "",
              f"Training: {train['steps']} steps, {number(train['seconds'], 0)} s on {train['device']}, "
              f"{train['tokens']} tokens ({number(train['tokens_per_s'])} tokens/s), loss "
              f"{number(train['loss_first'], 4)} -> {number(train['loss_last'], 4)}; dev loss on "
              f"{train['dev_records']} held-out records: lowest {number(train['best_dev_loss'], 4)} at step "
              f"{train['best_step']} (kept; stopped early: {train['stopped_early']}); post-training check: "
              f"{train['check']}; loss plot: {result['loss_plot'] or 'none'}", ""]
    return "\n".join(lines)


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def keep_records(args: argparse.Namespace, data: Path, folder: Path, runs: Sequence[str]) -> None:
    """The records behind the report next to it: the distilled data and card, the training record (dev losses,
    the check's replies) and this measurement's own evaluation runs."""
    folder.mkdir(exist_ok=True)
    copies = {data / name: f"distill-{name}" for name in ("train.jsonl", "README.md", "summary.json")}
    copies[adapter_folder(args) / "finetune.json"] = "finetune.json"
    copies.update({args.runs_dir / run / name: f"{run}-{name}" for run in runs
                   for name in ("config.json", "examples.jsonl", "summary.json")})
    for source, name in copies.items():
        if source.exists():
            shutil.copyfile(source, folder / name)


def report(args: argparse.Namespace, argv: Sequence[str], data: Path, record: dict, base: Plan, tuned: Plan) -> str:
    """Write results/finetune-<base>.json, .md, -loss.png and -records/; returns the markdown."""
    results = [benchmark_result(name, name in args.benchmark, base, tuned)
               for name in [*args.benchmark, *args.transfer]]
    rows = [row for row, _ in results]
    tuned_records = [record for _, records in tuned.found.values() for record in records]
    stem = f"finetune-{args.base}"
    loss_png = args.runs_dir / f"{args.run_id}-finetune" / "loss.png"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    if loss_png.exists():
        shutil.copyfile(loss_png, args.results_dir / f"{stem}-loss.png")
    own = sorted({run for run, _ in [*base.found.values(), *tuned.found.values()]
                  if run.startswith(f"{args.run_id}-")})
    keep_records(args, data, args.results_dir / f"{stem}-records", own)
    result = {
        "command": command_line("python", "scripts/measure_finetune.py", *argv),
        "commit": commit(), "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "base": args.base, "benchmarks": args.benchmark, "transfer": args.transfer, "limit": args.limit,
        "runs": {"tuned": f"{args.run_id}-tuned", "finetune": f"{args.run_id}-finetune", "own": own},
        "distill": distill_figures(json.loads((data / "summary.json").read_text())),
        "training": training_figures(record),
        "loss_plot": str(args.results_dir / f"{stem}-loss.png") if loss_png.exists() else None,
        "headlines": [{**line.to_dict(), "text": headline_lines(line)} for line in headlines(results, args.base)],
        "echoed_inputs": {"count": echoes(tuned_records), "answers": len(tuned_records)},
        "prompts_differ": sum(sum(row["prompts_differ"].values()) for row in rows),
        "tokens_within": sum(bool(row["output_tokens"]["within"]) for row in rows),
        "per_benchmark": rows,
    }
    text = markdown(result)
    atomic_write_json(args.results_dir / f"{stem}.json", result)
    atomic_write_text(args.results_dir / f"{stem}.md", text)
    return text


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="qwen2.5-coder-1.5b", choices=("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"))
    parser.add_argument("--benchmark", type=split_names, default=["commonsense_qa"],
                        help="training mix, comma-separated: distilled from, and evaluated on")
    parser.add_argument("--transfer", type=split_names, default=[], help="benchmarks evaluated only (not in the mix)")
    parser.add_argument("--distill-limit", action="append", metavar="[NAME=]N",
                        help="tuning-split examples per benchmark (default: all); NAME=N for benchmark NAME alone "
                        "(distill --limit); repeatable")
    parser.add_argument("--rationalize", action=argparse.BooleanOptionalAction, default=True,
                        help="distill --rationalize: justify the gold answer where the model was wrong (default: on)")
    parser.add_argument("--copy-threshold", type=float, help="distill --copy-threshold")
    parser.add_argument("--min-records", type=int, default=600,
                        help="stop before training with fewer distilled records (default: 600)")
    parser.add_argument("--loss", choices=LOSS_MODES, help="finetune --loss")
    parser.add_argument("--epochs", type=int, help="finetune --epochs")
    parser.add_argument("--max-minutes", type=float, help="finetune --max-minutes: the training-time budget")
    parser.add_argument("--dev-share", type=float, help="finetune --dev-share")
    parser.add_argument("--patience", type=int, help="finetune --patience")
    parser.add_argument("--eval-every", type=int, help="finetune --eval-every")
    parser.add_argument("--batch-size", type=int, help="finetune --batch-size")
    parser.add_argument("--lr", type=float, help="finetune --lr")
    parser.add_argument("--check", type=int, help="finetune --check: held-out prompts answered in format")
    parser.add_argument("--limit", type=int, default=300, help="held-out test questions per benchmark and arm")
    parser.add_argument("--max-tokens", type=int, default=EVAL.max_tokens, help="eval --max-tokens")
    parser.add_argument("--temperature", type=float, default=EVAL.temperature, help="eval --temperature")
    parser.add_argument("--base-run", action="append", default=[], metavar="RUN",
                        help="an evaluation run whose base arms are reused where settings and questions match; "
                        "repeatable, earlier ones first")
    parser.add_argument("--reuse", metavar="RUN", help="an earlier run of this script: retrain on its distilled data")
    parser.add_argument("--plan", action="store_true", help="print what is reused and what is left; run nothing")
    parser.add_argument("--stop-after", choices=("distill", "train"),
                        help="stop when this step is done (a working period that cannot hold the next step)")
    parser.add_argument("--time-steps", type=int, metavar="N", help="distil, train N steps, print the time per step")
    parser.add_argument("--time-data", type=Path, metavar="DATA",
                        help="--time-steps on this distill folder or train.jsonl instead of distilling first")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    return parser


def stopped_after(server: Server, step: str, output: Path) -> int:
    """The end of a run cut short by --stop-after: the server stopped, and where the step's output is."""
    server.down()
    print(f"stopped after {step} (--stop-after): its output is {output}; run the command again without "
          "--stop-after to go on", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if overlap := set(args.benchmark) & set(args.transfer):
        sys.exit(f"--transfer names a training benchmark: {', '.join(sorted(overlap))}")
    limits_per_benchmark(args.distill_limit, tuple(args.benchmark), "--distill-limit")  # refused before any step
    ids = {name: question_ids(name, args.limit) for name in [*args.benchmark, *args.transfer]}
    want = Want(args.base, args.max_tokens, args.temperature, ids)
    if args.plan:
        print_plan(plan(base_sources(args), [(b, s) for b in ids for s in STRATEGIES], want), args)
        return 0
    server = Server()
    if args.time_steps:
        time_training(args, server, args.time_data or distill(args, server))
        return 0
    data = distill(args, server)
    if args.stop_after == "distill":
        return stopped_after(server, "distill", data)
    record = train(args, server, data)
    if args.stop_after == "train":
        return stopped_after(server, "train", adapter_folder(args))
    base = base_arms(args, server, want)
    tuned = tuned_arms(args, server, want)
    server.down()
    print(report(args, argv, data, record, base, tuned))
    return 0


if __name__ == "__main__":
    rerun = command_line("python", "scripts/measure_finetune.py", *sys.argv[1:])
    raise SystemExit(run_entry(main, resume=rerun))
