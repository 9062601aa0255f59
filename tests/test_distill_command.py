"""`postreason distill` on benchmark data: the leakage guard, official-test warnings, GPQA never written,
several benchmarks into one dataset, and the teacher named on the card."""

from __future__ import annotations

import json

import dspy
import pytest
from gpqa_fake import fake_gpqa, leaked, write_program_with_demos

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import main
from postreason_dspy.distill import job as distill_job
from postreason_dspy.distill.job import DistillJob, run_distill_job
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.testing import scripted_lm

PLANTED = "Tom has 2 apples and buys 3 more. How many apples does Tom have?"
VALUES = {"answer": "5", "rationale": "2 + 3 = 5"}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def scripted(monkeypatch):
    lm, engine = scripted_lm(VALUES)
    monkeypatch.setattr("postreason_dspy.cli.distill.resolve_lm", lambda *args, **kwargs: lm)
    return engine


def _gsm8k_program(tmp_path):
    path = tmp_path / "program.json"
    save_program(get_benchmark("gsm8k").program("post"), path, benchmark="gsm8k", strategy="post", model="local")
    return path


def test_a_planted_test_question_is_skipped_counted_and_named(tmp_path, data_dir, scripted, monkeypatch, capsys):
    train = [{"id": f"g{n}", "question": f"What is {n} + {5 - n}?", "answer": "5", "split": "train"} for n in range(4)]
    planted = {"id": "g-planted", "question": PLANTED, "answer": "5", "split": "train"}
    others = [{"id": "t1", "question": "What is 1 + 1?", "answer": "2"},
              {"id": "d1", "question": "What is 1 + 2?", "answer": "3", "split": "dev"}]  # train and dev published
    _jsonl(data_dir / "gsm8k.jsonl", [*train, planted, *others])
    _jsonl(data_dir / "math500.jsonl", [
        {"problem": "tom HAS 2 apples,  and buys 3 more -- how many apples does tom have", "answer": "5",
         "split": "test"},
        {"problem": "What is 2 + 2?", "answer": "4", "split": "train"},
    ])
    checked = [get_benchmark(name) for name in ("gsm8k", "math500", "amc23")]
    monkeypatch.setattr(distill_job, "list_benchmarks", lambda: checked)
    out = tmp_path / "sft"

    assert main(["distill", str(_gsm8k_program(tmp_path)), "--out", str(out), "--split", "train"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "skipped as test questions: g-planted (math500)" in printed
    assert "not checked for test overlap: amc23" in printed
    assert "official" not in printed  # the file publishes a train split: nothing carved from its test set
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_overlap"] == 1 and summary["overlaps"] == {"g-planted": ["math500"]}
    assert summary["kept"] + summary["rejected"] == len(train)
    assert PLANTED not in (out / "train.jsonl").read_text()
    assert "Tom has" not in (out / "train.jsonl").read_text()
    card = (out / "README.md").read_text()
    assert "Checked against the test splits of: gsm8k, math500." in card
    assert "- `amc23`: " in card and "`g-planted`: in math500" in card
    assert "licence of the source data: MIT" in card
    assert "Teacher model (it answered and justified every record): `local`" in card
    assert len(scripted.requests) == len(train)  # the planted question never reached the model

    assert main(["distill", str(_gsm8k_program(tmp_path)), "--out", str(out), "--rationalize"]) == 2
    assert "other settings (rationalize); use another --out" in " ".join(capsys.readouterr().err.split())


def test_a_tuning_split_carved_from_the_official_test_set_is_announced(tmp_path, data_dir):
    rows = [{"id": f"q{n}", "question": f"What is {n} + 1?", "answer": str(n + 1)} for n in range(40)]
    _jsonl(data_dir / "gsm8k.jsonl", rows)
    said = []
    lm, _ = scripted_lm(VALUES)
    job = DistillJob(program=_gsm8k_program(tmp_path), out=tmp_path / "sft", limit=2)
    stats, about, _ = run_distill_job(job, lm, guard_benchmarks=[], say=said.append)
    assert stats.kept + stats.rejected == 2
    assert said == [about.official_test_warning]
    assert "overlaps GSM8K grade-school math's official evaluation set" in said[0]
    assert "do not use it to train a model that will be evaluated on GSM8K" in said[0]
    assert said[0] in (tmp_path / "sft" / "README.md").read_text()


def test_only_tuning_splits_are_distilled(tmp_path):
    lm, _ = scripted_lm(VALUES)
    with pytest.raises(ConfigurationError, match="tuning split"):
        run_distill_job(DistillJob(program=_gsm8k_program(tmp_path), out=tmp_path / "o", split="test"), lm)


def test_gpqa_text_never_reaches_an_output_folder(tmp_path, data_dir, scripted, capsys):
    secrets = fake_gpqa(data_dir)
    bench = get_benchmark("gpqa")
    with_demos = bench.program("post")
    with_demos.choose.predict.demos = [
        dspy.Example(**example.inputs(), answer=example.answer, rationale="because") for example in
        bench.load("test", limit=2)
    ]
    assert len(with_demos.choose.predict.demos) == 2
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigurationError, match="must never be stored in plain text"):
        save_program(with_demos, tmp_path / "gpqa-demos.json", benchmark="gpqa", strategy="post", model="local")
    assert not (tmp_path / "gpqa-demos.json").exists()
    write_program_with_demos(with_demos, tmp_path / "gpqa-demos.json")
    save_program(bench.program("post"), tmp_path / "gpqa-plain.json", benchmark="gpqa", strategy="post")

    for fmt in ("messages", "text", "python", "jinja", "dspy"):
        assert main(["export", str(tmp_path / "gpqa-demos.json"), "--format", fmt, "--out", str(out / fmt)]) == 2
        assert "must never be stored in plain text" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "gpqa-plain.json"), "--format", "messages", "--out",
                 str(out / "plain.json")]) == 0
    for program in ("gpqa-demos.json", "gpqa-plain.json"):
        assert main(["distill", str(tmp_path / program), "--out", str(out / "sft")]) == 2
        assert "must never be stored in plain text" in capsys.readouterr().err
    assert main(["distill", str(tmp_path / "gpqa-demos.json"), "--benchmark", "mmlu", "--out",
                 str(out / "sft-mmlu")]) == 2

    assert sorted(path.name for path in out.iterdir()) == ["plain.json"]
    assert not scripted.requests
    assert "Answer the multiple-choice question." in (out / "plain.json").read_text()  # there, without GPQA's text
    assert not leaked(out, secrets)


