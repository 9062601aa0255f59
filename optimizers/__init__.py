"""Optimizers that tune post-reasoning programs per model (DSPy Teleprompters)."""

from optimizers.post_reason_search import PostReasonSearch
from optimizers.wordings import POST_REASONING_WORDINGS

__all__ = ["POST_REASONING_WORDINGS", "PostReasonSearch"]
