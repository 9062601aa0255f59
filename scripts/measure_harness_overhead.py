"""Harness overhead: examples/s of `postreason eval` against a bare loop of raw HTTP requests.

Both send the same prompts (rendered by the harness's own program and adapter) with the same
settings and concurrency to the same OpenAI-compatible server. The bare loop only POSTs
/chat/completions and reads the JSON; `postreason eval` also resolves the model, loads the data,
parses and scores each answer, writes and fsyncs a record per example, and computes the summary.
Each repeat runs both over all examples (one strategy, so the server's prompt cache sees the same
sequence each time), alternating which goes first. Besides the ratio of examples/s, the time the
harness spends outside LM calls (its wall time minus the recorded LM latencies) is its own overhead,
free of the server's run-to-run noise (exact with --threads 1). Writes a JSON file under runs/.

    python scripts/measure_harness_overhead.py --limit 20 [--threads 1] [--strategy direct] [--model local]
        [--api-base URL]

--model/--api-base as for `postreason eval`; API keys come only from the environment. The bare loop
posts to the resolved LM's server with the key that LM sends, so the model must speak OpenAI chat
completions (local, hosted_vllm/..., openai/..., or another OpenAI-compatible provider).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy import PostReason, interrupt
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.cli import main as postreason
from postreason_dspy.cli import run_entry
from postreason_dspy.cli.options import add_model_arguments, command_line, lm_from_args
from postreason_dspy.decoding import answer_only_stops, strict_adapter
from postreason_dspy.evaluation import RunStore
from postreason_dspy.models import KEY_ENV, LOCAL_MODEL_STRING, describe_lm
from postreason_dspy.predict import request_signature
from postreason_dspy.secrets import redact

# litellm's own defaults for the OpenAI-style providers whose base get_llm_provider leaves unset
CHAT_COMPLETIONS_BASES = {"openai": "https://api.openai.com/v1", "openrouter": "https://openrouter.ai/api/v1"}


def request_bodies(lm: dspy.LM, program: dspy.Module, examples: list[dspy.Example]) -> list[dict[str, Any]]:
    """The chat-completion bodies the harness sends: its adapter's messages, the LM's settings, the stop marker."""
    (_, predictor), = program.named_predictors()
    adapter = strict_adapter()
    stop = [
        marker
        for _, module in program.named_sub_modules()
        if isinstance(module, PostReason) and module.mode == "answer_only"
        for marker in answer_only_stops(adapter, module.rationale_field, module.predict.signature.output_fields)
    ]
    settings = {"temperature": lm.kwargs["temperature"], "max_tokens": lm.kwargs["max_tokens"]}
    if stop:
        settings["stop"] = stop
    model = lm.model.split("/", 1)[1]
    return [
        {"model": model,
         "messages": adapter.format(request_signature(predictor), predictor.demos, example.inputs().toDict()),
         **settings}
        for example in examples
    ]


def endpoint(lm: dspy.LM) -> tuple[str, str | None]:
    """The /chat/completions URL the LM calls and the API key it sends, resolved as litellm does: the LM's
    api_base/api_key, else the provider's environment variables and defaults. The key is never printed."""
    base, key = lm.kwargs.get("api_base"), lm.kwargs.get("api_key")
    if lm.model != LOCAL_MODEL_STRING:  # the local server's LM carries both
        import litellm  # slow import (seconds)

        _, provider, found_key, found_base = litellm.get_llm_provider(lm.model, api_base=base, api_key=key)
        if provider not in CHAT_COMPLETIONS_BASES and provider not in litellm.openai_compatible_providers:
            raise SystemExit(f"the bare loop speaks OpenAI chat completions, which {provider!r} does not; "
                             "use an OpenAI-compatible model such as hosted_vllm/NAME with --api-base")
        env = provider.upper()
        base = (found_base or (provider == "openai" and os.environ.get("OPENAI_BASE_URL"))
                or os.environ.get(f"{env}_API_BASE") or CHAT_COMPLETIONS_BASES.get(provider))
        key = found_key or os.environ.get(KEY_ENV.get(provider, f"{env}_API_KEY"))
        if not base:
            raise SystemExit(f"no server URL for {lm.model!r}: pass --api-base")
    return base.rstrip("/") + "/chat/completions", key


def post(url: str, api_key: str | None, body: dict[str, Any]) -> dict[str, Any]:
    interrupt.check()  # the bare loop stops between requests too
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)


def bare_loop(url: str, api_key: str | None, bodies: list[dict[str, Any]], threads: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(lambda body: post(url, api_key, body), bodies))
    return time.perf_counter() - start, responses


