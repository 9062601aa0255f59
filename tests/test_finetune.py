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

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.finetune.base import BaseModel
from postreason_dspy.finetune.data import Record, data_file, data_hash, parse_record, read_records
from postreason_dspy.finetune.train import TrainConfig, _check_resumable, batches, total_steps
from postreason_dspy.local import server
from postreason_dspy.local.adapter import adapter_target
from postreason_dspy.local.paths import home
from postreason_dspy.local.weights import DEFAULT_MODEL, model_spec

HAS_TRAIN = all(importlib.util.find_spec(name) for name in ("torch", "transformers", "peft", "gguf"))
needs_train = pytest.mark.skipif(not HAS_TRAIN, reason="the train extra is not installed: pip install -e '.[train]'")
GGUF = home() / "models" / model_spec(DEFAULT_MODEL).filename

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
    with pytest.raises(ConfigurationError, match="other data"):
        _check_resumable(state, config, "def", base)
    with pytest.raises(ConfigurationError, match="lr"):
        _check_resumable(state, TrainConfig(lr=1e-3), "abc", base)
    with pytest.raises(ConfigurationError, match="base"):
        _check_resumable(state, config, "abc", BaseModel("other", "/o"))


@pytest.mark.parametrize("field", ["epochs", "batch_size", "lora_r"])
def test_bad_settings_are_clear_errors(field):
    with pytest.raises(ConfigurationError, match=field.replace("_", "-")):
        TrainConfig(**{field: 0}).check()


# --- serving an adapter folder -------------------------------------------------------------------------------


def test_an_adapter_folder_serves_its_gguf_base_with_the_lora_and_a_name_that_carries_its_hash(tmp_path):
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF base")
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF lora one")
    record = {"base": {"name": "base", "folder": str(tmp_path), "gguf": "base.gguf"}, "adapter_gguf": "adapter.gguf"}
    (tmp_path / "finetune.json").write_text(json.dumps(record))
    target = adapter_target(tmp_path)
    assert target.gguf == base and target.lora == (tmp_path / "adapter.gguf").resolve()
    assert target.name.startswith("base+lora-")
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF lora two")
    assert adapter_target(tmp_path).name != target.name
    command = server.server_command(target.gguf, 8799, target.lora)
    assert command[command.index("--lora_path") + 1] == str(target.lora)
    assert "--lora_path" not in server.server_command(target.gguf, 8799)


def test_an_unservable_adapter_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="not a `postreason finetune` output"):
        adapter_target(tmp_path)
    (tmp_path / "finetune.json").write_text(json.dumps({"base": {"folder": "/hf/model"}}))
    with pytest.raises(ConfigurationError, match="no converted adapter"):
        adapter_target(tmp_path)
    (tmp_path / "adapter.gguf").write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="serves GGUF files only"):
        adapter_target(tmp_path)


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

    return load_tokenizer(BaseModel(DEFAULT_MODEL, str(GGUF.parent), GGUF.name, DEFAULT_MODEL))


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
