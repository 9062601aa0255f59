"""postreason-dspy: post-reasoning for DSPy. The model answers first and justifies after."""

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
from postreason_dspy.strategies import STRATEGIES, ChainOfThought, Direct, make_strategy

__all__ = [
    "DEFAULT_INSTRUCTION",
    "STRATEGIES",
    "ChainOfThought",
    "CompletionParseError",
    "ConfigurationError",
    "Direct",
    "PostReason",
    "PostReasonError",
    "StateMismatchError",
    "StrictPredict",
    "UnsupportedAdapterError",
    "make_strategy",
    "post_reason_signature",
    "resolve_lm",
    "with_mode",
]
