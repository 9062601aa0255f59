"""`PostReasonSearch`: an Optuna search over demo sets, post-reasoning instruction wordings and answer formats.

The best demos and wording differ between models, so this tunes them per model. Like MIPROv2 it asks
Optuna's TPE sampler for one categorical per predictor (instruction index, demo-set index); unlike
MIPROv2 the instructions are post-reasoning wordings (`postreason_dspy.optimizers.wordings`). This class
holds the search policy; its settings are `settings.SearchSettings`; what a candidate is and how it is
applied lives in `candidates`; which trials count, which one wins and what is written of them, in `trials`;
the workers sharing a study, in `study`. What makes the result trustworthy:

- candidates are scored on `valset`, which must be given and share no example with `trainset`, the
  pool the demos are bootstrapped from;
- trial 0 (the baseline) is the program exactly as given, its own demos kept, so "tuning did not
  help" is a visible outcome; ties go to the earlier trial, so the baseline wins them;
- demos of post-reasoning predictors carry the model's own justifications (see `demos`);
- a candidate identical to one already scored is not scored again: it is recorded as `duplicate`
  with the earlier score and does not count toward `num_trials`;
- an unparseable completion scores 0 for its example and the search goes on (see `scoring`);
- with a `run_dir`, the demo sets (`demo_sets.json`, checked by hash) and one line per trial
  (`trials.jsonl`) are kept there; an interrupted trial is re-run and not counted; several workers
  may share one study (a shared storage): the budget is the study's count of finished trials.

Optional dimensions (each off by default, so the default search is the one above):

- `adapters`: the output format (ChatAdapter, XMLAdapter, PlainTextAdapter), program-wide; the chosen
  program carries it (`postreason_dspy.bound_adapter`) and its `.adapter` names it;
- `rationale_fields`: the rationale field's name and description per PostReason (`space`); the chosen
  program's `.program_kwargs` holds `rationale_field`/`rationale_desc` to rebuild it;
- `num_proposals`: clause wordings proposed by `prompt_model` (default the task model), shown training
  examples and the signature; valid ones join the catalogue (kept in the study, so a resume reuses them);
- `num_demo_sets=None`: as many demo sets as the budget can try (`racing.demo_sets_for_budget`), of
  sizes k..1, drawn from one bootstrapped pool (see `demos`);
- `demo_styles=("justified", "bare")`: each demo set with and without the model's justifications;
- `compile(..., direct=program)`: the answer format is a candidate too: `direct` (the same task answered
  without post-reasoning, its predictors paired with the student's) carrying a demo set races with the
  post-reasoning candidates; the chosen program's `.format` says which won;
- `minibatch`: candidates are raced on growing minibatches of dev (`racing`): each step's running score
  is reported to Optuna, and a candidate that could not beat the best complete score even with every
  remaining answer right is eliminated; `pruner="halving"` (successive halving) also eliminates one
  outside the top third at a step, `pruner="median"` applies Optuna's MedianPruner. Eliminated trials
  count toward `num_trials`, their LM calls toward the cost, and their line in trials.jsonl holds the
  evidence; survivors are scored on all of dev;
- `select="cheapest-within-ci"`: of the complete candidates whose dev score lies within the 95% Wilson
  interval of the best, the one with the fewest output tokens per answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dspy
import optuna
from dspy.teleprompt import Teleprompter
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from postreason_dspy import PostReason, interrupt
from postreason_dspy.adapters import active_adapter_name
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import atomic_write_json, json_id
from postreason_dspy.locks import exclusive
from postreason_dspy.optimizers import demos as demo_sets
from postreason_dspy.optimizers.candidates import (
    Wording,
    apply_candidate,
    apply_direct,
    instruction_candidates,
    prompt_instructions,
    rebuild_from_study,
    tuned_kwargs,
)
from postreason_dspy.optimizers.racing import bound_cut, demo_sets_for_budget, describe, halving_cut, steps
from postreason_dspy.optimizers.scoring import Aggregate, Metric, Scored, mean_score, score_program
from postreason_dspy.optimizers.settings import SearchSettings
from postreason_dspy.optimizers.space import RationaleVariant, propose_wordings, rationale_variant
from postreason_dspy.optimizers.study import RETRY_OF, Workers, default_study_name, open_study, worker_seed
from postreason_dspy.optimizers.trials import (
    DUPLICATE_OF,
    MINIBATCH_PRUNED,
    TrialLog,
    TrialRecord,
    best_trial,
    cheapest_within_ci,
    search_record,
    spent_calls,
    tried_trials,
)
from postreason_dspy.usage import Usage

TRIALS = "trials.jsonl"
DEMO_SETS = "demo_sets.json"
SEARCH = "search.json"
STUDY_DB = "study.db"
MAX_REPEATS = 100  # duplicates in a row before the sampler is taken to have nothing new to offer
DemoOption = tuple[str, list[dict], list[str]]  # (demo set id, its demos for one predictor, their example ids)


@contextmanager
def _exclusive(run_dir: Path | None) -> Iterator[None]:
    """One process at a time works in a run folder."""
    if run_dir is None:
        yield
        return
    with exclusive(run_dir / ".search.lock", busy=f"another process is searching in {run_dir}"):
        yield


@dataclass
class _Space:
    """What one compile searches: per predictor the instruction wordings and the demo options, and the optional
    dimensions (parameter name -> choices; index 0 is the program as given). Optuna sees indices."""

    instructions: list[list[Wording]]
    demos: list[list[DemoOption]]
    dimensions: dict[str, list[Any]]
    rationale_fields: list[str | None]  # the student's, per predictor: where a demo keeps its justification
    direct: dspy.Module | None

    def distributions(self) -> dict[str, CategoricalDistribution]:
        sizes = {f"instruction_{i}": len(choices) for i, choices in enumerate(self.instructions)}
        sizes.update({f"demos_{i}": len(choices) for i, choices in enumerate(self.demos)})
        sizes.update({name: len(choices) for name, choices in self.dimensions.items()})
        return {name: CategoricalDistribution(list(range(size))) for name, size in sizes.items()}

    def size(self) -> int:
        """How many distinct parameter settings there are."""
        return math.prod(len(distribution.choices) for distribution in self.distributions().values())


@dataclass
class _Candidate:
    """The program a trial's parameters stand for, and what identifies it (equal keys: the same candidate)."""

    program: dspy.Module
    key: str
    instructions: list[str]  # the prompts' instruction texts, per predictor
    wordings: list[Wording]
    demo_set_ids: list[str]
    demo_ids: list[list[str]]
    adapter: str | None
    rationales: list[RationaleVariant | None] | None
    format: str | None
    demo_style: str | None

    def attrs(self) -> dict[str, Any]:
        """What the study keeps of it (`candidates.rebuild_from_study` rebuilds the program from these)."""
        attrs = {"candidate": self.key, "instructions": self.instructions, "wordings": self.wordings,
                 "demo_set_ids": self.demo_set_ids}
        optional = {"adapter": self.adapter, "rationales": self.rationales, "format": self.format,
                    "demo_style": self.demo_style}
        return {**attrs, **{key: value for key, value in optional.items() if value is not None}}

    def record(self, trial: optuna.Trial) -> TrialRecord:
        """The trial's line in trials.jsonl before it is scored."""
        fields = [variant[0] if variant else None for variant in self.rationales] if self.rationales else None
        return TrialRecord(
            number=trial.number, state="complete", params=dict(trial.params), instructions=self.instructions,
            demo_set_ids=self.demo_set_ids, demo_ids=self.demo_ids, dev_score=None, lm_calls=0, input_tokens=0,
            output_tokens=0, seconds=0.0, baseline=bool(trial.user_attrs.get("baseline")),
            retry_of=trial.user_attrs.get(RETRY_OF), adapter=self.adapter, rationale_fields=fields,
            format=self.format, demo_style=self.demo_style,
        )


