"""Start a run or resume one: everything that must hold before the first example is asked.

A new run resolves its models, loads its examples and reads its program files before any directory is
made, so bad input fails without leaving a half-made run behind; config.json records how each resolved.
A resumed run must evaluate the same examples and program files against the same model, only how it
executes (threads, retries, the server's URL) may change. Either holds a file lock on the run's
directory while it runs, so a second `--resume` of a running run is refused.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import dspy
from rich.console import Console

from postreason_dspy.benchmarks.program_file import read_program
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.config import EvalConfig
from postreason_dspy.evaluation.example import BenchmarkLike
from postreason_dspy.evaluation.records import Compaction, RunStore
from postreason_dspy.evaluation.retry import RetryPolicy
from postreason_dspy.evaluation.reuse import Source, reusable
from postreason_dspy.evaluation.runner import Runner
from postreason_dspy.evaluation.summary import Summary
from postreason_dspy.io import changed_settings, content_id, refuse_changes
from postreason_dspy.models import describe_lm, resolve_lm, served_model_ids
from postreason_dspy.secrets import MIN_SECRET_LENGTH, redact, url_secrets

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
    reuse: Sequence[Source] = (),
) -> tuple[RunStore, Summary]:
    """Resolve the models, load the examples and read the program files (failing before any directory is
    made), then run. The factories default to `resolve_lm` and the benchmark registry. Arms that a run in
    `reuse` answered whole under the same settings are copied from it, not asked again (config.json's
    "reused" says from where)."""
    benchmarks, examples = _load(config, benchmark_factory or _default_benchmark)  # a typo in a name first
    lms = _resolve_models(config, lm_factory or resolve_lm)
    document = _config_document(config, lms, benchmarks, examples)
    reused = reusable(document, reuse)
    if reuse:
        document["reused"] = reused.arms
    store = RunStore.create(runs_dir, document, run_id, extra_secrets=_secrets(config, lms))
    if console is not None:
        console.print(f"[dim]run {store.path}[/]", highlight=False)
        for line in [*(f"{arm}: reused from {run}" for arm, run in reused.arms.items()), *reused.refusals]:
            console.print(f"[dim]{line}[/]", highlight=False)
    with store.lock():
        for record in reused.records:
            store.append(record)
        runner = Runner(store, config, lms, benchmarks, examples, console=console, retry=retry)
        return store, runner.run()


def _check_programs(store: RunStore, document: dict[str, Any], config: EvalConfig) -> None:
    """A resumed run must evaluate the very program files it started with."""
    programs = _programs(config)
    started = {label: entry.get("content_id") for label, entry in document.get("programs", {}).items()}
    changed = changed_settings(started, {label: entry["content_id"] for label, entry in programs.items()}, programs)
    refuse_changes([f"{label}: {programs[label]['path']}" for label in changed],
                   f"program files changed since run {store.run_id} started",
                   "results of two versions would mix: start a new run instead")


def _check_examples(store: RunStore, document: dict[str, Any], examples: dict[str, list[dspy.Example]]) -> None:
    """A resumed run must ask the very examples it started with."""
    started = {name: document["benchmarks"][name]["example_ids"] for name in examples}
    now = {name: [str(example.id) for example in loaded] for name, loaded in examples.items()}
    refuse_changes(changed_settings(started, now), f"the benchmarks no longer yield the examples run {store.run_id} "
                   "started with", "their data changed: start a new run instead")


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
        _check_examples(store, document, examples)
        compaction = store.compact()
        if console is not None:
            console.print(
                f"[dim]resuming {store.path}: {compaction.kept} examples done, {compaction.errors_dropped} failed "
                f"ones to redo, {compaction.lines_dropped} unfinished lines dropped[/]",
                highlight=False,
            )
        runner = Runner(store, config, lms, benchmarks, examples, console=console, retry=retry)
        return compaction, runner.run()
