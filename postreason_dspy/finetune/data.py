"""Distilled training records (`postreason distill`'s train.jsonl): read, check, hash. No torch here.

A record: {"id", "example_id", "messages": [... the last one the assistant's], "spans": {"answer": [start, end],
"justification": [start, end], "values": [[start, end], ...]}} with character offsets into the last
assistant message's content (`values`, the answer fields' values alone, is optional: `--loss format` needs it).

The held-out dev records are chosen by a hash of each record's example id, so every record of one
example falls on the same side, and the same records are held out in every run and on resume.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postreason_dspy.errors import ConfigurationError

LOSS_MODES = ("justification", "all", "answer", "format")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Record:
    """One chat to train on; `spans` are character ranges of the final assistant message's content."""

    id: str
    messages: list[dict[str, str]]
    spans: dict[str, tuple[int, int]]
    values: tuple[tuple[int, int], ...] | None = None  # the answer fields' values alone, when the record says
    example_id: str = ""

    @property
    def reply(self) -> str:
        return self.messages[-1]["content"]


def data_file(data: str | Path) -> Path:
    """DATA as given: a directory holding train.jsonl, or the JSONL file itself."""
    path = Path(data)
    if path.is_dir():
        path = path / "train.jsonl"
    if not path.is_file():
        raise ConfigurationError(f"no training data at {path}: give a `postreason distill` folder or its train.jsonl")
    return path


def data_hash(path: Path) -> str:
    """The sha256 of the data file's bytes: a checkpoint resumes only on the data it was trained on."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_record(data: Any, where: str) -> Record:
    """One checked record; a malformed one is a ConfigurationError that says where and why."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: a record must be a JSON object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConfigurationError(f"{where}: 'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
            message.get("content"), str
        ):
            raise ConfigurationError(f"{where}: each message needs a role ({'/'.join(ROLES)}) and a string content")
    if messages[-1]["role"] != "assistant":
        raise ConfigurationError(f"{where}: the last message must be the assistant's")
    reply = messages[-1]["content"]
    spans: dict[str, tuple[int, int]] = {}
    for name in ("answer", "justification"):
        span = (data.get("spans") or {}).get(name)
        if not (isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(i, int) for i in span)):
            raise ConfigurationError(f"{where}: spans.{name} must be [start, end]")
        start, end = span
        if not 0 <= start <= end <= len(reply):
            raise ConfigurationError(f"{where}: spans.{name} {span} lies outside the reply ({len(reply)} characters)")
        spans[name] = (start, end)
    values = (data.get("spans") or {}).get("values")
    if values is not None:
        if not (isinstance(values, list) and all(
            isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(i, int) for i in v) for v in values
        )):
            raise ConfigurationError(f"{where}: spans.values must be a list of [start, end]")
        if not all(0 <= start <= end <= len(reply) for start, end in values):
            raise ConfigurationError(f"{where}: spans.values {values} lie outside the reply ({len(reply)} characters)")
        values = tuple((start, end) for start, end in values)
    rid = str(data.get("id") or where)
    return Record(id=rid, messages=[dict(m) for m in messages], spans=spans, values=values,
                  example_id=str(data.get("example_id") or rid))


def read_records(path: Path) -> list[Record]:
    """Every record of a JSONL file, in order; an empty or malformed file is a ConfigurationError."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}:{number}: not JSON ({exc.msg})") from None
        records.append(parse_record(data, f"{path}:{number}"))
    if not records:
        raise ConfigurationError(f"{path} holds no records")
    return records


def held_out(record: Record, share: float) -> bool:
    """Whether `record` is a dev record: the sha256 of its example id, read as a number in [0, 1), is below `share`."""
    digest = hashlib.sha256(record.example_id.encode("utf-8")).hexdigest()
    return int(digest[:12], 16) / 16**12 < share


def dev_split(records: list[Record], share: float) -> tuple[list[Record], list[Record]]:
    """The records to train on and the held-out dev records (about `share` of the examples)."""
    return [r for r in records if not held_out(r, share)], [r for r in records if held_out(r, share)]
