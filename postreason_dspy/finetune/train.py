"""LoRA training on distilled records, with loss only where the chosen span's tokens are predicted.

The output layer (a 151k-token vocabulary) dominates a step on a small model, so logits are computed
only at the positions that carry loss: the transformer's hidden states are sliced there before the
LM head. One optimizer step takes `batch_size` records, each run on its own (no padding), and
averages the loss over all their loss tokens. The data order is fixed by the seed and the epoch, so
a resumed run sees the same batches it would have seen. With held-out dev records, their loss is
measured every `eval_every` steps and the adapter of the lowest one is the one saved (early_stop).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from postreason_dspy import interrupt
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.finetune.base import BaseModel, load_model, load_tokenizer
from postreason_dspy.finetune.checkpoint import (
    load_adapter_weights,
    load_optimizer,
    read_state,
    save_adapter,
    save_checkpoint,
)
from postreason_dspy.finetune.data import LOSS_MODES, Record
from postreason_dspy.finetune.early_stop import DevTracker, best_folder
from postreason_dspy.finetune.masks import Encoded, encode
from postreason_dspy.io import atomic_write_json, changed_settings, refuse_changes

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# What must match for a checkpoint to be continued (epochs and max_steps may change between runs).
RESUME_KEYS = ("loss", "lr", "lora_r", "lora_alpha", "max_seq_len", "batch_size", "seed", "dev_share")


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "justification"
    epochs: int = 1
    lr: float = 2e-4
    lora_r: int = 8
    lora_alpha: int = 16
    max_steps: int | None = None  # overrides epochs
    max_minutes: float | None = None  # stop after the step that reaches this much training time (all sessions)
    max_seq_len: int = 2048
    batch_size: int = 4
    save_every: int = 10
    seed: int = 0
    device: str = "auto"
    dev_share: float = 0.1  # of the examples, held out by id hash (data.dev_split); 0: no dev loss
    eval_every: int = 10  # steps between dev-loss measurements (and after the last step)
    patience: int | None = 3  # stop after this many measurements without a new lowest dev loss; None: never

    def out_of_time(self, seconds: float) -> bool:
        return self.max_minutes is not None and seconds >= 60 * self.max_minutes

    def check(self) -> None:
        if self.loss not in LOSS_MODES:
            raise ConfigurationError(f"unknown loss mode {self.loss!r}; choose from {', '.join(LOSS_MODES)}")
        for name in ("epochs", "lora_r", "max_seq_len", "batch_size", "save_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigurationError("--max-steps must be at least 1")
        if not self.lr > 0:
            raise ConfigurationError("--lr must be positive")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigurationError("--max-minutes must be positive")
        if not 0 <= self.dev_share < 1:
            raise ConfigurationError("--dev-share must be at least 0 and below 1")
        if self.patience is not None and self.patience < 1:
            raise ConfigurationError("--patience must be at least 1")


@dataclass
class StepReport:
    step: int
    total: int
    loss: float
    tokens: int
    loss_tokens: int
    seconds: float
    dev_loss: float | None = None  # measured after this step

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    loss_tokens: int = 0
    seconds: float = 0.0
    records_used: int = 0
    records_skipped: int = 0
    device: str = "cpu"
    dev: DevTracker = field(default_factory=lambda: DevTracker(None))
    dev_records: int = 0
    dev_seconds: float = 0.0
    stopped_early: bool = False


def pick_device(name: str) -> Any:
    """`auto`: the GPU where there is one, else the CPU; or the torch device named."""
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def batches(count: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The record indices of optimizer step `step` (0-based): each epoch is a seeded shuffle."""
    per_epoch = math.ceil(count / batch_size)
    epoch, index = divmod(step, per_epoch)
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[index * batch_size : (index + 1) * batch_size]


def total_steps(config: TrainConfig, count: int) -> int:
    return config.max_steps or config.epochs * math.ceil(count / config.batch_size)


