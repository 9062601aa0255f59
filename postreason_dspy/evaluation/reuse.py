"""Which earlier evaluation runs can stand for an arm of a new measurement, so it is not evaluated twice.

An arm is a (benchmark, strategy). An earlier run stands for it when it answered every wanted question
(matched by id, not by count) with the same weights (a local server's `local_model`, so the base model
and a LoRA adapter on it are different models), split, max tokens and temperature, from the benchmark's own
data (no --data file) and with the built-in strategy (no program file in its place). A run that has the arm
but differs says why, so a measurement can print what it did not reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from postreason_dspy.evaluation.config import EvalConfig
from postreason_dspy.evaluation.records import ExampleRecord, RunStore
from postreason_dspy.evaluation.study import model_names

EVAL = EvalConfig()  # `postreason eval`'s defaults: the split and seed the questions are drawn with
Arm = tuple[str, str]  # (benchmark, strategy)


@dataclass(frozen=True)
class Want:
    """What an arm must match: the weights served, the settings that change answers, the questions."""

    weights: str
    max_tokens: int
    temperature: float
    ids: dict[str, list[str]]  # benchmark -> its question ids, in order
    split: str = EVAL.split


def question_ids(benchmark: str, limit: int | None, split: str = EVAL.split, seed: int = EVAL.seed) -> list[str]:
    """The questions `postreason eval --limit` draws from `benchmark` (read from this machine's data)."""
    from postreason_dspy.benchmarks import get_benchmark  # loads every task module: only when needed

    return [str(example.id) for example in get_benchmark(benchmark).load(split=split, limit=limit, seed=seed)]


@dataclass
class Source:
    """An evaluation run that may stand for some arms, its records read once."""

    store: RunStore
    records: list[ExampleRecord]

    @classmethod
    def open(cls, run: str | Path, runs_dir: Path) -> Source:
        store = RunStore.open(run, runs_dir)
        return cls(store, store.records())

    @property
    def run_id(self) -> str:
        return self.store.run_id

    def arm(self, arm: Arm, want: Want) -> tuple[list[ExampleRecord] | None, str | None]:
        """The arm's records of the wanted questions, in their order; else None and why this run cannot stand
        for it (None when the run never evaluated the arm)."""
        benchmark, strategy = arm
        document = self.store.read_config()
        config = document["config"]
        if benchmark not in config["benchmarks"] or strategy not in config["strategies"]:
            return None, None
        if strategy in (config.get("programs") or {}):
            return None, f"{strategy} is a program file there"
        served = model_names(document)
        labels = [label for label, weights in served.items() if weights == want.weights]
        if not labels:
            return None, f"it served {', '.join(sorted(set(served.values())))}, not {want.weights}"
        wanted = {"split": want.split, "max_tokens": want.max_tokens, "temperature": want.temperature}
        changed = [f"{name} {config.get(name)!r}, not {value!r}" for name, value in wanted.items()
                   if config.get(name) != value]
        if (config.get("data") or {}).get(benchmark):
            changed.append(f"its data came from {config['data'][benchmark]}")
        if changed:
            return None, "; ".join(changed)
        found = {record.id: record for record in self.records if record.model in labels
                 and record.benchmark == benchmark and record.strategy == strategy and not record.failed}
        ids = want.ids[benchmark]
        answered = sum(qid in found for qid in ids)
        if answered < len(ids):
            return None, f"it answered {answered} of the {len(ids)} questions"
        return [found[qid] for qid in ids], None


@dataclass
class Plan:
    """Each arm's source run and records; the arms no source has; why each candidate was refused."""

    found: dict[Arm, tuple[str, list[ExampleRecord]]]
    missing: list[Arm]
    refused: dict[Arm, list[str]]

    def refusals(self) -> list[str]:
        """One line per missing arm that some run had but could not stand for."""
        return [f"{strategy} on {benchmark}: not reused from " + "; ".join(self.refused[(benchmark, strategy)])
                for benchmark, strategy in self.missing if (benchmark, strategy) in self.refused]


def plan(sources: Sequence[Source], arms: Sequence[Arm], want: Want) -> Plan:
    """For each arm, the first source (in the order given) that can stand for it."""
    result = Plan({}, [], {})
    for arm in arms:
        for source in sources:
            records, why = source.arm(arm, want)
            if records is not None:
                result.found[arm] = (source.run_id, records)
                break
            if why:
                result.refused.setdefault(arm, []).append(f"{source.run_id}: {why}")
        else:
            result.missing.append(arm)
    return result


@dataclass
class Reused:
    """What a new run takes from earlier runs: the records, relabelled with the new run's model labels; which
    run each arm came from ("model/benchmark/strategy" -> run id); why the other candidates were refused."""

    records: list[ExampleRecord]
    arms: dict[str, str]
    refusals: list[str]


def reusable(document: dict[str, Any], sources: Sequence[Source]) -> Reused:
    """The arms of a new run (its config.json `document`) that earlier runs already answered whole: same
    weights, split, max tokens, temperature and questions, a built-in strategy, the benchmark's own data."""
    config = document["config"]
    programs, data = config.get("programs") or {}, config.get("data") or {}
    ids = {name: list(info["example_ids"]) for name, info in document["benchmarks"].items()}
    arms = [(benchmark, strategy) for benchmark in config["benchmarks"] for strategy in config["strategies"]
            if strategy not in programs and not data.get(benchmark)]
    result = Reused([], {}, [])
    for label, weights in model_names(document).items():
        found = plan(sources, arms, Want(weights, config["max_tokens"], config["temperature"], ids, config["split"]))
        for (benchmark, strategy), (run_id, records) in found.found.items():
            result.records += [replace(record, model=label) for record in records]
            result.arms[f"{label}/{benchmark}/{strategy}"] = run_id
        result.refusals += found.refusals()
    return result
