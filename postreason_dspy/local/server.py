"""Start, find and stop the local OpenAI-compatible llama.cpp server.

The server's pid, port and model are kept in a state file so every command (and the tests) finds
the one running server; a second `up` reuses it. Only one runs at a time: two model processes on a
small CPU slow each other down many times over, so `up` and `down` hold a file lock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from postreason_dspy.errors import ConfigurationError, LocalServerError
from postreason_dspy.io import atomic_write_json
from postreason_dspy.local.lora import lora_target
from postreason_dspy.local.paths import home, tail
from postreason_dspy.local.runtime import ensure_runtime
from postreason_dspy.local.weights import DEFAULT_MODEL, ensure_weights, model_spec
from postreason_dspy.locks import exclusive

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MODEL_ALIAS = "local"
START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class ServerState:
    """What the state file records about the running server."""

    pid: int
    port: int
    model: str
    gguf: str
    log: str
    lora: str | None = None  # a GGUF LoRA adapter applied on top of `gguf`

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


def state_file() -> Path:
    return home() / "server.json"


def check_port(value: object, source: str) -> int:
    """`value` as a TCP port (1-65535); else a ConfigurationError naming `source` (where the value came from)."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ConfigurationError(f"{source} must be a port number from 1 to 65535, not {value!r}")
    return int(text)


def default_port() -> int:
    """$POSTREASON_LOCAL_PORT, else 8765."""
    return check_port(os.environ.get("POSTREASON_LOCAL_PORT") or DEFAULT_PORT, "POSTREASON_LOCAL_PORT")


def server_command(gguf: Path, port: int, lora: Path | None = None) -> list[str]:
    """The server's command line. `--interrupt_requests false`: by default a new request (even a
    health check) cuts off a streaming one, which breaks concurrent users of the one server."""
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
        "--host", HOST, "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--interrupt_requests", "false",
        *(["--lora_path", str(lora)] if lora else []),
    ]


def read_state() -> ServerState | None:
    try:
        data = json.loads(state_file().read_text())
        data.pop("base_url", None)  # derived from the port; stored for other tools to read
        if "adapter" in data:  # the field's name before "lora" (a server started by an older version)
            data["lora"] = data.pop("adapter")
        return ServerState(**data)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def write_state(state: ServerState) -> None:
    """Atomically, so a reader never sees half a file; `lora` only when one is served."""
    fields = {key: value for key, value in asdict(state).items() if key != "lora" or value is not None}
    atomic_write_json(state_file(), {**fields, "base_url": state.base_url})


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited: reaped now
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owns(state: ServerState) -> bool:
    """True if the recorded process is alive and still serves the recorded model (not a recycled pid)."""
    if not _alive(state.pid):
        return False
    if not Path("/proc/self").exists():  # not Linux: trust the live pid
        return True
    try:
        return state.gguf.encode() in Path(f"/proc/{state.pid}/cmdline").read_bytes()
    except OSError:
        return False


def answers(base_url: str, timeout: float = 2.0) -> bool:
    """Whether the server at `base_url` answers HTTP. It asks for the OpenAPI schema, which (unlike
    /v1/models) does not wait for the model lock while another client's generation runs."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/openapi.json", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def status() -> ServerState | None:
    """The running server, or None (a state file whose process is gone is removed)."""
    state = read_state()
    if state is None:
        return None
    if not owns(state):
        state_file().unlink(missing_ok=True)
        return None
    return state


@contextmanager
def _exclusive() -> Iterator[None]:
    """One `up`/`down` at a time on this machine, so two callers never start two servers."""
    with exclusive(home() / "server.lock"):
        yield


def up(
    model: str = DEFAULT_MODEL,
    port: int | None = None,
    say: Callable[[str], None] = print,
    timeout: float = START_TIMEOUT_S,
    lora: Path | None = None,
) -> ServerState:
    """Make sure a server for `model` (or for `lora`, a `postreason finetune` output folder, on its base)
    is running and answering; install what is missing first."""
    spec = model_spec(model)
    target = lora_target(lora, say) if lora is not None else None
    name = target.name if target else spec.name
    port = None if port is None else check_port(port, "port")
    fallback = default_port()  # a bad POSTREASON_LOCAL_PORT is refused even while a server runs
    with _exclusive():
        running = status()
        if running is not None:
            if running.model != name or port not in (None, running.port):
                raise LocalServerError(
                    f"a local server for {running.model} is already running on port {running.port} "
                    f"(pid {running.pid}); stop it with `postreason local down` first"
                )
            if not answers(running.base_url):
                _wait_until_answering(running, None, timeout)
            say(f"reusing the running server (pid {running.pid})")
            return running
        port = port or fallback
        if port_taken(port):
            raise LocalServerError(
                f"port {port} on {HOST} is taken by another program; pick another with --port or "
                "POSTREASON_LOCAL_PORT (or, if it is a model server you want to use, pass its URL as --api-base)"
            )
        ensure_runtime(say)
        gguf = target.gguf if target else ensure_weights(spec, say)
        return _start(name, gguf, port, say, timeout, target.lora if target else None)


def _start(
    model: str, gguf: Path, port: int, say: Callable[[str], None], timeout: float, lora: Path | None = None
) -> ServerState:
    log = home() / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_command(gguf, port, lora),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    state = ServerState(
        pid=process.pid, port=port, model=model, gguf=str(gguf), log=str(log), lora=str(lora) if lora else None
    )
    write_state(state)  # before waiting: an interrupted `up` still leaves the process findable
    say(f"starting the llama.cpp server for {model} on {state.base_url} (pid {process.pid}, log {log})")
    started = time.monotonic()
    try:
        _wait_until_answering(state, process, timeout)
    except BaseException:
        _stop(state.pid, 10.0)
        state_file().unlink(missing_ok=True)
        raise
    say(f"ready in {time.monotonic() - started:.1f} s")
    return state


def _wait_until_answering(state: ServerState, process: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not answers(state.base_url):
        code = process.poll() if process else None
        if code is not None or (process is None and not owns(state)):
            state_file().unlink(missing_ok=True)
            exit_status = f" with exit code {code}" if code is not None else ""
            raise LocalServerError(
                f"the local server died{exit_status} before it answered. Last lines of {state.log}:\n"
                f"{tail(Path(state.log))}"
            )
        if time.monotonic() > deadline:
            raise LocalServerError(
                f"the local server did not answer within {timeout:.0f} s. Last lines of {state.log}:\n"
                f"{tail(Path(state.log))}"
            )
        time.sleep(0.25)


def _stop(pid: int, timeout: float) -> None:
    """SIGTERM, wait, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pid):
            return


def down(timeout: float = 15.0) -> ServerState | None:
    """Stop the running server and wait until it is gone; return what was stopped, or None."""
    with _exclusive():
        state = status()
        if state is None:
            return None
        _stop(state.pid, timeout)
        state_file().unlink(missing_ok=True)
        return state
