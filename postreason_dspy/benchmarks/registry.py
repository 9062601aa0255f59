"""The benchmark registry: every command finds benchmarks here by name; `register_benchmark` adds your own."""

from __future__ import annotations

from postreason_dspy.benchmarks.base import Benchmark
from postreason_dspy.benchmarks.bbh import bbh_benchmark
from postreason_dspy.benchmarks.choice_tasks import choice_benchmarks
from postreason_dspy.benchmarks.math_tasks import math_benchmarks
from postreason_dspy.benchmarks.olmo_tasks import olmo_benchmarks
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.scoring import BBH_TASKS
from postreason_dspy.strategies import check_name

_BENCHMARKS: dict[str, Benchmark] = {
    bench.name: bench for bench in (*math_benchmarks(), *choice_benchmarks(), bbh_benchmark(), *olmo_benchmarks())
}
BUILT_IN: frozenset[str] = frozenset(_BENCHMARKS)


def register_benchmark(benchmark: Benchmark, *, replace: bool = False) -> None:
    """Add `benchmark` under its `name`, for `get_benchmark`, `postreason eval --benchmark` and `benchmarks`.

    The name (lowercase letters, digits, '_', '-', '.') must be new unless `replace=True`. For the
    command line, the module that calls this must be imported: see POSTREASON_PLUGINS in `postreason_dspy.cli`.
    """
    if not isinstance(benchmark, Benchmark):
        raise ConfigurationError(f"register_benchmark takes a Benchmark, not {type(benchmark).__name__}")
    check_name("benchmark", benchmark.name)
    if benchmark.name in _BENCHMARKS and not replace:
        raise ConfigurationError(
            f"benchmark {benchmark.name!r} is already registered; pass replace=True to replace it"
        )
    _BENCHMARKS[benchmark.name] = benchmark


def list_benchmarks() -> list[Benchmark]:
    """Every benchmark, built-in ones first in the registry's order (BBH once, for all its tasks)."""
    return list(_BENCHMARKS.values())


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; "bbh:<task>" is one BBH task. Unknown names raise ConfigurationError."""
    key = name.strip().lower()
    if key.startswith("bbh:"):
        task = key.removeprefix("bbh:")
        if task not in BBH_TASKS:
            raise ConfigurationError(f"unknown BBH task {task!r}; choose from {', '.join(BBH_TASKS)}")
        return bbh_benchmark(task)
    try:
        return _BENCHMARKS[key]
    except KeyError:
        raise ConfigurationError(f"unknown benchmark {name!r}; {_choices()}") from None


def _choices() -> str:
    """The names to choose from, with registered ones apart (or how to register one when there are none)."""
    built_in = [name for name in _BENCHMARKS if name in BUILT_IN]
    added = [name for name in _BENCHMARKS if name not in BUILT_IN]
    text = f"choose from {', '.join(built_in)}, or bbh:<task>"
    if added:
        return f"{text}; registered: {', '.join(added)}"
    return f"{text} (add your own with register_benchmark, loaded by the CLI through POSTREASON_PLUGINS)"