def harness(args: argparse.Namespace, runs_dir: Path, run_id: str) -> tuple[float, list[dict]]:
    command = ["eval", "--model", args.model, *(["--api-base", args.api_base] if args.api_base else []),
               "--benchmark", args.benchmark, "--strategy", args.strategy,
               "--limit", str(args.limit), "--threads", str(args.threads), "--max-tokens", str(args.max_tokens),
               "--runs-dir", str(runs_dir), "--run-id", run_id, "--no-progress"]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = postreason(command)
    seconds = time.perf_counter() - start
    if code != 0:
        shown = [redact(part) if part == args.api_base else part for part in command]
        raise SystemExit(f"postreason {' '.join(shown)} exited with {code}")
    return seconds, RunStore.open(run_id, runs_dir).records()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--benchmark", default="gsm8k")
    parser.add_argument("--strategy", default="direct")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    lm = lm_from_args(args, max_tokens=args.max_tokens)
    url, api_key = endpoint(lm)
    bench = get_benchmark(args.benchmark)
    started = time.perf_counter()
    examples = bench.load(split="test", limit=args.limit)
    load_s = time.perf_counter() - started
    bodies = request_bodies(lm, bench.program(args.strategy), examples)
    post(url, api_key, {**bodies[0], "max_tokens": 1})  # warm-up: the model is loaded and answering

    repeats = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            if repeat % 2 == 0:
                bare_s, responses = bare_loop(url, api_key, bodies, args.threads)
                harness_s, records = harness(args, Path(scratch), f"repeat-{repeat}")
            else:
                harness_s, records = harness(args, Path(scratch), f"repeat-{repeat}")
                bare_s, responses = bare_loop(url, api_key, bodies, args.threads)
            by_id = {record.id: record for record in records}
            harness_rows = [by_id[str(example.id)] for example in examples]
            repeats.append({
                "bare_s": bare_s,
                "harness_s": harness_s,
                "bare_examples_per_s": len(examples) / bare_s,
                "harness_examples_per_s": len(examples) / harness_s,
                "harness_lm_latency_s": sum(h.latency_s or 0 for h in harness_rows),
                "bare_completion_tokens": sum(r["usage"]["completion_tokens"] for r in responses),
                "harness_completion_tokens": sum(h.completion_tokens or 0 for h in harness_rows),
                "same_prompt_tokens": sum(r["usage"]["prompt_tokens"] == h.prompt_tokens
                                          for r, h in zip(responses, harness_rows, strict=True)),
                "same_completion": sum(r["choices"][0]["message"]["content"] == h.completion
                                       for r, h in zip(responses, harness_rows, strict=True)),
                "harness_errors": sum(h.failed for h in harness_rows),
            })
            print(f"repeat {repeat}: bare {repeats[-1]['bare_examples_per_s']:.3f} ex/s, "
                  f"harness {repeats[-1]['harness_examples_per_s']:.3f} ex/s")

    bare = statistics.median(r["bare_examples_per_s"] for r in repeats)
    ours = statistics.median(r["harness_examples_per_s"] for r in repeats)
    overhead = statistics.median((r["harness_s"] - r["bare_s"]) / len(examples) for r in repeats)
    outside_lm = statistics.median((r["harness_s"] - r["harness_lm_latency_s"]) / len(examples) for r in repeats)
    record = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python scripts/measure_harness_overhead.py --model {args.model} "
        + (f"--api-base {redact(args.api_base)} " if args.api_base else "") + f"--benchmark {args.benchmark} "
        f"--strategy {args.strategy} --limit {args.limit} --threads {args.threads} --repeats {args.repeats}",
        "model": describe_lm(lm),
        "benchmark": args.benchmark,
        "strategy": args.strategy,
        "examples": len(examples),
        "threads": args.threads,
        "data_load_s": load_s,
        "median_bare_examples_per_s": bare,
        "median_harness_examples_per_s": ours,
        "ratio_harness_to_bare": ours / bare,
        "median_overhead_s_per_example": overhead,
        "median_harness_time_outside_lm_calls_s_per_example": outside_lm,
        "repeats": repeats,
        "note": "harness time is `postreason eval` called in-process (imports excluded): model resolution, data "
        "loading, the DSPy program, parsing, scoring, fsynced records, summary and tables",
    }
    out = args.out or Path("runs") / f"harness-overhead-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"ratio harness/bare examples/s: {ours / bare:.3f}; wall-time difference {overhead * 1000:.0f} ms and "
          f"harness time outside LM calls {outside_lm * 1000:.0f} ms per example")
    print(f"wrote {out}")


if __name__ == "__main__":
    rerun = command_line("python", "scripts/measure_harness_overhead.py", *sys.argv[1:])
    raise SystemExit(run_entry(main, resume=rerun))
