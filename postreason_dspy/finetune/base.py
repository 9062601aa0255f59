"""The base model to tune: the local server's own GGUF (dequantized by transformers) or a Hugging Face folder.

`local` is the model the local server serves (the default when none runs); a local model's short
name (`qwen2.5-coder-0.5b`) is its cached, sha256-checked GGUF; a path is a `.gguf` file or a
folder holding `config.json`. Nothing here touches a model hub.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.local import server
from postreason_dspy.local.paths import home
from postreason_dspy.local.weights import DEFAULT_MODEL, MODELS, ensure_weights, model_spec


@dataclass(frozen=True)
class BaseModel:
    """Where the base weights are. `gguf` is set for a GGUF file (then `folder` is its directory);
    `local_model` names the local model it is, so `postreason local up --lora` serves the same base."""

    name: str
    folder: str
    gguf: str | None = None
    local_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_base(base: str, say: Any = print) -> BaseModel:
    """`local`, a local model's short name, a .gguf file or a Hugging Face model folder."""
    if base == "local":
        running = server.status()
        base = running.model if running is not None else DEFAULT_MODEL
    if base in MODELS:
        gguf = ensure_weights(model_spec(base), say)
        return BaseModel(name=base, folder=str(gguf.parent), gguf=gguf.name, local_model=base)
    path = Path(base).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return BaseModel(name=path.stem, folder=str(path.resolve().parent), gguf=path.name)
    if (path / "config.json").is_file():
        return BaseModel(name=path.name, folder=str(path.resolve()))
    raise ConfigurationError(
        f"--base {base!r} is neither `local`, a local model ({', '.join(MODELS)}), a .gguf file "
        "nor a Hugging Face model folder with config.json"
    )


def load_tokenizer(base: BaseModel) -> Any:
    """The base model's fast tokenizer. For a GGUF it is built from the file's own vocabulary (about
    25 s) once, then kept under $POSTREASON_HOME/tokenizers/ (loads in about a second)."""
    from transformers import AutoTokenizer

    if base.gguf is None:
        return AutoTokenizer.from_pretrained(base.folder)
    gguf = Path(base.folder) / base.gguf
    stat = gguf.stat()
    cached = home() / "tokenizers" / f"{gguf.stem}-{stat.st_size}-{stat.st_mtime_ns}"
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached)
    tokenizer = AutoTokenizer.from_pretrained(base.folder, gguf_file=base.gguf)
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cached.parent))
    try:
        tokenizer.save_pretrained(staging)
        with contextlib.suppress(OSError):  # another process cached it first
            staging.rename(cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


def load_model(base: BaseModel, device: Any) -> Any:
    """The base model in float32 on `device` (a GGUF is dequantized: about 35 s for the 0.5B model here)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.folder, gguf_file=base.gguf, dtype=torch.float32)
    return model.to(device)
