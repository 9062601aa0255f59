"""GPQA never reaches a file: `postreason eval` and `postreason tune` on a fake GPQA file, with a model that
repeats the option text in its answer and justification (and once writes a malformed completion), leave none
of its question or option text in their run folders."""

from __future__ import annotations

import json
import re

import dspy
import pytest
from gpqa_fake import fake_gpqa, leaked

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import RunStore
from postreason_dspy.testing import scripted_lm

QUESTION = re.compile(r"\[\[ ## question ## \]\]\s*(.*?)\n")
OPTION_D = re.compile(r"^D\. (.*)$", re.M)


def parroting(user: str) -> dict[str, str] | str:
    """Answers D with its text and quotes the question; for isotopes ending in 3 or 7, an unparsable completion."""
    question, option = QUESTION.search(user).group(1), OPTION_D.search(user).group(1)
    if re.search(r"isotope \d*[37] ", question):
        return f"I think {option} because {question}"
    return {"answer": f"D. {option}", "rationale": f"{question} The answer is {option}."}


@pytest.fixture
def gpqa(data_dir, monkeypatch):
    texts = fake_gpqa(data_dir, rows=40)
    lm, engine = scripted_lm(parroting)
    monkeypatch.setattr("postreason_dspy.evaluation.session.resolve_lm", lambda *a, **k: lm)
    monkeypatch.setattr("postreason_dspy.tuning.run.resolve_lm", lambda *a, **k: lm)
    return texts, engine


def test_eval_records_keep_no_gpqa_text(tmp_path, gpqa):
    texts, engine = gpqa
    runs = tmp_path / "runs"
    assert main(["eval", "--model", "fake", "--benchmark", "gpqa", "--strategy", "direct,post", "--runs-dir",
                 str(runs), "--run-id", "g", "--no-progress"]) == 0
    assert main(["report", str(runs / "g")]) == 0
    records = RunStore.open("g", runs).records()
    assert len(records) > 10 and any(text in request.prompt for request in engine.requests for text in texts)
    assert any(record.status == "parse_error" for record in records)  # the malformed completion was recorded
    assert {record.answer for record in records} <= {"D", None} and any(record.answer == "D" for record in records)
    assert all(record.completion is None and record.inputs is None for record in records)
    assert {record.parse_error for record in records} == {None, "unparsed (text withheld)"}
    assert all(record.prompt_tokens and record.finish_reason for record in records)
    assert not leaked(runs, texts)


def test_tune_keeps_no_gpqa_text_and_uses_no_demos(tmp_path, gpqa, capsys):
    texts, _ = gpqa
    runs = tmp_path / "runs"
    assert main(["tune", "--model", "fake", "--benchmark", "gpqa", "--trials", "2", "--train-size", "4",
                 "--dev-size", "4", "--limit", "4", "--propose", "2", "--runs-dir", str(runs), "--run-id", "t",
                 "--no-progress"]) == 0
    assert "only the shipped instruction wordings are tuned" in capsys.readouterr().out
    folder = runs / "t" / "fake"
    assert json.loads((folder / "demo_sets.json").read_text())["sets"] == []
    summary = json.loads((runs / "t" / "summary.json").read_text())
    assert "gpqa must never be stored" in summary["models"]["fake"]["note"]
    assert (folder / "program.json").is_file() and (folder / "trials.jsonl").is_file()
    assert "proposed_wordings" not in json.loads((folder / "search.json").read_text())  # --propose was set aside
    assert not leaked(runs, texts)


def test_a_failed_trial_on_withheld_text_notes_the_error_type_only(tmp_path):
    from search_helpers import examples, trials_log

    from postreason_dspy import PostReason
    from postreason_dspy.optimizers import PostReasonSearch

    def quoting(example, pred, trace=None):
        raise RuntimeError(f"cannot score {example.question!r}")

    with pytest.raises(ConfigurationError, match="must not be stored"):
        PostReasonSearch(quoting, withhold_text=True)
    search = PostReasonSearch(quoting, num_trials=2, num_demo_sets=0, run_dir=tmp_path, withhold_text=True)
    lm, _ = scripted_lm({"answer": "right", "rationale": "because"})
    with dspy.context(lm=lm), pytest.raises(RuntimeError):
        search.compile(PostReason("question -> answer"), trainset=examples(3, "secret-t"),
                       valset=examples(3, "secret-d"))
    failed = [line for line in trials_log(tmp_path) if line["state"] == "failed"]
    assert [line["note"] for line in failed] == ["RuntimeError"]
    assert "secret-d" not in "".join(path.read_text(errors="ignore") for path in tmp_path.glob("*.json*"))


def test_save_program_refuses_gpqa_demos(tmp_path, gpqa):
    bench = get_benchmark("gpqa")
    program = bench.program("post")
    program.choose.predict.demos = [dspy.Example(**bench.load("test", limit=1)[0].inputs(), answer="A")]
    with pytest.raises(ConfigurationError, match="must never be stored in plain text"):
        save_program(program, tmp_path / "p.json", benchmark="gpqa", strategy="post")
    assert not (tmp_path / "p.json").exists()
