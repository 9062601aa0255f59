"""Checkpoints that resume a run: LoRA weights and AdamW state in safetensors (never a pickle), plus state.json.

Each checkpoint is a folder `checkpoints/step-NNNNNN/`; `state.json` is written last and names the
newest complete one, so a run killed while saving resumes from the one before.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import atomic_path, atomic_write_json

STATE = "state.json"


def save_adapter(model: Any, folder: Path) -> None:
    """A PEFT adapter folder (adapter_config.json, adapter_model.safetensors) as `save_pretrained` writes it."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = get_peft_model_state_dict(model, save_embedding_layers=False)  # the LoRA layers only
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    with atomic_path(folder / "adapter_model.safetensors") as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    config = model.peft_config["default"].to_dict()
    atomic_write_json(folder / "adapter_config.json", json.loads(json.dumps(config, default=_jsonable)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def load_adapter_weights(model: Any, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))


def save_optimizer(optimizer: Any, folder: Path) -> None:
    """AdamW's per-parameter tensors in safetensors, its hyper-parameters in JSON."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value.detach().cpu().contiguous().reshape(-1) if value.dim() == 0 else value.cpu()
        for index, entry in state["state"].items()
        for key, value in entry.items()
    }
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(folder / "optimizer.json", {"param_groups": state["param_groups"]})


def load_optimizer(optimizer: Any, folder: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "optimizer.safetensors"))
    entries: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        entries.setdefault(int(index), {})[key] = value.reshape(()) if key == "step" else value
    groups = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))["param_groups"]
    optimizer.load_state_dict({"state": entries, "param_groups": groups})


def save_checkpoint(out: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """A new checkpoint folder, then state.json pointing at it, then older folders removed (but the best
    step's adapter that `state["best_checkpoint"]` names)."""
    name = f"checkpoints/step-{state['step']:06d}"
    folder = out / name
    save_adapter(model, folder)
    save_optimizer(optimizer, folder)
    atomic_write_json(out / STATE, {**state, "checkpoint": name})
    keep = {folder.name, Path(state.get("best_checkpoint") or "").name}
    for old in (out / "checkpoints").iterdir():
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


def read_state(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{out / STATE} is not valid JSON ({exc.msg})") from None
