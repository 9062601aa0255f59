"""Ctrl-C and SIGTERM on real processes: `postreason eval` against a scripted OpenAI-compatible server, sent the
signal to its process group (what a terminal's Ctrl-C does) mid-run, stops within one LM call with the exit code
and the resume line, and the resumed run ends with every record once. Plus the interrupt module's own parts."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dspy
import pytest
import test_finetune
from test_finetune import make_record, needs_train, tiny_model

from postreason_dspy import interrupt
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.distill import distill
from postreason_dspy.evaluation.retry import RetryPolicy, with_retries
from postreason_dspy.finetune.base import BaseModel
from postreason_dspy.finetune.data import parse_record
from postreason_dspy.finetune.train import TrainConfig
from postreason_dspy.testing import render, scripted_lm

POSTREASON = str(Path(sys.executable).with_name("postreason"))
GOLD = re.compile(r"gold-([A-E])")
LIMIT = 20  # x 2 strategies = 40 LM calls, one example at a time
STARTUP_S = 120  # importing DSPy and litellm on a busy 2-core machine
STOP_S = 15  # signal -> exit: the LM call in flight (0.25 s), the summary, the interpreter's teardown
qwen_tokenizer = test_finetune.tokenizer  # the fine-tuning tests' fixture, under this name here


class ScriptedServer:
    """An OpenAI-compatible chat server on a thread: each answer is right and takes `delay` seconds, written in
    the format the prompt asks for (postreason_dspy.testing.render), cut at the request's stop strings. While
    `failing` is set it answers 429 with a Retry-After of a minute instead."""

    def __init__(self, delay: float = 0.25):
        self.delay = delay
        self.failing = False
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner._lock:
                    owner.requests += 1
                if owner.failing:
                    self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "60"})
                    return
                time.sleep(owner.delay)
                user = body["messages"][-1]["content"]
                gold = GOLD.search(user).group(1)
                text = render(user, {"answer": gold, "rationale": f"{gold} fits", "reasoning": "it fits"})
                for stop in body.get("stop") or []:
                    text = text.split(stop)[0]
                self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split()),
                              "total_tokens": len(user.split()) + len(text.split())},
                })

            def _send(self, status: int, document: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def wait_for(self, requests: int, timeout: float = STARTUP_S) -> None:
        deadline = time.monotonic() + timeout
        while self.requests < requests:
            assert time.monotonic() < deadline, f"only {self.requests} requests in {timeout} s"
            time.sleep(0.02)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    threading.Thread(target=scripted.httpd.serve_forever, daemon=True).start()
    yield scripted
    scripted.httpd.shutdown()
    scripted.httpd.server_close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [{"id": f"q{i}", "question": f"question {i} gold-{'ABCDE'[i % 5]}?", "answerKey": "ABCDE"[i % 5],
             "choices": {"label": list("ABCDE"), "text": [f"option {x}" for x in "abcde"]}} for i in range(60)]
    path = tmp_path / "csqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "sk-test", "HF_HUB_OFFLINE": "1",
            "POSTREASON_DATA_DIR": str(tmp_path / "no-data"), "POSTREASON_PLUGINS": ""}


def start(command: list[str], tmp_path: Path, in_background: bool = False) -> subprocess.Popen:
    """A command in a process group of its own, as a terminal starts a job; `in_background` as a script's
    `command &` does, with SIGINT ignored (Python then leaves Ctrl-C ignored: the run went on to the end)."""
    if in_background:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=environment(tmp_path), start_new_session=True)


def eval_command(server: ScriptedServer, data: Path, runs: Path, *extra: str) -> list[str]:
    return [POSTREASON, "eval", "--model", "openai/scripted", "--api-base", server.url, "--benchmark", "commonsense_qa",
            "--data", f"commonsense_qa={data}", "--strategy", "direct,post", "--limit", str(LIMIT),
            "--runs-dir", str(runs), "--run-id", "r", "--no-progress", *extra]


def stop(process: subprocess.Popen, signum: int) -> tuple[float, str]:
    """Send `signum` to the process group; (seconds until it exited, its stderr)."""
    sent = time.monotonic()
    os.killpg(process.pid, signum)
    _, err = process.communicate(timeout=60)
    return time.monotonic() - sent, err


def resume_line(err: str) -> list[str]:
    (line,) = [line for line in err.splitlines() if "resume with: " in line]
    return shlex.split(line.split("resume with: ", 1)[1])


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "examples.jsonl").read_text().splitlines()]


def test_ctrl_c_to_the_process_group_stops_eval_within_one_lm_call_and_resume_loses_nothing(tmp_path, server, data):
    runs = tmp_path / "runs"
    process = start(eval_command(server, data, runs), tmp_path, in_background=True)
    server.wait_for(8)
    seconds, err = stop(process, signal.SIGINT)
    at_signal = server.requests
    assert process.returncode == 130, err
    assert seconds < STOP_S
    assert server.requests - at_signal <= 1  # the call in flight finished; no new one started
    assert resume_line(err) == ["postreason", "eval", "--resume", str(runs / "r"), "--api-base", server.url]
    before = records(runs / "r")
    assert 8 <= len(before) < 2 * LIMIT and not json.loads((runs / "r" / "summary.json").read_text())["complete"]

    done = subprocess.run([POSTREASON, *resume_line(err)[1:], "--no-progress"], capture_output=True, text=True,
                          cwd=tmp_path, env=environment(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    after = records(runs / "r")
    assert after[: len(before)] == before  # kept as they were, none redone
    keys = [(record["strategy"], record["id"]) for record in after]
    assert len(keys) == len(set(keys)) == 2 * LIMIT and all(record["correct"] for record in after)
    assert json.loads((runs / "r" / "summary.json").read_text())["complete"]


def test_ctrl_c_stops_tune_within_one_lm_call_and_resume_finishes_it(tmp_path, server, data):
    runs = tmp_path / "runs"
    command = [POSTREASON, "tune", "--model", "openai/scripted", "--api-base", server.url, "--benchmark",
               "commonsense_qa", "--data", str(data), "--trials", "4", "--train-size", "4", "--dev-size", "6",
               "--limit", "6", "--demo-sets", "1", "--max-demos", "1", "--runs-dir", str(runs), "--run-id", "t",
               "--no-progress"]
    process = start(command, tmp_path, in_background=True)
    server.wait_for(10)  # inside the search
    seconds, err = stop(process, signal.SIGINT)
    at_signal = server.requests
    assert process.returncode == 130, err
    assert seconds < STOP_S and server.requests - at_signal <= 1
    assert resume_line(err) == ["postreason", "tune", "--resume", str(runs / "t")]
    done = subprocess.run([POSTREASON, *resume_line(err)[1:], "--no-progress"], capture_output=True, text=True,
                          cwd=tmp_path, env=environment(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((runs / "t" / "summary.json").read_text())["models"]["openai/scripted"]
    assert summary["trials"] == 4 and summary["test"]["tuned"] == 1.0


def test_sigterm_stops_eval_with_143_and_the_resume_line(tmp_path, server, data):
    process = start(eval_command(server, data, tmp_path / "runs"), tmp_path)
    server.wait_for(3)
    seconds, err = stop(process, signal.SIGTERM)
    assert process.returncode == 143, err
    assert seconds < STOP_S and "stopped by SIGTERM" in err
    assert resume_line(err)[:3] == ["postreason", "eval", "--resume"]


def test_an_interrupt_during_a_retry_back_off_stops_at_once(tmp_path, server, data):
    server.failing = True  # every answer is a 429 asking to wait a minute
    process = start(eval_command(server, data, tmp_path / "runs", "--retries", "3"), tmp_path)
    server.wait_for(1)
    time.sleep(3)
    assert server.requests == 1  # inside the minute's back-off the server asked for
    seconds, err = stop(process, signal.SIGINT)
    assert process.returncode == 130, err
    assert seconds < STOP_S and server.requests == 1
    assert not (tmp_path / "runs" / "r" / "examples.jsonl").read_text()  # the example is not recorded as failed


def test_a_second_signal_stops_at_once(tmp_path, server, data):
    server.delay = 30  # an LM call that would hold a first Ctrl-C for half a minute
    process = start(eval_command(server, data, tmp_path / "runs"), tmp_path)
    server.wait_for(1)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.5)
    seconds, err = stop(process, signal.SIGINT)
    assert process.returncode == 130 and seconds < STOP_S, err
    assert "send it again to stop at once" in err and "resume with: postreason eval --resume" in err


def test_check_and_sleep_raise_once_a_signal_came_and_the_handlers_are_restored_after():
    before = signal.getsignal(signal.SIGINT)
    with interrupt.handling():
        interrupt.check()
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.requested()
        with pytest.raises(interrupt.Interrupted) as stopped:
            interrupt.check()
        assert stopped.value.exit_code == 143
        started = time.monotonic()
        with pytest.raises(interrupt.Interrupted):
            interrupt.sleep(30)
        assert time.monotonic() - started < 1
    assert signal.getsignal(signal.SIGINT) is before and not interrupt.requested()


def test_retries_stop_in_the_back_off():
    calls = []

    def failing() -> None:
        calls.append(1)
        os.kill(os.getpid(), signal.SIGINT)  # the signal comes while the attempt fails
        raise ConnectionError("refused")

    with interrupt.handling(), pytest.raises(interrupt.Interrupted):
        with_retries(RetryPolicy(retries=3, base_delay_s=30), failing)
    assert len(calls) == 1


def test_run_command_reports_the_outermost_resume_command_and_the_exit_code(capsys):
    def work() -> int:
        with interrupt.resume_with("inner --resume"):
            os.kill(os.getpid(), signal.SIGINT)
            interrupt.check()
        return 0

    assert interrupt.run_command(work, resume="outer --resume") == 130
    said = "stopped by SIGINT: what finished is recorded; resume with: outer --resume"
    assert capsys.readouterr().err.strip() == said


def test_an_error_raised_while_stopping_counts_as_the_interrupt(capsys):
    def work() -> int:
        with interrupt.resume_with("again"):
            os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("Execution cancelled due to errors or interruption.")  # DSPy's, on its own Ctrl-C

    def broken() -> int:
        raise RuntimeError("bad")

    assert interrupt.run_command(work) == 143
    assert "resume with: again" in capsys.readouterr().err
    with pytest.raises(RuntimeError):  # without a signal an error stays an error
        interrupt.run_command(broken)


def test_a_child_command_gets_the_signal_once_and_the_parent_stops_after_it(tmp_path):
    ready, marker = tmp_path / "ready", tmp_path / "stopped"
    child = [sys.executable, "-c",
             "import pathlib, signal, sys, time\n"
             f"signal.signal(signal.SIGINT, lambda *a: (open({str(marker)!r}, 'a').write('x'), sys.exit(130)))\n"
             f"pathlib.Path({str(ready)!r}).touch()\n"
             "time.sleep(60)"]

    def ctrl_c_once_ready() -> None:
        while not ready.exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # to this process only: the child has a group of its own

    def work() -> int:
        threading.Thread(target=ctrl_c_once_ready, daemon=True).start()
        return interrupt.call(child)

    started = time.monotonic()
    assert interrupt.run_command(work) == 130
    assert time.monotonic() - started < 30 and marker.read_text() == "x"


@needs_train
def test_a_signal_stops_training_after_the_step_in_progress_with_a_checkpoint(tmp_path, qwen_tokenizer, monkeypatch):
    from postreason_dspy.finetune import train as training

    monkeypatch.setattr(training, "prepare", lambda base, config, device: (qwen_tokenizer, tiny_model()))
    records = [parse_record(make_record(rid=f"r{i}", answer=f"A{i}"), f"r{i}") for i in range(3)]
    steps = []

    def on_step(report) -> None:
        steps.append(report.step)
        if report.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while step 2 is being reported

    config = TrainConfig(batch_size=2, save_every=10, max_steps=5, dev_share=0)
    with interrupt.handling(), pytest.raises(interrupt.Interrupted) as stopped:
        training.train(BaseModel("tiny", str(tmp_path)), records, "sha", tmp_path / "out", config, on_step=on_step,
                       say=lambda _: None)
    assert steps == [1, 2] and stopped.value.exit_code == 143
    assert json.loads((tmp_path / "out" / "state.json").read_text())["step"] == 2  # saved on the way out


def test_a_signal_stops_distillation_after_the_example_in_progress(tmp_path):
    bench = get_benchmark("gsm8k")
    examples = [dspy.Example(id=f"g{n}", question=f"What is {n} + {5 - n}?", answer="5").with_inputs("question")
                for n in range(5)]
    lm, engine = scripted_lm({})

    def answer(user: str) -> dict[str, str]:
        if len(engine.requests) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives during the second example's LM call
        return {"answer": "5", "rationale": "the two numbers add up to 5"}

    engine.script = answer
    with interrupt.handling(), pytest.raises(interrupt.Interrupted), dspy.context(lm=lm):
        distill(bench.program("post"), examples, bench.metric, tmp_path / "sft")
    logged = [json.loads(line) for line in (tmp_path / "sft" / "examples.jsonl").read_text().splitlines()]
    assert [line["id"] for line in logged] == ["g0", "g1"] and len(engine.requests) == 2
