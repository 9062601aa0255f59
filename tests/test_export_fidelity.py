"""Every export format, filled in for an input, gives the bytes DSPy sends; the Python script runs on the stdlib."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import dspy
import jinja2
import pytest

from postreason_dspy import Direct, PostReason
from postreason_dspy.adapters import PlainTextAdapter
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.export import export_program, export_prompts, render_messages
from postreason_dspy.export.formats import to_jinja, to_python, to_text
from postreason_dspy.testing import render, scripted_lm


class Solve(dspy.Signature):
    """Add up the numbers, taking the weights into account."""

    question: str = dspy.InputField()
    numbers: list[int] = dspy.InputField(desc="the numbers")
    weights: dict[str, float] = dspy.InputField()
    rounds: int = dspy.InputField()
    strict: bool = dspy.InputField()
    answer: str = dspy.OutputField()


class Pipeline(dspy.Module):
    def __init__(self):
        super().__init__()
        self.restate = Direct("question -> givens")
        self.solve = PostReason(Solve, mode="answer_only")

    def forward(self, question, numbers, weights, rounds, strict):
        givens = self.restate(question=question).givens
        return self.solve(question=f"{question} ({givens})", numbers=numbers, weights=weights, rounds=rounds,
                          strict=strict)


INPUTS = {"question": "Sum <them> & say {so}", "numbers": [1, 2, 3], "weights": {"a": 0.5, "é": 2.0},
          "rounds": 2, "strict": True}
VALUES = {"givens": "three numbers", "answer": "6", "rationale": "1 + 2 + 3 = 6 <done> & checked"}


def _program() -> Pipeline:
    program = Pipeline()
    program.solve.predict.demos = [
        dspy.Example(question="Add 1 and 1", numbers=[1, 1], weights={}, rounds=1, strict=False, answer="2",
                     rationale="1 + 1 = 2"),
    ]
    program.restate.predict.demos = [dspy.Example(question="Two and two", givens="2, 2")]
    return program


def _run(adapter):
    """The program's real requests (answer-only) and the export made with the same adapter."""
    program = _program()
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm, adapter=adapter):
        program(**INPUTS)
    exported = export_prompts(program, adapter, about={"model": "local"})
    solve_inputs = {**INPUTS, "question": f"{INPUTS['question']} ({VALUES['givens']})"}
    return exported, engine.requests, [("restate.predict", {"question": INPUTS["question"]}),
                                       ("solve.predict", solve_inputs)]


def _entry(exported, name):
    return next(entry for entry in exported["predictors"] if entry["name"] == name)


def _load_script(path):
    spec = importlib.util.spec_from_file_location("exported_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ADAPTERS = [pytest.param(dspy.ChatAdapter(), id="chat"), pytest.param(dspy.XMLAdapter(), id="xml"),
            pytest.param(PlainTextAdapter(), id="plain")]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_messages_python_and_jinja_exports_render_the_exact_request(adapter, tmp_path):
    exported, requests, calls = _run(adapter)
    script_path = tmp_path / "prompts.py"
    script_path.write_text(to_python(exported))
    script = _load_script(script_path)
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(to_jinja(exported))
    for (name, inputs), request in zip(calls, requests, strict=True):
        entry = _entry(exported, name)
        assert render_messages(entry, inputs) == request.messages
        assert script.render_messages(script.predictor(script.EXPORT, name), inputs) == request.messages
        as_text = {key: script.serialize(value, "json") for key, value in inputs.items()}
        assert json.loads(template.render(predictor=name, **as_text)) == request.messages
        assert tuple(entry["answer_only_stops"] or ()) == request.stop
    solve = _entry(exported, "solve.predict")
    assert solve["answer_fields"] == ["answer"] and solve["justification_field"] == "rationale"
    assert solve["settings"] == {"temperature": 0.0, "max_tokens": 512}
    assert {"name": "numbers", "serialize": "json"} in solve["inputs"]
    assert "{{numbers}}" in to_text(exported)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_script_parses_like_the_adapter_full_and_answer_only(adapter, tmp_path):
    exported, requests, _ = _run(adapter)
    entry = _entry(exported, "solve.predict")
    (script_path := tmp_path / "s.py").write_text(to_python(exported))
    script = _load_script(script_path)
    values = {**VALUES, "rationale": "1 + 2 + 3 = 6"}
    completion = render(requests[1].messages[-1]["content"], values)  # what an obedient model writes
    signature = _program().solve.predict.signature
    assert script.parse_answer(entry, completion) == adapter.parse(signature, completion)
    cut = completion[: completion.index(entry["answer_only_stops"][0])]
    assert script.parse_answer(entry, cut) == {"answer": "6"}
    with pytest.raises(ValueError, match="no answer field"):
        script.parse_answer(entry, "I think it is 6.")


