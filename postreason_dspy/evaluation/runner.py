"""Run every (model, benchmark, strategy) setting on the same examples and record each answer as it lands.

A setting runs one strategy over all its examples before the next strategy starts: a local server's
greedy answers depend on its prompt-cache state, and interleaving strategies per example would change
that state between them. Within a setting, examples fan out over `threads`, each example calls the
model through its own counted copy (raw completion, tokens, finish reason, latency), transient LM errors are
retried with backoff, and a failure that remains is recorded on the example instead of ending the run.
Only a dead server or a signal ends a run early: after `DEAD_SERVER_FAILURES` examples in a row could not
connect, or after SIGINT/SIGTERM (postreason_dspy.interrupt: examples in flight finish their current LM
call), no further example starts, every finished one is kept, and the error says how to resume.

A saved program file (`EvalConfig.programs`) runs as a strategy of its own under its label. Starting or
resuming a run (models, examples, the checks a resume makes) is postreason_dspy.evaluation.session's.
"""

from __future__ import annotations

import contextvars
import dataclasses
import shlex
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import dspy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from postreason_dspy import interrupt
from postreason_dspy.benchmarks.program_file import read_program
from postreason_dspy.errors import PostReasonError
from postreason_dspy.evaluation.config import EvalConfig
from postreason_dspy.evaluation.example import BenchmarkLike, example_record
from postreason_dspy.evaluation.records import ExampleRecord, RunStore, Setting
from postreason_dspy.evaluation.retry import RetryPolicy, is_connection_failure, with_retries
from postreason_dspy.evaluation.summary import Summary, summarize
from postreason_dspy.formatting import pct
from postreason_dspy.secrets import redact
from postreason_dspy.usage import UsageCounter, counted_copy

# Examples in a row whose LM calls could not connect (after their retries) before a run stops as a dead server.
DEAD_SERVER_FAILURES = 3


class ModelServerDown(PostReasonError):
    """The model server stopped accepting connections mid-run; the message holds the command that resumes it."""


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
        accuracy = pct(self.correct / self.scored if self.scored else None)
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
            with interrupt.resume_with(self.resume_command()), _progress(self.console) as progress:
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
                    interrupt.check()
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

    def resume_command(self) -> str:
        """The command that finishes this run."""
        command = f"postreason eval --resume {shlex.quote(str(self.store.path))}"
        if self.config.api_base:
            command += f" --api-base {shlex.quote(redact(self.config.api_base))}"
        return command

    def _server_down(self) -> ModelServerDown:
        command = self.resume_command()
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
        interrupt.check()  # stopping: examples still queued are left for --resume too
        counters: list[UsageCounter] = []

        def attempt() -> dspy.Prediction:
            copy, counter = counted_copy(lm)
            counters.append(counter)
            with dspy.context(lm=copy):
                return program(**example.inputs())

        pred, attempts, error = with_retries(self.retry, attempt)
        record = example_record(setting, bench, example, pred, counters[-1] if counters else None, attempts, error)
        self.watch.saw(record, error is not None and is_connection_failure(error))
        return record
