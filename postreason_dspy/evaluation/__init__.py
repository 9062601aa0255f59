"""Evaluation harness: run strategies x models x benchmarks, record every answer, report the study's figures.

    store, summary = start_run(EvalConfig(benchmarks=("gsm8k",), strategies=("direct", "post")), Path("runs"))
    write_report(store)
"""

from postreason_dspy.evaluation.config import BASELINE, DEFAULT_LIMIT, DEFAULT_STRATEGIES, EvalConfig
from postreason_dspy.evaluation.records import RECORD_FORMAT, ExampleRecord, RunStore, Setting
from postreason_dspy.evaluation.report import (
    render_comparison,
    render_summary,
    terminal,
    write_comparison,
    write_report,
)
from postreason_dspy.evaluation.retry import RetryPolicy
from postreason_dspy.evaluation.runner import ModelServerDown
from postreason_dspy.evaluation.session import resume_run, start_run
from postreason_dspy.evaluation.summary import Summary, compare_runs, summarize

__all__ = [
    "BASELINE",
    "DEFAULT_LIMIT",
    "DEFAULT_STRATEGIES",
    "RECORD_FORMAT",
    "EvalConfig",
    "ExampleRecord",
    "ModelServerDown",
    "RetryPolicy",
    "RunStore",
    "Setting",
    "Summary",
    "compare_runs",
    "render_comparison",
    "render_summary",
    "resume_run",
    "start_run",
    "summarize",
    "terminal",
    "write_comparison",
    "write_report",
]
