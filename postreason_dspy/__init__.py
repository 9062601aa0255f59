"""postreason-dspy: post-reasoning for DSPy. The model answers first and justifies after."""

from importlib import import_module
from typing import Any

from postreason_dspy.adapters import PlainTextAdapter
from postreason_dspy.bound_adapter import with_adapter
from postreason_dspy.errors import (
    CompletionParseError,
    ConfigurationError,
    PostReasonError,
    StateMismatchError,
    UnsupportedAdapterError,
)
from postreason_dspy.models import resolve_lm
from postreason_dspy.modules import PostReason, with_mode
from postreason_dspy.predict import StrictPredict
from postreason_dspy.signatures import DEFAULT_INSTRUCTION, post_reason_signature
from postreason_dspy.strategies import Direct, StrictChainOfThought, list_strategies, make_strategy, register_strategy
from postreason_dspy.streaming import stream_answer
from postreason_dspy.testing import scripted_lm

__all__ = [
    "DEFAULT_INSTRUCTION",
    "CompletionParseError",
    "ConfigurationError",
    "Direct",
    "PlainTextAdapter",
    "PostReason",
    "PostReasonError",
    "StateMismatchError",
    "StrictChainOfThought",
    "StrictPredict",
    "UnsupportedAdapterError",
    "list_strategies",
    "make_strategy",
    "post_reason_signature",
    "register_benchmark",
    "register_strategy",
    "resolve_lm",
    "scripted_lm",
    "stream_answer",
    "with_adapter",
    "with_mode",
]

# Names served from a later layer (core <- programs <- benchmarks): imported on first use, so that
# `import postreason_dspy` stays light and the benchmarks, which import the core, find it complete.
_LAZY = {"register_benchmark": "postreason_dspy.benchmarks.registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
