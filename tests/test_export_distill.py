"""Distillation: post-reasoned records with spans, in the program's adapter, deduplicated, resumable."""

from __future__ import annotations

import json

import datasets
import dspy
import pytest

from postreason_dspy import Direct, PostReason
from postreason_dspy.distill import distill
from postreason_dspy.distill.run import LOG_FILE
from postreason_dspy.export import write_export
from postreason_dspy.testing import scripted_lm


class TwoStep(dspy.Module):
    def __init__(self):
        super().__init__()
        self.restate = Direct("question -> givens")
        self.solve = PostReason("question, givens -> answer", mode="answer_only")

    def forward(self, question):
        givens = self.restate(question=question).givens
        return self.solve(question=question, givens=givens)


VALUES = {"givens": "two apples, three more", "answer": "5", "rationale": "2 + 3 = 5"}


def exact(example, pred, trace=None):
    return pred.answer == example.answer


def _examples(*pairs):
    return [dspy.Example(id=key, question=f"question {key}", answer=gold).with_inputs("question")
            for key, gold in pairs]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _part(record, span):
    start, end = record["spans"][span]
    return record["messages"][-1]["content"][start:end]


def test_export_writes_the_messages_json(tmp_path):
    exported = json.loads(write_export(TwoStep(), tmp_path / "prompts.json").read_text())
    assert [p["name"] for p in exported["predictors"]] == ["restate.predict", "solve.predict"]


def test_records_carry_spans_and_one_record_per_predictor_call(tmp_path):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), _examples(("a", "5"), ("b", "7")), exact, tmp_path)
    assert (stats.kept, stats.rejected, stats.records) == (1, 1, 2)
    assert all(request.stop == () for request in engine.requests)  # the teacher runs in full mode
    restate, solve = _lines(tmp_path / "train.jsonl")
    assert (restate["id"], solve["id"], solve["example_id"]) == ("a/0", "a/1", "a")
    assert [m["role"] for m in solve["messages"]] == ["system", "user", "assistant"]
    assert _part(solve, "answer") == "[[ ## answer ## ]]\n5\n\n"
    assert _part(solve, "justification") == "[[ ## rationale ## ]]\n2 + 3 = 5\n\n[[ ## completed ## ]]\n"
    assert _part(restate, "justification") == "" and _part(restate, "answer").startswith("[[ ## givens ## ]]")
    assert (solve["predictor"], solve["adapter"], solve["rationalized"]) == ("solve.predict", "ChatAdapter", False)
    saved = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert saved["id"] == ["a/0", "a/1"] and saved[1]["spans"] == solve["spans"]
    outcomes = {line["id"]: line["outcome"] for line in _lines(tmp_path / LOG_FILE)}
    assert outcomes == {"a": "kept", "b": "rejected"}
    assert "| kept | 1 |" in (tmp_path / "README.md").read_text()


def test_xml_program_is_recorded_in_xml_and_a_recovered_answer_is_kept(tmp_path):
    def script(user):
        if "<givens>" in user.split("Respond with")[-1]:
            return "<givens>\ntwo\n</givens>"
        return "<answer>\n5\n</answer>\n\n<rationale>\n2 < 3 & 3 < 5\n</rationale>"  # not valid XML

    lm, _ = scripted_lm(script)
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()):
        stats = distill(TwoStep(), _examples(("a", "5")), exact, tmp_path)
    assert stats.kept == 1
    restate, solve = _lines(tmp_path / "train.jsonl")
    assert solve["adapter"] == "XMLAdapter" and solve["recovered"] and not restate["recovered"]
    assert _part(solve, "answer") == "<answer>\n5\n</answer>\n\n"
    assert _part(solve, "justification") == "<rationale>\n2 &lt; 3 &amp; 3 &lt; 5\n</rationale>"
    assert "<question>" in solve["messages"][1]["content"]


