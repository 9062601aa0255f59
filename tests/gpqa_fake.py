"""A fake GPQA file and the check that none of its text reached a folder (GPQA must never be stored)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dspy

from postreason_dspy.benchmarks.program_file import ProgramFile

COLUMNS = ["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]


def fake_gpqa(folder: Path, rows: int = 12) -> list[str]:
    """Write `folder/gpqa.csv` with made-up questions; returns every question and option text in it."""
    table = [
        [f"rec{n}", f"Which zorblax isotope {n} decays by quibbling?", f"Quibblium-{n}", f"Flarnite-{n}",
         f"Snorbium-{n}", f"Vexon-{n}"]
        for n in range(rows)
    ]
    with (folder / "gpqa.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(table)
    return [text for row in table for text in row[1:]]


def leaked(folder: Path, texts: list[str]) -> list[tuple[str, str]]:
    """(file, text) for every text found in any file under `folder`."""
    found = []
    for path in (path for path in folder.rglob("*") if path.is_file()):
        content = path.read_text(errors="replace")
        found += [(str(path), text) for text in texts if text in content]
    return found


def write_program_with_demos(program: dspy.Module, path: Path) -> None:
    """A GPQA program file with demos, as a hand-edited file would be (`save_program` refuses to write one)."""
    saved = ProgramFile(benchmark="gpqa", strategy="post", state=program.dump_state(), model="local")
    path.write_text(json.dumps(saved.to_dict()))
