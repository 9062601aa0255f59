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
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy import flags
from postreason_dspy.benchmarks import get_benchmark
from postreason_dspy.benchmarks.program_file import save_program
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import EvalConfig, RunStore, Summary, resume_run, start_run
from postreason_dspy.flags import setting
from postreason_dspy.io import JsonlLog, atomic_write_json, json_id
from postreason_dspy.models import resolve_lm
from postreason_dspy.optimizers import PostReasonSearch
from postreason_dspy.optimizers.post_reason_search import TRIALS
from postreason_dspy.optimizers.scoring import score_program
from postreason_dspy.optimizers.settings import SearchSettings
from postreason_dspy.optimizers.study import check_storage, default_study_name
from postreason_dspy.run_folder import EVAL, TUNE, RunFolder, created, folder_kind, new_run_id
from postreason_dspy.secrets import redact
from postreason_dspy.tuning.controls import DIRECT_DEMOS, DIRECT_DEMOS_FILE, direct_with_demos
from postreason_dspy.tuning.recommend import recommend

SUMMARY = "summary.json"
PROGRAM = "program.json"
DEV = "dev.json"
TEST_RUN = "test"
TUNABLE = ("post", "post_full")
# The option pairs whose McNemar p on test summary.json records per model, under `p_key` (reports read them).
P_PAIRS = (("tuned", "untuned"), ("tuned", "direct"), ("untuned", "direct"), ("tuned", DIRECT_DEMOS),
           (DIRECT_DEMOS, "direct"))

LMFactory = Callable[..., dspy.LM]
TrialCallback = Callable[[Any, dict[str, Any]], None]
# Around each model's search: yields the callback that sees each trial (e.g. a live progress bar).
SearchProgress = Callable[[str], AbstractContextManager[TrialCallback | None]]


# A tune's search, unless its flags change it: more demo styles and an automatic number of demo sets than
# the library's default (`SearchSettings()`), and 16 trials.
TUNE_SEARCH = SearchSettings(num_trials=16, num_demo_sets=None, demo_styles=("justified", "bare"))
# tune.json before the search's settings were a field of their own held them flat, some under these names.
_FLAT_NAMES = {"trials": "num_trials", "max_demos": "max_bootstrapped_demos", "proposals": "num_proposals"}


