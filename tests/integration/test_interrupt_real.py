"""Against the real model server: Ctrl-C to the process group of `postreason eval --benchmark commonsense_qa
--strategy direct,post --limit 20` (the run issue 22 found going on to the end) stops it within one LM call with
exit code 130 and the resume line, and `--resume` then finishes it with every record once."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

POSTREASON = str(Path(sys.executable).with_name("postreason"))
LIMIT = 20
ONE_LM_CALL_S = 180  # the slowest answer of the small local model on a busy 2-core machine, with teardown


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ctrl_c_stops_a_real_eval_within_one_lm_call_and_resume_finishes_it(tmp_path, real_base_url):
    model = os.environ.get("POSTREASON_TEST_MODEL", "local")
    runs = tmp_path / "runs"
    command = [POSTREASON, "eval", "--model", model, "--api-base", real_base_url, "--benchmark", "commonsense_qa",
               "--strategy", "direct,post", "--limit", str(LIMIT), "--runs-dir", str(runs), "--run-id", "r",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True)  # a process group of its own, as a terminal's job
    examples = runs / "r" / "examples.jsonl"
    deadline = time.monotonic() + 600
    while len(lines(examples)) < 3:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "fewer than 3 answers in 10 minutes"
        time.sleep(0.5)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=ONE_LM_CALL_S + 60)
    assert process.returncode == 130, err
    assert time.monotonic() - sent < ONE_LM_CALL_S
    (line,) = [line for line in err.splitlines() if "resume with: " in line]
    resume = shlex.split(line.split("resume with: ", 1)[1])
    assert resume[:4] == ["postreason", "eval", "--resume", str(runs / "r")]
    before = lines(examples)
    assert 3 <= len(before) < 2 * LIMIT

    done = subprocess.run([POSTREASON, *resume[1:], "--no-progress"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=3600)
    assert done.returncode == 0, done.stderr
    after = lines(examples)
    finished = [record for record in before if record["status"] != "error"]  # failed ones are redone
    assert after[: len(finished)] == finished  # what finished before the interrupt is kept as it was
    keys = [(record["strategy"], record["id"]) for record in after]
    assert len(keys) == len(set(keys)) == 2 * LIMIT
    assert json.loads((runs / "r" / "summary.json").read_text())["complete"]
