"""Post-reason tuning end to end on the real 0.5B model: a few LoRA steps, the loss falls, the adapter converts
to GGUF, and a llama.cpp server started with it answers.

The tuned model gets its own server on a free port with its own POSTREASON_HOME (state, lock, log), so
the main server that the other integration tests use is neither stopped nor reused; it is idle while
this test runs. About 2-3 minutes on 2 cores (loading the GGUF into transformers takes ~35 s of it).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import urllib.request

import pytest

from postreason_dspy.cli import main
from postreason_dspy.local import server
from postreason_dspy.local.paths import home
from postreason_dspy.local.runtime import runtime_installed
from postreason_dspy.local.weights import SMALL_MODEL, model_spec

pytestmark = pytest.mark.integration

TRAIN_EXTRA = ("torch", "transformers", "peft", "gguf")
QUESTIONS = [
    ("What is 2 + 3?", "5", "Adding 2 and 3 gives 5."),
    ("What is the capital of France?", "Paris", "Paris is the capital city of France."),
]


def record(index: int, question: str, answer: str, justification: str) -> dict:
    reply = f"[[ ## answer ## ]]\n{answer}\n\n[[ ## justification ## ]]\n{justification}\n\n[[ ## completed ## ]]"
    start, jstart = reply.index(answer), reply.index(justification)
    return {
        "id": f"q{index}",
        "messages": [
            {"role": "system", "content": "Give the answer first, then justify it."},
            {"role": "user", "content": f"[[ ## question ## ]]\n{question}"},
            {"role": "assistant", "content": reply},
        ],
        "spans": {"answer": [start, start + len(answer)], "justification": [jstart, jstart + len(justification)]},
        "rationalized": False,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((server.HOST, 0))
        return probe.getsockname()[1]


def test_a_few_steps_lower_the_loss_and_the_converted_adapter_is_served(tmp_path, monkeypatch):
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the train extra is not installed ({', '.join(missing)}): pip install -e '.[train]'")
    if not runtime_installed():
        pytest.skip("the llama.cpp runtime is not installed: run `postreason local up` once")
    gguf = home() / "models" / model_spec(SMALL_MODEL).filename
    if not gguf.is_file():
        pytest.skip(f"no cached {gguf.name}: run `postreason local up` once")

    data = tmp_path / "distilled"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(record(i, *q)) + "\n" for i, q in enumerate(QUESTIONS)))
    out = tmp_path / "tuned"
    # The post-training check serves the adapter on a server of its own, beside the main one, and stops it.
    monkeypatch.setenv("POSTREASON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("POSTREASON_LOCAL_PORT", str(free_port()))
    code = main([
        "finetune", str(data), "--out", str(out), "--base", str(gguf), "--max-steps", "3", "--batch-size", "2",
        "--lr", "1e-3", "--runs-dir", str(tmp_path / "runs"), "--run-id", "ft", "--no-progress",
    ])
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["steps"] == 3 and summary["losses"][-1] < summary["losses"][0]
    assert summary["tokens"] > 0 and summary["tokens_per_s"] > 0
    assert (out / "adapter.gguf").read_bytes()[:4] == b"GGUF"
    assert (tmp_path / "runs" / "ft" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    check = summary["check"]
    assert check["status"] in ("passed", "failed"), check  # it ran, through the served GGUF adapter
    # Three steps at lr 1e-3 on two records may well break the reply format (CI saw it do so); the check's
    # verdict, not training finishing, decides the exit code.
    assert code == (0 if check["status"] == "passed" else 1), check
    assert check["replies"] and all(reply["reply"] is not None for reply in check["replies"])
    assert server.status() is None  # the check stopped the server it started

    state = server.up(port=free_port(), lora=out, say=lambda _: None)
    try:
        assert state.lora == str((out / "adapter.gguf").resolve()) and "+lora-" in state.model
        request = urllib.request.Request(
            f"{state.base_url}/chat/completions",
            data=json.dumps({
                "model": server.MODEL_ALIAS, "temperature": 0, "max_tokens": 40,
                "messages": record(0, "What is 4 + 4?", "8", "x")["messages"][:2],
            }).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            reply = json.loads(response.read())["choices"][0]["message"]["content"]
        assert reply.strip()
    finally:
        server.down()
    assert server.status() is None
