"""PostReasonSearch's optional dimensions on a scripted model: output format, rationale field, prompt-model
proposals, minibatch pruning and cheapest-within-ci selection; program files that carry their adapter."""

from __future__ import annotations

import dspy
import pytest
from search_helpers import EXPERT, exact, examples, trials_log

from postreason_dspy import DEFAULT_INSTRUCTION, PostReason
from postreason_dspy.adapters import PlainTextAdapter, adapter_name
from postreason_dspy.benchmarks.program_file import ProgramFile, program_adapter, read_program, save_program
from postreason_dspy.bound_adapter import bound_adapter, with_adapter
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.optimizers import PostReasonSearch
from postreason_dspy.optimizers.candidates import prompt_instructions
from postreason_dspy.optimizers.space import valid_wording
from postreason_dspy.testing import requested_order, scripted_lm


def model(right_when):
    """A scripted model right exactly when `right_when(request, user message)`; every rationale name filled."""
    lm, engine = scripted_lm({})

    def script(user: str) -> dict[str, str]:
        right = right_when(engine.requests[-1], user)
        answer = "right" if right is True else right or "wrong"
        return {"answer": answer, **{name: "since so" for name in ("rationale", "justification", "explanation")}}

    engine.script = script
    return lm, engine


def search(tmp_path, **kwargs) -> PostReasonSearch:
    return PostReasonSearch(exact, num_demo_sets=0, run_dir=tmp_path, **{"num_trials": 6, **kwargs})


def test_the_search_finds_the_format_the_model_follows_and_the_program_carries_it(tmp_path):
    lm, engine = model(lambda _request, user: "<answer>" in user)  # right only when asked for XML
    with dspy.context(lm=lm):
        formats = search(tmp_path, adapters=("chat", "xml", "plain"), num_trials=3, wordings=(DEFAULT_INSTRUCTION,))
        best = formats.compile(
            PostReason("question -> answer", mode="answer_only"), trainset=examples(2, "t"), valset=examples(3, "d"))
        assert best.score == 1.0 and best.adapter == "XMLAdapter" and bound_adapter(best) == "XMLAdapter"
        assert best(question="new").answer == "right"  # under the default ChatAdapter, it still runs in XML
    assert "<answer>" in engine.requests[-1].prompt
    assert {line["adapter"] for line in trials_log(tmp_path)} == {"ChatAdapter", "XMLAdapter", "PlainTextAdapter"}
    assert trials_log(tmp_path)[0]["adapter"] == "ChatAdapter" and trials_log(tmp_path)[0]["baseline"]


def test_the_search_finds_the_rationale_field_and_records_it_for_rebuilding(tmp_path):
    lm, _ = model(lambda _request, user: "justification" in requested_order(user))
    with dspy.context(lm=lm):
        best = search(tmp_path, rationale_fields=("justification", "explanation"), num_trials=3,
                      wordings=(DEFAULT_INSTRUCTION,)).compile(
            PostReason("question -> answer", mode="answer_only"), trainset=examples(2, "t"), valset=examples(3, "d"))
    assert best.score == 1.0 and best.rationale_field == "justification"
    assert best.program_kwargs == {"rationale_field": "justification",
                                   "rationale_desc": "why the answer above is right, written after it"}
    assert "`justification`" in prompt_instructions(best.predict)
    assert trials_log(tmp_path)[0]["rationale_fields"] == [None]  # the baseline keeps its own field


def test_a_program_file_carries_its_adapter_and_rationale_field(tmp_path):
    program = with_adapter(read_program_from_benchmark(), "plain")
    path = tmp_path / "program.json"
    save_program(program, path, benchmark="commonsense_qa", strategy="post",
                 program_kwargs={"rationale_field": "justification", "rationale_desc": "why"},
                 metadata={"adapter": "PlainTextAdapter"})
    saved = read_program(path)
    built = saved.build(overrides={"on_parse_error": "mark"})
    assert bound_adapter(built) == "PlainTextAdapter" and type(program_adapter(saved)).__name__ == "PlainTextAdapter"
    assert list(built.choose.predict.signature.output_fields) == ["answer", "justification"]
    lm, engine = scripted_lm({"answer": "B", "justification": "since"})
    with dspy.context(lm=lm):
        assert built(question="q?", options="A. x\nB. y").answer == "B"
    assert "Justification:" in engine.requests[-1].prompt and "[[ ## answer ## ]]" not in engine.requests[-1].prompt
    assert bound_adapter(saved.build(bind_adapter=False)) is None  # for a caller that picks its own adapter
    unbound = ProgramFile("commonsense_qa", "post", built.dump_state(), program_kwargs=saved.program_kwargs)
    assert bound_adapter(unbound.build()) is None  # no adapter recorded: none bound


@pytest.mark.parametrize("spelling", ["plain", "PLAIN", "plaintext", "PlainTextAdapter", "plaintextadapter"])
def test_one_adapter_registry_reads_every_spelling_the_same(spelling):
    """The command line's short names and the class names that programs record go through one registry."""
    assert adapter_name(spelling) == "PlainTextAdapter"
    saved = ProgramFile("commonsense_qa", "post", {}, metadata={"adapter": spelling})
    assert type(program_adapter(saved)) is PlainTextAdapter
    assert type(program_adapter(saved, "xml")) is dspy.XMLAdapter  # a name given wins over the file's
    assert type(program_adapter(ProgramFile("commonsense_qa", "post", {}))) is dspy.ChatAdapter


def test_an_unknown_adapter_names_the_choices():
    with pytest.raises(ConfigurationError, match=r"unknown adapter 'JSONAdapter'; choose from chat, xml, plain "
                                                 r"\(or ChatAdapter, XMLAdapter, PlainTextAdapter\)"):
        adapter_name("JSONAdapter")


