"""Distillation: post-reasoned records with spans, in the program's adapter, deduplicated, resumable, and
filtered: a justification that repeats or copies its inputs is not trained on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import dspy
import pytest

from postreason_dspy import Direct, PostReason, interrupt
from postreason_dspy.distill import distill
from postreason_dspy.distill.filters import COPY_THRESHOLD, copied_share, restated_input
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


def _values(record):
    return [record["messages"][-1]["content"][start:end] for start, end in record["spans"]["values"]]


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
    assert _values(solve) == ["5"] and _values(restate) == ["two apples, three more"]
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
    assert _values(solve) == ["5"]
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


def test_wrong_answers_are_rationalized_together_and_an_interrupted_batch_is_asked_again(tmp_path):
    rationalizing = []

    def script(user):
        if "[[ ## answer ## ]]\n7" in user:  # the gold answer given as an input: a rationalizing request
            rationalizing.append(user)
            if len(rationalizing) == 2:
                raise interrupt.Interrupted()
        return {"answer": "5", "rationale": "three and four make seven"}

    lm, engine = scripted_lm(script)
    examples = _examples(("a", "7"), ("b", "5"), ("c", "7"))  # a and c wrong
    with dspy.context(lm=lm), pytest.raises(interrupt.Interrupted):
        distill(PostReason("question -> answer"), examples, exact, tmp_path, rationalize=True)
    asked = ["correct answer is given" in request.messages[0]["content"] for request in engine.requests]
    assert asked == [False, False, False, True, True]  # the three answers first, then the two wrong ones
    assert [(line["id"], line["outcome"]) for line in _lines(tmp_path / LOG_FILE)] == [
        ("b", "kept"), ("a", "rationalized")]
    calls = len(engine.requests)
    with dspy.context(lm=lm):
        stats = distill(PostReason("question -> answer"), examples, exact, tmp_path, rationalize=True)
    assert len(engine.requests) == calls + 2  # c asked again and rationalized; a and b were done
    assert (stats.resumed, stats.kept, stats.rationalized) == (2, 1, 2)


def test_a_completion_cut_at_the_token_limit_is_not_trained_on(tmp_path):
    long = " ".join(["because"] * 60)  # past the limit below: the justification is cut mid-sentence
    lm, _ = scripted_lm({"answer": "5", "rationale": long})
    lm.kwargs["max_tokens"] = 40
    with dspy.context(lm=lm):  # a is right and b wrong: the answer, then the rationalization, is cut
        stats = distill(PostReason("question -> answer"), _examples(("a", "5"), ("b", "7")), exact, tmp_path,
                        rationalize=True)
    assert (stats.kept, stats.rationalized, stats.rejections) == (0, 0, {"truncated": 2})
    assert [line["error"] for line in _lines(tmp_path / LOG_FILE)] == [
        "a completion stopped at the token limit", "rationalizing: the justification stopped at the token limit"]
    assert "| rejected: completion stopped at the token limit | 2 |" in (tmp_path / "README.md").read_text()
    lm.kwargs["max_tokens"] = 400
    with dspy.context(lm=lm):
        stats = distill(PostReason("question -> answer"), _examples(("c", "5")), exact, tmp_path / "more",
                        rationalize=True)
    assert stats.kept == 1  # the same reply within the limit is kept


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
    question = "She wanted a kitten and puppy so why did she only get the puppy?"
    assert restated_input("She wanted a kitten and puppy, so why did she only get the puppy.", {"question": question})
    assert restated_input("The puppy: she wanted a kitten and a puppy but could only afford one pet, so she got "
                          "the puppy because it was cheaper.", {"question": question}) is None


QUESTION = "Where would you put a plate after washing it in the kitchen sink?"


@pytest.mark.parametrize(("rationale", "outcome"), [
    ("You would put a plate after washing it in the kitchen cupboard.", "rejected"),  # 7 of its 10 trigrams copied
    ("Clean dishes are stored in a cupboard until the next meal, so the cupboard.", "kept"),
])
def test_a_justification_that_copies_its_inputs_is_rejected_and_counted_on_the_card(tmp_path, rationale, outcome):
    lm, _ = scripted_lm({"answer": "cupboard", "rationale": rationale})
    example = dspy.Example(id="p", question=QUESTION, answer="cupboard").with_inputs("question")
    with dspy.context(lm=lm):
        stats = distill(PostReason("question -> answer"), [example], exact, tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert f"{COPY_THRESHOLD:.0%} or more of the justification's word 3-grams occur in an input field" in card
    if outcome == "kept":
        assert (stats.kept, stats.rejected, stats.rejections) == (1, 0, {})
        return
    assert (stats.kept, stats.rejected, stats.rejections) == (0, 1, {"copies_inputs": 1})
    line = _lines(tmp_path / LOG_FILE)[0]
    assert line["reason"] == "copies_inputs" and line["error"].startswith("70% of the justification's word 3-grams")
    assert "| rejected: justification copies its inputs | 1 |" in card
    assert json.loads((tmp_path / "summary.json").read_text())["rejections"] == {"copies_inputs": 1}


def test_a_rationalization_that_copies_its_inputs_is_rejected_with_that_reason(tmp_path):
    copied = "You would put a plate after washing it in the kitchen cupboard."
    lm, _ = scripted_lm({"answer": "sink", "rationale": copied})
    example = dspy.Example(id="p", question=QUESTION, answer="cupboard").with_inputs("question")
    with dspy.context(lm=lm):
        stats = distill(PostReason("question -> answer"), [example], exact, tmp_path, rationalize=True)
    assert stats.rejections == {"copies_inputs": 1}
    assert _lines(tmp_path / LOG_FILE)[0]["error"].startswith("rationalizing: 70%")
    with dspy.context(lm=lm):  # a looser threshold keeps it (in another folder: one folder, one setting)
        stats = distill(PostReason("question -> answer"), [example], exact, tmp_path / "loose", rationalize=True,
                        copy_threshold=0.8)
    assert (stats.rationalized, stats.rejected) == (1, 0)


def test_copied_share_counts_word_trigrams_found_in_any_one_input():
    inputs = {"question": "Where is the cat sleeping today?", "options": "A. on the mat\nB. in the box"}
    assert copied_share("The cat sleeping today is on the mat.", inputs.values()) == 3 / 6
    assert copied_share("Cats love boxes.", inputs.values()) == 0.0  # no trigram in common
    assert copied_share("cat sleeping", inputs.values()) == 0.0  # under three words: left to the other filters
    assert copied_share("sleeping today A on", inputs.values()) == 0.0  # an n-gram never spans two inputs


RECORDS = Path(__file__).resolve().parents[1] / "results/finetune-qwen2.5-coder-0.5b-records/distill-train.jsonl"
FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)


def test_on_the_committed_05b_records_the_copy_filter_rejects_the_copied_ones():
    """The figures filters.py states: mean share 32%, 32 of 115 at least half copied, 37 at or past 40%."""
    shares = []
    for line in RECORDS.read_text().splitlines():
        record = json.loads(line)
        inputs = dict(FIELD.findall(record["messages"][-2]["content"]))
        assert set(inputs) == {"question", "options"}
        justification = _part(record, "justification").removeprefix("[[ ## rationale ## ]]")
        shares.append(copied_share(justification.removesuffix("[[ ## completed ## ]]\n"), inputs.values()))
    assert len(shares) == 115 and sum(shares) / len(shares) == pytest.approx(0.32, abs=0.005)
    assert sum(share >= 0.5 for share in shares) == 32
    assert sum(share >= COPY_THRESHOLD for share in shares) == 37
    by_tenths = [sum(min(int(share * 10), 9) == tenth for share in shares) for tenth in range(10)]
    assert by_tenths == [33, 25, 14, 6, 5, 5, 7, 5, 5, 10]