def encode_all(tokenizer: Any, records: list[Record], config: TrainConfig, *, dev: bool = False
               ) -> tuple[list[Encoded], int]:
    """Encoded records that fit `max_seq_len` and carry loss tokens, and how many were left out (none may be
    left for `dev` records; training records must leave some)."""
    encoded = [encode(tokenizer, record, config.loss) for record in records]
    kept = [e for e in encoded if e.loss_positions and len(e.input_ids) <= config.max_seq_len]
    if not kept and not dev:
        raise ConfigurationError(
            f"no record fits --max-seq-len {config.max_seq_len} with tokens to train on in --loss {config.loss}"
        )
    return kept, len(encoded) - len(kept)


def span_loss(model: Any, example: Encoded, device: Any) -> Any:
    """The summed cross-entropy of the loss tokens, with logits computed at those positions only."""
    import torch
    import torch.nn.functional as F

    inner = model.get_base_model()
    ids = torch.tensor([example.input_ids], device=device)
    hidden = inner.model(input_ids=ids).last_hidden_state[0]
    targets = torch.tensor(example.loss_positions, device=device)
    logits = inner.lm_head(hidden[targets - 1]).float()
    return F.cross_entropy(logits, ids[0, targets], reduction="sum")


def dev_loss(model: Any, examples: list[Encoded], device: Any) -> float:
    """The mean token loss over the dev records, without gradients."""
    import torch

    model.eval()
    with torch.no_grad():
        summed = sum(span_loss(model, example, device).item() for example in examples)
    model.train()
    return summed / sum(len(example.loss_positions) for example in examples)


def prepare(base: BaseModel, config: TrainConfig, device: Any) -> tuple[Any, Any]:
    """The tokenizer and the base model wrapped with fresh LoRA layers."""
    from peft import LoraConfig, get_peft_model

    tokenizer = load_tokenizer(base)
    model = load_model(base, device)
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
        task_type="CAUSAL_LM",
    )
    return tokenizer, get_peft_model(model, lora)


