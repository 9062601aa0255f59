"""Ctrl-C (SIGINT) and SIGTERM stop a long command between two units of work, never inside one.

    raise SystemExit(run_command(main, resume="python scripts/x.py ..."))   # a script's entry point
    with resume_with("postreason tune --resume runs/r"):                     # what the resume line says
        for example in todo:
            check()                                                          # raises Interrupted after a signal
    sleep(backoff)                                                           # a retry's back-off, cut short

Python's own KeyboardInterrupt lands wherever the main thread happens to be, never on a pool thread
doing the work (so a threaded run finished all its examples first), not at all when the shell started
the command with SIGINT ignored (`cmd &`), and SIGTERM kills without a word. Here a signal only sets a
flag; every LM call starts by looking at it (a DSPy callback, on every thread that inherits the
context), and so do the loops between examples, trials and training steps. What finished stays on
disk; the command exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM) after one line
that says how to resume. A second signal ends the process at once (what finished is on disk already).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested = threading.Event()
_state: dict[str, Any] = {"signum": signal.SIGINT, "active": False}
_resume_commands: list[str] = []  # of the resume_with blocks the main thread is in, outermost first


class Interrupted(KeyboardInterrupt):
    """A signal asked the command to stop. A KeyboardInterrupt, so `except Exception` never swallows it and
    what cleans up after Ctrl-C (a training checkpoint, Optuna's failed trial) runs for it too."""

    def __init__(self, signum: int = signal.SIGINT, resume: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.resume = resume

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def line(self) -> str:
        """The one line a stopped command ends with."""
        said = f"stopped by {signal.Signals(self.signum).name}: what finished is recorded"
        return f"{said}; resume with: {self.resume}" if self.resume else said


def requested() -> bool:
    """A signal came: the command is stopping."""
    return _requested.is_set()


def check() -> None:
    """Raise Interrupted if a signal came; called before each unit of work (an LM call, an example, a step)."""
    if _requested.is_set():
        raise Interrupted(_state["signum"])


def sleep(seconds: float) -> None:
    """time.sleep that a signal cuts short (with Interrupted): a retry's back-off never holds a stop up."""
    if _requested.wait(seconds):
        raise Interrupted(_state["signum"])


class _LMGuard(BaseCallback):
    """Stops before an LM call starts; DSPy lets a callback's KeyboardInterrupt through (not an Exception)."""

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        check()


def _on_signal(signum: int, frame: Any) -> None:
    if _requested.is_set():  # the second signal: at once, without waiting for the LM call or step in progress
        stopped = Interrupted(signum, _resume_commands[0] if _resume_commands else None)
        for stream in (sys.stdout, sys.stderr):
            with suppress(Exception):  # a stream the handler interrupted cannot be flushed
                stream.flush()
        os.write(2, f"{stopped.line()}\n".encode())
        os._exit(stopped.exit_code)
    _state["signum"] = signum
    _requested.set()
    # os.write, not print: a handler may run in the middle of a print to the same stream.
    os.write(2, f"\n{signal.Signals(signum).name}: stopping after the current LM call or step "
                "(send it again to stop at once)\n".encode())


@contextmanager
def handling() -> Iterator[None]:
    """Install the signal handlers and the LM-call guard for the block (main thread only: signals go there)."""
    if _state["active"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _requested.clear()
    _state["active"] = True
    try:
        for signum in SIGNALS:
            signal.signal(signum, _on_signal)
        with dspy.context(callbacks=[_LMGuard(), *dspy.settings.get("callbacks", [])]):
            yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        _state["active"] = False
        _requested.clear()


def _as_interrupt(exc: BaseException) -> Interrupted | None:
    """`exc` as the interrupt it stands for: any error but an exit raised while stopping (a library that
    turned the stop into its own error, a server that went down with the process group) is one."""
    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    if _requested.is_set() and not isinstance(exc, SystemExit | GeneratorExit):
        return Interrupted(_state["signum"])
    return None


@contextmanager
def resume_with(command: str) -> Iterator[None]:
    """An interrupt that leaves the block says `command` resumes it. The outermost block has the last word,
    so a tune run's resume command wins over the one of the evaluation run inside it."""
    _resume_commands.append(command)
    try:
        yield
    except BaseException as exc:
        stopped = _as_interrupt(exc)
        if stopped is None:
            raise
        stopped.resume = command
        if stopped is exc:
            raise
        raise stopped from exc
    finally:
        _resume_commands.pop()


def run_command(work: Callable[[], int | None], resume: str | None = None) -> int:
    """Run a command's `work` with the handlers installed; an interrupt becomes the exit code (130, 143)
    after its line on stderr. Inside another command (a script calling `postreason` in-process) the
    interrupt goes on to that one, which reports it."""
    if _state["active"]:
        return work() or 0
    with handling():
        try:
            with resume_with(resume) if resume else nullcontext():
                return work() or 0
        except BaseException as exc:
            stopped = _as_interrupt(exc)
            if stopped is None:
                raise
            print(stopped.line(), file=sys.stderr, flush=True)
            return stopped.exit_code


def call(command: list[str]) -> int:
    """Run a child command to its end and return its exit code. The child has its own process group, so a
    terminal's Ctrl-C reaches it only through here, once: it stops as this process would, then this does."""
    child = subprocess.Popen(command, process_group=0)
    passed_on = False
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if _requested.is_set() and not passed_on:
                    child.send_signal(_state["signum"])
                    passed_on = True
    except BaseException:  # the second signal: passed on too, so the child stops at once as well
        child.send_signal(_state["signum"])
        child.wait()
        raise
    check()
    return code
