"""Exported prompts reproduce DSPy's request; distillation writes post-reasoned fine-tuning records."""

from __future__ import annotations

import json

import dspy

from postreason_dspy import Direct, PostReason
from postreason_dspy.distill import distill
from postreason_dspy.export import export_prompts, write_export
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


def test_export_fills_to_the_exact_request_dspy_sends(tmp_path):
    program = TwoStep()
    program.solve.predict.demos = [dspy.Example(question="1+1?", givens="one and one", answer="2", rationale="sum")]
    exported = json.loads(write_export(program, tmp_path / "prompts.json").read_text())
    solve = next(p for p in exported["predictors"] if p["name"] == "solve.predict")
    assert solve["outputs"] == ["answer", "rationale"]
    assert solve["answer_only_stops"] == ["[[ ## rationale ## ]]"]
    assert next(p for p in exported["predictors"] if p["name"] == "restate.predict")["answer_only_stops"] is None

    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        program(question="How many apples?")
    filled = [
        {**m, "content": m["content"].replace("{{question}}", "How many apples?").replace(
            "{{givens}}", "two apples, three more")}
        for m in solve["messages"]
    ]
    assert filled == engine.requests[1].messages
    assert engine.requests[1].stop == tuple(solve["answer_only_stops"])


def test_xml_export_uses_xml_markers():
    exported = export_prompts(PostReason("question -> answer"), adapter=dspy.XMLAdapter())
    (predictor,) = exported["predictors"]
    assert exported["adapter"] == "XMLAdapter"
    assert predictor["output_markers"] == {"answer": "<answer>", "rationale": "<rationale>"}
    assert predictor["answer_only_stops"] == ["<rationale>", "<Rationale>"]


def exact(example, pred, trace=None):
    return pred.answer == example.answer


def test_distill_keeps_correct_post_reasoned_examples_and_resumes(tmp_path):
    examples = [
        dspy.Example(id="a", question="q1", answer="5").with_inputs("question"),
        dspy.Example(id="b", question="q2", answer="7").with_inputs("question"),
        dspy.Example(id="c", question="q3", answer="5").with_inputs("question"),
    ]
    out = tmp_path / "sft.jsonl"
    lm, engine = scripted_lm(VALUES)
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), examples[:2], exact, out)
    assert (stats.kept, stats.rejected) == (1, 1)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "a"]  # one record per predictor call
    assistant = records[1]["messages"][-1]["content"]
    assert assistant.index("[[ ## answer ## ]]") < assistant.index("[[ ## rationale ## ]]")
    assert "2 + 3 = 5" in assistant  # the student answered answer-only; the teacher wrote the justification

    with out.open("a") as f:
        f.write('{"id": "torn')  # a crash mid-line
    calls = len(engine.requests)
    with dspy.context(lm=lm):
        stats = distill(TwoStep(), examples, exact, out)
    assert (stats.skipped, stats.kept, stats.rejected) == (1, 1, 1)
    assert len(engine.requests) == calls + 4  # only b and c ran again (two calls each)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "a", "c", "c"]
