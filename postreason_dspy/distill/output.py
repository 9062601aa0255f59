"""What a distillation leaves in DIR: train.jsonl, a `datasets` copy, README.md (the card), summary.json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from postreason_dspy.io import atomic_write_json, atomic_write_text

TRAIN_FILE = "train.jsonl"
DATASET_DIR = "dataset"
CARD_FILE = "README.md"
SUMMARY_FILE = "summary.json"


def unique_records(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of every kept or rationalized example, each record id once."""
    records: dict[str, dict[str, Any]] = {}
    for line in lines:
        for record in line.get("records", ()):
            records.setdefault(record["id"], record)
    return list(records.values())


def save_dataset(records: list[dict[str, Any]], folder: Path) -> None:
    """`records` as a `datasets.Dataset` saved to disk at `folder`, replacing an older copy only when complete."""
    import datasets  # slow import, only when writing

    datasets.disable_progress_bars()  # the command prints its own summary
    columns = {"id": [], "example_id": [], "messages": [], "spans": [], "rationalized": [], "predictor": []}
    dataset = datasets.Dataset.from_list(records) if records else datasets.Dataset.from_dict(columns)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def read_train(out: Path) -> list[dict[str, Any]]:
    """The records of a finished distillation folder's train.jsonl."""
    text = (out / TRAIN_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_outputs(out: Path, summary: dict[str, Any], records: list[dict[str, Any]], card: str) -> list[Path]:
    """Write train.jsonl, the dataset, the card and the summary (the counts)."""
    train = out / TRAIN_FILE
    atomic_write_text(train, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    save_dataset(records, out / DATASET_DIR)
    atomic_write_text(out / CARD_FILE, card)
    atomic_write_json(out / SUMMARY_FILE, summary)
    return [train, out / DATASET_DIR, out / CARD_FILE, out / SUMMARY_FILE]
