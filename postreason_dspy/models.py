"""Model resolution used by every command: "local" (the embedded llama.cpp server) or any DSPy model string.

The llama.cpp server ignores `max_completion_tokens`, which DSPy's native `openai/` path sends, but
honours `max_tokens` and `stop`. DSPy's `hosted_vllm/` preset sends `max_tokens` on both of its
engines (native and litellm), so the local server is addressed as `hosted_vllm/local`; the native
engine also spares the 3-10 s litellm import. tests/test_local_unit.py shows the request bodies,
tests/integration/test_local_server.py what the real server does with them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.parse
import urllib.request
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm loads: no 5 s metadata fetch offline

import dspy
from rich.console import Console

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.local import server
from postreason_dspy.secrets import redact

LOCAL = "local"
LOCAL_MODEL_STRING = f"hosted_vllm/{server.MODEL_ALIAS}"
LOCAL_API_KEY = "local"  # llama.cpp checks no key; a placeholder keeps clients from sending a real one
MODEL_STRING = re.compile(r"^(?P<provider>[a-z][a-z0-9_\-]*)/\S+$")
COMMON_PROVIDERS = frozenset({
    "openai", "anthropic", "gemini", "vertex_ai", "bedrock", "azure", "groq", "openrouter", "deepseek", "xai",
    "mistral", "together_ai", "hosted_vllm", "ollama", "ollama_chat", "lm_studio",
})
KEY_ENV = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY", "openrouter": "OPENROUTER_API_KEY", "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY", "mistral": "MISTRAL_API_KEY",
}
DEFAULT_BASES = {"ollama": "http://localhost:11434", "ollama_chat": "http://localhost:11434"}


def check_reachable(api_base: str, timeout: float = 3.0) -> None:
    """Fail in seconds, before a long run, when nothing listens at `api_base`.

    A TCP connection is enough: an HTTP request could wait behind another client's generation."""
    url = urllib.parse.urlsplit(api_base)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigurationError(
            f"api_base must be an http(s) URL such as http://127.0.0.1:8000/v1, not {redact(api_base)!r}"
        )
    if url.username is not None or url.password is not None:
        raise ConfigurationError(
            f"the server URL {redact(api_base)} carries credentials (user:password@), which the model clients would "
            "take as part of the host name: remove them; for a key, set the provider's API key variable "
            "(e.g. HOSTED_VLLM_API_KEY or OPENAI_API_KEY)"
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise ConfigurationError(f"cannot reach the model server at {redact(api_base)}: {exc}") from None


def served_model_ids(api_base: str, api_key: str | None = None, timeout: float = 5.0) -> list[str] | None:
    """The model ids an OpenAI-compatible server lists at {api_base}/models; None when it lists none
    (no such endpoint, or no answer in `timeout`)."""
    request = urllib.request.Request(api_base.rstrip("/") + "/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            listing = json.loads(response.read().decode("utf-8"))
        return [str(entry["id"]) for entry in listing["data"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _known_provider(provider: str) -> bool:
    if provider in COMMON_PROVIDERS:
        return True
    from litellm.types.utils import LlmProviders  # slow import (seconds): only for rarer providers

    return provider in {p.value for p in LlmProviders}


def _local_base_url(start_local: bool) -> str:
    state = server.status()
    if state is not None:
        return state.base_url
    if not start_local:
        raise ConfigurationError("the local model server is not running: start it with `postreason local up`")
    console = Console(stderr=True)
    return server.up(say=lambda text: console.print(f"[dim]{text}[/]")).base_url


def resolve_lm(
    model: str = LOCAL,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
    cache: bool = False,
    start_local: bool = True,
) -> dspy.LM:
    """A dspy.LM for `model`: "local" (the running server, started if needed when `start_local`; with
    `api_base`, a llama.cpp server there), or a DSPy/litellm string such as "openai/gpt-4o-mini" with
    `api_base`/`api_key` from the arguments or the provider's usual environment variables."""
    settings: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens, "cache": cache}
    if model == LOCAL:
        if api_base:
            check_reachable(api_base)
        base_url = api_base or _local_base_url(start_local)
        return dspy.LM(LOCAL_MODEL_STRING, api_base=base_url, api_key=api_key or LOCAL_API_KEY, **settings)
    match = MODEL_STRING.match(model)
    if not match:
        raise ConfigurationError(
            f"unknown model {model!r}: use 'local' or a provider/model string such as 'openai/gpt-4o-mini', "
            "'hosted_vllm/<name>' (with --api-base) or 'ollama_chat/<name>'"
        )
    provider = match["provider"]
    if not _known_provider(provider):
        raise ConfigurationError(f"unknown provider {provider!r} in model {model!r} (see litellm's provider list)")
    base = api_base or os.environ.get(f"{provider.upper()}_API_BASE") or DEFAULT_BASES.get(provider)
    if base:
        check_reachable(base)
    elif provider == "hosted_vllm":
        raise ConfigurationError(f"{model!r} needs the server's URL: pass --api-base or set HOSTED_VLLM_API_BASE")
    elif provider in KEY_ENV and not api_key and not os.environ.get(KEY_ENV[provider]):
        raise ConfigurationError(f"{model!r} needs an API key: set {KEY_ENV[provider]}")
    if api_base:
        settings["api_base"] = api_base
    if api_key:
        settings["api_key"] = api_key
    elif api_base and not os.environ.get(KEY_ENV.get(provider, "-")):
        settings["api_key"] = LOCAL_API_KEY  # keyless OpenAI-compatible servers still need the client to send one
    try:
        return dspy.LM(model, **settings)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot use model {model!r}: {exc}") from None


def describe_lm(lm: dspy.LM) -> dict[str, Any]:
    """What a run record says about the model, never its key: the model string, where it is served,
    whether it is the embedded server, and (if so) which weights that server runs."""
    api_base = lm.kwargs.get("api_base")
    record: dict[str, Any] = {
        "model": lm.model,
        "api_base": redact(api_base) if api_base else None,
        "kind": "local" if lm.model == LOCAL_MODEL_STRING else "remote",
        "temperature": lm.kwargs.get("temperature"),
        "max_tokens": lm.kwargs.get("max_tokens"),
    }
    state = server.read_state() if record["kind"] == "local" else None
    if state is not None and state.base_url == api_base:
        record["local_model"] = state.model
    return record
