"""Run every (model, benchmark, strategy) setting on the same examples and record each answer as it lands.

A setting runs one strategy over all its examples before the next strategy starts: a local server's
greedy answers depend on its prompt-cache state, and interleaving strategies per example would change
that state between them. Within a setting, examples fan out over `threads`, each example calls the
model through its own probe (raw completion, tokens, finish reason, latency), transient LM errors are
retried with backoff, and a failure that remains is recorded on the example instead of ending the run.
"""

from __future__ import annotations

import contextvars
import dataclasses
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import dspy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.config import EvalConfig
from postreason_dspy.evaluation.probe import CallProbe
from postreason_dspy.evaluation.records import Compaction, RunStore
from postreason_dspy.evaluation.retry import RetryPolicy, with_retries
from postreason_dspy.evaluation.summary import Summary, summarize
from postreason_dspy.models import describe_lm, redact, resolve_lm


class BenchmarkLike(Protocol):
    """What the runner needs from a benchmark (see postreason_dspy.benchmarks.Benchmark)."""

    name: str
    family: str
    withhold_text: bool

    def load(
        self, split: str = ..., limit: int | None = ..., seed: int = ..., path: Any = ...
    ) -> list[dspy.Example]: ...
    def program(self, strategy: str = ..., **kwargs: Any) -> dspy.Module: ...
    def extract(self, pred_or_text: Any, example: dspy.Example | None = ...) -> str | None: ...
    def metric(self, example: dspy.Example, pred: Any, trace: Any = ...) -> bool: ...
    def source_description(self) -> str: ...


LMFactory = Callable[..., dspy.LM]
BenchmarkFactory = Callable[[str], BenchmarkLike]


def _default_benchmark(name: str) -> BenchmarkLike:
    from postreason_dspy.benchmarks import get_benchmark  # loads every task module: only when needed

    return get_benchmark(name)


@dataclass(frozen=True)
class Setting:
    model: str
    benchmark: str
    strategy: str

    @property
    def label(self) -> str:
        return f"{self.model} · {self.benchmark} · {self.strategy}"


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("postreason-dspy", "dspy", "litellm"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _total(values: Sequence[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def example_record(
    setting: Setting,
    bench: BenchmarkLike,
    example: dspy.Example,
    pred: dspy.Prediction | None,
    probe: CallProbe | None,
    attempts: int,
    error: Exception | None,
) -> dict[str, Any]:
    """One line of examples.jsonl: what was asked, what came back, whether it was right, what it cost."""
    calls = probe.calls if probe is not None else []
    group_field = getattr(bench, "macro_average_by", None)
    parse_error = pred.get("parse_error") if pred is not None else None
    completion = calls[-1].completion if calls else None
    if completion is None and pred is not None:
        completion = pred.get("completion")
    status = "error" if error is not None else "parse_error" if parse_error else "ok"
    return {
        "model": setting.model,
        "benchmark": setting.benchmark,
        "strategy": setting.strategy,
        "id": str(example.id),
        "inputs": None if bench.withhold_text else example.inputs().toDict(),
        "gold": str(example.answer),
        "group": example.get(group_field) if group_field else None,
        "status": status,
        "answer": bench.extract(pred, example) if pred is not None else None,
        "correct": bool(bench.metric(example, pred)) if pred is not None else None,
        "completion": completion,
        "parse_error": parse_error,
        "error": f"{type(error).__name__}: {error}" if error is not None else None,
        "prompt_tokens": _total([call.prompt_tokens for call in calls]),
        "completion_tokens": _total([call.completion_tokens for call in calls]),
        "latency_s": round(sum(call.latency_s for call in calls), 4) if calls else None,
        "finish_reason": calls[-1].finish_reason if calls else None,
        "lm_calls": len(calls),
        "attempts": attempts,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class _Tally:
    """Running figures of one setting for the progress line."""

    done: int = 0
    scored: int = 0
    correct: int = 0
    errors: int = 0
    tokens: int = 0
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, record: dict[str, Any]) -> None:
        self.done += 1
        if record["status"] == "error":
            self.errors += 1
            return
        self.scored += 1
        self.correct += bool(record["correct"])
        self.tokens += record.get("completion_tokens") or 0

    def fields(self) -> dict[str, str]:
        accuracy = f"{self.correct / self.scored:.1%}" if self.scored else "-"
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        return {"accuracy": accuracy, "rate": f"{rate:.1f}", "errors": str(self.errors)}


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("acc {task.fields[accuracy]}"),
        TextColumn("{task.fields[rate]} tok/s"),
        TextColumn("err {task.fields[errors]}"),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
    )


class Runner:
    """Executes a run's settings into its store; created by `start_run` or `resume_run`."""

    def __init__(
        self,
        store: RunStore,
        config: EvalConfig,
        lms: dict[str, dspy.LM],
        benchmarks: dict[str, BenchmarkLike],
        examples: dict[str, list[dspy.Example]],
        *,
        console: Console | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.store = store
        self.config = config
        self.lms = lms
        self.benchmarks = benchmarks
        self.examples = examples
        self.console = console
        self.retry = retry or RetryPolicy(retries=config.retries)

    def settings(self) -> list[Setting]:
        """In run order: for each model and benchmark, one strategy after another."""
        config = self.config
        return [Setting(m, b, s) for m in config.models for b in config.benchmarks for s in config.strategies]

    def run(self) -> Summary:
        """Run every example not yet recorded; the summary is written even when the run is interrupted."""
        done: dict[Setting, list[dict[str, Any]]] = {}
        for record in self.store.records():
            done.setdefault(Setting(record["model"], record["benchmark"], record["strategy"]), []).append(record)
        try:
            with _progress(self.console) as progress:
                for setting in self.settings():
                    self._run_setting(setting, done.get(setting, []), progress)
        finally:
            summary = summarize(self.store.records(), self.store.run_id, self.store.read_config())
            self.store.write_summary(summary.to_dict())
        return summary

    def _run_setting(self, setting: Setting, finished: list[dict[str, Any]], progress: Progress) -> None:
        bench = self.benchmarks[setting.benchmark]
        done = {record["id"] for record in finished}
        todo = [example for example in self.examples[setting.benchmark] if str(example.id) not in done]
        tally = _Tally()
        for record in finished:  # accuracy so far includes what an earlier session finished...
            tally.add(record)
        tally.tokens = 0  # ...but tokens/s is this session's rate
        task = progress.add_task(setting.label, total=tally.done + len(todo), completed=tally.done, **tally.fields())
        if not todo:
            return
        program = bench.program(setting.strategy, on_parse_error="mark")
        lm = self.lms[setting.model]
        with ThreadPoolExecutor(max_workers=self.config.threads, thread_name_prefix="postreason-eval") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, self._run_example, setting, bench, program, lm, example)
                for example in todo
            ]
            recorded: set[Future] = set()
            try:
                for future in as_completed(futures):
                    self._record(future, tally, progress, task)
                    recorded.add(future)
            except BaseException:
                # Interrupted: start nothing new, but keep what the examples already in flight return.
                for future in futures:
                    future.cancel()
                pool.shutdown(wait=True)
                for future in futures:
                    if future not in recorded and future.done() and not future.cancelled() and not future.exception():
                        self._record(future, tally, progress, task)
                raise

    def _record(self, future: Future, tally: _Tally, progress: Progress, task: TaskID) -> None:
        record = future.result()
        self.store.append(record)
        tally.add(record)
        progress.update(task, advance=1, **tally.fields())

    def _run_example(
        self, setting: Setting, bench: BenchmarkLike, program: dspy.Module, lm: dspy.LM, example: dspy.Example
    ) -> dict[str, Any]:
        probes: list[CallProbe] = []

        def attempt() -> dspy.Prediction:
            probe = CallProbe(lm)
            probes.append(probe)
            with dspy.context(lm=probe.lm):
                return program(**example.inputs())

        pred, attempts, error = with_retries(self.retry, attempt)
        return example_record(setting, bench, example, pred, probes[-1] if probes else None, attempts, error)


def _resolve_models(config: EvalConfig, lm_factory: LMFactory) -> dict[str, dspy.LM]:
    """One LM per model, with DSPy's own retries off (the runner retries, and times each attempt)."""
    lms = {}
    for model in config.models:
        lm = lm_factory(model, api_base=config.api_base, max_tokens=config.max_tokens,
                        temperature=config.temperature, cache=False)
        lms[model] = lm.copy(num_retries=0)
    return lms


def _load(
    config: EvalConfig, benchmark_factory: BenchmarkFactory
) -> tuple[dict[str, BenchmarkLike], dict[str, list[dspy.Example]]]:
    benchmarks = {name: benchmark_factory(name) for name in config.benchmarks}
    examples = {
        name: bench.load(split=config.split, limit=config.limit, seed=config.seed, path=config.data.get(name))
        for name, bench in benchmarks.items()
    }
    for name, loaded in examples.items():
        if not loaded:
            raise ConfigurationError(f"benchmark {name!r} has no {config.split} examples")
    return benchmarks, examples


def _config_document(
    config: EvalConfig,
    lms: dict[str, dspy.LM],
    benchmarks: dict[str, BenchmarkLike],
    examples: dict[str, list[dspy.Example]],
) -> dict[str, Any]:
    """config.json: the settings, how each model and benchmark resolved, which examples, which versions."""
    settings = config.to_dict()
    if settings["api_base"]:
        settings["api_base"] = redact(settings["api_base"])
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": config.command(),
        "config": settings,
        "models": {name: describe_lm(lm) for name, lm in lms.items()},
        "benchmarks": {
            name: {
                "family": bench.family,
                "source": bench.source_description(),
                "example_ids": [str(example.id) for example in examples[name]],
            }
            for name, bench in benchmarks.items()
        },
        "versions": _versions(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def start_run(
    config: EvalConfig,
    runs_dir: Path,
    *,
    run_id: str | None = None,
    lm_factory: LMFactory | None = None,
    benchmark_factory: BenchmarkFactory | None = None,
    console: Console | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[RunStore, Summary]:
    """Resolve the models and load the examples (failing before any directory is made), then run.

    The factories default to `resolve_lm` and the benchmark registry."""
    lms = _resolve_models(config, lm_factory or resolve_lm)
    benchmarks, examples = _load(config, benchmark_factory or _default_benchmark)
    document = _config_document(config, lms, benchmarks, examples)
    store = RunStore.create(runs_dir, document, run_id)
    if console is not None:
        console.print(f"[dim]run {store.path}[/]", highlight=False)
    runner = Runner(store, config, lms, benchmarks, examples, console=console, retry=retry)
    return store, runner.run()


def resume_run(
    store: RunStore,
    *,
    threads: int | None = None,
    retries: int | None = None,
    api_base: str | None = None,
    lm_factory: LMFactory | None = None,
    benchmark_factory: BenchmarkFactory | None = None,
    console: Console | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[Compaction, Summary]:
    """Continue `store`'s run with its own config: finished examples stay as they are, errored ones are redone.

    Only how the run executes may change (threads, retries, the server's URL); the examples must be the ones
    the run started with."""
    document = store.read_config()
    config = EvalConfig.from_dict(document["config"])
    changes = {"threads": threads, "retries": retries, "api_base": api_base}
    config = dataclasses.replace(config, **{name: value for name, value in changes.items() if value is not None})
    lms = _resolve_models(config, lm_factory or resolve_lm)
    benchmarks, examples = _load(config, benchmark_factory or _default_benchmark)
    for name, loaded in examples.items():
        if [str(example.id) for example in loaded] != document["benchmarks"][name]["example_ids"]:
            raise ConfigurationError(
                f"benchmark {name!r} no longer yields the examples run {store.run_id} started with "
                "(its data changed); start a new run instead"
            )
    compaction = store.compact()
    if console is not None:
        console.print(
            f"[dim]resuming {store.path}: {compaction.kept} examples done, {compaction.errors_dropped} failed ones "
            f"to redo, {compaction.lines_dropped} unfinished lines dropped[/]",
            highlight=False,
        )
    runner = Runner(store, config, lms, benchmarks, examples, console=console, retry=retry)
    return compaction, runner.run()
