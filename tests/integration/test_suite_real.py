"""`postreason eval --suite offline --limit 2` end to end on the real local model: every benchmark whose
data is on this machine is loaded, answered by both strategies, scored and recorded, and the study
report reads the run."""

from __future__ import annotations

import json

import pytest

from postreason_dspy.benchmarks.suites import suite_benchmarks
from postreason_dspy.cli import main

pytestmark = pytest.mark.integration


def test_offline_suite_runs_every_local_benchmark(real_base_url, tmp_path, capsys):
    expected = suite_benchmarks(["offline"])
    code = main(["eval", "--suite", "offline", "--strategy", "direct,post", "--limit", "2", "--api-base",
                 real_base_url, "--runs-dir", str(tmp_path), "--run-id", "suite", "--no-progress"])
    assert code == 0, capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "suite" / "examples.jsonl").read_text().splitlines()]
    assert {(r["benchmark"], r["strategy"]) for r in records} == {(b, s) for b in expected
                                                                  for s in ("direct", "post")}
    assert len(records) == 4 * len(expected)
    assert all(r["status"] in ("ok", "parse_error") and r["completion_tokens"] for r in records)
    assert main(["report", "suite", "--study", "--runs-dir", str(tmp_path), "--no-plots"]) == 0
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert {row["benchmark"] for row in study["rows"]} == set(expected)
