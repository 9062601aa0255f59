"""One command-line grammar: `--data` is NAME=PATH (or plain PATH for the one benchmark named) in eval, tune,
distill and `benchmarks show`; and a command that fails its checks before any work leaves no run folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_tune import csqa_file, expert_model

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.cli import build_parser, main
from postreason_dspy.cli import distill as distill_command
from postreason_dspy.cli.eval import _config as eval_config
from postreason_dspy.cli.options import data_paths, limits_per_benchmark
from postreason_dspy.cli.tune import _config as tune_config
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import session
from postreason_dspy.testing import scripted_lm
from postreason_dspy.tuning import run as tune_module

BENCH = "commonsense_qa"


class Captured(Exception):
    """Stops `distill` once it has built its job."""


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return csqa_file(tmp_path)


def distill_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *data_args: str):
    """The DistillJob `postreason distill PROGRAM --data ...` builds."""
    program = tmp_path / "program.json"
    save_program(get_benchmark(BENCH).program("post"), program, benchmark=BENCH, strategy="post", model="local")
    monkeypatch.setattr(distill_command, "resolve_lm", lambda *a, **k: scripted_lm({})[0])

    def capture(job, *args, **kwargs):
        raise Captured(job)

    monkeypatch.setattr(distill_command, "run_distill_job", capture)
    with pytest.raises(Captured) as captured:
        distill_command.run_distill_command(build_parser().parse_args(
            ["distill", str(program), "--out", str(tmp_path / "sft"), *data_args]))
    return captured.value.args[0]


@pytest.mark.parametrize("form", ["NAME=PATH", "PATH"])
def test_data_means_the_same_in_eval_tune_distill_and_benchmarks_show(tmp_path, data, monkeypatch, capsys, form):
    given = f"{BENCH}={data}" if form == "NAME=PATH" else str(data)
    parse = build_parser().parse_args
    assert eval_config(parse(["eval", "--benchmark", BENCH, "--data", given])).data == {BENCH: str(data)}
    assert tune_config(parse(["tune", "--benchmark", BENCH, "--data", given])).data == str(data)
    assert distill_job(tmp_path, monkeypatch, "--data", given).data == str(data)
    assert main(["benchmarks", "show", BENCH, "--data", given]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    sizes = {split: len(found) for split, found in get_benchmark(BENCH).splits(data).items()}
    assert f"data (--data): file {data}" in shown
    assert f"split sizes (test / train / dev): {sizes['test']} / {sizes['train']} / {sizes['dev']}" in shown


def test_data_naming_a_benchmark_the_command_does_not_run_is_one_line_everywhere(tmp_path, data, capsys):
    wrong = f"gsm8k={data}"
    program = tmp_path / "program.json"
    save_program(get_benchmark(BENCH).program("post"), program, benchmark=BENCH, strategy="post", model="local")
    commands = [
        ["eval", "--model", "openai/x", "--benchmark", BENCH, "--data", wrong],
        ["tune", "--model", "openai/x", "--benchmark", BENCH, "--data", wrong],
        ["distill", str(program), "--out", str(tmp_path / "sft"), "--data", wrong],
        ["benchmarks", "show", BENCH, "--data", wrong],
    ]
    for command in commands:
        assert main([*command, "--runs-dir", str(tmp_path / "runs")] if command[0] != "benchmarks" else command) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"--data names 'gsm8k', which is not a benchmark of this command ({BENCH})" in err, command
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sft").exists()


def test_data_paths_takes_name_equals_path_and_refuses_what_it_cannot_place():
    assert data_paths(["a=x.jsonl", "b=y.jsonl"], ("a", "b")) == {"a": "x.jsonl", "b": "y.jsonl"}
    assert data_paths(["x.jsonl"], ("a",)) == {"a": "x.jsonl"} and data_paths(None, ("a",)) == {}
    for values, message in ((["x.jsonl"], "with several benchmarks, give it as NAME=PATH"),
                            (["a=x", "a=y"], "--data names 'a' twice"), (["a="], "give the file's path")):
        with pytest.raises(ConfigurationError, match=message):
            data_paths(values, ("a", "b"))


def test_limits_per_benchmark_takes_one_for_all_and_name_equals_n_for_one():
    assert limits_per_benchmark(None, ("a", "b")) == {"a": None, "b": None}
    assert limits_per_benchmark(["300"], ("a", "b")) == {"a": 300, "b": 300}
    assert limits_per_benchmark(["300", "b=150"], ("a", "b")) == {"a": 300, "b": 150}
    assert limits_per_benchmark(["b=150"], ("a", "b")) == {"a": None, "b": 150}
    assert limits_per_benchmark(["all", "a=0"], ("a", "b")) == {"a": 0, "b": None}
    for values, message in ((["c=5"], "--limit names 'c', which is not a benchmark of this command"),
                            (["b=1", "b=2"], "--limit names 'b' twice"), (["1", "2"], "give one limit for every"),
                            (["b=many"], "expected a number or 'all'"), (["-3"], "0 or more"),
                            (["b="], "give a value after '='")):
        with pytest.raises(ConfigurationError, match=message):
            limits_per_benchmark(values, ("a", "b"))


def test_a_tune_that_fails_its_checks_leaves_no_run_behind_and_the_same_run_id_then_works(tmp_path, data, capsys,
                                                                                           monkeypatch):
    runs = tmp_path / "runs"
    misfit = tmp_path / "misfit.jsonl"
    misfit.write_text(json.dumps({"id": "x", "text": "no question here"}) + "\n")
    lm, _ = expert_model()
    monkeypatch.setattr(tune_module, "resolve_lm", lambda *a, **k: lm)
    tune = ["tune", "--model", "scripted", "--benchmark", BENCH, "--trials", "1", "--train-size", "4", "--dev-size",
            "4", "--limit", "4", "--demo-sets", "1", "--max-demos", "1", "--runs-dir", str(runs), "--run-id", "u1",
            "--no-progress"]
    for bad, said in ((tmp_path / "missing.jsonl", "no such file"), (misfit, "does not fit")):
        assert main([*tune, "--data", f"{BENCH}={bad}"]) == 2
        assert said in " ".join(capsys.readouterr().err.split())
        assert not (runs / "u1").exists()
    assert main([*tune, "--data", f"{BENCH}={data}"]) == 0  # the form eval's docs show; the run id is free
    assert json.loads((runs / "u1" / "tune.json").read_text())["config"]["data"] == str(data)


def test_an_eval_that_fails_its_checks_leaves_no_run_behind(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(session, "resolve_lm", lambda *a, **k: scripted_lm({})[0])
    command = ["eval", "--model", "scripted", "--benchmark", BENCH, "--data", str(tmp_path / "missing.jsonl"),
               "--runs-dir", str(tmp_path / "runs"), "--run-id", "e1"]
    assert main(command) == 2
    assert "no such file" in " ".join(capsys.readouterr().err.split()) and not (tmp_path / "runs").exists()


def test_a_distill_that_fails_its_checks_leaves_no_output_folder_behind(tmp_path, monkeypatch, capsys):
    program = tmp_path / "program.json"
    save_program(get_benchmark(BENCH).program("post"), program, benchmark=BENCH, strategy="post", model="local")
    monkeypatch.setattr(distill_command, "resolve_lm", lambda *a, **k: scripted_lm({})[0])
    command = ["distill", str(program), "--out", str(tmp_path / "sft"), "--data", str(tmp_path / "missing.jsonl")]
    assert main(command) == 2
    assert "no such file" in " ".join(capsys.readouterr().err.split()) and not (tmp_path / "sft").exists()
