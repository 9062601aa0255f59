"""`eval --program`: a saved program file evaluated as a strategy of its own, beside the named strategies,
compared with direct and with any named pair; a changed file is refused on resume."""

from __future__ import annotations

import json

import pytest
from test_runner import FAST_RETRY, FakeBenchmark, post_fixes_odd, run

from postreason_dspy.benchmarks import program_file
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import EvalConfig, RunStore, resume_run
from postreason_dspy.evaluation import session as session_module
from postreason_dspy.io import content_id
from postreason_dspy.testing import scripted_lm

TUNED = "Double the number. (tuned wording)"


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch):
    """Program files name their benchmark; here every name is the test's arithmetic benchmark."""
    monkeypatch.setattr(program_file, "get_benchmark", lambda name: FakeBenchmark(name=name))


def tuned_file(path, benchmark="arith"):
    program = FakeBenchmark().program("post")
    predictor = program.predictors()[0]
    predictor.signature = predictor.signature.with_instructions(TUNED)
    save_program(program, path, benchmark=benchmark, strategy="post")
    return path


def test_a_program_file_runs_as_its_own_strategy_and_is_paired(tmp_path):
    path = tuned_file(tmp_path / "tuned.json")
    lm, engine = scripted_lm(post_fixes_odd)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct", "post"), limit=None,
                        programs={"tuned": str(path)}, pairs=(("tuned", "post"),))
    assert config.strategies == ("direct", "post", "tuned")
    store, summary = run(tmp_path / "runs", lm, config)

    prompts = [request.prompt for request in engine.requests]
    assert len(prompts) == 18 and not any(TUNED in p for p in prompts[:12]) and all(TUNED in p for p in prompts[12:])
    tuned = [record for record in store.records() if record.strategy == "tuned"]
    assert len(tuned) == 6 and all(record.status == "ok" and record.correct for record in tuned)
    assert [(row.treatment, row.baseline) for row in summary.comparisons] == [
        ("post", "direct"), ("tuned", "direct"), ("tuned", "post")]
    document = store.read_config()
    assert document["programs"]["tuned"] == {"path": str(path), "benchmark": "arith", "strategy": "post",
                                             "content_id": content_id(path.read_text())}
    assert document["config"]["programs"] == {"tuned": str(path)}


def test_a_program_saved_for_another_benchmark_is_refused_before_the_run(tmp_path):
    path = tuned_file(tmp_path / "tuned.json", benchmark="gsm8k")
    lm, engine = scripted_lm(post_fixes_odd)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), programs={"t": str(path)})
    refusal = "saved for benchmark 'gsm8k', but this run evaluates benchmark 'arith'"
    with pytest.raises(ConfigurationError, match=refusal):
        run(tmp_path / "runs", lm, config)
    assert not (tmp_path / "runs").exists() and engine.requests == []


def test_resume_refuses_a_program_file_that_changed(tmp_path):
    path = tuned_file(tmp_path / "tuned.json")
    lm, _ = scripted_lm(post_fixes_odd)
    config = EvalConfig(models=("fake",), benchmarks=("arith",), strategies=("direct",), programs={"t": str(path)})
    store, _ = run(tmp_path / "runs", lm, config)
    data = json.loads(path.read_text())
    data["metadata"] = {"note": "tuned again"}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match=r"program files changed since run .* started \(t: .*tuned.json\)"):
        resume_run(store, lm_factory=lambda *a, **k: lm, benchmark_factory=lambda n: FakeBenchmark(), retry=FAST_RETRY)


def test_program_labels_must_not_shadow_a_strategy_and_pairs_must_name_strategies_of_the_run():
    with pytest.raises(ConfigurationError, match="label 'post' is also a strategy's name"):
        EvalConfig(programs={"post": "p.json"})
    with pytest.raises(ConfigurationError, match="pair tuned:cot needs two strategies of this run"):
        EvalConfig(strategies=("direct", "post"), programs={"tuned": "p.json"}, pairs=(("tuned", "cot"),))


def test_eval_command_with_program_files(tmp_path, monkeypatch, capsys):
    path = tuned_file(tmp_path / "tuned-post.json")
    lm, _ = scripted_lm(post_fixes_odd)
    monkeypatch.setattr(session_module, "resolve_lm", lambda *a, **k: lm)
    monkeypatch.setattr(session_module, "_default_benchmark", lambda name: FakeBenchmark())
    runs = tmp_path / "runs"
    args = ["eval", "--model", "fake", "--benchmark", "arith", "--strategy", "direct,post", "--limit", "3",
            "--program", str(path), "--program", f"{path}=again", "--pair", "again:post",
            "--runs-dir", str(runs), "--run-id", "cli", "--no-progress"]
    assert main(args) == 0
    document = RunStore.open("cli", runs).read_config()
    assert document["config"]["strategies"] == ["direct", "post", "tuned-post", "again"]
    assert document["config"]["pairs"] == [["again", "post"]]
    assert f"--program {path}=tuned-post --program {path}=again --pair again:post" in document["command"]
    assert "again beats post in" in " ".join(capsys.readouterr().out.split())
    assert main(["eval", "--resume", "cli", "--runs-dir", str(runs), "--program", str(path)]) == 2
    assert "options that would change them (--program)" in " ".join(capsys.readouterr().err.split())
