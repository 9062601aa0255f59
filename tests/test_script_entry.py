"""The scripts under scripts/ and the `postreason` command end the same way on bad input: one "error:" line
and exit code 2 (postreason_dspy.cli.run_entry), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from postreason_dspy.cli import run_entry
from postreason_dspy.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]


def test_a_postreason_error_is_one_line_and_exit_code_2(capsys):
    def work() -> int:
        raise ConfigurationError("unknown benchmark 'nope'")

    assert run_entry(work) == 2
    assert capsys.readouterr().err.strip() == "error: unknown benchmark 'nope'"
    assert run_entry(lambda: 0) == 0 and run_entry(lambda: None) == 0 and run_entry(lambda: 3) == 3


def test_other_exceptions_are_not_swallowed():
    def work() -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_entry(work)


@pytest.mark.parametrize("script, arguments, problem", [
    ("compare_optimizers.py", ["--benchmark", "nope", "--model", "local", "--run-id", "x"], "unknown benchmark 'nope'"),
    ("measure_finetune.py", ["--run-id", "x", "--benchmark", "nope", "--plan"], "unknown benchmark 'nope'"),
    ("measure_finetune.py", ["--run-id", "x", "--base-run", "no-such-run", "--plan"], "no run 'no-such-run'"),
])
def test_scripts_report_bad_input_in_one_line(tmp_path, script, arguments, problem):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *arguments], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.lstrip().startswith(f"error: {problem}") and "Traceback" not in done.stderr


def test_eval_names_an_unknown_benchmark_before_it_resolves_the_model(tmp_path, monkeypatch, capsys):
    from postreason_dspy.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # resolving this model would fail too, for its key
    assert main(["eval", "--benchmark", "nope", "--model", "openai/gpt-4o-mini", "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown benchmark 'nope'")
    assert not any(tmp_path.iterdir())  # no half-made run
