"""Optimizers that tune post-reasoning programs per model (DSPy Teleprompters)."""

from postreason_dspy.optimizers.post_reason_search import PostReasonSearch
from postreason_dspy.optimizers.settings import SearchSettings
from postreason_dspy.optimizers.wordings import POST_REASONING_WORDINGS

__all__ = ["POST_REASONING_WORDINGS", "PostReasonSearch", "SearchSettings"]