class PostReasonSearch(Teleprompter):
    """Tune instructions and few-shot demos of a (post-reasoning) DSPy program with Optuna.

    Args:
        metric: `metric(example, prediction, trace=None)`, truthy when right.
        settings: what to search and how far (`SearchSettings`: trials, demo sets, optional dimensions,
            racing, selection, seed, budget). Keyword arguments named as its fields change it:
            `PostReasonSearch(metric, num_trials=20)` is `PostReasonSearch(metric, SearchSettings(num_trials=20))`.
        storage: an Optuna storage URL or object; default: `run_dir/study.db`, or memory without a run_dir.
        study_name: default `default_study_name(...)` of the program, the splits, the model and the seed.
        run_dir: where demo_sets.json, trials.jsonl and search.json go (and the default study.db).
        aggregate: `aggregate(examples, correct_flags) -> score` (default: the share correct).
        on_trial: called with each TrialRecord and the search's progress (for a progress display).
        prompt_model: the model asked for `num_proposals` clause wordings (default: the task model).
        heartbeat_interval / grace_period: a RUNNING trial silent for `grace_period` seconds belongs to
            a dead worker (shared storages only: in a private storage every RUNNING trial at start is one).
    """

    def __init__(
        self,
        metric: Metric,
        settings: SearchSettings | None = None,
        *,
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        run_dir: str | Path | None = None,
        aggregate: Aggregate = mean_score,
        on_trial: Callable[[TrialRecord, dict[str, Any]], None] | None = None,
        prompt_model: dspy.LM | None = None,
        heartbeat_interval: float = 30.0,
        grace_period: float = 120.0,
        **changes: Any,
    ):
        super().__init__()
        self.settings = replace(settings or SearchSettings(), **changes)
        self.metric = metric
        self.rationale_variants = [rationale_variant(name) for name in self.settings.rationale_fields]
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.private = storage is None
        if storage is None and self.run_dir is not None:
            storage = f"sqlite:///{self.run_dir.resolve() / STUDY_DB}"
        self.storage = storage
        self.study_name = study_name
        self.aggregate = aggregate
        self.prompt_model = prompt_model
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.trial_log = TrialLog(self.run_dir / TRIALS if self.run_dir is not None else None,
                                  self.settings.num_trials, on_trial)

    # ----- entry point -----

    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: list[dspy.Example],
        teacher: dspy.Module | None = None,
        valset: list[dspy.Example] | None = None,
        direct: dspy.Module | None = None,
        **kwargs: Any,
    ) -> dspy.Module:
        """The best candidate found; it carries `.study`, `.score` (dev), `.format` ("post", or "direct" when
        `direct`, a program answering the same task without post-reasoning, won the race with its demos) and
        `.record` (what the search did)."""
        if direct is not None and len(direct.predictors()) != len(student.predictors()):
            raise ConfigurationError("the direct program's predictors must pair up with the student's (same number)")
        if not valset:
            raise ConfigurationError("PostReasonSearch needs a non-empty valset (a dev split disjoint from trainset)")
        shared = {demo_sets.example_id(ex) for ex in trainset} & {demo_sets.example_id(ex) for ex in valset}
        if shared:
            raise ConfigurationError(
                f"valset shares {len(shared)} examples with trainset (e.g. {sorted(shared)[0]!r}): "
                "demos would be scored on themselves"
            )
        with _exclusive(self.run_dir):
            return self._compile(student, list(trainset), list(valset), teacher, direct)

    def _compile(
        self, student: dspy.Module, trainset: list[dspy.Example], valset: list[dspy.Example], teacher: Any,
        direct: dspy.Module | None,
    ) -> dspy.Module:
        started = time.perf_counter()
        settings = self.settings
        name = self.study_name or default_study_name(
            program=json_id(student.dump_state()),
            train=[demo_sets.example_id(ex) for ex in trainset],
            dev=[demo_sets.example_id(ex) for ex in valset],
            model=getattr(dspy.settings.lm, "model", None),
            seed=settings.seed,
        )
        study = open_study(self.storage, name, worker_seed(settings.seed, self.private))
        self.trial_log.repair()
        workers = Workers(study, private=self.private, heartbeat_interval=self.heartbeat_interval,
                          grace_period=self.grace_period,
                          on_retired=lambda trial: self.trial_log.emit(TrialRecord.retired(trial), study))
        workers.retire_stale(at_start=True)
        space = self._space(study, student, trainset, valset, teacher, direct)
        self._ensure_baseline(study, space)
        stopped = self._loop(study, workers, student, valset, space)
        best = best_trial(study)
        if best is None:
            raise ConfigurationError(f"the search stopped ({stopped}) before any trial finished")
        if settings.select == "cheapest-within-ci":
            best = cheapest_within_ci(study, len(valset))
        program = rebuild_from_study(student, study, best, direct=direct)
        program.study = study
        program.score = best.value
        program.adapter = best.user_attrs.get("adapter")
        program.format = best.user_attrs.get("format", "post")
        program.program_kwargs = tuned_kwargs(best.user_attrs.get("rationales"))
        program.record = search_record(study, settings, storage=self.storage, stopped=stopped,
                                       seconds=time.perf_counter() - started, chosen=best, n_dev=len(valset),
                                       dimensions=space.dimensions)
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / SEARCH, program.record)
        return program

    def _space(
        self, study: optuna.Study, student: dspy.Module, trainset: list[dspy.Example], valset: list[dspy.Example],
        teacher: Any, direct: dspy.Module | None,
    ) -> _Space:
        """The demo sets (bootstrapped, or the study's), the wordings (shipped and proposed) and the dimensions."""
        settings = self.settings
        num_sets = settings.num_demo_sets if settings.num_demo_sets is not None else demo_sets_for_budget(
            settings.max_lm_calls, settings.num_trials, len(valset), len(trainset), settings.minibatch,
            settings.pruner)
        document = self._demo_sets(study, student, trainset, teacher, num_sets)
        instructions = instruction_candidates(student, [*settings.wordings,
                                                        *self._proposals(study, student, trainset)])
        return _Space(instructions=instructions,
                      demos=[demo_sets.demo_options(document, i) for i in range(len(instructions))],
                      dimensions=self._extra_dimensions(student, direct),
                      rationale_fields=demo_sets.rationale_fields(student), direct=direct)

    # ----- optional dimensions -----

    def _proposals(self, study: optuna.Study, student: dspy.Module, trainset: list[dspy.Example]) -> list[str]:
        """The prompt model's valid clause proposals: the study's (a resume reuses them), else asked now."""
        settings = self.settings
        if settings.num_proposals == 0:
            return []
        stored = study.user_attrs.get("proposed_wordings")
        if stored is None:
            began = time.perf_counter()
            valid, dropped, usage = propose_wordings(student, trainset, settings.num_proposals, self.prompt_model,
                                                     seed=settings.seed)
            stored = {"valid": valid, "dropped": dropped,
                      "usage": {**usage.to_dict(), "seconds": round(time.perf_counter() - began, 3)}}
            study.set_user_attr("proposed_wordings", stored)
        return [w for w in stored["valid"] if w not in settings.wordings]

    def _extra_dimensions(self, student: dspy.Module, direct: dspy.Module | None) -> dict[str, list[Any]]:
        """Parameter name -> choices (index 0: the program as given) of the enabled optional dimensions."""
        extra: dict[str, list[Any]] = {}
        if direct is not None:
            extra["format"] = ["post", "direct"]
        if len(self.settings.demo_styles) > 1:
            extra["demo_style"] = list(self.settings.demo_styles)
        if self.settings.adapters:
            active = active_adapter_name()
            extra["adapter"] = [active, *(a for a in self.settings.adapters if a != active)]
        if self.rationale_variants:
            owners = {id(m.predict): m for _, m in student.named_sub_modules() if isinstance(m, PostReason)}
            for i, predictor in enumerate(student.predictors()):
                owner = owners.get(id(predictor))
                current = owner.rationale_field if owner is not None else None
                extra[f"rationale_{i}"] = [None, *(list(v) for v in self.rationale_variants if v[0] != current)] \
                    if owner is not None else [None]
        return extra

    # ----- demo sets -----

    def _demo_sets(
        self, study: optuna.Study, student: dspy.Module, trainset: list[dspy.Example], teacher: Any, num_sets: int
    ) -> demo_sets.DemoSets:
        """The study's demo sets; else the run folder's; else bootstrapped now. Stored in both, checked by hash."""
        path = self.run_dir / DEMO_SETS if self.run_dir is not None else None
        local = demo_sets.read_demo_sets(path) if path is not None else None
        stored = study.user_attrs.get("demo_sets")
        if stored is not None:
            document = demo_sets.check_hash(stored, f"study {study.study_name!r}")
            if local is not None and local["hash"] != document["hash"]:
                raise ConfigurationError(
                    f"{path} holds other demo sets than study {study.study_name!r}; "
                    "resume with the run folder that started this study, or name another study"
                )
        elif local is not None:
            document = local
        else:
            document = self._bootstrap(study, student, trainset, teacher, num_sets)
        if study.user_attrs.get("demo_sets") is None:
            study.set_user_attr("demo_sets", document)
        if path is not None and local is None:
            demo_sets.write_demo_sets(path, document)
        return document

    def _bootstrap(
        self, study: optuna.Study, student: dspy.Module, trainset: list[dspy.Example], teacher: Any, num_sets: int
    ) -> demo_sets.DemoSets:
        """Demo sets bootstrapped now (their cost kept in the study), unless another worker stored its own meanwhile."""
        settings = self.settings
        began = time.perf_counter()
        document, usage = demo_sets.bootstrap_demo_sets(
            student, trainset, self.metric, num_sets=num_sets,
            max_bootstrapped_demos=settings.max_bootstrapped_demos, max_labeled_demos=settings.max_labeled_demos,
            seed=settings.seed, teacher=teacher,
        )
        seconds = round(time.perf_counter() - began, 3)
        study.set_user_attr("bootstrap_usage", {**usage.to_dict(), "seconds": seconds})
        if settings.max_labeled_demos == 0:
            for i, rationale in enumerate(demo_sets.rationale_fields(student)):
                for entry in document["sets"]:
                    if rationale and any(not str(d.get(rationale) or "").strip() for d in entry["demos"][i]):
                        raise AssertionError("a bootstrapped post-reasoning demo lacks its justification")
        again = study.user_attrs.get("demo_sets")  # another worker may have stored its sets meanwhile
        return demo_sets.check_hash(again, study.study_name) if again is not None else document

    # ----- trials -----

    def _ensure_baseline(self, study: optuna.Study, space: _Space) -> None:
        """Queue the unmodified program unless it is scored, queued or running."""
        for trial in study.get_trials(deepcopy=False):
            if trial.user_attrs.get("baseline") and trial.state in (
                TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING
            ):
                return
        study.enqueue_trial({name: 0 for name in space.distributions()}, user_attrs={"baseline": True})

    def _loop(
        self, study: optuna.Study, workers: Workers, student: dspy.Module, valset: list[dspy.Example], space: _Space
    ) -> str:
        """Run trials until the study has `num_trials` counted ones; returns why it stopped."""
        budget, cap = self.settings.num_trials, self.settings.max_lm_calls
        size, distributions = space.size(), space.distributions()
        repeats = 0
        while True:
            interrupt.check()  # between trials (inside one, every LM call checks)
            taken = tried_trials(study)
            if len(taken) >= budget:
                return "budget"
            if len({t.user_attrs.get("candidate") for t in taken}) >= size:
                return "exhausted"
            if cap is not None and spent_calls(study) >= cap:
                return "max_lm_calls"
            if workers.rest_is_running(len(taken), budget):  # other workers hold the rest: wait for them
                workers.wait()
                continue
            if repeats >= MAX_REPEATS:
                return "exhausted"
            trial = study.ask(distributions)
            if workers.hand_back_surplus(trial, len(tried_trials(study)), budget):
                continue
            outcome = self._run_trial(study, workers, trial, student, valset, space)
            if outcome == "capped":
                return "max_lm_calls"
            repeats = repeats + 1 if outcome == "duplicate" else 0

    def _run_trial(
        self, study: optuna.Study, workers: Workers, trial: optuna.Trial, student: dspy.Module,
        valset: list[dspy.Example], space: _Space,
    ) -> str:
        """Score one trial, or record it as a duplicate; returns its state ("capped": stopped by max_lm_calls)."""
        candidate = self._candidate(dict(trial.params), student, space)
        for key, value in candidate.attrs().items():
            trial.set_user_attr(key, value)
        record = candidate.record(trial)
        earlier = next((t for t in tried_trials(study) if t.user_attrs.get("candidate") == candidate.key), None)
        if earlier is not None:
            return self._repeat(study, trial, record, earlier)
        scored, cut = self._score_watched(study, workers, trial, record, candidate.program, valset)
        return self._conclude(study, trial, record, scored, cut, len(valset))

    def _candidate(self, params: dict[str, int], student: dspy.Module, space: _Space) -> _Candidate:
        """The program a trial's parameters choose: per predictor a wording, a demo set (in a style) and maybe a
        rationale variant, with an adapter; or, in the direct format, the direct program with the demo sets."""
        n = len(space.instructions)
        dimensions = space.dimensions
        adapter = dimensions["adapter"][params["adapter"]] if "adapter" in dimensions else None
        rationales = [dimensions[f"rationale_{i}"][params[f"rationale_{i}"]] for i in range(n)] \
            if self.rationale_variants else None
        answer_format = dimensions["format"][params["format"]] if "format" in dimensions else None
        chosen = [space.demos[i][params[f"demos_{i}"]] for i in range(n)]
        set_ids = [set_id for set_id, _, _ in chosen]
        bootstrapped = any(set_id != "none" and not set_id.startswith("given:") for set_id in set_ids)
        style = self.settings.demo_styles[params.get("demo_style", 0)] if bootstrapped else None  # given demos stay
        demos = [demo_sets.styled(d, rationale, style or "justified")
                 for (_, d, _), rationale in zip(chosen, space.rationale_fields, strict=True)]
        if answer_format == "direct":  # no wording, rationale or justification: what a direct answer lacks
            wordings, rationales = [], None
            program = apply_direct(space.direct, demos, adapter=adapter)
            key = json_id(["direct", set_ids, adapter])
        else:
            wordings = [space.instructions[i][params[f"instruction_{i}"]] for i in range(n)]
            program = apply_candidate(student, wordings, demos, adapter=adapter, rationales=rationales)
            searched = [choice for choice in (adapter, rationales) if choice is not None]
            key = json_id([wordings, set_ids, *searched, *(["bare"] if style == "bare" else [])])
        texts = [prompt_instructions(predictor) for predictor in program.predictors()]
        return _Candidate(program=program, key=key, instructions=texts, wordings=wordings, demo_set_ids=set_ids,
                          demo_ids=[ids for _, _, ids in chosen], adapter=adapter, rationales=rationales,
                          format=answer_format, demo_style=style)

    def _repeat(self, study: optuna.Study, trial: optuna.Trial, record: TrialRecord, earlier: FrozenTrial) -> str:
        """A candidate already tried: the trial takes the earlier one's score (or elimination) unscored."""
        trial.set_user_attr(DUPLICATE_OF, earlier.number)
        if earlier.state == TrialState.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, earlier.value)
        record.state, record.dev_score, record.duplicate_of = "duplicate", earlier.value, earlier.number
        self.trial_log.emit(record, study)
        return record.state

    def _score_watched(
        self, study: optuna.Study, workers: Workers, trial: optuna.Trial, record: TrialRecord,
        program: dspy.Module, valset: list[dspy.Example],
    ) -> tuple[Scored, dict[str, Any] | None]:
        """`_score` under a heartbeat, within what is left of max_lm_calls. A trial that raises is failed and
        recorded; an interrupted one is queued to be re-run next time (and not counted)."""
        spent, cap = spent_calls(study), self.settings.max_lm_calls
        try:
            with workers.beating(trial):
                return self._score(study, trial, program, valset,
                                   may_call=lambda usage: cap is None or spent + usage.calls < cap)
        except BaseException as exc:
            study.tell(trial, state=TrialState.FAIL)
            interrupted = isinstance(exc, KeyboardInterrupt)
            record.state = "interrupted" if interrupted else "failed"
            withheld = self.settings.withhold_text  # the message may quote a prompt
            record.note = type(exc).__name__ if withheld else f"{type(exc).__name__}: {exc}"
            if interrupted:
                study.enqueue_trial(record.params, user_attrs={"baseline": record.baseline, RETRY_OF: trial.number})
            self.trial_log.emit(record, study)
            raise

    def _conclude(
        self, study: optuna.Study, trial: optuna.Trial, record: TrialRecord, scored: Scored,
        cut: dict[str, Any] | None, n_dev: int,
    ) -> str:
        """Tell the study how a scored trial ended (eliminated in the race, stopped by max_lm_calls, complete),
        keep its cost in the study and write its line; returns its state ("capped" when stopped)."""
        record.add_cost(scored.usage, scored.seconds, scored.unparsed, len(scored.correct))
        for key, value in {**scored.usage.to_dict(), "answer_tokens": record.answer_tokens,
                           "seconds": record.seconds}.items():
            trial.set_user_attr(key, value)
        state = "complete"
        if cut is not None:
            trial.set_user_attr(MINIBATCH_PRUNED, True)
            trial.set_user_attr("eliminated", cut)
            study.tell(trial, state=TrialState.PRUNED)
            state = record.state = "pruned"
            record.note, record.eliminated = describe(cut, n_dev), cut
        elif scored.stopped:
            study.tell(trial, state=TrialState.PRUNED)
            record.state, state = "pruned", "capped"
            record.note = f"max_lm_calls={self.settings.max_lm_calls} reached after {len(scored.correct)} of {n_dev}"
            if record.baseline:
                study.enqueue_trial(record.params, user_attrs={"baseline": True, RETRY_OF: trial.number})
        else:
            study.tell(trial, scored.score)
            record.dev_score = scored.score
        self.trial_log.emit(record, study)
        return state

    def _score(
        self, study: optuna.Study, trial: optuna.Trial, program: dspy.Module, valset: list[dspy.Example],
        may_call: Callable[[Usage], bool],
    ) -> tuple[Scored, dict[str, Any] | None]:
        """The candidate's dev result, and the evidence that eliminated it in the race (None if it survived).

        Without `minibatch`, one pass over dev. With it, after each step but the last (`racing.steps`): the
        running score goes to Optuna as an intermediate value, and the rules of `racing` may end it."""
        usage, correct, unparsed, seconds = Usage(), [], 0, 0.0
        best = best_trial(study)
        pruner = self.settings.pruner
        n, start = len(valset), 0
        for step in steps(n, self.settings.minibatch, pruner):
            part = score_program(program, valset[start:step], self.metric, aggregate=self.aggregate,
                                 may_call=lambda u: may_call(Usage(usage.calls + u.calls)))
            start = step
            usage.add(part.usage.calls, part.usage.input_tokens, part.usage.output_tokens)
            correct += part.correct
            unparsed += part.unparsed
            seconds += part.seconds
            done = len(correct)
            if part.stopped:
                return Scored(self.aggregate(valset[:done], correct) if correct else 0.0, correct, unparsed, usage,
                              seconds, stopped=True), None
            if done == n:
                break
            running = self.aggregate(valset[:done], correct)
            trial.report(running, step=done)
            cut = bound_cut(self.aggregate(valset, correct + [True] * (n - done)), best, done, running)
            if cut is None and pruner == "halving":
                cut = halving_cut(study, trial.number, done, running)
            if cut is None and pruner == "median" and trial.should_prune():
                cut = {"rule": "median", "n": done, "score": running}
            if cut is not None:
                return Scored(running, correct, unparsed, usage, seconds), cut
        return Scored(self.aggregate(valset, correct), correct, unparsed, usage, seconds), None
