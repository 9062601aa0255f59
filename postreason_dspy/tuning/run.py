"""A tune run: per model, search on train/dev, save the best program, then measure it on held-out test.

    runs/<run-id>/tune.json                 the run's settings (written once; `--resume` reads them back)
    runs/<run-id>/summary.json              per model: dev and test figures, p-values, cost, recommendation
    runs/<run-id>/<model-slug>/study.db     the Optuna study (unless --storage names another)
    runs/<run-id>/<model-slug>/trials.jsonl one line per trial; demo_sets.json; search.json
    runs/<run-id>/<model-slug>/dev.json     direct answer scored on the same dev questions
    runs/<run-id>/<model-slug>/program.json the best program (`postreason eval --program` rebuilds it)
    runs/<run-id>/<model-slug>/test/        an evaluation run on the test split: direct, untuned, tuned

Every step is kept on disk as it finishes, so an interrupted run resumes where it stopped: finished
trials, demo sets, dev scores and test answers are reused, never redone. A benchmark that withholds its
text (GPQA) is tuned without demos (wording only): demos would quote its questions in these files.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy.adapters import adapter_name
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import EvalConfig, RunStore, resume_run, start_run
from postreason_dspy.evaluation.records import new_run_id
from postreason_dspy.io import JsonlLog, atomic_write_json, json_id
from postreason_dspy.models import resolve_lm
from postreason_dspy.optimizers import PostReasonSearch
from postreason_dspy.optimizers.demos import DEMO_STYLES
from postreason_dspy.optimizers.post_reason_search import PRUNERS, SELECTIONS, TRIALS
from postreason_dspy.optimizers.scoring import score_program
from postreason_dspy.optimizers.space import rationale_variant
from postreason_dspy.optimizers.study import check_storage, default_study_name
from postreason_dspy.secrets import redact
from postreason_dspy.tuning.controls import DIRECT_DEMOS, DIRECT_DEMOS_FILE, direct_with_demos
from postreason_dspy.tuning.recommend import recommend

TUNE = "tune.json"
SUMMARY = "summary.json"
PROGRAM = "program.json"
DEV = "dev.json"
TEST_RUN = "test"
TUNABLE = ("post", "post_full")

LMFactory = Callable[..., dspy.LM]
TrialCallback = Callable[[Any, dict[str, Any]], None]
# Around each model's search: yields the callback that sees each trial (e.g. a live progress bar).
SearchProgress = Callable[[str], AbstractContextManager[TrialCallback | None]]


@dataclass(frozen=True)
class TuneConfig:
    """What a tune run does; stored in tune.json so `--resume` continues with the same settings."""

    models: tuple[str, ...]
    benchmark: str
    program_strategy: str = "post"
    trials: int = 16
    train_size: int | None = 40
    dev_size: int | None = 50
    limit: int | None = 200
    num_demo_sets: int | None = None  # None: as many as the budget can try
    max_demos: int = 3
    demo_styles: tuple[str, ...] = ("justified", "bare")
    direct_candidate: bool = True
    storage: str | None = None
    study: str | None = None
    max_lm_calls: int | None = None
    with_cot: bool = False
    with_direct_demos: bool = False
    seed: int = 0
    api_base: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    data: str | None = None
    # Opt-in search dimensions and efficiency (see PostReasonSearch); the defaults search what it always did.
    adapters: tuple[str, ...] = ()
    rationale_fields: tuple[str, ...] = ()
    proposals: int = 0
    prompt_model: str | None = None
    minibatch: int | None = None
    pruner: str = "bound"
    select: str = "best"

    def __post_init__(self) -> None:
        if not self.models or len(set(self.models)) != len(self.models):
            raise ConfigurationError("give each --model once (at least one)")
        if self.program_strategy not in TUNABLE:
            raise ConfigurationError(f"--program-strategy must be one of {', '.join(TUNABLE)}, "
                                     f"not {self.program_strategy!r}")
        if self.trials < 1:
            raise ConfigurationError(f"--trials must be 1 or more, not {self.trials}")
        for name in ("train_size", "dev_size", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be 1 or more, not {value}")
        if self.study and len(self.models) > 1:
            raise ConfigurationError("--study names one study: tune one --model per run with it")
        if self.study and not self.storage:
            raise ConfigurationError("--study needs --storage (the run folder's own study is named for you)")
        object.__setattr__(self, "adapters", tuple(dict.fromkeys(adapter_name(a) for a in self.adapters)))
        if not self.demo_styles or set(self.demo_styles) - set(DEMO_STYLES):
            raise ConfigurationError(f"--demo-styles must be some of {', '.join(DEMO_STYLES)}")
        if self.num_demo_sets is not None and self.num_demo_sets < 0:
            raise ConfigurationError(f"--demo-sets must be 0 or more, or auto, not {self.num_demo_sets}")
        if self.pruner == "halving" and self.minibatch is None:
            raise ConfigurationError("--pruner halving races candidates on minibatches: give --minibatch K")
        try:
            for name in self.rationale_fields:
                rationale_variant(name)
        except ValueError as exc:
            raise ConfigurationError(f"--rationale-fields: {exc}") from None
        if self.proposals < 0 or (self.minibatch is not None and self.minibatch < 1):
            raise ConfigurationError("--propose must be 0 or more and --minibatch 1 or more")
        if self.prompt_model and not self.proposals:
            raise ConfigurationError("--prompt-model proposes wordings: give --propose N as well")
        if self.select not in SELECTIONS or self.pruner not in PRUNERS:
            raise ConfigurationError(f"--select must be one of {', '.join(SELECTIONS)} and --pruner one of "
                                     f"{', '.join(PRUNERS)}")

    @property
    def tuned_label(self) -> str:
        return f"{self.program_strategy}_tuned"

    def command(self) -> str:
        parts = ["postreason", "tune", *[f"--model {shlex.quote(m)}" for m in self.models]]
        parts.append(f"--benchmark {self.benchmark} --program-strategy {self.program_strategy} --trials {self.trials}")
        parts.append(f"--train-size {self.train_size or 'all'} --dev-size {self.dev_size or 'all'} "
                     f"--limit {self.limit or 'all'} --seed {self.seed}")
        parts.append(f"--demo-sets {'auto' if self.num_demo_sets is None else self.num_demo_sets} "
                     f"--max-demos {self.max_demos} --demo-styles {','.join(self.demo_styles)}")
        if not self.direct_candidate:
            parts.append("--no-direct-candidate")
        if self.storage:
            parts.append(f"--storage {shlex.quote(redact(self.storage))}")
        if self.study:
            parts.append(f"--study {shlex.quote(self.study)}")
        if self.max_lm_calls:
            parts.append(f"--max-lm-calls {self.max_lm_calls}")
        if self.with_cot:
            parts.append("--with-cot")
        if self.with_direct_demos:
            parts.append("--with-direct-demos")
        if self.adapters:
            parts.append(f"--adapters {','.join(self.adapters)}")
        if self.rationale_fields:
            parts.append(f"--rationale-fields {','.join(self.rationale_fields)}")
        if self.proposals:
            parts.append(f"--propose {self.proposals}")
        if self.prompt_model:
            parts.append(f"--prompt-model {shlex.quote(self.prompt_model)}")
        if self.minibatch:
            parts.append(f"--minibatch {self.minibatch} --pruner {self.pruner}")
        if self.select != "best":
            parts.append(f"--select {self.select}")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for name in ("models", "adapters", "rationale_fields", "demo_styles"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def withheld_note(bench: Any) -> str:
    """Why a benchmark that withholds its text (GPQA) is tuned without demos: they would quote its questions
    in demo_sets.json, the study and program.json."""
    return (f"{bench.name} must never be stored in plain text, and demos and proposed wordings quote its questions: "
            "only the shipped instruction wordings are tuned (no demo sets, no proposals)")


def model_slug(model: str) -> str:
    """A directory name for a model string: openai/gpt-4o-mini -> openai-gpt-4o-mini."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.")
    return slug or json_id(model)


