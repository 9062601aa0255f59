"""Measure what an answer costs per strategy on GSM8K: output tokens, time to answer, accuracy.

Strategies: direct, post_full (answer then justification), post (answer-only: stopped at the
justification's marker), cot, and post_stream (full-mode request streamed, cancelled once the answer
field is complete). Each strategy runs over all questions in turn after the same warm-up request, so
every call meets the same server cache state. Writes a JSON file under runs/.

    python scripts/measure_answer_cost.py --limit 30 [--model local] [--api-base URL]

--model/--api-base as for `postreason eval`; API keys come only from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean, median

import dspy

from postreason_dspy import PostReason, make_strategy
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.cli import run_entry
from postreason_dspy.cli.options import add_model_arguments, command_line, lm_from_args
from postreason_dspy.models import describe_lm
from postreason_dspy.secrets import redact
from postreason_dspy.streaming import stream_answer

STRATEGIES = ("direct", "post", "post_full", "cot", "post_stream")


def timed_call(program: dspy.Module, strategy: str, question: str) -> tuple[dspy.Prediction, float]:
    start = time.perf_counter()
    if strategy == "post_stream":
        pred = asyncio.run(stream_answer(program, question=question))
    else:
        pred = program(question=question)
    return pred, time.perf_counter() - start


def measure(lm: dspy.LM, strategy: str, examples: list[dspy.Example]) -> dict:
    bench = get_benchmark("gsm8k")
    program = PostReason("question -> answer") if strategy == "post_stream" else make_strategy(
        strategy, "question -> answer", on_parse_error="mark"
    )
    rows = []
    with dspy.context(lm=lm, track_usage=True):
        lm("Say OK.", max_tokens=2)
        for example in examples:
            pred, seconds = timed_call(program, strategy, example.question)
            usage = next(iter(pred.get_lm_usage().values()), {}) if pred.get_lm_usage() else {}
            rows.append({
                "id": example.id,
                "answer": bench.extract(pred),
                "correct": bool(bench.metric(example, pred)),
                "completion_tokens": usage.get("completion_tokens"),
                "seconds": seconds,
            })
    tokens = [r["completion_tokens"] for r in rows if r["completion_tokens"] is not None]
    seconds = [r["seconds"] for r in rows]
    return {
        "accuracy": mean(r["correct"] for r in rows),
        "correct": sum(r["correct"] for r in rows),
        "n": len(rows),
        "mean_completion_tokens": mean(tokens) if tokens else None,
        "median_completion_tokens": median(tokens) if tokens else None,
        "mean_seconds_to_answer": mean(seconds),
        "median_seconds_to_answer": median(seconds),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    lm = lm_from_args(args, max_tokens=args.max_tokens)
    examples = get_benchmark("gsm8k").load(split="test", limit=args.limit)
    results = {}
    for strategy in STRATEGIES:
        results[strategy] = measure(lm, strategy, examples)
        r = results[strategy]
        print(f"{strategy:12s} acc {r['correct']}/{r['n']}  tokens mean {r['mean_completion_tokens']}  "
              f"time mean {r['mean_seconds_to_answer']:.2f}s")
    direct = results["direct"]
    ratios = {
        f"{s}/direct": {
            "tokens": (results[s]["mean_completion_tokens"] or 0) / direct["mean_completion_tokens"]
            if results[s]["mean_completion_tokens"] is not None else None,
            "seconds": results[s]["mean_seconds_to_answer"] / direct["mean_seconds_to_answer"],
        }
        for s in STRATEGIES if s != "direct"
    }
    record = {
        "created": datetime.now(UTC).isoformat(),
        "command": f"python scripts/measure_answer_cost.py --model {args.model}"
        + (f" --api-base {redact(args.api_base)}" if args.api_base else "") + f" --limit {args.limit}",
        "model": describe_lm(lm),
        "benchmark": "gsm8k",
        "limit": args.limit,
        "ratios": ratios,
        "strategies": results,
    }
    out = args.out or Path("runs") / f"answer-cost-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(json.dumps(ratios, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    rerun = command_line("python", "scripts/measure_answer_cost.py", *sys.argv[1:])
    raise SystemExit(run_entry(main, resume=rerun))