def read_program_from_benchmark() -> dspy.Module:
    from postreason_dspy.benchmarks import get_benchmark

    return get_benchmark("commonsense_qa").program("post", rationale_field="justification", rationale_desc="why")


PROPOSED = "Write the answer alone in {outputs}; a grader marks `{rationale}` PROPOSED-CHECK afterwards."


def test_a_prompt_model_proposal_enters_the_candidates_and_wins(tmp_path):
    prompt_lm, prompt_engine = scripted_lm({})
    proposals = iter([{"clause": PROPOSED}, {"clause": "no placeholders here, so it is dropped"}])
    prompt_engine.script = lambda _user: next(proposals)
    lm, _ = model(lambda request, _user: "PROPOSED-CHECK" in request.messages[0]["content"])
    with dspy.context(lm=lm):
        best = search(tmp_path, num_proposals=2, prompt_model=prompt_lm, num_trials=20).compile(
            PostReason("question -> answer", mode="answer_only"), trainset=examples(4, "t"), valset=examples(3, "d"))
    assert len(prompt_engine.requests) == 2 and "t" in prompt_engine.requests[0].prompt  # shown train examples
    assert "question" in prompt_engine.requests[0].prompt  # ... and the signature
    assert DEFAULT_INSTRUCTION in prompt_engine.requests[0].prompt  # ... and the clause in use, placeholders shown
    assert all(r.temperature == 1.0 for r in prompt_engine.requests)  # sampled: not one text repeated
    assert best.score == 1.0 and best.instruction == PROPOSED
    assert best.record["proposed_wordings"]["valid"] == [PROPOSED]
    assert best.record["proposed_wordings"]["dropped"] == ["no placeholders here, so it is dropped"]
    assert best.record["lm_calls"] >= 2 + 3  # the proposals' calls are counted with the trials'


def test_wording_validation():
    assert valid_wording(PROPOSED)
    assert not valid_wording("Answer in {outputs} first.")  # no rationale
    assert not valid_wording("Answer in {outputs}, then {rationale} and {other}.")
    assert not valid_wording("Answer in {outputs}, then {rationale} {")


def test_pruning_stops_a_candidate_that_cannot_win_before_its_last_minibatch(tmp_path):
    lm, _ = model(lambda request, _user: EXPERT not in request.messages[0]["content"])  # the baseline is best
    with dspy.context(lm=lm):
        best = search(tmp_path, minibatch=2, num_trials=5).compile(
            PostReason("question -> answer", mode="answer_only"), trainset=examples(2, "t"), valset=examples(6, "d"))
    log = trials_log(tmp_path)
    assert log[0]["baseline"] and log[0]["state"] == "complete" and log[0]["lm_calls"] == 6
    pruned = [line for line in log if line["state"] == "pruned"]
    assert pruned and all(line["lm_calls"] == 2 and "at most 0.667 < best 1.000" in line["note"] for line in pruned)
    assert best.score == 1.0 and best.record["pruned_on_minibatch"] == len(pruned)
    assert best.record["counted"] == 5  # pruned trials count toward num_trials
    trial = best.study.trials[pruned[0]["number"]]
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {2: 0.0}
    assert best.record["lm_calls"] == sum(line["lm_calls"] for line in log)


def test_a_survivor_is_scored_on_the_whole_dev_set(tmp_path):
    lm, _ = model(lambda _request, _user: True)  # every candidate ties: none can be pruned
    with dspy.context(lm=lm):
        search(tmp_path, minibatch=2, num_trials=3).compile(
            PostReason("question -> answer", mode="answer_only"), trainset=examples(2, "t"), valset=examples(5, "d"))
    assert all(line["state"] == "complete" and line["lm_calls"] == 5 for line in trials_log(tmp_path)
               if line["state"] != "duplicate")


def test_cheapest_within_ci_picks_the_shortest_answer_among_the_close_ones(tmp_path):
    verbose = "right " + "and that is certainly so " * 8
    lm, _ = model(lambda request, _user: True if EXPERT in request.messages[0]["content"] else verbose.strip())

    def starts_right(example, pred, trace=None):
        return str(pred.answer).startswith("right")

    program = PostReason("question -> answer", mode="answer_only")
    with dspy.context(lm=lm):
        best = PostReasonSearch(starts_right, num_demo_sets=0, num_trials=8, run_dir=tmp_path / "a").compile(
            program, trainset=examples(2, "t"), valset=examples(4, "d"))
        cheap = PostReasonSearch(starts_right, num_demo_sets=0, num_trials=8, run_dir=tmp_path / "b",
                                 select="cheapest-within-ci").compile(
            program, trainset=examples(2, "t"), valset=examples(4, "d"))
    assert EXPERT not in prompt_instructions(best.predict)  # best accuracy: the baseline wins the tie
    assert EXPERT in prompt_instructions(cheap.predict)
    assert cheap.record["best"]["answer_tokens"] < cheap.record["top_dev"]["answer_tokens"]
    assert all(line["answer_tokens"] > 0 for line in trials_log(tmp_path / "b") if line["state"] == "complete")


def test_bad_options_fail_with_one_line():
    with pytest.raises(ConfigurationError, match="unknown adapter 'json'"):
        PostReasonSearch(exact, adapters=("json",))
    with pytest.raises(ConfigurationError, match="select must be one of"):
        PostReasonSearch(exact, select="cheapest")
    with pytest.raises(ConfigurationError, match="minibatch must be at least 1"):
        PostReasonSearch(exact, minibatch=0)
    with pytest.raises(ConfigurationError, match="identifier"):
        PostReasonSearch(exact, rationale_fields=("not a name",))
