"""Compare PostReasonSearch with dspy.MIPROv2, dspy.BootstrapFewShotWithRandomSearch and dspy.GEPA at an equal
LM-call budget.

All four tune the same post-reasoning benchmark program on the same train/dev split, each given budget B
through its own parameters (ours: `max_lm_calls`; MIPROv2: `num_trials` and minibatch size; random search:
`num_candidate_programs`; GEPA: `max_metric_calls`, its reflection model being the tuned model; each sized
from an estimate of its cost per step); ours also at B/2. Ours runs its race by default: demo sets sized to
the budget, justified and bare, a direct candidate, successive halving on dev minibatches. Every LM call
each optimizer makes is counted by an LM callback (`postreason_dspy.usage.counting`), so the
JSON reports the calls actually made, next to the estimate. The tuned programs are then measured on the
same held-out test questions through the evaluation harness, with McNemar p-values of ours against each.

    python scripts/compare_optimizers.py --model local --benchmark commonsense_qa --budget 300 \\
        --train-size 40 --dev-size 50 --limit 300 --reuse results/compare-csqa-1.5b-b300

`--reuse DIR` takes a DSPy optimizer's tuned program and cost from an earlier comparison (its runs/ folder,
or the copy kept under results/) instead of compiling it again, when every setting that optimizer's
compile depends on is the same (`ARM_SETTINGS`); the held-out test is always run anew.

Writes runs/<run-id>/compare.json and its table compare.md (and each optimizer's program.json, ours' study,
the test run beside it); the folder's config.json marks it {"kind": "compare"} and settings.json holds the
settings a continued run must share.
The run spans interruptions: run the same command again. The optimizers are compiled slowest last (MIPROv2);
each that finished is kept (its program and `result.json`); one interrupted mid-compile starts over from
nothing, so the calls and seconds it reports are those of one whole compile; the test run resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy import interrupt
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import run_entry
from postreason_dspy.cli.config_options import add_config_options, config_from_args
from postreason_dspy.cli.options import (
    add_data_option,
    add_model_arguments,
    command_line,
    count_or_all,
    data_paths,
)
from postreason_dspy.errors import SettingsChangedError
from postreason_dspy.evaluation import EvalConfig, RunStore, Summary, resume_run, start_run
from postreason_dspy.evaluation.reuse import Source
from postreason_dspy.flags import command_words
from postreason_dspy.formatting import p_value, pct
from postreason_dspy.io import atomic_write_json, refuse_changes, settings_changed
from postreason_dspy.models import resolve_lm
from postreason_dspy.optimizers import PostReasonSearch
from postreason_dspy.optimizers.scoring import UNPARSED_ERRORS, Metric
from postreason_dspy.optimizers.settings import SearchSettings
from postreason_dspy.run_folder import COMPARE, EVAL, RunFolder, created, folder_kind, new_run_id
from postreason_dspy.secrets import redact
from postreason_dspy.tuning.comparison_arms import BFSRS, DSPY_ARMS, GEPA, LABELS, MIPRO, OURS, OURS_HALF
from postreason_dspy.tuning.run import p_key
from postreason_dspy.usage import Usage, counting

# What a DSPy optimizer's compile depends on: with these unchanged, --reuse may take its program from an earlier run.
ARM_SETTINGS = ("model", "benchmark", "program_strategy", "budget", "train_size", "dev_size", "seed", "max_tokens",
                "temperature", "data")
ARM_OPTIONS = {MIPRO: ("mipro_candidates",), BFSRS: (), GEPA: ()}
MAX_DEMOS = 3
# Ours as the comparison runs it unless told otherwise: demo sets sized to the budget, justified and bare demos
# raced on minibatches of 5 with successive halving, as many trials as the budget pays for.
OURS_SEARCH = SearchSettings(num_trials=1000, num_demo_sets=None, max_bootstrapped_demos=MAX_DEMOS,
                             demo_styles=("justified", "bare"), minibatch=5, pruner="halving")
# Compiled in this order, slowest last (MIPROv2 took three times as long as any other arm on CommonsenseQA at
# B = 300), so that a comparison stopped part-way keeps as many finished optimizers as it can.
COMPILE_ORDER = (OURS, OURS_HALF, BFSRS, GEPA, MIPRO)
# Set by the comparison for every optimizer alike: the seed, the budget, the number of demos.
SET_BY_COMPARISON = ("seed", "max_lm_calls", "max_bootstrapped_demos")
LMFactory = Callable[..., dspy.LM]


def mipro_trials(budget: int, train: int, dev: int, num_candidates: int, minibatch_size: int) -> int:
    """MIPROv2's `num_trials` for about `budget` calls: bootstrapping (at most every training example per
    candidate set), proposals (about two calls per candidate), then per trial a minibatch, and a full dev
    evaluation every 5 trials and at the end."""
    fixed = num_candidates * min(train, 3 * MAX_DEMOS) + 2 * num_candidates + dev
    per_trial = minibatch_size + dev / 5 if minibatch_size < dev else dev
    return max(1, int((budget - fixed) // per_trial))


def bfsrs_candidates(budget: int, train: int, dev: int) -> int:
    """Random search's `num_candidate_programs` for about `budget` calls: three fixed programs (zero-shot,
    labeled, unshuffled) and each candidate scored on dev, each bootstrap stopping after its demos."""
    per_candidate = dev + min(train, 3 * MAX_DEMOS)
    return max(1, int((budget - 3 * dev) // per_candidate))


def gepa_metric_calls(budget: int, dev: int) -> int:
    """GEPA's `max_metric_calls` for about `budget` LM calls: after the seed program's dev evaluation, each
    iteration scores a parent and a child on a 3-example minibatch (6 program calls) and asks the reflection
    model once, so about one call in seven is a reflection (an accepted child's dev evaluation has none)."""
    return max(dev + 1, (6 * budget + dev) // 7)


def feedback_metric(metric: Metric) -> Callable[..., dspy.Prediction]:
    """`metric` as GEPA asks for it: five arguments, a score and a line of feedback its reflection reads."""
    def score(gold: dspy.Example, pred: dspy.Prediction, trace: Any = None, pred_name: str | None = None,
              pred_trace: Any = None) -> dspy.Prediction:
        try:
            right = bool(metric(gold, pred))
        except UNPARSED_ERRORS:
            right = False
        feedback = "Correct." if right else f"Wrong: the correct answer is {gold.get('answer')!r}."
        return dspy.Prediction(score=float(right), feedback=feedback)

    return score


def timed_counted(compile_: Callable[[], dspy.Module]) -> tuple[dspy.Module, Usage, float]:
    """Run `compile_`, counting every LM call it makes (a callback, not an estimate)."""
    usage = Usage()
    started = time.perf_counter()
    with counting(usage):
        program = compile_()
    return program, usage, time.perf_counter() - started


def ours_settings(args: argparse.Namespace, budget: int) -> SearchSettings:
    """Our search's settings: the options of its group over `OURS_SEARCH`, with the comparison's seed and `budget`."""
    return config_from_args(SearchSettings, args, OURS_SEARCH, seed=args.seed, max_lm_calls=budget)


def run_ours(args: argparse.Namespace, bench: Any, train: list, dev: list, budget: int, folder: Path) -> dict:
    settings = ours_settings(args, budget)
    search = PostReasonSearch(bench.metric, settings, run_dir=folder, aggregate=bench.accuracy)
    direct = None if args.no_direct_candidate else bench.program("direct")
    program, usage, seconds = timed_counted(
        lambda: search.compile(bench.program(args.program_strategy), trainset=train, valset=dev, direct=direct))
    record = program.record
    return {"program": program, "usage": usage, "seconds": seconds, "dev_score": program.score,
            "parameters": {"max_lm_calls": budget, "search": command_line(*command_words(settings)),
                           "direct_candidate": direct is not None},
            "stopped": record["stopped"], "trials": record["counted"],
            "eliminated": record.get("pruned_on_minibatch", 0), "format": program.format,
            "demo_style": record["best"].get("demo_style"), "demos": [len(ids) for ids in program_demo_ids(program)],
            "adapter": program.adapter, "program_kwargs": program.program_kwargs}


def program_demo_ids(program: dspy.Module) -> list[list[str]]:
    """Per predictor, the demos the tuned program carries (their question ids or texts)."""
    return [[str(demo.get("id") or demo.get("question", ""))[:40] for demo in p.demos] for p in program.predictors()]


def run_mipro(args: argparse.Namespace, bench: Any, train: list, dev: list, budget: int, lm: dspy.LM) -> dict:
    minibatch_size = min(25, len(dev))
    trials = mipro_trials(budget, len(train), len(dev), args.mipro_candidates, minibatch_size)
    optimizer = dspy.MIPROv2(metric=bench.metric, prompt_model=lm, task_model=lm, auto=None,
                             num_candidates=args.mipro_candidates, max_bootstrapped_demos=MAX_DEMOS,
                             max_labeled_demos=0, num_threads=1, seed=args.seed, verbose=False, track_stats=False)
    program, usage, seconds = timed_counted(lambda: optimizer.compile(
        bench.program(args.program_strategy), trainset=train, valset=dev, num_trials=trials,
        minibatch=minibatch_size < len(dev), minibatch_size=minibatch_size, requires_permission_to_run=False))
    return {"program": program, "usage": usage, "seconds": seconds, "dev_score": getattr(program, "score", None),
            "parameters": {"num_trials": trials, "num_candidates": args.mipro_candidates,
                           "minibatch_size": minibatch_size, "max_bootstrapped_demos": MAX_DEMOS}}


def run_bfsrs(args: argparse.Namespace, bench: Any, train: list, dev: list, budget: int) -> dict:
    candidates = bfsrs_candidates(budget, len(train), len(dev))
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=bench.metric, max_bootstrapped_demos=MAX_DEMOS, max_labeled_demos=0,
        num_candidate_programs=candidates, num_threads=1)
    program, usage, seconds = timed_counted(lambda: optimizer.compile(
        bench.program(args.program_strategy), trainset=train, valset=dev))
    return {"program": program, "usage": usage, "seconds": seconds, "dev_score": None,
            "parameters": {"num_candidate_programs": candidates, "max_bootstrapped_demos": MAX_DEMOS}}


def run_gepa(args: argparse.Namespace, bench: Any, train: list, dev: list, budget: int, lm: dspy.LM) -> dict:
    calls = gepa_metric_calls(budget, len(dev))
    optimizer = dspy.GEPA(metric=feedback_metric(bench.metric), max_metric_calls=calls, reflection_lm=lm,
                          num_threads=1, seed=args.seed, track_stats=True)
    program, usage, seconds = timed_counted(lambda: optimizer.compile(
        bench.program(args.program_strategy), trainset=train, valset=dev))
    results = program.detailed_results
    return {"program": program, "usage": usage, "seconds": seconds,
            "dev_score": results.val_aggregate_scores[results.best_idx],
            "parameters": {"max_metric_calls": calls, "reflection_lm": "the tuned model",
                           "candidates": len(results.candidates)}}


def earlier_arm(label: str, source: Path, args: argparse.Namespace) -> tuple[dict, Path] | None:
    """Optimizer `label`'s result and program.json in the earlier comparison at `source` (a runs/ folder with
    settings.json, or a results/ copy with compare.json) if it ran with this run's ARM_SETTINGS; else None."""
    if (source / "settings.json").is_file():
        settings = json.loads((source / "settings.json").read_text())
        result_path, program = source / label / "result.json", source / label / "program.json"
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
    elif (source / "compare.json").is_file():
        document = json.loads((source / "compare.json").read_text())
        earlier = parser().parse_args(shlex.split(document["command"])[2:])
        settings = json.loads(json.dumps(vars(settle(earlier))))
        result = document["optimizers"].get(label)
        result = {key: value for key, value in result.items() if key != "test_accuracy"} if result else None
        program = source / f"{label}.program.json"
    else:
        raise SystemExit(f"--reuse {source}: neither settings.json nor compare.json is there")
    current = json.loads(json.dumps(vars(args)))
    if result is None or not program.is_file():
        return None
    if any(settings.get(key) != current.get(key) for key in (*ARM_SETTINGS, *ARM_OPTIONS[label])):
        return None
    return result, program


def adopt(label: str, folder: Path, source: Path, args: argparse.Namespace) -> bool:
    """Put optimizer `label`'s program and result from the earlier run at `source` into `folder` (where `stage`
    reads it back), when its settings match; False when they do not (it is compiled here then)."""
    if (folder / "result.json").exists() or (found := earlier_arm(label, source, args)) is None:
        return False
    result, program = found
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(program, folder / "program.json")
    atomic_write_json(folder / "result.json", {**result, "reused_from": str(source)})
    return True


def stage(label: str, folder: Path, args: argparse.Namespace, run: Callable[[], dict]) -> dict:
    """One optimizer's result: read back if it finished in an earlier invocation, else compiled from nothing
    (a partial folder of an interrupted compile is removed first) and saved with its program."""
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    result = run()
    program, usage = result.pop("program"), result.pop("usage")
    metadata = {"temperature": args.temperature, "max_tokens": args.max_tokens, "optimizer": label}
    if result.get("adapter"):
        metadata["adapter"] = result["adapter"]
    strategy = "direct" if result.get("format") == "direct" else args.program_strategy
    save_program(program, folder / "program.json", benchmark=args.benchmark, strategy=strategy,
                 model=args.model, program_kwargs=result.get("program_kwargs"), metadata=metadata)
    result = {**result, **usage.to_dict(), "seconds": round(result["seconds"], 1)}
    atomic_write_json(done, result)
    return result


def held_out(config: EvalConfig, folder: Path, lm_factory: LMFactory, base_runs: list[str]) -> Summary:
    """The held-out evaluation of every program, resumed if an earlier invocation started it; the untuned and
    direct arms are copied from `base_runs` where one answered the same questions with the same settings."""
    if folder_kind(folder / "test") == EVAL:
        _, summary = resume_run(RunStore.open("test", folder), lm_factory=lm_factory)
    else:
        reuse = [Source.open(run, Path(".")) for run in base_runs]
        store, summary = start_run(config, folder, run_id="test", lm_factory=lm_factory, reuse=reuse)
        for arm, run in store.read_config().get("reused", {}).items():
            print(f"held-out {arm}: copied from {run}")
    return summary


def same_settings(args: argparse.Namespace, folder: Path) -> None:
    """Record the comparison's settings in a new run; refuse to continue a run with other settings."""
    settings = {key: value for key, value in vars(args).items() if key not in ("runs_dir", "run_id", "api_base")}
    try:
        refuse_changes(settings_changed(folder / "settings.json", settings),
                       f"run {folder} was started with other settings", "use another --run-id")
    except SettingsChangedError as refused:
        sys.exit(str(refused))


def compare(args: argparse.Namespace, lm_factory: LMFactory = resolve_lm, argv: list[str] | None = None) -> Path:
    """Tune with each optimizer (or read back the ones done), measure on test, write compare.json."""
    bench = get_benchmark(args.benchmark)
    train = bench.load("train", limit=args.train_size, seed=args.seed, path=args.data)
    dev = bench.load("dev", limit=args.dev_size, seed=args.seed, path=args.data)
    run_id = args.run_id or f"compare-{new_run_id()}"
    command = " ".join(["python", "scripts/compare_optimizers.py",
                        *map(redact, sys.argv[1:] if argv is None else argv)])
    folder = RunFolder.ensure(Path(args.runs_dir) / run_id, COMPARE, {"created": created(), "command": command}).path
    same_settings(args, folder)
    lm = lm_factory(args.model, api_base=args.api_base, max_tokens=args.max_tokens, temperature=args.temperature,
                    cache=False)
    budget = args.budget
    runs: dict[str, Callable[[], dict]] = {
        OURS: lambda: run_ours(args, bench, train, dev, budget, folder / OURS / "search"),
        OURS_HALF: lambda: run_ours(args, bench, train, dev, budget // 2, folder / OURS_HALF / "search"),
        MIPRO: lambda: run_mipro(args, bench, train, dev, budget, lm),
        BFSRS: lambda: run_bfsrs(args, bench, train, dev, budget),
        GEPA: lambda: run_gepa(args, bench, train, dev, budget, lm),
    }
    if args.reuse:
        reused = [label for label in DSPY_ARMS if adopt(label, folder / label, Path(args.reuse), args)]
        print(f"reused from {args.reuse}: {', '.join(reused) or 'none (their settings differ)'}")
    with dspy.context(lm=lm):
        compiled = {label: stage(label, folder / label, args, runs[label]) for label in COMPILE_ORDER}
    results = {label: compiled[label] for label in runs}
    paths = {label: folder / label / "program.json" for label in results}
    pairs = tuple((ours, other) for ours in (OURS, OURS_HALF) for other in DSPY_ARMS)
    config = EvalConfig(
        models=(args.model,), benchmarks=(args.benchmark,), strategies=("direct", args.program_strategy),
        programs={label: str(path.resolve()) for label, path in paths.items()}, pairs=pairs,
        limit=args.limit, split="test", seed=args.seed, max_tokens=args.max_tokens, temperature=args.temperature,
        api_base=args.api_base, data={args.benchmark: args.data} if args.data else {},
    )
    test = held_out(config, folder, lm_factory, args.base_run)
    compared = {pair: test.comparison(*pair) for pair in pairs}
    document = {
        "kind": "compare_optimizers",
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "model": args.model, "benchmark": args.benchmark, "program_strategy": args.program_strategy,
        "budget": budget, "train_size": len(train), "dev_size": len(dev),
        "test_size": test.settings[0].scored if test.settings else 0,
        "optimizers": {label: {**result, "test_accuracy": test.accuracy(label)} for label, result in results.items()},
        "untuned_test_accuracy": test.accuracy(args.program_strategy),
        "direct_test_accuracy": test.accuracy("direct"),
        "p_values": {p_key(ours, other): row.p_value for (ours, other), row in compared.items() if row},
        "test_run": str(folder / "test"),
        "test_copied_from": RunStore.open("test", folder).read_config().get("reused", {}),
    }
    path = folder / "compare.json"
    atomic_write_json(path, document)
    (folder / "compare.md").write_text(render(document))
    return path




def render(document: dict[str, Any]) -> str:
    """compare.json as a Markdown table: per optimizer its calls, tokens, minutes, dev and test accuracy and,
    for ours, McNemar p against each of DSPy's optimizers."""
    p = document["p_values"]
    lines = [f"{document['benchmark']}, model {document['model']}, budget B = {document['budget']} LM calls; "
             f"train {document['train_size']}, dev {document['dev_size']}, test {document['test_size']} questions",
             "", "| program | LM calls | input tokens | output tokens | minutes | dev | test "
             "| p vs MIPROv2 | p vs random search | p vs GEPA |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, row in document["optimizers"].items():
        versus = [p_value(p[key]) if (key := p_key(label, other)) in p else "" for other in DSPY_ARMS]
        name = LABELS.get(label, label) + (" (direct)" if row.get("format") == "direct" else "")
        name += " (reused)" if row.get("reused_from") else ""
        lines.append(f"| {name} | {row['lm_calls']} | {row['input_tokens']:,} "
                     f"| {row['output_tokens']:,} | {row['seconds'] / 60:.1f} | {pct(row.get('dev_score'))} "
                     f"| {pct(row['test_accuracy'])} | {' | '.join(versus)} |")
    for name, key in (("untuned post", "untuned_test_accuracy"), ("direct", "direct_test_accuracy")):
        lines.append(f"| {name} | | | | | | {pct(document[key])} | | | |")
    return "\n".join([*lines, "", f"`{document['command']}`", ""])


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--benchmark", default="commonsense_qa")
    parser.add_argument("--program-strategy", default="post", choices=("post", "post_full"))
    parser.add_argument("--budget", type=int, default=600, help="LM calls per optimizer (ours also at half)")
    parser.add_argument("--train-size", type=int, default=40)
    parser.add_argument("--dev-size", type=int, default=50)
    parser.add_argument("--limit", type=count_or_all, default=300, help="held-out test questions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.0)
    add_data_option(parser)
    ours = parser.add_argument_group("ours (PostReasonSearch; the seed, B and the demo count are the comparison's)")
    ours.add_argument("--no-direct-candidate", action="store_true", help="race post-reasoning only")
    add_config_options(ours, OURS_SEARCH, leave_out=SET_BY_COMPARISON)
    parser.add_argument("--mipro-candidates", type=int, default=6, help="MIPROv2's num_candidates")
    parser.add_argument("--reuse", metavar="DIR", help="take DSPy optimizers' programs from this earlier comparison "
                        "where their settings are unchanged")
    parser.add_argument("--base-run", action="append", default=[], metavar="RUN",
                        help="an evaluation run (a directory) whose direct and untuned answers to the same test "
                        "questions, with the same model and settings, are copied instead of asked again; repeatable")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--run-id")
    return parser


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Parsed arguments as the comparison uses them: --limit all as None, --data as this benchmark's path."""
    if args.limit == "all":
        args.limit = None
    args.data = data_paths(args.data, (args.benchmark,)).get(args.benchmark)
    ours_settings(args, args.budget)  # a bad search setting is refused now, not after the first optimizers ran
    return args


def main(argv: list[str] | None = None, lm_factory: LMFactory = resolve_lm) -> int:
    args = settle(parser().parse_args(argv))
    rerun = list(sys.argv[1:] if argv is None else argv)
    if args.run_id is None:  # named now, so the resume line can name it
        args.run_id = f"compare-{new_run_id()}"
        rerun += ["--run-id", args.run_id]
    with interrupt.resume_with(command_line("python", "scripts/compare_optimizers.py", *rerun)):
        path = compare(args, lm_factory, argv)
    print(f"wrote {path} and compare.md\ncopy both to results/{path.parent.name}/ to keep them")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entry(main))