def train(
    base: BaseModel,
    records: list[Record],
    data_sha256: str,
    out: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    dev: list[Record] | None = None,
    on_step: Callable[[StepReport], None] = lambda report: None,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Train a LoRA adapter into `out/adapter/`, checkpointing into `out/` as it goes. With `dev` records
    (held out from `records`), the adapter saved is the one of the step with the lowest dev loss."""
    import torch

    config.check()
    state = read_state(out)
    if state is not None and not resume:
        raise ConfigurationError(f"{out} already holds a training run: pass --resume to continue it, or another --out")
    if state is not None:
        _check_resumable(state, config, data_sha256, base)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    say(f"loading {base.name} on {device}")
    tokenizer, model = prepare(base, config, device)
    examples, skipped = encode_all(tokenizer, records, config)
    held, _ = encode_all(tokenizer, dev or [], config, dev=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0)
    result = TrainResult(steps=0, records_used=len(examples), records_skipped=skipped, device=str(device),
                         dev=DevTracker(config.patience), dev_records=len(held))
    if state is not None:
        folder = out / state["checkpoint"]
        load_adapter_weights(model, folder)
        load_optimizer(optimizer, folder)
        result.steps, result.losses = state["step"], list(state["losses"])
        result.tokens, result.loss_tokens, result.seconds = state["tokens"], state["loss_tokens"], state["seconds"]
        result.dev, result.dev_seconds = DevTracker.from_state(state, config.patience), state.get("dev_seconds", 0.0)
        say(f"resuming from step {result.steps}")
    total = total_steps(config, len(examples))
    checkpoint_state = {"config": asdict(config), "base": base.to_dict(), "data_sha256": data_sha256}

    def checkpoint() -> None:
        save_checkpoint(out, model, optimizer, {**checkpoint_state, **_progress(result)})

    def out_of_time() -> bool:
        return config.out_of_time(result.seconds + result.dev_seconds)

    def measure() -> float | None:
        """The dev loss after this step, when one is due; the adapter is kept when it is the lowest."""
        if not held or not (result.steps % config.eval_every == 0 or result.steps == total or out_of_time()):
            return None
        started = time.monotonic()
        loss = dev_loss(model, held, device)
        result.dev_seconds += time.monotonic() - started
        if result.dev.add(result.steps, loss):
            save_adapter(model, out / best_folder(result.steps))
        return loss

    model.train()
    try:
        while result.steps < total and not out_of_time() and not result.dev.exhausted():
            interrupt.check()  # between optimizer steps: the one in progress finishes and is checkpointed
            report = _step(model, optimizer, examples, result.steps, total, config, device)
            result.steps += 1
            result.losses.append(report.loss)
            result.tokens += report.tokens
            result.loss_tokens += report.loss_tokens
            result.seconds += report.seconds
            report.dev_loss = measure()
            on_step(report)
            if report.dev_loss is not None or result.steps % config.save_every == 0 or result.steps == total \
                    or out_of_time():
                checkpoint()
        result.stopped_early = result.dev.exhausted()
        if result.stopped_early:
            say(f"the dev loss has not gone below {result.dev.best_loss:.4f} in {result.dev.since_best} "
                f"measurements: stopped at step {result.steps} of {total}")
        elif result.steps < total:
            say(f"--max-minutes {config.max_minutes:g} reached after step {result.steps} of {total}")
    except KeyboardInterrupt:
        if result.steps:
            checkpoint()
            say(f"interrupted: checkpoint at step {result.steps} in {out}; continue with --resume")
        raise
    if result.dev.best_step is not None:
        load_adapter_weights(model, out / best_folder(result.dev.best_step))
        say(f"keeping the adapter of step {result.dev.best_step}, whose dev loss ({result.dev.best_loss:.4f}) "
            "is the lowest")
    save_adapter(model, out / "adapter")
    write_base_config(model.get_base_model(), out / "base")
    return result


def write_base_config(model: Any, folder: Path) -> None:
    """The base's config.json, which llama.cpp's converter reads. A GGUF-loaded config names no
    architecture (the model's class name is filled in) and says it is quantized, which the converter
    would try to undo: the adapter is plain floats, so that entry is left out."""
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = config.get("architectures") or [type(model).__name__]
    atomic_write_json(folder / "config.json", config)


def _step(model: Any, optimizer: Any, examples: list[Encoded], step: int, total: int, config: TrainConfig,
          device: Any) -> StepReport:
    started = time.monotonic()
    batch = [examples[i] for i in batches(len(examples), config.batch_size, step, config.seed)]
    loss_tokens = sum(len(e.loss_positions) for e in batch)
    summed = 0.0
    for example in batch:
        loss = span_loss(model, example, device)
        (loss / loss_tokens).backward()
        summed += loss.item()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    tokens = sum(len(e.input_ids) for e in batch)
    return StepReport(step + 1, total, summed / loss_tokens, tokens, loss_tokens, time.monotonic() - started)


def _progress(result: TrainResult) -> dict[str, Any]:
    return {"step": result.steps, "losses": result.losses, "tokens": result.tokens,
            "loss_tokens": result.loss_tokens, "seconds": result.seconds, "dev_seconds": result.dev_seconds,
            **result.dev.to_state()}


def _check_resumable(state: dict[str, Any], config: TrainConfig, data_sha256: str, base: BaseModel) -> None:
    """A checkpoint goes on only with the data (by sha256), base model and `RESUME_KEYS` it was trained with."""
    now = {"data": data_sha256, "base": base.to_dict(), **{key: getattr(config, key) for key in RESUME_KEYS}}
    started = {"data": state.get("data_sha256"), "base": state.get("base"), **state.get("config", {})}
    refuse_changes(changed_settings(started, now, now), "the checkpoint was trained with other settings",
                   "resume with the same ones, or use another --out")