def test_repeated_ids_are_written_once_and_a_killed_run_resumes(tmp_path):
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), _examples(("a", "5"), ("a", "5")), exact, tmp_path)
    assert (stats.kept, stats.duplicates) == (1, 1)
    with (tmp_path / LOG_FILE).open("a") as log:
        log.write('{"id": "c", "outc')  # killed mid-append
    calls = len(engine.requests)
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), _examples(("a", "5"), ("b", "7"), ("c", "5")), exact, tmp_path)
    assert len(engine.requests) == calls + 4  # b and c, two calls each; a was done
    assert (stats.resumed, stats.kept, stats.rejected) == (1, 2, 1)
    assert [r["id"] for r in _lines(tmp_path / "train.jsonl")] == ["a/0", "a/1", "c/0", "c/1"]


def test_a_parse_failure_is_recorded_and_retried_on_resume(tmp_path):
    lm, _ = scripted_lm(lambda user: "no fields at all")
    with dspy.context(lm=lm):
        stats = distill(PostReason("question -> answer"), _examples(("a", "5")), exact, tmp_path)
    assert stats.failed == 1 and "could not parse" in _lines(tmp_path / LOG_FILE)[0]["error"]
    lm, _ = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        stats = distill(PostReason("question -> answer"), _examples(("a", "5")), exact, tmp_path)
    assert (stats.failed, stats.kept) == (0, 1)


def test_rationalize_justifies_the_gold_answer_of_a_wrong_example(tmp_path):
    lm, engine = scripted_lm({**VALUES, "rationale": "seven, because 3 + 4 = 7"})
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), _examples(("b", "7")), exact, tmp_path, rationalize=True)
    assert stats.rationalized == 1
    asked = engine.requests[-1]
    assert "[[ ## answer ## ]]\n7" in asked.messages[-1]["content"]  # the gold answer is given as an input
    assert "correct answer is given" in asked.messages[0]["content"]
    restate, solve = _lines(tmp_path / "train.jsonl")
    assert solve["rationalized"] and not restate["rationalized"]
    assert _part(solve, "answer") == "[[ ## answer ## ]]\n7\n\n"
    assert "3 + 4 = 7" in _part(solve, "justification")
    assert "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`" in (
        solve["messages"][1]["content"])  # the record is in the program's own prompt, not the rationalizing one


@pytest.mark.parametrize("justification", [
    "The correct answer is given with the inputs. 3 + 4 = 7.",
    "As the answer was provided, it must be seven.",
    "Seven is given in the input, and 3 + 4 = 7.",
])
def test_a_rationalized_justification_that_cites_the_given_answer_is_rejected(tmp_path, justification):
    lm, _ = scripted_lm({**VALUES, "rationale": justification})
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), _examples(("b", "7")), exact, tmp_path, rationalize=True)
    assert (stats.rationalized, stats.rejected) == (0, 1)
    assert "says the answer was given" in _lines(tmp_path / LOG_FILE)[0]["error"]
    assert not (tmp_path / "train.jsonl").read_text().strip()


def test_a_justification_that_only_uses_the_word_given_is_kept(tmp_path):
    lm, _ = scripted_lm({**VALUES, "rationale": "Given three more apples, 3 + 4 = 7."})
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), _examples(("b", "7")), exact, tmp_path, rationalize=True)
    assert stats.rationalized == 1


def test_a_justification_that_only_repeats_the_question_is_not_trained_on(tmp_path):
    repeat = {**VALUES, "rationale": "Question c!"}  # "question c" with other case and punctuation
    lm, _ = scripted_lm(repeat)
    with dspy.context(lm=lm):  # c is answered right (5), b wrong and rationalized: both only repeat the question
        stats = distill(TwoStep(), _examples(("c", "5"), ("b", "7")), exact, tmp_path, rationalize=True)
    assert (stats.kept, stats.rationalized, stats.rejected) == (0, 0, 2)
    errors = [line["error"] for line in _lines(tmp_path / LOG_FILE)]
    assert errors == ["the justification only repeats the input `question`",
                      "rationalizing: the justification only repeats the input `question`"]


def test_restated_input_tells_a_copy_from_a_justification_that_quotes_it():
    from postreason_dspy.distill.run import restated_input

    question = "She wanted a kitten and puppy so why did she only get the puppy?"
    assert restated_input("She wanted a kitten and puppy, so why did she only get the puppy.", {"question": question})
    assert restated_input("The puppy: she wanted a kitten and a puppy but could only afford one pet, so she got "
                          "the puppy because it was cheaper.", {"question": question}) is None
