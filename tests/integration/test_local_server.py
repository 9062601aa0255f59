"""Which request path the llama.cpp server honours for max_tokens and stop, shown on the real server,
and the `postreason local` lifecycle against the running server."""

from __future__ import annotations

import json
import time
import urllib.request

import dspy
import pytest

from postreason_dspy.cli import main
from postreason_dspy.local import server
from postreason_dspy.models import LOCAL_API_KEY, LOCAL_MODEL_STRING

pytestmark = pytest.mark.integration

COUNT = "Count from 1 to 60, separated by spaces. Write nothing else."


def call(lm: dspy.LM, **kwargs) -> tuple[str, str, int]:
    """(text, finish_reason, completion tokens) of one greedy call, on either DSPy engine."""
    lm(COUNT, **kwargs)
    entry = lm.history[-1]
    response = entry["response"]
    finish = getattr(response, "finish_reason", None) or response.choices[0].finish_reason  # native, litellm
    return entry["outputs"][0], finish, entry["usage"]["completion_tokens"]


@pytest.fixture(scope="module")
def llama_cpp(real_base_url: str) -> str:
    """The address, if it is the llama-cpp-python server (whose handling of max_completion_tokens is tested)."""
    root = real_base_url.rstrip("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/openapi.json", timeout=10) as response:
        title = json.load(response)["info"]["title"]
    if "llama.cpp" not in title:
        pytest.skip(f"the server at {real_base_url} is not llama-cpp-python ({title!r})")
    return real_base_url


@pytest.fixture(params=["native", "litellm"])
def chosen_path(request, real_lm: dspy.LM) -> dspy.LM:
    """The local request path on both DSPy engines: each sends max_tokens."""
    if request.param == "native":
        return real_lm
    return dspy.LM(real_lm.model, api_base=real_lm.kwargs["api_base"], api_key=LOCAL_API_KEY, temperature=0.0,
                   cache=False, engine="litellm")


def test_chosen_path_honours_max_tokens(chosen_path):
    text, finish, completion_tokens = call(chosen_path, max_tokens=8)
    assert (finish, completion_tokens) == ("length", 8)
    assert text.startswith("1 2 3")


def test_chosen_path_honours_stop(chosen_path):
    text, finish, completion_tokens = call(chosen_path, max_tokens=300, stop=[" 7 "])
    assert finish == "stop"
    assert text.split() == ["1", "2", "3", "4", "5", "6"]
    assert completion_tokens < 20


def test_native_openai_path_ignores_the_limit(llama_cpp):
    """DSPy's native openai/ path sends max_completion_tokens, which llama.cpp ignores: the model runs on
    to its own end. This is why the local model is addressed as hosted_vllm/ (which sends max_tokens)."""
    assert LOCAL_MODEL_STRING.startswith("hosted_vllm/")
    native_openai = dspy.LM("openai/local", api_base=llama_cpp, api_key=LOCAL_API_KEY, temperature=0.0, cache=False)
    text, finish, completion_tokens = call(native_openai, max_tokens=8)
    assert finish == "stop"
    assert completion_tokens > 8
    assert len(text.split()) > 8


@pytest.fixture
def local_state(real_base_url: str) -> server.ServerState:
    state = server.status()
    if state is None or state.base_url != real_base_url:
        pytest.skip("the tests use a server not started by `postreason local up`")
    return state


def test_a_second_up_reuses_the_running_server(local_state, capsys):
    started = time.monotonic()
    assert server.up(local_state.model, say=lambda _: None) == local_state
    assert time.monotonic() - started < 5
    assert main(["local", "status"]) == 0
    out = capsys.readouterr().out
    assert local_state.base_url in out
    assert str(local_state.pid) in out
    assert local_state.model in out
