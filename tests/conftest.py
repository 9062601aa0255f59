"""Shared fixtures: every unit test gets a fresh DSPy configuration."""

from __future__ import annotations

import dspy
import pytest


@pytest.fixture(autouse=True)
def _fresh_dspy_settings():
    with dspy.context(lm=None, adapter=None):
        yield
