"""Shared fixtures: every unit test gets a fresh DSPy configuration; `data_dir` is an empty benchmark data folder."""

from __future__ import annotations

import dspy
import pytest


@pytest.fixture(autouse=True)
def _fresh_dspy_settings():
    with dspy.context(lm=None, adapter=None):
        yield


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty folder benchmarks read their files from, with the Hugging Face hub offline."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("POSTREASON_DATA_DIR", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder
