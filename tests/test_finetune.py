"""`postreason finetune`: records, loss masks on the GGUF's own tokenizer, span-only logits, resumable checkpoints,
and serving an adapter folder. Tests that need the `train` extra or the cached 0.5B GGUF skip, saying why."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from postreason_dspy.cli import main
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.finetune.base import BaseModel
from postreason_dspy.finetune.data import Record, data_file, data_hash, parse_record, read_records
from postreason_dspy.finetune.train import TrainConfig, _check_resumable, batches, total_steps
from postreason_dspy.local import server
from postreason_dspy.local.lora import lora_target
from postreason_dspy.local.paths import home
from postreason_dspy.local.weights import SMALL_MODEL, model_spec

HAS_TRAIN = all(importlib.util.find_spec(name) for name in ("torch", "transformers", "peft", "gguf"))
needs_train = pytest.mark.skipif(not HAS_TRAIN, reason="the train extra is not installed: pip install -e '.[train]'")
GGUF = home() / "models" / model_spec(SMALL_MODEL).filename

ANSWER = "B — café 😀"
JUSTIFICATION = "Because ünïcode 🫠 works, 東京"


def make_record(answer: str = ANSWER, justification: str = JUSTIFICATION, rid: str = "r1") -> dict:
    reply = f"[[ ## answer ## ]]\n{answer}\n\n[[ ## justification ## ]]\n{justification}\n\n[[ ## completed ## ]]"
    start, jstart = reply.index(answer), reply.index(justification)
    return {
        "id": rid,
        "messages": [
            {"role": "system", "content": "Answer first, then justify."},
            {"role": "user", "content": "[[ ## question ## ]]\nWhich one? ü"},
            {"role": "assistant", "content": reply},
        ],
        "spans": {"answer": [start, start + len(answer)], "justification": [jstart, jstart + len(justification)]},
        "rationalized": False,
        "benchmark": "ignored metadata",
    }


# --- records -----------------------------------------------------------------------------------------------


def test_records_read_from_a_folder_or_the_file_and_hash_changes_with_the_bytes(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps(make_record()) + "\n\n" + json.dumps(make_record(rid="r2")) + "\n")
    path = data_file(tmp_path)
    assert path == data_file(tmp_path / "train.jsonl")
    records = read_records(path)
    assert [r.id for r in records] == ["r1", "r2"]
    assert records[0].reply[slice(*records[0].spans["answer"])] == ANSWER
    before = data_hash(path)
    path.write_text(path.read_text() + json.dumps(make_record(rid="r3")) + "\n")
    assert data_hash(path) != before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["messages"].pop(), "last message must be the assistant"),
        (lambda r: r["spans"].update(answer=[5, 10_000]), "outside the reply"),
        (lambda r: r["spans"].pop("justification"), "spans.justification"),
        (lambda r: r["messages"][0].update(role="tool"), "role"),
    ],
)
def test_a_malformed_record_is_a_clear_error(change, message):
    record = make_record()
    change(record)
    with pytest.raises(ConfigurationError, match=message):
        parse_record(record, "train.jsonl:1")


def test_missing_data_and_non_json_lines_are_clear_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="no training data"):
        data_file(tmp_path)
    (tmp_path / "train.jsonl").write_text("{not json\n")
    with pytest.raises(ConfigurationError, match=r"train.jsonl:1: not JSON"):
        read_records(tmp_path / "train.jsonl")


# --- schedule and resume checks ------------------------------------------------------------------------------


def test_each_epoch_is_a_seeded_permutation_and_steps_follow_epochs_or_max_steps():
    steps = [batches(10, 4, step, seed=1) for step in range(6)]
    assert steps == [batches(10, 4, step, seed=1) for step in range(6)]  # a resumed run sees the same batches
    flat = [sorted(itertools.chain(*steps[:3])), sorted(itertools.chain(*steps[3:]))]
    assert flat == [list(range(10))] * 2
    assert [len(s) for s in steps[:3]] == [4, 4, 2]
    assert steps[:3] != steps[3:]
    assert total_steps(TrainConfig(epochs=2, batch_size=4), 10) == 6
    assert total_steps(TrainConfig(epochs=2, batch_size=4, max_steps=9), 10) == 9


def test_a_checkpoint_resumes_only_on_the_same_data_base_and_settings():
    base = BaseModel("m", "/m", "m.gguf", "qwen2.5-coder-0.5b")
    config = TrainConfig(max_steps=5)
    state = {"data_sha256": "abc", "base": base.to_dict(), "config": asdict(config)}
    _check_resumable(state, TrainConfig(max_steps=50, epochs=3), "abc", base)  # more steps: fine
    with pytest.raises(ConfigurationError, match=r"trained with other settings \(data\); resume with the same"):
        _check_resumable(state, config, "def", base)
    with pytest.raises(ConfigurationError, match=r"settings \(lr\)"):
        _check_resumable(state, TrainConfig(lr=1e-3), "abc", base)
    with pytest.raises(ConfigurationError, match=r"settings \(base, seed\)"):
        _check_resumable(state, TrainConfig(max_steps=5, seed=1), "abc", BaseModel("other", "/o"))


@pytest.mark.parametrize("field", ["epochs", "batch_size", "lora_r"])
def test_bad_settings_are_clear_errors(field):
    with pytest.raises(ConfigurationError, match=field.replace("_", "-")):
        TrainConfig(**{field: 0}).check()


# --- serving a LoRA folder ---------------------------------------------------------------------------------


def test_a_lora_folder_serves_its_gguf_base_with_the_lora_and_a_name_that_carries_its_hash(tmp_path):
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF base")
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF lora one")
    record = {"base": {"name": "base", "folder": str(tmp_path), "gguf": "base.gguf"}, "adapter_gguf": "adapter.gguf"}
    (tmp_path / "finetune.json").write_text(json.dumps(record))
    target = lora_target(tmp_path)
    assert target.gguf == base and target.lora == (tmp_path / "adapter.gguf").resolve()
    assert target.name.startswith("base+lora-")
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF lora two")
    assert lora_target(tmp_path).name != target.name
    command = server.server_command(target.gguf, 8799, target.lora)
    assert command[command.index("--lora_path") + 1] == str(target.lora)
    assert "--lora_path" not in server.server_command(target.gguf, 8799)


def test_an_unservable_lora_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="not a `postreason finetune` output"):
        lora_target(tmp_path)
    (tmp_path / "finetune.json").write_text(json.dumps({"base": {"folder": "/hf/model"}}))
    with pytest.raises(ConfigurationError, match="no converted LoRA adapter"):
        lora_target(tmp_path)
    (tmp_path / "adapter.gguf").write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="serves GGUF files only"):
        lora_target(tmp_path)


# --- the base package stays free of the train extra -----------------------------------------------------------


def test_the_package_and_the_cli_parser_do_not_import_torch():
    code = (
        "import sys, postreason_dspy\n"
        "from postreason_dspy.cli import build_parser\n"
        "build_parser().parse_args(['finetune', 'data', '--out', 'o'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_finetune_without_the_train_extra_says_how_to_install_it(monkeypatch):
    from postreason_dspy.cli import finetune as command

    monkeypatch.setattr(command, "TRAIN_MODULES", ("no_such_module_for_postreason",))
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[train\]'"):
        command.check_train_extra()


# --- loss masks on the GGUF's own tokenizer --------------------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer():
    if not HAS_TRAIN:
        pytest.skip("the train extra is not installed: pip install -e '.[train]'")
    if not GGUF.is_file():
        pytest.skip(f"no cached {GGUF.name}: run `postreason local up` once")
    from postreason_dspy.finetune.base import load_tokenizer

    return load_tokenizer(BaseModel(SMALL_MODEL, str(GGUF.parent), GGUF.name, SMALL_MODEL))


def selected(tokenizer, record: Record, mode: str) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]], int]:
    """The loss tokens' text, the loss and other tokens' character ranges, and where the reply starts."""
    from postreason_dspy.finetune.masks import encode, render

    encoded = encode(tokenizer, record, mode)
    text, reply_start, _ = render(tokenizer, record)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    inside = [offsets[i] for i in encoded.loss_positions]
    outside = [o for i, o in enumerate(offsets) if i not in set(encoded.loss_positions)]
    return tokenizer.decode([encoded.input_ids[i] for i in encoded.loss_positions]), inside, outside, reply_start


@pytest.mark.parametrize("mode", ["answer", "justification"])
def test_each_span_mode_trains_on_exactly_that_spans_tokens_multibyte_text_included(tokenizer, mode):
    record = parse_record(make_record(), "r")
    text, inside, outside, reply_start = selected(tokenizer, record, mode)
    assert text == {"answer": ANSWER, "justification": JUSTIFICATION}[mode]
    start, end = (reply_start + i for i in record.spans[mode])
    covered = {c for first, last in inside for c in range(first, last)}
    assert covered == set(range(start, end))  # every character of the span, nothing else
    assert not any(first < end and last > start for first, last in outside if last > first)


def test_all_mode_trains_on_the_whole_reply_and_the_end_of_turn_token(tokenizer):
    record = parse_record(make_record(), "r")
    text, _, outside, reply_start = selected(tokenizer, record, "all")
    assert text == record.reply + "<|im_end|>"
    assert all(last <= reply_start for first, last in outside[:-1])  # the prompt, and the final newline, never


def test_a_justification_span_that_ends_the_reply_also_trains_the_end_of_turn_token(tokenizer):
    """As distill writes spans (the justification runs to the reply's end): the model must learn to stop."""
    data = make_record()
    reply = data["messages"][-1]["content"]
    marker = reply.index("[[ ## justification ## ]]")
    data["spans"] = {"answer": [0, marker], "justification": [marker, len(reply)]}
    record = parse_record(data, "r")
    assert selected(tokenizer, record, "justification")[0] == reply[marker:] + "<|im_end|>"
    assert "<|im_end|>" not in selected(tokenizer, record, "answer")[0]


def test_a_token_straddling_the_spans_edge_is_trained_on_whole(tokenizer):
    # "." and the newlines after it are one token here: the span ends inside it, the token is kept whole.
    record = parse_record(make_record(justification="Because 2 + 3 = 5."), "r")
    text, inside, _, reply_start = selected(tokenizer, record, "justification")
    assert text.startswith("Because 2 + 3 = 5.")
    start, end = (reply_start + i for i in record.spans["justification"])
    assert inside[0][0] <= start and inside[-1][1] >= end
    assert all(first < end and last > start for first, last in inside)


def test_a_character_split_over_several_byte_tokens_is_kept_whole(tokenizer):
    rare = "𓀀"  # an Egyptian hieroglyph: several byte-level tokens for one character
    record = parse_record(make_record(answer=f"A {rare}"), "r")
    from postreason_dspy.finetune.masks import encode

    encoded = encode(tokenizer, record, "answer")
    assert tokenizer.decode([encoded.input_ids[i] for i in encoded.loss_positions]) == f"A {rare}"
    assert len(encoded.loss_positions) > 2


# --- logits only at the loss positions; checkpoints that resume exactly ----------------------------------------


def tiny_model(vocab: int = 151_936):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return get_peft_model(Qwen2ForCausalLM(config), lora)


@needs_train
def test_span_loss_equals_the_full_models_loss_on_the_same_positions():
    import torch
    import torch.nn.functional as F

    from postreason_dspy.finetune.masks import Encoded
    from postreason_dspy.finetune.train import span_loss

    model = tiny_model(vocab=97)
    ids = [5, 17, 3, 88, 41, 9, 60, 2]
    example = Encoded("x", ids, [3, 4, 6])
    full = model(input_ids=torch.tensor([ids])).logits[0]
    expected = F.cross_entropy(full[[2, 3, 5]], torch.tensor([88, 41, 60]), reduction="sum")
    assert torch.allclose(span_loss(model, example, torch.device("cpu")), expected, atol=1e-5)


@needs_train
def test_an_interrupted_run_resumes_to_the_same_adapter_as_an_uninterrupted_one(tmp_path, tokenizer, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from postreason_dspy.finetune import train as training

    monkeypatch.setattr(training, "prepare", lambda base, config, device: (tokenizer, tiny_model()))
    records = [parse_record(make_record(rid=f"r{i}", answer=f"A{i}"), f"r{i}") for i in range(3)]
    base = BaseModel("tiny", str(tmp_path))
    config = TrainConfig(batch_size=2, save_every=1, lr=1e-2)
    losses = []
    straight = training.train(base, records, "sha", tmp_path / "a", replace(config, max_steps=3),
                              on_step=lambda r: losses.append(r.loss), say=lambda _: None)
    def interrupt_after_step_2(report):
        if report.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after step 2, before any periodic checkpoint: saved on the way out
        training.train(base, records, "sha", tmp_path / "b", replace(config, max_steps=3, save_every=10),
                       on_step=interrupt_after_step_2, say=lambda _: None)
    assert json.loads((tmp_path / "b" / "state.json").read_text())["step"] == 2
    with pytest.raises(ConfigurationError, match="--resume"):
        training.train(base, records, "sha", tmp_path / "b", config, say=lambda _: None)
    resumed = training.train(base, records, "sha", tmp_path / "b", replace(config, max_steps=3),
                             resume=True, say=lambda _: None)
    assert resumed.steps == straight.steps == 3 and resumed.losses == pytest.approx(straight.losses)
    assert losses[-1] < losses[0]
    a, b = (load_file(str(tmp_path / run / "adapter" / "adapter_model.safetensors")) for run in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)
    assert not torch.allclose(a[next(k for k in a if "lora_B" in k)], torch.zeros(1))  # it did learn something
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["step"] == 3 and [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-000003"]
    assert json.loads((tmp_path / "b" / "base" / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]

    timed = training.train(base, records, "sha", tmp_path / "c", replace(config, max_steps=3, max_minutes=1e-9),
                           say=lambda _: None)
    assert timed.steps == 1 and json.loads((tmp_path / "c" / "state.json").read_text())["step"] == 1
    assert (tmp_path / "c" / "adapter" / "adapter_model.safetensors").is_file()


# --- --loss format: everything but the answer's value, on a record as distill writes it ---------------------------


def distilled_record(answer: str = "B", rationale: str = "Clean plates are stored dry, in a cupboard.",
                     rid: str = "csqa/0") -> dict:
    """A record as `postreason distill` writes it for the CommonsenseQA post program (ChatAdapter)."""
    import dspy

    from postreason_dspy.benchmarks import get_benchmark
    from postreason_dspy.distill.records import chat_record

    predictor = get_benchmark("commonsense_qa").program("post").choose.predict
    inputs = {"question": "Where do you keep clean plates?", "options": "A. sink\nB. cupboard"}
    record = chat_record(dspy.ChatAdapter(), predictor, inputs, {"answer": answer, "rationale": rationale}, "rationale")
    return {"id": rid, "example_id": rid.split("/")[0], **record}


def test_format_mode_trains_the_markers_the_justification_and_the_end_of_turn_but_not_the_answer(tokenizer):
    record = parse_record(distilled_record(), "r")
    text, inside, _, reply_start = selected(tokenizer, record, "format")
    assert text == "[[ ## answer ## ]]\n\n\n[[ ## rationale ## ]]\nClean plates are stored dry, in a cupboard.\n\n" \
                   "[[ ## completed ## ]]\n<|im_end|>"
    (value_start, value_end), = record.values
    assert record.reply[value_start:value_end] == "B"
    value = (reply_start + value_start, reply_start + value_end)
    assert not any(first < value[1] and last > value[0] for first, last in inside)  # no piece of the answer
    assert inside[0][0] == reply_start  # the reply's first marker is trained: it holds the format in place


def test_format_mode_leaves_out_a_token_that_touches_the_value_whole(tokenizer):
    # The value "cupboard." ends in a "." that the tokenizer joins with the newlines after it: left out whole.
    record = parse_record(distilled_record(answer="cupboard."), "r")
    text = selected(tokenizer, record, "format")[0]
    assert "cupboard" not in text.split("[[ ## rationale ## ]]")[0]
    assert text.startswith("[[ ## answer ## ]]\n") and "[[ ## rationale ## ]]\nClean plates" in text


def test_format_mode_needs_value_spans(tokenizer):
    data = distilled_record()
    del data["spans"]["values"]
    from postreason_dspy.finetune.masks import encode

    with pytest.raises(ConfigurationError, match=r"spans\.values"):
        encode(tokenizer, parse_record(data, "r"), "format")


def test_malformed_value_spans_are_a_clear_error():
    data = distilled_record()
    data["spans"]["values"] = [[0, 10_000]]
    with pytest.raises(ConfigurationError, match=r"spans\.values"):
        parse_record(data, "r")


# --- the held-out dev split and early stopping ----------------------------------------------------------------


def test_the_dev_split_holds_out_whole_examples_by_a_hash_of_their_id():
    from postreason_dspy.finetune.data import dev_split

    records = [parse_record({**make_record(rid=f"e{n}/{call}"), "example_id": f"e{n}"}, "r")
               for n in range(400) for call in range(2)]
    train, dev = dev_split(records, 0.1)
    assert len(train) + len(dev) == len(records) and 0.06 < len(dev) / len(records) < 0.14
    assert not {r.example_id for r in train} & {r.example_id for r in dev}  # both calls of an example together
    assert dev_split(list(reversed(records)), 0.1)[1] == list(reversed(dev))  # the same ones, whatever the order
    assert dev_split(records, 0.0) == (records, [])


def test_the_dev_tracker_keeps_the_best_step_and_runs_out_of_patience():
    from postreason_dspy.finetune.early_stop import DevTracker

    tracker = DevTracker(patience=2)
    assert [tracker.add(step, loss) for step, loss in ((10, 1.0), (20, 0.8), (30, 0.9))] == [True, True, False]
    assert (tracker.best_step, tracker.since_best, tracker.exhausted()) == (20, 1, False)
    tracker.add(40, 0.8)  # equal is not better
    assert tracker.exhausted()
    restored = DevTracker.from_state(json.loads(json.dumps(tracker.to_state())), patience=3)
    assert (restored.losses, restored.best_step, restored.exhausted()) == (tracker.losses, 20, False)
    assert tracker.to_state()["best_checkpoint"] == "checkpoints/best-step-000020"


@needs_train
def test_training_stops_when_the_dev_loss_stops_improving_and_keeps_the_best_step(tmp_path, tokenizer, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from postreason_dspy.finetune import train as training

    monkeypatch.setattr(training, "prepare", lambda base, config, device: (tokenizer, tiny_model()))
    dev_losses = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8])  # lowest after step 2; two worse ones stop it at step 4
    measured = []

    def fake_dev_loss(model, examples, device):
        measured.append(len(examples))
        return next(dev_losses)

    monkeypatch.setattr(training, "dev_loss", fake_dev_loss)
    records = [parse_record(make_record(rid=f"r{i}", answer=f"A{i}"), f"r{i}") for i in range(3)]
    dev = [parse_record(make_record(rid="d0", answer="D"), "d0")]
    config = TrainConfig(batch_size=2, lr=1e-2, max_steps=10, eval_every=1, patience=2, save_every=100)
    reports = []
    result = training.train(BaseModel("tiny", str(tmp_path)), records, "sha", tmp_path / "a", config, dev=dev,
                            on_step=reports.append, say=lambda _: None)
    assert (result.steps, result.stopped_early, result.dev.best_step) == (4, True, 2)
    assert [r.dev_loss for r in reports] == [3.0, 2.0, 2.5, 2.6] and measured == [1] * 4
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    assert state["best_step"] == 2 and state["dev_losses"] == [[1, 3.0], [2, 2.0], [3, 2.5], [4, 2.6]]
    kept, best = (load_file(str(tmp_path / "a" / folder / "adapter_model.safetensors"))
                  for folder in ("adapter", "checkpoints/best-step-000002"))
    last = load_file(str(tmp_path / "a" / "checkpoints" / "step-000004" / "adapter_model.safetensors"))
    assert all(torch.equal(kept[k], best[k]) for k in kept)  # the adapter is step 2's, not the last step's
    assert not all(torch.equal(kept[k], last[k]) for k in kept)
    resumed = training.train(BaseModel("tiny", str(tmp_path)), records, "sha", tmp_path / "a", config, dev=dev,
                             resume=True, say=lambda _: None)
    assert (resumed.steps, resumed.stopped_early) == (4, True)  # a resumed run stops where it stopped


def test_the_loss_plot_draws_the_dev_loss(tmp_path):
    from postreason_dspy.finetune.run import plot_losses

    plot_losses([1.0, 0.8, 0.5, 0.3], tmp_path / "loss.png", "t", [[2, 0.9], [4, 1.1]], best_step=2)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the post-training check -------------------------------------------------------------------------------


def good_reply(user: str) -> dict:
    return {"answer": "B", "rationale": "Clean plates are stored dry."}


def test_the_check_passes_replies_that_open_with_the_first_answer_field_and_stop():
    from postreason_dspy.finetune.check import check_lora, opening
    from postreason_dspy.testing import scripted_lm

    records = [parse_record(distilled_record(rid=f"e{n}/0"), "r") for n in range(3)]
    assert opening(records[0]) == "[[ ## answer ## ]]"
    lm, engine = scripted_lm(good_reply)
    check = check_lora(lm, records)
    assert check.status == "passed" and check.failure is None and len(check.replies) == 3
    assert all(r.temperature == 0.0 for r in engine.requests)  # greedy
    assert engine.requests[0].messages == records[0].messages[:-1]  # the prompt alone, as the teacher saw it


@pytest.mark.parametrize(("script", "problem"), [
    (lambda user: "[[ ## question ## ]]\nWhere do you keep clean plates?\n\n[[ ## answer ## ]]\nB",
     "does not open with [[ ## answer ## ]]"),
    (lambda user: "[[ ## answer ## ]]\nB\n\n[[ ## rationale ## ]]\n" + "and so on " * 2000,
     "did not end at the end of turn (finish reason: length)"),
])
def test_an_echoing_or_endless_reply_fails_the_check_in_one_line_that_shows_it(script, problem):
    from postreason_dspy.finetune.check import check_lora
    from postreason_dspy.testing import scripted_lm

    records = [parse_record(distilled_record(rid=f"e{n}/0"), "r") for n in range(2)]
    calls = iter([good_reply, script])
    lm, _ = scripted_lm(lambda user: next(calls)(user))
    check = check_lora(lm, records)
    assert check.status == "failed" and [r.problem for r in check.replies] == [None, problem]
    assert "\n" not in check.failure and check.failure.startswith("the LoRA adapter failed its check: 1 of 2")
    assert f"the reply to e1/0 {problem}" in check.failure
    assert repr(script("")[:40])[1:-1] in check.failure
    assert check.to_dict()["failure"] == check.failure


def test_the_check_prompts_come_from_held_out_records_when_there_are_some():
    from postreason_dspy.finetune.check import prompts

    train = [parse_record(make_record(rid=f"t{n}"), "r") for n in range(9)]
    dev = [parse_record(make_record(rid=f"d{n}"), "r") for n in range(2)]
    assert prompts(train, dev, 5) == (dev, True)
    assert prompts(train, [], 5) == (train[:5], False)


def test_a_failed_check_is_recorded_and_local_up_warns_when_serving_it(tmp_path, monkeypatch, capsys):
    from postreason_dspy.cli import local as local_command
    from postreason_dspy.finetune import run as finetune_run
    from postreason_dspy.finetune.check import LoraCheck, Reply
    from postreason_dspy.local.lora import check_failure

    echo = Reply("e1/0", "[[ ## answer ## ]]", "[[ ## question ## ]]\nWhere?", "stop",
                 "does not open with [[ ## answer ## ]]")
    monkeypatch.setattr(finetune_run, "check_served", lambda out, records, held_out, say: LoraCheck(
        "failed", held_out, (echo,)))
    said = []
    record = finetune_run.run_check(tmp_path, [], [parse_record(make_record(), "r")], 5, said.append)
    assert record["status"] == "failed" and said[-1] == record["failure"]
    assert "[[ ## question ## ]]" in record["failure"]
    assert finetune_run.run_check(tmp_path, [], [], 0, said.append)["status"] == "not run"

    (tmp_path / "finetune.json").write_text(json.dumps({"check": record}))
    assert check_failure(tmp_path) == record["failure"]
    monkeypatch.setattr(local_command.server, "up", lambda *args, **kwargs: server.ServerState(
        pid=1, port=8799, model="m+lora", gguf="g", log="l"))
    assert main(["local", "up", "--lora", str(tmp_path)]) == 0
    assert "warning: serving a LoRA adapter that failed its check" in " ".join(capsys.readouterr().out.split())
    (tmp_path / "finetune.json").write_text(json.dumps({"check": {**record, "status": "passed"}}))
    assert check_failure(tmp_path) is None


@needs_train
def test_the_dev_loss_is_the_mean_token_loss_of_the_dev_records_without_gradients():
    import torch

    from postreason_dspy.finetune.masks import Encoded
    from postreason_dspy.finetune.train import dev_loss, span_loss

    model = tiny_model(vocab=97)
    examples = [Encoded("a", [5, 17, 3, 88], [2, 3]), Encoded("b", [9, 60, 2, 41, 7], [4])]
    expected = sum(span_loss(model, e, torch.device("cpu")).item() for e in examples) / 3
    assert dev_loss(model, examples, torch.device("cpu")) == pytest.approx(expected)
    assert model.training and all(p.grad is None for p in model.parameters())
