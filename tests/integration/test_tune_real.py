"""`postreason tune` on the real model, kept small (about 40 calls): the search runs with justified demos
bootstrapped from the model's own correct answers, and the held-out comparison is recorded."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from postreason_dspy.io import JsonlLog
from postreason_dspy.optimizers.demos import read_demo_sets
from postreason_dspy.tuning import TuneConfig, TuneRun
from postreason_dspy.tuning.run import TUNE_SEARCH

pytestmark = pytest.mark.integration


def test_tune_on_the_real_model_end_to_end(tmp_path, real_lm):
    config = TuneConfig(models=("real",), benchmark="commonsense_qa", train_size=6, dev_size=5, limit=5,
                        search=replace(TUNE_SEARCH, num_trials=3, num_demo_sets=1, max_bootstrapped_demos=2))
    run = TuneRun.create(tmp_path, config, "real", lm_factory=lambda *a, **k: real_lm)
    row = run.run()["models"]["real"]
    folder = run.path / "real"
    lines = JsonlLog(folder / "trials.jsonl").read()[0]
    assert [line["state"] for line in lines].count("complete") == 3 and lines[0]["baseline"]
    for entry in read_demo_sets(folder / "demo_sets.json")["sets"]:  # the model's own justifications
        assert all(demo["rationale"].strip() for demo in entry["demos"][0])
    assert set(row["test"]) >= {"direct", "untuned", "tuned"} and row["test_size"] == 5
    assert row["recommendation"] in ("direct", "untuned", "tuned")
    records = (folder / "test" / "examples.jsonl").read_text().splitlines()
    assert len(records) == 15 and all(json.loads(r)["status"] != "error" for r in records)
