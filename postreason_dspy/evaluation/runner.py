"""Run every (model, benchmark, strategy) setting on the same examples and record each answer as it lands.

A setting runs one strategy over all its examples before the next strategy starts: a local server's
greedy answers depend on its prompt-cache state, and interleaving strategies per example would change
that state between them. Within a setting, examples fan out over `threads`, each example calls the
model through its own probe (raw completion, tokens, finish reason, latency), transient LM errors are
retried with backoff, and a failure that remains is recorded on the example instead of ending the run.
Only a dead server ends a run early: after `DEAD_SERVER_FAILURES` examples in a row could not connect,
the run stops at once (every finished example is kept) and says how to resume it.

A saved program file (`EvalConfig.programs`) runs as a strategy of its own under its label. The run
holds a file lock on its directory, so a second `--resume` of a running run is refused.
"""

from __future__ import annotations

import contextvars
import dataclasses
import platform
import re
import shlex
import threading
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

from postreason_dspy.benchmarks.program_file import read_program
from postreason_dspy.errors import ConfigurationError, PostReasonError
from postreason_dspy.evaluation.config import EvalConfig
from postreason_dspy.evaluation.probe import CallProbe
from postreason_dspy.evaluation.records import Compaction, ExampleRecord, RunStore, Setting
from postreason_dspy.evaluation.retry import RetryPolicy, is_connection_failure, with_retries
from postreason_dspy.evaluation.scrub import MIN_SECRET_LENGTH, url_secrets
from postreason_dspy.evaluation.summary import Summary, summarize
from postreason_dspy.io import content_id
from postreason_dspy.models import describe_lm, redact, resolve_lm, served_model_ids

# Examples in a row whose LM calls could not connect (after their retries) before a run stops as a dead server.
DEAD_SERVER_FAILURES = 3


class ModelServerDown(PostReasonError):
    """The model server stopped accepting connections mid-run; the message holds the command that resumes it."""


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


def _score(bench: BenchmarkLike, example: dspy.Example, pred: dspy.Prediction) -> tuple[Any, bool | None, str | None]:
    """(answer, correct, problem): a metric or extractor that raises gives a problem instead of ending the run."""
    answer = None
    try:
        answer = bench.extract(pred, example)
        return answer, bool(bench.metric(example, pred)), None
    except Exception as exc:
        return answer, None, f"scoring failed: {type(exc).__name__}: {exc}"


WITHHELD = "text withheld"
_LETTER = re.compile(r"[A-Z]")


def _withheld(problem: str | None, error: Exception | None) -> str | None:
    """A problem's text without its message (a parse error quotes the completion): its kind and type only."""
    if problem is None:
        return None
    kind = "scoring failed: " if problem.startswith("scoring failed") else ""
    name = type(error).__name__ if error is not None else problem.removeprefix(kind).partition(":")[0]
    return f"{kind}{name} ({WITHHELD})"


def example_record(
    setting: Setting,
    bench: BenchmarkLike,
    example: dspy.Example,
    pred: dspy.Prediction | None,
    probe: CallProbe | None,
    attempts: int,
    error: Exception | None,
) -> ExampleRecord:
    """One line of examples.jsonl: what was asked, what came back, whether it was right, what it cost.

    A metric or extractor that raises is recorded on the example (status "error", `error` says "scoring
    failed"), so one odd answer cannot end a run. For a benchmark that withholds its text (GPQA) the
    record keeps nothing that can quote it: no inputs and no completion, the answer only when it is an
    option letter, and of a parse error or failure only its type."""
    calls = probe.calls if probe is not None else []
    group_field = getattr(bench, "macro_average_by", None)
    parse_error = pred.get("parse_error") if pred is not None else None
    completion = calls[-1].completion if calls else None
    if completion is None and pred is not None:
        completion = pred.get("completion")
    answer, correct, problem = _score(bench, example, pred) if pred is not None else (None, None, None)
    if error is not None:
        problem = f"{type(error).__name__}: {error}"
    if bench.withhold_text:
        completion, problem = None, _withheld(problem, error)
        answer = answer if isinstance(answer, str) and _LETTER.fullmatch(answer) else None
        parse_error = f"unparsed ({WITHHELD})" if parse_error else None
    return ExampleRecord(
        model=setting.model,
        benchmark=setting.benchmark,
        strategy=setting.strategy,
        id=str(example.id),
        inputs=None if bench.withhold_text else example.inputs().toDict(),
        gold=str(example.answer),
        group=example.get(group_field) if group_field else None,
        status="error" if problem is not None else "parse_error" if parse_error else "ok",
        answer=answer,
        correct=correct,
        completion=completion,
        parse_error=parse_error,
        error=problem,
        prompt_tokens=_total([call.prompt_tokens for call in calls]),
        completion_tokens=_total([call.completion_tokens for call in calls]),
        latency_s=round(sum(call.latency_s for call in calls), 4) if calls else None,
        finish_reason=calls[-1].finish_reason if calls else None,
        lm_calls=len(calls),
        attempts=attempts,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dataclass
class _Tally:
    """Running figures of one setting for the progress line."""

    done: int = 0
    scored: int = 0
    correct: int = 0
    errors: int = 0
    tokens: int = 0
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, record: ExampleRecord) -> None:
        self.done += 1
        if record.failed:
            self.errors += 1
            return
        self.scored += 1
        self.correct += bool(record.correct)
        self.tokens += record.completion_tokens or 0

    def fields(self) -> dict[str, str]:
        accuracy = f"{self.correct / self.scored:.1%}" if self.scored else "-"
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        return {"accuracy": accuracy, "rate": f"{rate:.1f}", "errors": str(self.errors)}


