"""The LoRA adapter as a GGUF LoRA file, by llama.cpp's own converter, for `llama_cpp.server --lora_path`.

The converter (convert_lora_to_gguf.py with its `conversion` package and the matching `gguf-py`)
ships in the llama-cpp-python sdist on PyPI: the sdist of the pinned runtime version is fetched
once with pip and the three parts are kept under $POSTREASON_HOME. The adapter applies on top of
the very GGUF it was trained from (the Q4_K_M weights the server serves, dequantized for training),
so the tuned and the base model differ only by the adapter.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from postreason_dspy.errors import LocalServerError
from postreason_dspy.io import atomic_path
from postreason_dspy.local.paths import home, tail
from postreason_dspy.local.runtime import REQUIREMENT

VERSION = REQUIREMENT.rsplit("==", 1)[1]
PARTS = ("convert_lora_to_gguf.py", "conversion/", "gguf-py/")


def converter_dir() -> Path:
    return home() / f"llama.cpp-convert-{VERSION}"


def ensure_converter(say: Callable[[str], None] = print) -> Path:
    """llama.cpp's convert_lora_to_gguf.py from the llama-cpp-python sdist, fetched on first use."""
    target = converter_dir()
    script = target / PARTS[0]
    if script.is_file():
        return script
    say(f"fetching llama.cpp's LoRA converter (llama-cpp-python {VERSION} sdist, about 77 MB)")
    with tempfile.TemporaryDirectory(dir=home()) as tmp:
        log = Path(tmp) / "pip.log"
        with log.open("w") as out:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"llama-cpp-python=={VERSION}", "-d", tmp],
                stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode != 0 or len(sdists) != 1:
            raise LocalServerError(f"could not fetch the llama-cpp-python sdist from PyPI:\n{tail(log)}")
        staging = Path(tmp) / "converter"
        _extract(sdists[0], staging)
        staging.replace(target)
    return script


def _extract(sdist: Path, into: Path) -> None:
    """Only the converter's files, from `<sdist>/vendor/llama.cpp/`, refusing any path that leaves `into`."""
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            parts = member.name.split("/", 3)
            if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"]:
                continue
            relative = parts[3]
            if (member.isfile() or member.isdir()) and any(
                relative == part or relative.startswith(part) for part in PARTS
            ):
                member.name = relative
                archive.extract(member, into, filter="data")
    if not (into / PARTS[0]).is_file():
        raise LocalServerError(f"{sdist.name} holds no vendor/llama.cpp/{PARTS[0]}")


def convert_adapter(adapter: Path, base_config: Path, out: Path, say: Callable[[str], None] = print) -> Path:
    """`adapter` (a PEFT folder) as a float16 GGUF LoRA at `out`; `base_config` holds the base's config.json.
    Float16: half the size of float32 (an adapter may have to be carried between machines), with a rounding
    far below that of the Q4_K_M weights it applies to."""
    script = ensure_converter(say)
    log = out.with_suffix(".convert.log")
    with atomic_path(out) as tmp, log.open("w") as sink:
        result = subprocess.run(
            [sys.executable, str(script), str(adapter), "--base", str(base_config), "--outfile", str(tmp),
             "--outtype", "f16"],
            stdout=sink, stderr=subprocess.STDOUT, check=False,
        )
        if result.returncode != 0:
            raise LocalServerError(f"converting the adapter to GGUF failed. Last lines of {log}:\n{tail(log)}")
    return out
