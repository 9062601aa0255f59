"""What the search tests share: exact-match scoring, tiny example sets, reading a run's trials.jsonl."""

from __future__ import annotations

from pathlib import Path

import dspy

from postreason_dspy.io import JsonlLog

EXPERT = "An expert will review"  # a phrase of one catalogue wording: the fake models answer right under it


def exact(example, pred, trace=None):
    return pred.answer == example.answer


def examples(n: int, prefix: str = "q") -> list[dspy.Example]:
    return [dspy.Example(id=f"{prefix}{i}", question=f"{prefix}{i}", answer="right").with_inputs("question")
            for i in range(n)]


def trials_log(run_dir: Path) -> list[dict]:
    return JsonlLog(run_dir / "trials.jsonl").read()[0]
