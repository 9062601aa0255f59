"""The evaluation runner on a scripted fake LM and a small fake benchmark: no network."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

import dspy
import pytest
from dspy import lm15
from rich.console import Console

from postreason_dspy import make_strategy
from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import EvalConfig, RetryPolicy, RunStore, resume_run, start_run, write_report
from postreason_dspy.evaluation import session as session_module
from postreason_dspy.scoring import answer_text
from postreason_dspy.testing import requested_order, scripted_lm

QUESTION = re.compile(r"What is (\d+) \+ \1\?")
FAST_RETRY = RetryPolicy(retries=2, base_delay_s=0.001)


@dataclass
class FakeBenchmark:
    """Doubling questions; the gold answer of question i is 2i."""

    name: str = "arith"
    family: str = "math"
    size: int = 6
    offset: int = 0
    withhold_text: bool = False

    def load(self, split="test", limit=None, seed=0, path=None):
        examples = [
            dspy.Example(id=f"q{i}", question=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("question")
            for i in range(self.offset, self.offset + self.size)
        ]
        return examples[:limit] if limit else examples

    def program(self, strategy="post", **kwargs):
        return make_strategy(strategy, "question -> answer", **kwargs)

    def extract(self, pred, example=None):
        return answer_text(pred)

    def metric(self, example, pred, trace=None):
        return self.extract(pred, example) == example.answer

    def source_description(self):
        return "built into the test"


def number(user: str) -> int:
    return int(QUESTION.search(user).group(1))


def post_fixes_odd(user: str):
    """Direct answers odd questions wrong; told a justification follows, the model gets them right."""
    i = number(user)
    right = i % 2 == 0 or "rationale" in requested_order(user)
    return {"answer": str(2 * i if right else 2 * i + 1), "rationale": "doubling", "reasoning": "add it to itself"}


def run(tmp_path, lm, config=None, bench=None, **kwargs):
    config = config or EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct", "post"), limit=None)
    bench = bench or FakeBenchmark()
    return start_run(config, tmp_path, lm_factory=lambda *a, **k: lm, benchmark_factory=lambda name: bench,
                     retry=kwargs.pop("retry", FAST_RETRY), **kwargs)


def test_every_setting_is_recorded_with_its_cost(tmp_path):
    lm, engine = scripted_lm(post_fixes_odd)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct", "post"), limit=None, threads=3)
    store, summary = run(tmp_path, lm, config)

    records = store.records()
    assert len(records) == 12 and len({(r.strategy, r.id) for r in records}) == 12
    first = next(r for r in records if r.strategy == "direct" and r.id == "q1")
    assert first.inputs == {"question": "What is 1 + 1?"}
    assert (first.answer, first.gold, first.correct, first.status) == ("3", "2", False, "ok")
    assert first.completion.startswith("[[ ## answer ## ]]\n3")
    assert first.prompt_tokens > 50 and first.completion_tokens > 0
    assert first.finish_reason == "stop" and first.latency_s >= 0
    assert (first.lm_calls, first.attempts, first.error) == (1, 1, None)
    post = next(r for r in records if r.strategy == "post" and r.id == "q1")
    assert post.correct and "rationale" not in post.completion  # answer-only: stopped at the marker

    # One strategy at a time over all examples: every direct request comes before any post request.
    kinds = ["post" if "rationale" in requested_order(r.messages[-1]["content"]) else "direct" for r in engine.requests]
    assert kinds == ["direct"] * 6 + ["post"] * 6

    (comparison,) = summary.comparisons
    assert (comparison.treatment_only, comparison.baseline_only, comparison.p_value) == (3, 0, 0.25)
    assert summary.complete and summary.errors == 0
    saved = json.loads((store.path / "summary.json").read_text())
    assert saved["headline"][0]["win_share"] == 1.0
    config_doc = store.read_config()
    assert config_doc["record_format"] == 1
    assert config_doc["benchmarks"]["arith"]["example_ids"] == [f"q{i}" for i in range(6)]
    assert config_doc["models"]["fake"]["model"] == "scripted/model"
    assert config_doc["command"].startswith("postreason eval --model fake --benchmark arith --strategy direct,post")


def test_interrupted_run_resumes_without_losing_or_duplicating(tmp_path):
    calls = {"n": 0}

    def interrupted_at_fourth_call(user):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return post_fixes_odd(user)

    lm, _ = scripted_lm(interrupted_at_fourth_call)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, lm, run_id="r")
    store = RunStore.open("r", tmp_path)
    before = store.records()
    # q3 was interrupted; examples the worker had already finished by then are kept too.
    ids = [r.id for r in before]
    assert ids[:3] == ["q0", "q1", "q2"] and "q3" not in ids
    partial = json.loads((store.path / "summary.json").read_text())
    assert partial["recorded"] == len(before) and partial["complete"] is False
    with store.examples_path.open("a") as handle:
        handle.write('{"model": "fake", "benchmark": "arith", "strategy": "direct", "id": "q3", "sta')  # torn

    lm2, engine2 = scripted_lm(post_fixes_odd)
    compaction, summary = resume_run(store, lm_factory=lambda *a, **k: lm2, benchmark_factory=lambda n: FakeBenchmark(),
                                     retry=FAST_RETRY)
    assert (compaction.kept, compaction.lines_dropped) == (len(before), 1)
    assert len(engine2.requests) == 12 - len(before)  # only what was missing
    lines = [json.loads(line) for line in store.examples_path.read_text().splitlines()]
    keys = [(r["strategy"], r["id"]) for r in lines]
    assert len(keys) == len(set(keys)) == 12
    assert lines[: len(before)] == [r.to_dict() for r in before]  # finished examples are kept as they were
    assert summary.complete and summary.recorded == 12


def test_failing_lm_calls_are_recorded_and_the_run_continues(tmp_path):
    failures = {"q2": 0}

    def flaky(user):
        i = number(user)
        if i == 1:
            raise lm15.ServerError("upstream exploded", status=503)
        if i == 2 and failures["q2"] == 0:
            failures["q2"] += 1
            raise lm15.RateLimitError("slow down", status=429, retry_after=0.0)
        if i == 3:
            raise lm15.AuthError("bad key", status=401)  # not transient: no retry
        return post_fixes_odd(user)

    lm, engine = scripted_lm(flaky)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), limit=None)
    store, summary = run(tmp_path, lm, config)
    by_id = {r.id: r for r in store.records()}
    assert len(by_id) == 6
    assert by_id["q1"].status == "error" and by_id["q1"].attempts == 3
    assert "upstream exploded" in by_id["q1"].error and by_id["q1"].correct is None
    assert by_id["q2"].status == "ok" and by_id["q2"].attempts == 2 and by_id["q2"].correct
    assert by_id["q3"].status == "error" and by_id["q3"].attempts == 1
    assert all(by_id[i].status == "ok" for i in ("q0", "q4", "q5"))
    assert len(engine.requests) == 3 + 2 + 1 + 3
    (row,) = summary.settings
    assert (row.errors, row.scored, row.accuracy) == (2, 4, 0.75)  # q0, q2, q4 right; q5 wrong


def test_resume_redoes_failed_examples(tmp_path):
    lm, _ = scripted_lm(lambda user: (_ for _ in ()).throw(lm15.TransportError("connection reset")))
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), limit=2, retries=0)
    store, summary = run(tmp_path, lm, config)
    assert summary.errors == 2
    lm2, engine2 = scripted_lm(post_fixes_odd)
    compaction, summary = resume_run(store, lm_factory=lambda *a, **k: lm2, benchmark_factory=lambda n: FakeBenchmark())
    assert compaction.errors_dropped == 2 and len(engine2.requests) == 2
    assert summary.errors == 0 and [r.status for r in store.records()] == ["ok", "ok"]


def test_parse_errors_count_as_wrong_answers(tmp_path):
    lm, _ = scripted_lm(lambda user: "I think it is four.")
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), limit=2)
    store, summary = run(tmp_path, lm, config)
    record = store.records()[0]
    assert record.status == "parse_error" and record.correct is False
    assert record.completion == "I think it is four." and record.parse_error
    assert summary.settings[0].parse_errors == 2 and summary.settings[0].accuracy == 0.0


def test_resume_refuses_changed_data(tmp_path):
    lm, _ = scripted_lm(post_fixes_odd)
    store, _ = run(tmp_path, lm)
    with pytest.raises(ConfigurationError, match=r"no longer yield the examples run .* with \(arith\); their data"):
        resume_run(store, lm_factory=lambda *a, **k: lm, benchmark_factory=lambda n: FakeBenchmark(offset=1))


def test_no_api_key_anywhere_under_runs(tmp_path, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    def leaky(user):
        if number(user) == 1:
            raise lm15.AuthError(f"key {secret} rejected", status=401)
        return {"answer": f"{2 * number(user)} (my key is {secret})", "rationale": secret}

    lm, _ = scripted_lm(leaky)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct", "post_full"), limit=3,
                        api_base=f"http://user:{secret}@127.0.0.1:9/v1")
    store, _ = run(tmp_path, lm, config)
    write_report(store)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"config.json", "examples.jsonl", "summary.json", "report.md"}
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert "[redacted]" in store.examples_path.read_text()


def test_withheld_benchmark_text_is_not_written_under_runs(tmp_path):
    lm, _ = scripted_lm(post_fixes_odd)
    store, summary = run(tmp_path, lm, bench=FakeBenchmark(withhold_text=True))
    write_report(store)
    records = store.records()
    assert len(records) == 12 and summary.complete
    assert all(record.inputs is None and record.id.startswith("q") for record in records)
    for path in (path for path in tmp_path.rglob("*") if path.is_file()):
        assert b"What is" not in path.read_bytes(), path


def test_progress_display_shows_each_setting(tmp_path):
    lm, _ = scripted_lm(post_fixes_odd)
    output = io.StringIO()
    run(tmp_path, lm, console=Console(file=output, width=200))
    text = output.getvalue()
    assert "fake · arith · direct" in text and "fake · arith · post" in text and "6/6" in text


def test_eval_command_end_to_end(tmp_path, monkeypatch, capsys):
    lm, _ = scripted_lm(post_fixes_odd)
    monkeypatch.setattr(session_module, "resolve_lm", lambda *a, **k: lm)
    monkeypatch.setattr(session_module, "_default_benchmark", lambda name: FakeBenchmark())
    args = ["eval", "--model", "fake", "--benchmark", "arith", "--strategy", "direct,post", "--limit", "4",
            "--runs-dir", str(tmp_path), "--run-id", "cli", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "post beats direct in 1 of 1 setting" in out
    assert len(RunStore.open("cli", tmp_path).records()) == 8
    assert main(["eval", "--resume", "cli", "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    assert len(RunStore.open("cli", tmp_path).records()) == 8
    assert main(["eval", "--resume", "cli", "--limit", "5", "--runs-dir", str(tmp_path)]) == 2  # settings are fixed
    said = " ".join(capsys.readouterr().err.split())
    assert "would change them (--limit); only --threads, --retries and --api-base may change" in said
