"""program.json: a benchmark program rebuilt from the file alone, with its instructions and demos."""

from __future__ import annotations

import json

import dspy
import pytest

from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import load_program, read_program, save_program
from postreason_dspy.errors import ConfigurationError, StateMismatchError


def test_a_saved_program_is_rebuilt_with_its_instructions_and_demos(tmp_path):
    program = get_benchmark("commonsense_qa").program("post")
    predictor = program.predictors()[0]
    predictor.signature = predictor.signature.with_instructions("Pick the most sensible option.")
    predictor.demos = [dspy.Example(question="q?", options="A. x\nB. y", answer="B", rationale="because")]
    save_program(program, tmp_path / "program.json", benchmark="commonsense_qa", strategy="post", model="local",
                 metadata={"dev_accuracy": 0.5})

    rebuilt, saved = load_program(tmp_path / "program.json")

    again = rebuilt.predictors()[0]
    assert again.signature.instructions == "Pick the most sensible option."
    assert [demo["answer"] for demo in again.demos] == ["B"]
    assert (saved.benchmark, saved.strategy, saved.model, saved.metadata) == (
        "commonsense_qa", "post", "local", {"dev_accuracy": 0.5})


def test_a_state_of_another_field_layout_is_refused(tmp_path):
    program = get_benchmark("commonsense_qa").program("cot")
    save_program(program, tmp_path / "program.json", benchmark="commonsense_qa", strategy="cot")
    data = json.loads((tmp_path / "program.json").read_text())
    data["strategy"] = "post"
    (tmp_path / "program.json").write_text(json.dumps(data))
    with pytest.raises(StateMismatchError):
        load_program(tmp_path / "program.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something-else"}', "is not a postreason-program file"),
        ('{"format": "postreason-program", "version": 99}', "version 99"),
        ('{"format": "postreason-program", "version": 1, "strategy": "post", "state": {}}', "'benchmark'"),
    ],
)
def test_files_that_are_not_program_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "program.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        read_program(path)


def test_a_missing_program_file_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="no program file"):
        read_program(tmp_path / "absent.json")


def test_build_overrides_are_merged_into_the_saved_arguments(tmp_path):
    program = get_benchmark("commonsense_qa").program("post")
    save_program(program, tmp_path / "program.json", benchmark="commonsense_qa", strategy="post")
    saved = read_program(tmp_path / "program.json")
    assert {p.on_parse_error for p in saved.build().predictors()} == {"raise"}
    marked = saved.build(overrides={"on_parse_error": "mark"})
    assert {p.on_parse_error for p in marked.predictors()} == {"mark"}
    assert saved.program_kwargs == {}  # the file's own arguments are left as they were


def test_keep_same_leaves_a_file_with_the_same_program_untouched_and_rewrites_another(tmp_path):
    path = tmp_path / "program.json"
    program = get_benchmark("commonsense_qa").program("post")
    save_program(program, path, benchmark="commonsense_qa", strategy="post", metadata={"trials": 16})
    before = path.read_bytes()
    kept = save_program(program, path, benchmark="commonsense_qa", strategy="post",
                        metadata={"trials": 16, "answer_tokens": None}, keep_same=True)
    assert path.read_bytes() == before and kept.metadata == {"trials": 16}
    rebound = save_program(program, path, benchmark="commonsense_qa", strategy="post",
                           metadata={"trials": 16, "adapter": "XMLAdapter"}, keep_same=True)
    assert read_program(path).metadata == rebound.metadata  # another adapter is another program
    predictor = program.predictors()[0]
    predictor.signature = predictor.signature.with_instructions("Pick the most sensible option.")
    save_program(program, path, benchmark="commonsense_qa", strategy="post", keep_same=True)
    assert read_program(path).build().predictors()[0].signature.instructions == "Pick the most sensible option."