def test_several_benchmarks_are_distilled_into_one_dataset_with_counts_per_source(tmp_path, data_dir, scripted, capsys):
    _jsonl(data_dir / "gsm8k.jsonl", [
        *({"id": f"g{n}", "question": f"What is {n} + {5 - n}?", "answer": "5", "split": "train"} for n in range(6)),
        *({"id": f"w{n}", "question": f"What is {n} + 4?", "answer": str(n + 4), "split": "train"} for n in range(6)),
        {"id": "t1", "question": "What is 1 + 1?", "answer": "2", "split": "test"},
    ])
    _jsonl(data_dir / "math500.jsonl", [
        *({"problem": f"Compute {n} + {5 - n}.", "answer": "5", "split": "train"} for n in range(6)),
        {"problem": "Compute 9 - 9.", "answer": "0", "split": "test"},
    ])
    out = tmp_path / "mix"
    assert main(["distill", "--benchmark", "gsm8k,math500", "--model", "teacher/x", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    gsm8k, math500 = summary["sources"]["gsm8k"], summary["sources"]["math500"]
    assert gsm8k["kept"] and gsm8k["rejected"] and math500["kept"] and not math500["rejected"]
    for count in ("kept", "rejected", "records"):
        assert summary[count] == gsm8k[count] + math500[count]
    assert summary["rejections"] == {"wrong_answer": gsm8k["rejected"]}
    printed = " ".join(capsys.readouterr().out.split())
    assert f"total │ {summary['kept']} │ 0 │ {summary['rejected']} │" in printed
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(records) == summary["records"] == len({r["id"] for r in records})
    assert {r["benchmark"] for r in records} == {"gsm8k", "math500"} and {r["source_model"] for r in records} == {
        "teacher/x"}
    assert all(r["id"] == f"{r['example_id']}/0" and r["example_id"].startswith(f"{r['benchmark']}/") for r in records)
    card = (out / "README.md").read_text()
    assert "| outcome | gsm8k | math500 | total |" in card
    assert f"| kept | {gsm8k['kept']} | {math500['kept']} | {summary['kept']} |" in card
    assert f"| rejected: answered wrongly (not rationalized) | {gsm8k['rejected']} | 0 | {gsm8k['rejected']} |" in card
    assert "Teacher model (it answered and justified every record): `teacher/x`" in card
    for name in ("gsm8k", "math500"):  # each source is a complete distillation of its own, with its own program
        assert json.loads((out / name / "program.json").read_text())["benchmark"] == name
        assert (out / name / "README.md").is_file()
    requests = len(scripted.requests)
    assert main(["distill", "--benchmark", "gsm8k,math500", "--model", "teacher/x", "--out", str(out)]) == 0
    assert len(scripted.requests) == requests  # resumed: nothing left to ask
    assert main(["distill", "--benchmark", "gsm8k", "--model", "teacher/x", "--out", str(out)]) == 2
    assert main(["distill", "--benchmark", "gsm8k,math500,gsm8k", "--model", "teacher/x", "--out",
                 str(tmp_path / "twice")]) == 2
    assert "names a benchmark twice" in capsys.readouterr().err


def test_a_mixture_takes_fewer_examples_of_the_benchmark_its_limit_names(tmp_path, data_dir, scripted):
    _jsonl(data_dir / "gsm8k.jsonl", [
        {"id": f"g{n}", "question": f"What is {n} + {5 - n}?", "answer": "5", "split": "train"} for n in range(6)])
    _jsonl(data_dir / "math500.jsonl", [
        {"problem": f"Compute {n} + {5 - n}.", "answer": "5", "split": "train"} for n in range(6)])
    out = tmp_path / "mix"
    command = ["distill", "--benchmark", "gsm8k,math500", "--model", "teacher/x", "--out", str(out), "--limit", "4"]
    assert main([*command, "--limit", "math500=2"]) == 0
    asked = {name: len((out / name / "examples.jsonl").read_text().splitlines()) for name in ("gsm8k", "math500")}
    assert asked == {"gsm8k": 4, "math500": 2}
    first = (out / "math500" / "examples.jsonl").read_text()
    requests = len(scripted.requests)
    assert main([*command, "--limit", "math500=3"]) == 0  # more of math500: the ones asked are kept, not asked again
    assert (out / "math500" / "examples.jsonl").read_text().startswith(first)
    assert len((out / "math500" / "examples.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "summary.json").read_text())["sources"]["math500"]["kept"] == 3
    assert len(scripted.requests) == requests + 1  # the one new math500 question (kept: no rationalization)


def test_without_a_program_or_a_benchmark_distill_says_what_it_needs(tmp_path, scripted, capsys):
    assert main(["distill", "--out", str(tmp_path / "o")]) == 2
    assert "give a PROGRAM, or --benchmark" in capsys.readouterr().err


def test_the_teacher_is_named_with_the_weights_the_local_server_runs(monkeypatch):
    from postreason_dspy.distill.job import teacher_name

    lm, _ = scripted_lm(VALUES)
    monkeypatch.setattr(distill_job, "describe_lm", lambda lm: {"local_model": "qwen2.5-coder-1.5b"})
    assert teacher_name("local", lm) == "local (qwen2.5-coder-1.5b)"
    monkeypatch.setattr(distill_job, "describe_lm", lambda lm: {"model": "openai/gpt-4o-mini"})
    assert teacher_name("openai/gpt-4o-mini", lm) == "openai/gpt-4o-mini"
