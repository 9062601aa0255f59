"""A `postreason finetune` output folder as something the local server can serve: base GGUF + GGUF LoRA.

"LoRA" everywhere on this side: "adapter" alone means DSPy's output format (ChatAdapter...). The folder's
finetune.json names the base (a local model, verified by sha256 as usual, or a GGUF file) and the converted
LoRA adapter (still written as `adapter.gguf`, so committed outputs stay servable). The served model's name
carries the LoRA's hash, so run records tell the tuned model from its base and from other LoRAs. The record
also says whether the LoRA adapter passed its post-training check (postreason_dspy.finetune.check);
`check_failure` is what a failed one said.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.local.weights import ensure_weights, file_sha256, model_spec

RECORD = "finetune.json"


@dataclass(frozen=True)
class LoraTarget:
    """The weights serving a `postreason finetune` folder takes, and the name the server gives them."""

    name: str  # e.g. "qwen2.5-coder-0.5b+lora-1a2b3c4d5e6f"
    gguf: Path  # the base weights
    lora: Path  # the GGUF LoRA


def read_summary(folder: Path) -> dict[str, Any]:
    """The finetune.json of a `postreason finetune --out` folder; a clear error if there is none."""
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{folder} is not a `postreason finetune` output (no {RECORD})") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{folder / RECORD} is not valid JSON ({exc.msg})") from None


def check_failure(folder: Path) -> str | None:
    """The one line a failed post-training check recorded for the LoRA adapter in `folder`, or None."""
    check = read_summary(folder).get("check") or {}
    return check.get("failure") if check.get("status") == "failed" else None


def lora_target(folder: Path, say: Callable[[str], None] = print) -> LoraTarget:
    """What serving `folder` (a `postreason finetune --out` folder) takes; a clear error if it cannot be served."""
    record = read_summary(folder)
    lora = folder / record.get("adapter_gguf", "adapter.gguf")
    if not lora.is_file():
        raise ConfigurationError(
            f"{folder} holds no converted LoRA adapter ({lora.name}): the fine-tuning did not finish"
        )
    base = record.get("base") or {}
    if base.get("local_model"):
        spec = model_spec(base["local_model"])
        gguf, label = ensure_weights(spec, say), spec.name
    elif base.get("gguf"):
        gguf, label = Path(base["folder"]) / base["gguf"], Path(base["gguf"]).stem
        if not gguf.is_file():
            raise ConfigurationError(f"the LoRA adapter's base model {gguf} is gone")
    else:
        raise ConfigurationError(
            f"the LoRA adapter in {folder} was trained on a Hugging Face folder ({base.get('folder')}): the local "
            "server serves GGUF files only; train with --base local (or a .gguf file) to serve it here"
        )
    return LoraTarget(name=f"{label}+lora-{file_sha256(lora)[:12]}", gguf=gguf, lora=lora.resolve())
