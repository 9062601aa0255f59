"""Sharp edges of a run, each one clear line instead of a traceback: a metric that raises, a dead model server,
credentials in a server URL, a second resume of a running run, a resume against another model, a corrupt config."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dspy import lm15
from test_runner import FAST_RETRY, FakeBenchmark, number, post_fixes_odd, run

from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import EvalConfig, RunStore, resume_run, write_report
from postreason_dspy.evaluation import session as session_module
from postreason_dspy.evaluation.retry import is_connection_failure
from postreason_dspy.evaluation.runner import DEAD_SERVER_FAILURES, ModelServerDown
from postreason_dspy.models import resolve_lm
from postreason_dspy.testing import scripted_lm

DIRECT_ONLY = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), limit=None)


def resume(store, lm, **kwargs):
    return resume_run(store, lm_factory=lambda *a, **k: lm, benchmark_factory=lambda name: FakeBenchmark(),
                      retry=FAST_RETRY, **kwargs)


def test_a_metric_that_raises_is_recorded_on_its_example_and_the_run_goes_on(tmp_path):
    class Touchy(FakeBenchmark):
        def metric(self, example, pred, trace=None):
            if example.id == "q2":
                raise ValueError("cannot compare these answers")
            return super().metric(example, pred, trace)

    lm, _ = scripted_lm(post_fixes_odd)
    store, summary = run(tmp_path, lm, DIRECT_ONLY, bench=Touchy())
    by_id = {record.id: record for record in store.records()}
    assert len(by_id) == 6
    broken = by_id["q2"]
    assert broken.status == "error" and broken.correct is None
    assert broken.error == "scoring failed: ValueError: cannot compare these answers"
    assert broken.completion and broken.answer == "4"  # what the model said is kept
    assert summary.settings[0].errors == 1 and summary.settings[0].scored == 5


def test_connection_failures_are_told_apart_from_other_errors():
    assert is_connection_failure(ConnectionRefusedError(111, "Connection refused"))
    assert is_connection_failure(lm15.TransportError("connection reset by peer"))
    wrapped = RuntimeError("LM call failed")
    wrapped.__cause__ = ConnectionResetError()
    assert is_connection_failure(wrapped)
    assert not is_connection_failure(lm15.TimeoutError("read timed out"))
    assert not is_connection_failure(lm15.ServerError("upstream exploded", status=503))
    assert not is_connection_failure(ValueError("bad"))


def test_a_dead_server_stops_the_run_at_once_and_resume_finishes_it(tmp_path):
    calls = {"n": 0}

    def dies_after_two(user):
        calls["n"] += 1
        if calls["n"] > 2:
            raise ConnectionRefusedError(111, "Connection refused")
        return post_fixes_odd(user)

    lm, _ = scripted_lm(dies_after_two)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct", "post"), limit=None)
    with pytest.raises(ModelServerDown) as stopped:
        run(tmp_path, lm, config, run_id="r")
    message = str(stopped.value)
    assert f"{DEAD_SERVER_FAILURES} examples in a row could not connect" in message
    assert message.endswith(f"postreason eval --resume {tmp_path / 'r'}")
    store = RunStore.open("r", tmp_path)
    assert [(r.id, r.status) for r in store.records()] == [
        ("q0", "ok"), ("q1", "ok"), ("q2", "error"), ("q3", "error"), ("q4", "error")]
    attempts = FAST_RETRY.retries + 1  # a refused connection is retried like any transient error
    assert calls["n"] == 2 + DEAD_SERVER_FAILURES * attempts  # stopped at once: nothing tried after the third
    assert json.loads((store.path / "summary.json").read_text())["recorded"] == 5

    lm2, engine2 = scripted_lm(post_fixes_odd)
    compaction, summary = resume(store, lm2)
    assert (compaction.kept, compaction.errors_dropped) == (2, 3)
    assert len(engine2.requests) == 10 and summary.complete and summary.errors == 0


def test_other_errors_in_a_row_do_not_stop_the_run(tmp_path):
    lm, _ = scripted_lm(lambda user: (_ for _ in ()).throw(lm15.TimeoutError("read timed out")))
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), limit=None, retries=0)
    store, summary = run(tmp_path, lm, config)
    assert summary.errors == 6 and len(store.records()) == 6


def test_the_dead_server_stop_is_one_line_from_the_command(tmp_path, monkeypatch, capsys):
    lm, _ = scripted_lm(lambda user: (_ for _ in ()).throw(ConnectionRefusedError(111, "Connection refused")))
    monkeypatch.setattr(session_module, "resolve_lm", lambda *a, **k: lm)
    monkeypatch.setattr(session_module, "_default_benchmark", lambda name: FakeBenchmark())
    args = ["eval", "--model", "fake", "--benchmark", "arith", "--strategy", "direct", "--retries", "0",
            "--runs-dir", str(tmp_path), "--run-id", "dead", "--no-progress"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: the model server stopped answering") and "Traceback" not in err
    assert err.replace(" ", "").endswith(f"postreasoneval--resume{tmp_path / 'dead'}")  # (rich wraps long lines)


@pytest.mark.parametrize("model", ["hosted_vllm/served", "local"])
def test_credentials_in_a_server_url_are_refused_up_front(model):
    with pytest.raises(ConfigurationError, match="carries credentials") as refused:
        resolve_lm(model, api_base="http://alice:PASSW0RD-xyz@127.0.0.1:9/v1")
    assert "PASSW0RD" not in str(refused.value) and "http://alice:[redacted]@127.0.0.1:9/v1" in str(refused.value)


def test_no_url_password_or_api_key_anywhere_in_the_run_folder(tmp_path, monkeypatch):
    key, password = "sk-live-0123456789abcdef", "PASSW0RD-xyz"
    monkeypatch.setenv("HOSTED_VLLM_API_KEY", key)
    url = f"http://alice:{password}@127.0.0.1:8765/v1"

    def leaky(user):
        if number(user) >= 2:  # the server is gone: the errors echo the URL, its bare host part and the key
            raise lm15.TransportError(f"cannot connect to alice:{password}@127.0.0.1:8765 ({url}; key {key})")
        return {"answer": f"{2 * number(user)} via {url}", "rationale": f"key {key}, password {password}"}

    lm, _ = scripted_lm(leaky)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("post_full",), limit=None, api_base=url)
    with pytest.raises(ModelServerDown) as stopped:
        run(tmp_path, lm, config, run_id="leak")
    assert password not in str(stopped.value) and key not in str(stopped.value)
    store = RunStore.open("leak", tmp_path)
    write_report(store)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"config.json", "examples.jsonl", "summary.json", "report.md"}
    for path in files:
        content = path.read_bytes()
        assert password.encode() not in content and key.encode() not in content, path
    errors = [record.error for record in store.records() if record.error]
    assert len(errors) == 3 and all("alice:[redacted]@127.0.0.1" in error for error in errors)


def test_a_second_resume_while_the_run_is_running_is_refused(tmp_path):
    refusals = []

    def resumes_meanwhile(user):
        if number(user) == 3 and not refusals:
            try:
                resume(RunStore.open("busy", tmp_path), scripted_lm(post_fixes_odd)[0])
            except ConfigurationError as exc:
                refusals.append(str(exc))
        return post_fixes_odd(user)

    lm, _ = scripted_lm(resumes_meanwhile)
    store, summary = run(tmp_path, lm, DIRECT_ONLY, run_id="busy")
    assert len(refusals) == 1 and "is in use by another `postreason eval`" in refusals[0]
    assert summary.complete and len(store.records()) == 6  # the running one was not disturbed
    compaction, _ = resume(store, scripted_lm(post_fixes_odd)[0])  # once it is over, resuming works
    assert compaction.kept == 6


@contextmanager
def models_endpoint(ids):
    """An OpenAI-style server that only lists `ids` at /v1/models (None: it has no /models)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if ids is None or self.path != "/v1/models":
                self.send_error(404)
                return
            body = json.dumps({"object": "list", "data": [{"id": name} for name in ids]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_resume_refuses_a_server_that_serves_another_model(tmp_path):
    lm, _ = scripted_lm(post_fixes_odd)  # its model string is scripted/model: the served id must be "model"
    store, _ = run(tmp_path, lm, DIRECT_ONLY)
    with models_endpoint(["other-model"]) as url, pytest.raises(ConfigurationError) as refused:
        resume(store, lm, api_base=url)
    assert f"the server at {url} serves other-model, not 'model'" in str(refused.value)
    with models_endpoint(["other-model", "model"]) as url:
        compaction, _ = resume(store, lm, api_base=url)
    assert compaction.kept == 6


def test_resume_against_a_server_without_a_model_list_goes_on_with_a_note(tmp_path):
    import io

    from rich.console import Console

    lm, _ = scripted_lm(post_fixes_odd)
    store, _ = run(tmp_path, lm, DIRECT_ONLY)
    output = io.StringIO()
    with models_endpoint(None) as url:
        resume(store, lm, api_base=url, console=Console(file=output, width=300))
    assert f"note: {url} does not list its models (no /models); not checked that it serves model" in output.getvalue()


def test_resume_of_a_run_with_a_corrupt_config_is_one_line(tmp_path, capsys):
    lm, _ = scripted_lm(post_fixes_odd)
    store, _ = run(tmp_path, lm, DIRECT_ONLY, run_id="r")
    (store.path / "config.json").write_text("{not json")
    assert main(["eval", "--resume", "r", "--runs-dir", str(tmp_path), "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "config.json is corrupt (not valid JSON" in err


def test_redact_hides_a_url_password_and_keeps_the_user():
    from postreason_dspy.secrets import redact

    assert redact("postgresql://tuner:s3cret@db:5432/optuna") == "postgresql://tuner:[redacted]@db:5432/optuna"
    assert redact("http://alice:pw@127.0.0.1:8000/v1") == "http://alice:[redacted]@127.0.0.1:8000/v1"
    assert redact("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