class _NotStarted(Exception):
    """An example skipped because the run is stopping."""


class _ServerWatch:
    """Counts the examples in a row, as they finish on any thread, whose LM calls could not connect; at
    `DEAD_SERVER_FAILURES` the server is taken for dead and no further example starts."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.last_error: str | None = None
        self.dead = threading.Event()
        self._lock = threading.Lock()

    def saw(self, record: ExampleRecord, lost_connection: bool) -> None:
        with self._lock:
            self.in_a_row = self.in_a_row + 1 if lost_connection else 0
            if lost_connection:
                self.last_error = record.error
            if self.in_a_row >= DEAD_SERVER_FAILURES:
                self.dead.set()


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
        self.watch = _ServerWatch()

    def run(self) -> Summary:
        """Run every example not yet recorded; the summary is written even when the run is interrupted."""
        done: dict[Setting, list[ExampleRecord]] = {}
        for record in self.store.records():
            done.setdefault(record.setting, []).append(record)
        try:
            with _progress(self.console) as progress:
                for setting in self.config.settings():
                    self._run_setting(setting, done.get(setting, []), progress)
        finally:
            summary = summarize(self.store.records(), self.store.run_id, self.store.read_config())
            self.store.write_summary(summary.to_dict())
        return summary

    def _program(self, setting: Setting, bench: BenchmarkLike) -> dspy.Module:
        """The setting's program: the benchmark's for a named strategy, or the one saved in a program file."""
        path = self.config.programs.get(setting.strategy)
        if path is None:
            return bench.program(setting.strategy, on_parse_error="mark")
        return read_program(path).build(overrides={"on_parse_error": "mark"})

    def _run_setting(self, setting: Setting, finished: list[ExampleRecord], progress: Progress) -> None:
        bench = self.benchmarks[setting.benchmark]
        done = {record.id for record in finished}
        todo = [example for example in self.examples[setting.benchmark] if str(example.id) not in done]
        tally = _Tally()
        for record in finished:  # accuracy so far includes what an earlier session finished...
            tally.add(record)
        tally.tokens = 0  # ...but tokens/s is this session's rate
        task = progress.add_task(setting.label, total=tally.done + len(todo), completed=tally.done, **tally.fields())
        if not todo:
            return
        program = self._program(setting, bench)
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
                    if self.watch.dead.is_set():
                        raise self._server_down()
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

    def _server_down(self) -> ModelServerDown:
        command = f"postreason eval --resume {shlex.quote(str(self.store.path))}"
        if self.config.api_base:
            command += f" --api-base {shlex.quote(redact(self.config.api_base))}"
        return ModelServerDown(self.store.scrub(
            f"the model server stopped answering ({DEAD_SERVER_FAILURES} examples in a row could not connect; "
            f"last: {self.watch.last_error}). Every finished example is kept; once the server is back, finish the "
            f"run with: {command}"
        ))

    def _run_example(
        self, setting: Setting, bench: BenchmarkLike, program: dspy.Module, lm: dspy.LM, example: dspy.Example
    ) -> ExampleRecord:
        if self.watch.dead.is_set():
            raise _NotStarted  # the server is gone: examples still queued are left for --resume
        probes: list[CallProbe] = []

        def attempt() -> dspy.Prediction:
            probe = CallProbe(lm)
            probes.append(probe)
            with dspy.context(lm=probe.lm):
                return program(**example.inputs())

        pred, attempts, error = with_retries(self.retry, attempt)
        record = example_record(setting, bench, example, pred, probes[-1] if probes else None, attempts, error)
        self.watch.saw(record, error is not None and is_connection_failure(error))
        return record


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


def _programs(config: EvalConfig) -> dict[str, dict[str, Any]]:
    """What config.json records of each program file: its path, what it was saved for, and its content id
    (so `--resume` refuses a file that changed). Refuses a file saved for another benchmark than the run's."""
    described = {}
    for label, path in config.programs.items():
        saved = read_program(path)
        for name in config.benchmarks:
            if name != saved.benchmark:
                raise ConfigurationError(
                    f"program {label!r} ({path}) was saved for benchmark {saved.benchmark!r}, but this run evaluates "
                    f"benchmark {name!r}; run it with --benchmark {saved.benchmark}"
                )
        described[label] = {
            "path": str(path),
            "benchmark": saved.benchmark,
            "strategy": saved.strategy,
            "content_id": content_id(Path(path).read_text(encoding="utf-8")),
        }
    return described