def test_a_slot_written_in_a_demo_is_refused():
    program = PostReason("question -> answer")
    program.predict.demos = [dspy.Example(question="what is {{question}}?", answer="x", rationale="y")]
    with pytest.raises(ConfigurationError, match="ambiguous"):
        export_prompts(program)


class _Server(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body, self.headers.get("Authorization")))
        reply = {"choices": [{"message": {"role": "assistant", "content": "[[ ## answer ## ]]\n42\n\n"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    _Server.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_exported_python_script_calls_a_chat_completions_server_with_only_the_stdlib(tmp_path, chat_server):
    program = get_benchmark("gsm8k").program("post")
    program.solve.predict.demos = [dspy.Example(question="1 + 1?", answer="2", rationale="one and one")]
    saved = tmp_path / "program.json"
    save_program(program, saved, benchmark="gsm8k", strategy="post", model="local", metadata={"max_tokens": 64})
    script = export_program(saved, "python", tmp_path / "solve.py")
    expected = json.loads(export_program(saved, "messages", tmp_path / "m.json").read_text())
    entry = expected["predictors"][0]

    base = f"http://127.0.0.1:{chat_server.server_port}/v1"
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--base-url", base, "--input", "question=What is 6 * 7?"],
        capture_output=True, text=True, timeout=60, env={"OPENAI_API_KEY": "sk-test"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"answer": "42"}
    ((path, body, auth),) = _Server.seen
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "local" and body["max_tokens"] == 64 and body["temperature"] == 0.0
    assert body["stop"] == ["\n[["]
    assert body["messages"] == render_messages(entry, {"question": "What is 6 * 7?"})
    assert "What is 6 * 7?" in body["messages"][-1]["content"] and "one and one" in body["messages"][2]["content"]


def test_export_command_writes_each_format_and_resolves_tune_runs(tmp_path, capsys):
    run = tmp_path / "runs" / "tune-1"
    for slug in ("local", "openai-gpt-4o-mini"):
        (run / slug).mkdir(parents=True)
        save_program(get_benchmark("commonsense_qa").program("post"), run / slug / "program.json",
                     benchmark="commonsense_qa", strategy="post", model=slug)
    runs = str(tmp_path / "runs")
    assert main(["export", "tune-1", "--format", "text", "--runs-dir", runs]) == 2
    assert "name one: tune-1/local, tune-1/openai-gpt-4o-mini" in " ".join(capsys.readouterr().err.split())
    for fmt in ("messages", "text", "python", "jinja", "dspy"):
        assert main(["export", "tune-1/local", "--format", fmt, "--runs-dir", runs]) == 0
    written = sorted(path.name for path in (run / "local").iterdir())
    assert written == ["export-dspy.json", "export-jinja.jinja", "export-messages.json", "export-python.py",
                       "export-text.txt", "program.json"]
    state = json.loads((run / "local" / "export-dspy.json").read_text())
    rebuilt = get_benchmark("commonsense_qa").program("post")
    rebuilt.load_state({key: value for key, value in state.items() if key != "metadata"})
    xml = json.loads(export_program(run / "local", "messages", tmp_path / "x.json", adapter="xml").read_text())
    assert xml["adapter"] == "XMLAdapter" and xml["predictors"][0]["answer_only_stops"] == ["<rationale",
                                                                                              "<Rationale"]
    plain = json.loads(export_program(run / "local", "messages", tmp_path / "p.json", adapter="plain").read_text())
    assert plain["adapter"] == "PlainTextAdapter" and plain["predictors"][0]["parse"] == "plain"
    assert plain["predictors"][0]["answer_only_stops"] == ["\nRationale:", "\nrationale:", "\nRATIONALE:"]
    assert main(["export", "nowhere", "--format", "text", "--runs-dir", runs]) == 2
    assert "no program file or tune run 'nowhere'" in " ".join(capsys.readouterr().err.split())