@dataclass(frozen=True)
class TuneConfig:
    """What a tune run does; stored in tune.json so `--resume` continues with the same settings.

    Each flagged field is an option of `postreason tune` (`postreason_dspy.flags`), and so are the fields of
    `search`, what `PostReasonSearch` is given; `seed` is the search's and orders the splits too."""

    models: tuple[str, ...]
    benchmark: str
    program_strategy: str = setting("post", flag="--program-strategy", choices=TUNABLE, help="the program tuned")
    train_size: int | None = setting(40, flag="--train-size", none="all",
                                     help="training questions demos are drawn from")
    dev_size: int | None = setting(50, flag="--dev-size", none="all", help="dev questions candidates are scored on")
    limit: int | None = setting(200, flag="--limit", none="all",
                                help="held-out test questions of the final comparison")
    search: SearchSettings = TUNE_SEARCH
    direct_candidate: bool = setting(
        True, flag="--no-direct-candidate", help="race post-reasoning candidates only (default: a direct answer "
        "with each demo set races too, so the recommendation may be a direct program)")
    storage: str | None = setting(
        None, flag="--storage", metavar="URL", resumable=True, help="an Optuna storage shared by several "
        "machines, e.g. postgresql://user@host/db (default: an SQLite file in the run folder); with --resume, "
        "the URL again when it holds a password (tune.json does not keep it)")
    study: str | None = setting(
        None, flag="--study", metavar="NAME", help="the study's name in --storage (default: derived from "
        "benchmark, model, program, splits and seed, so every worker finds the same study)")
    with_cot: bool = setting(False, flag="--with-cot", help="also evaluate chain-of-thought on test")
    with_direct_demos: bool = setting(
        False, flag="--with-direct-demos", help="also evaluate on test a direct answer given the tuned program's "
        "demos (without their justifications): separates the demos' share of the gain from post-reasoning's")
    prompt_model: str | None = setting(
        None, flag="--prompt-model", metavar="M", help="the model that proposes wordings for --propose "
        "(default: the model being tuned)")
    api_base: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    data: str | None = None

    def __post_init__(self) -> None:
        if not self.models or len(set(self.models)) != len(self.models):
            raise ConfigurationError("give each --model once (at least one)")
        if self.program_strategy not in TUNABLE:
            raise ConfigurationError(f"--program-strategy must be one of {', '.join(TUNABLE)}, "
                                     f"not {self.program_strategy!r}")
        for name in ("train_size", "dev_size", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be 1 or more, not {value}")
        if self.study and len(self.models) > 1:
            raise ConfigurationError("--study names one study: tune one --model per run with it")
        if self.study and not self.storage:
            raise ConfigurationError("--study needs --storage (the run folder's own study is named for you)")
        if self.prompt_model and not self.search.num_proposals:
            raise ConfigurationError("--prompt-model proposes wordings: give --propose N as well")

    @property
    def seed(self) -> int:
        return self.search.seed

    @property
    def tuned_label(self) -> str:
        return f"{self.program_strategy}_tuned"

    def command(self) -> str:
        """The `postreason tune` command line that starts this run (a storage's password redacted)."""
        words = ["postreason", "tune", *(word for model in self.models for word in ("--model", model)),
                 "--benchmark", self.benchmark, *flags.command_words(self)]
        words += ["--data", self.data] if self.data else []
        words += ["--api-base", self.api_base] if self.api_base else []
        return flags.command_line(*words)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneConfig:
        """The config tune.json holds, also as written before `search` was a field of its own (flat)."""
        if "search" not in data:
            names = {field.name for field in dataclasses.fields(SearchSettings)}
            flat = {_FLAT_NAMES.get(key, key): value for key, value in data.items()}
            data = {key: value for key, value in flat.items() if key not in names}
            data["search"] = {key: value for key, value in flat.items() if key in names}
        return flags.from_dict(cls, data)


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
    return folder_kind(path) == TUNE


def p_key(a: str, b: str) -> str:
    """The key of option a against option b in summary.json's `p_values`."""
    return f"{a}_vs_{b}"


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
        """A new tune run folder holding tune.json; a bad storage, benchmark or data file fails before it is made."""
        run_id = run_id or new_run_id()
        if config.storage:
            check_storage(config.storage)
        cls(runs_dir / run_id, config, **kwargs)._splits()
        settings = asdict(config)
        if settings["storage"]:
            settings["storage"] = redact(settings["storage"])
        folder = RunFolder.create(runs_dir, TUNE, {
            "created": created(), "command": config.command(), "config": settings,
            "storage_password_withheld": settings["storage"] != config.storage,
        }, run_id, resume_hint=f"continue it with `postreason tune --resume {run_id}`")
        return cls(folder.path, config, **kwargs)

    @classmethod
    def open(cls, run: str | Path, runs_dir: Path, storage: str | None = None, **kwargs: Any) -> TuneRun:
        """An existing tune run; `storage` gives back a storage URL whose password tune.json does not keep."""
        folder = RunFolder.open(run, runs_dir, TUNE)
        document = json.loads(folder.config_path.read_text(encoding="utf-8"))
        config = TuneConfig.from_dict(document["config"])
        if storage:
            config = dataclasses.replace(config, storage=storage)
        elif document.get("storage_password_withheld"):
            raise ConfigurationError("this run's storage URL had a password, which is not stored: "
                                     "give the URL again with --storage")
        return cls(folder.path, config, **kwargs)

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
        settings = config.search.withholding_text() if bench.withhold_text else config.search
        prompt_lm = self.lm_factory(config.prompt_model, api_base=config.api_base, max_tokens=config.max_tokens,
                                    temperature=config.temperature, cache=False) if config.prompt_model else None
        with self.progress(model) as on_trial, dspy.context(lm=lm):
            search = PostReasonSearch(bench.metric, settings, storage=config.storage, study_name=study, run_dir=folder,
                                      aggregate=bench.accuracy, on_trial=on_trial, prompt_model=prompt_lm)
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

    def _test(self, model: str, folder: Path, program_path: Path) -> Summary:
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
        if folder_kind(folder / TEST_RUN) == EVAL:
            store = RunStore.open(folder / TEST_RUN, folder)
            _, summary = resume_run(store, api_base=config.api_base, lm_factory=self.lm_factory, console=self.console)
        else:
            store, summary = start_run(eval_config, folder, run_id=TEST_RUN, lm_factory=self.lm_factory,
                                       console=self.console)
        return summary

    def _model_summary(
        self, model: str, folder: Path, record: dict[str, Any], direct: dict[str, Any],
        dev_scores: dict[str, float | None], test: Summary, train: list, dev: list,
    ) -> dict[str, Any]:
        config = self.config
        labels = {"direct": "direct", "untuned": config.program_strategy, "tuned": config.tuned_label,
                  DIRECT_DEMOS: DIRECT_DEMOS}
        accuracy = {name: test.accuracy(label) for name, label in labels.items()}
        if config.with_cot:
            accuracy["cot"] = test.accuracy("cot")

        def p(a: str, b: str) -> float | None:
            row = test.comparison(labels[a], labels[b])
            return row.p_value if row else None

        trials, _ = _trial_lines(folder)
        seconds = sum(line.get("seconds") or 0 for line in trials) + direct.get("seconds", 0)
        seconds += (record.get("bootstrap") or {}).get("seconds", 0)
        p_values = {p_key(a, b): p(a, b) for a, b in P_PAIRS}
        tuned_format = record["best"].get("format", "post")
        choice = recommend(dev_scores, accuracy, p, tuned_format=tuned_format)
        return {
            "model": model,
            "folder": folder.name,
            "study": record["study_name"],
            "train_size": len(train),
            "dev_size": len(dev),
            "test_size": test.settings[0].scored if test.settings else 0,
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