def _secrets(config: EvalConfig, lms: dict[str, dspy.LM]) -> list[str]:
    """What no file of the run may contain besides the environment's secrets: API keys and URL passwords."""
    found = url_secrets(config.api_base)
    for lm in lms.values():
        found += url_secrets(lm.kwargs.get("api_base"))
        key = lm.kwargs.get("api_key")
        if isinstance(key, str) and len(key) >= MIN_SECRET_LENGTH:
            found.append(key)
    return found


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
        "programs": _programs(config),
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
    """Resolve the models, load the examples and read the program files (failing before any directory is
    made), then run. The factories default to `resolve_lm` and the benchmark registry."""
    lms = _resolve_models(config, lm_factory or resolve_lm)
    benchmarks, examples = _load(config, benchmark_factory or _default_benchmark)
    document = _config_document(config, lms, benchmarks, examples)
    store = RunStore.create(runs_dir, document, run_id, extra_secrets=_secrets(config, lms))
    if console is not None:
        console.print(f"[dim]run {store.path}[/]", highlight=False)
    with store.lock():
        runner = Runner(store, config, lms, benchmarks, examples, console=console, retry=retry)
        return store, runner.run()


def _check_programs(store: RunStore, document: dict[str, Any], config: EvalConfig) -> None:
    """A resumed run must evaluate the very program files it started with."""
    started = document.get("programs", {})
    for label, now in _programs(config).items():
        if started.get(label, {}).get("content_id") != now["content_id"]:
            raise ConfigurationError(
                f"program file {now['path']} ({label}) changed since run {store.run_id} started; "
                "results of two versions would mix: start a new run instead"
            )


def _check_served_model(
    store: RunStore, document: dict[str, Any], lms: dict[str, dspy.LM], api_base: str | None, console: Console | None
) -> None:
    """Refuse to resume against a server that serves another model than the run's: compare the model id a
    new `api_base` lists under /models and, for the embedded server (always "local"), the weights it runs."""
    for name, lm in lms.items():
        started = document["models"].get(name, {})
        if api_base:
            _check_model_id(store, str(started.get("model", "")).partition("/")[2], lm, api_base, console)
        weights, now = started.get("local_model"), describe_lm(lm).get("local_model")
        if weights and now and weights != now:
            raise ConfigurationError(
                f"the local server runs {now}, but run {store.run_id} used {weights}: "
                f"start it with `postreason local up --model {weights}`, or start a new run"
            )


def _check_model_id(store: RunStore, wanted: str, lm: dspy.LM, api_base: str, console: Console | None) -> None:
    where = redact(api_base)
    served = served_model_ids(api_base, lm.kwargs.get("api_key"))
    if served is None:
        if console is not None:
            console.print(f"[yellow]note: {where} does not list its models (no /models); "
                          f"not checked that it serves {wanted}[/]", highlight=False)
    elif wanted not in served:
        raise ConfigurationError(
            f"the server at {where} serves {', '.join(served) or 'no model'}, not {wanted!r} that run "
            f"{store.run_id} used; resume against a server with that model, or start a new run"
        )


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

    Only how the run executes may change (threads, retries, the server's URL, which must serve the run's
    model); the examples and program files must be the ones the run started with."""
    with store.lock():
        document = store.read_config()
        config = EvalConfig.from_dict(document["config"])
        changes = {"threads": threads, "retries": retries, "api_base": api_base}
        config = dataclasses.replace(config, **{name: value for name, value in changes.items() if value is not None})
        lms = _resolve_models(config, lm_factory or resolve_lm)
        store.add_secrets(_secrets(config, lms))
        _check_served_model(store, document, lms, api_base, console)
        _check_programs(store, document, config)
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
                f"[dim]resuming {store.path}: {compaction.kept} examples done, {compaction.errors_dropped} failed "
                f"ones to redo, {compaction.lines_dropped} unfinished lines dropped[/]",
                highlight=False,
            )
        runner = Runner(store, config, lms, benchmarks, examples, console=console, retry=retry)
        return compaction, runner.run()