def is_tune_run(path: Path) -> bool:
    return (path / TUNE).is_file()


class TuneRun:
    """A tune run's directory: creating it, resuming it, and running each model's steps into it."""

    def __init__(
        self,
        path: Path,
        config: TuneConfig,
        *,
        lm_factory: LMFactory | None = None,
        progress: SearchProgress | None = None,
        console: Any = None,
    ):
        self.path = path
        self.config = config
        self.lm_factory = lm_factory or resolve_lm
        self.progress = progress or (lambda _model: nullcontext(None))
        self.console = console

    @classmethod
    def create(cls, runs_dir: Path, config: TuneConfig, run_id: str | None = None, **kwargs: Any) -> TuneRun:
        run_id = run_id or new_run_id()
        if not run_id or Path(run_id).name != run_id or run_id.startswith("."):
            raise ConfigurationError(f"a run id must be a plain directory name, not {run_id!r}")
        path = runs_dir / run_id
        if path.exists():
            raise ConfigurationError(f"run {path} already exists: continue it with `postreason tune --resume {run_id}`")
        run = cls(path, config, **kwargs)
        if config.storage:  # a bad storage, benchmark or data file fails before any directory is made
            check_storage(config.storage)
        run._splits()
        settings = asdict(config)
        if settings["storage"]:
            settings["storage"] = redact(settings["storage"])
        atomic_write_json(path / TUNE, {
            "kind": "tune", "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": config.command(), "config": settings,
            "storage_password_withheld": settings["storage"] != config.storage,
        })
        return run

    @classmethod
    def open(cls, run: str | Path, runs_dir: Path, storage: str | None = None, **kwargs: Any) -> TuneRun:
        """An existing tune run; `storage` gives back a storage URL whose password tune.json does not keep."""
        for candidate in (Path(run), runs_dir / str(run)):
            if (candidate / TUNE).is_file():
                document = json.loads((candidate / TUNE).read_text(encoding="utf-8"))
                config = TuneConfig.from_dict(document["config"])
                if storage:
                    config = dataclasses.replace(config, storage=storage)
                elif document.get("storage_password_withheld"):
                    raise ConfigurationError("this run's storage URL had a password, which is not stored: "
                                             "give the URL again with --storage")
                return cls(candidate, config, **kwargs)
        raise ConfigurationError(f"no tune run {str(run)!r}: neither {run} nor {runs_dir / str(run)} holds {TUNE}")

    # ----- the steps -----

    def run(self) -> dict[str, Any]:
        """Tune and measure every model (reusing whatever an earlier session finished); the summary."""
        results = {}
        for model in self.config.models:
            results[model] = self.run_model(model)
            self._write_summary(results)
        return self._write_summary(results)

    def _write_summary(self, results: dict[str, Any]) -> dict[str, Any]:
        summary = {"run_id": self.path.name, "kind": "tune", "benchmark": self.config.benchmark,
                   "program_strategy": self.config.program_strategy, "command": self.config.command(),
                   "generated": datetime.now(UTC).isoformat(timespec="seconds"), "models": results}
        atomic_write_json(self.path / SUMMARY, summary)
        return summary

    def _splits(self) -> tuple[Any, list[dspy.Example], list[dspy.Example]]:
        config = self.config
        bench = get_benchmark(config.benchmark)
        train = bench.load("train", limit=config.train_size, seed=config.seed, path=config.data)
        dev = bench.load("dev", limit=config.dev_size, seed=config.seed, path=config.data)
        if not train or not dev:
            raise ConfigurationError(f"benchmark {config.benchmark!r} has no tuning split here "
                                     f"(train {len(train)}, dev {len(dev)} examples)")
        return bench, train, dev

    def run_model(self, model: str) -> dict[str, Any]:
        config = self.config
        folder = self.path / model_slug(model)
        bench, train, dev = self._splits()
        lm = self.lm_factory(model, api_base=config.api_base, max_tokens=config.max_tokens,
                             temperature=config.temperature, cache=False)
        study = config.study or default_study_name(
            benchmark=config.benchmark, model=model, program=config.program_strategy,
            train=[str(ex.id) for ex in train], dev=[str(ex.id) for ex in dev], seed=config.seed,
        )
        untuned = bench.program(config.program_strategy)
        num_demo_sets, max_demos, proposals = (0, 0, 0) if bench.withhold_text else (
            config.num_demo_sets, config.max_demos, config.proposals)
        prompt_lm = self.lm_factory(config.prompt_model, api_base=config.api_base, max_tokens=config.max_tokens,
                                    temperature=config.temperature, cache=False) if config.prompt_model else None
        with self.progress(model) as on_trial, dspy.context(lm=lm):
            search = PostReasonSearch(
                bench.metric, num_trials=config.trials, num_demo_sets=num_demo_sets,
                max_bootstrapped_demos=max_demos, seed=config.seed, storage=config.storage, study_name=study,
                run_dir=folder, max_lm_calls=config.max_lm_calls, aggregate=bench.accuracy, on_trial=on_trial,
                adapters=config.adapters, rationale_fields=config.rationale_fields, num_proposals=proposals,
                prompt_model=prompt_lm, minibatch=config.minibatch, pruner=config.pruner, select=config.select,
                withhold_text=bench.withhold_text, demo_styles=config.demo_styles,
            )
            direct_program = bench.program("direct") if config.direct_candidate else None
            best = search.compile(untuned, trainset=train, valset=dev, direct=direct_program)
            direct = self._direct_on_dev(folder, bench, dev)
        record = best.record
        dev_scores = {"direct": direct["dev_score"], "untuned": record["baseline"]["dev_score"] if record["baseline"]
                      else None, "tuned": best.score}
        program_path = folder / PROGRAM
        adapter = {"adapter": best.adapter} if best.adapter else {}
        strategy = "direct" if best.format == "direct" else config.program_strategy
        save_program(best, program_path, benchmark=config.benchmark, strategy=strategy, model=model,
                     program_kwargs=best.program_kwargs,
                     metadata={"temperature": config.temperature, "max_tokens": config.max_tokens,
                               "dev_scores": dev_scores, "dev_size": len(dev), "train_size": len(train),
                               "trials": record["counted"], "study": record["study_name"],
                               "best_trial": record["best"], "stopped": record["stopped"], "format": best.format,
                               **adapter},
                     keep_same=True)
        control = direct_with_demos(bench, best) if best.format != "direct" else None  # tuned is that already
        if control is not None:
            save_program(control, folder / DIRECT_DEMOS_FILE, benchmark=config.benchmark, strategy="direct",
                         model=model, metadata={"temperature": config.temperature, "max_tokens": config.max_tokens,
                                                "demos_from": PROGRAM}, keep_same=True)
        test = self._test(model, folder, program_path)
        summary = self._model_summary(model, folder, record, direct, dev_scores, test, train, dev)
        return {**summary, "note": withheld_note(bench)} if bench.withhold_text else summary

    def _direct_on_dev(self, folder: Path, bench: Any, dev: list[dspy.Example]) -> dict[str, Any]:
        """Direct answer on the dev questions (kept in dev.json, so a resumed run does not redo it)."""
        path = folder / DEV
        ids = [str(ex.id) for ex in dev]
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("dev_ids") == ids:
                return saved
        scored = score_program(bench.program("direct"), dev, bench.metric, aggregate=bench.accuracy)
        result = {"dev_score": scored.score, "dev_ids": ids, **scored.usage.to_dict(),
                  "seconds": round(scored.seconds, 3), "unparsed": scored.unparsed}
        atomic_write_json(path, result)
        return result

    def _test(self, model: str, folder: Path, program_path: Path) -> dict[str, Any]:
        """The held-out comparison through the evaluation harness (resumed if an earlier session began it)."""
        config = self.config
        strategies = ("direct", config.program_strategy, *(("cot",) if config.with_cot else ()))
        programs = {config.tuned_label: str(program_path.resolve())}
        pairs = [(config.tuned_label, config.program_strategy)]
        control = folder / DIRECT_DEMOS_FILE
        if config.with_direct_demos and control.is_file():
            programs[DIRECT_DEMOS] = str(control.resolve())
            pairs.append((config.tuned_label, DIRECT_DEMOS))
        eval_config = EvalConfig(
            models=(model,), benchmarks=(config.benchmark,), strategies=strategies,
            programs=programs, pairs=tuple(pairs),
            limit=config.limit, split="test", seed=config.seed, max_tokens=config.max_tokens,
            temperature=config.temperature, api_base=config.api_base,
            data={config.benchmark: config.data} if config.data else {},
        )
        if (folder / TEST_RUN / "config.json").is_file():
            store = RunStore.open(folder / TEST_RUN, folder)
            _, summary = resume_run(store, api_base=config.api_base, lm_factory=self.lm_factory, console=self.console)
        else:
            store, summary = start_run(eval_config, folder, run_id=TEST_RUN, lm_factory=self.lm_factory,
                                       console=self.console)
        return summary.to_dict()

    def _model_summary(
        self, model: str, folder: Path, record: dict[str, Any], direct: dict[str, Any],
        dev_scores: dict[str, float | None], test: dict[str, Any], train: list, dev: list,
    ) -> dict[str, Any]:
        config = self.config
        labels = {"direct": "direct", "untuned": config.program_strategy, "tuned": config.tuned_label,
                  DIRECT_DEMOS: DIRECT_DEMOS}
        accuracy = {name: next((s["accuracy"] for s in test["settings"] if s["strategy"] == label), None)
                    for name, label in labels.items()}
        if config.with_cot:
            accuracy["cot"] = next((s["accuracy"] for s in test["settings"] if s["strategy"] == "cot"), None)

        def p(treatment: str, baseline: str) -> float | None:
            row = next((c for c in test["comparisons"] if c["treatment"] == labels[treatment]
                        and c["baseline"] == labels[baseline]), None)
            return row["p_value"] if row else None

        trials, _ = _trial_lines(folder)
        seconds = sum(line.get("seconds") or 0 for line in trials) + direct.get("seconds", 0)
        seconds += (record.get("bootstrap") or {}).get("seconds", 0)
        p_values = {"tuned_vs_untuned": p("tuned", "untuned"), "tuned_vs_direct": p("tuned", "direct"),
                    "untuned_vs_direct": p("untuned", "direct"),
                    f"tuned_vs_{DIRECT_DEMOS}": p("tuned", DIRECT_DEMOS),
                    f"{DIRECT_DEMOS}_vs_direct": p(DIRECT_DEMOS, "direct")}
        tuned_format = record["best"].get("format", "post")
        choice = recommend(dev_scores, accuracy, p_values, tuned_format=tuned_format)
        return {
            "model": model,
            "folder": folder.name,
            "study": record["study_name"],
            "train_size": len(train),
            "dev_size": len(dev),
            "test_size": test["settings"][0]["scored"] if test["settings"] else 0,
            "trials": record["counted"],
            "stopped": record["stopped"],
            "duplicates": record["duplicates"],
            "dev": dev_scores,
            "test": accuracy,
            "p_values": p_values,
            "tuning_lm_calls": record["lm_calls"] + direct.get("lm_calls", 0),
            "tuning_tokens": {"input": record["input_tokens"] + direct.get("input_tokens", 0),
                              "output": record["output_tokens"] + direct.get("output_tokens", 0)},
            "tuning_minutes": round(seconds / 60, 2),
            "best_trial": record["best"],
            "tuned_format": tuned_format,
            **choice,
        }


def _trial_lines(folder: Path) -> tuple[list[dict[str, Any]], int]:
    return JsonlLog(folder / TRIALS).read()
