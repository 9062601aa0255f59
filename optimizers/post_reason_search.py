"""`PostReasonSearch`: an Optuna search over demo sets, post-reasoning instruction wordings and answer formats.

The best demos and wording differ between models, so this tunes them per model. Like MIPROv2 it asks
Optuna's TPE sampler for one categorical per predictor (instruction index, demo-set index); unlike
MIPROv2 the instructions are post-reasoning wordings (`postreason_dspy.optimizers.wordings`). What a
candidate is and how it is applied lives in `candidates`; which trials count and which one wins, in `trials`.
What makes the result trustworthy:

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

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dspy
import optuna
from dspy.teleprompt import Teleprompter
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from postreason_dspy import PostReason, interrupt
from postreason_dspy.adapters import active_adapter_name, adapter_name
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.io import JsonlLog, atomic_write_json, json_id
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
from postreason_dspy.optimizers.scoring import Aggregate, Metric, Scored, Usage, mean_score, score_program
from postreason_dspy.optimizers.space import RationaleVariant, propose_wordings, rationale_variant
from postreason_dspy.optimizers.study import (
    RETRY_OF,
    Heartbeat,
    default_study_name,
    open_study,
    retire_stale_trials,
)
from postreason_dspy.optimizers.trials import (
    DUPLICATE_OF,
    MINIBATCH_PRUNED,
    TrialRecord,
    best_trial,
    cheapest_within_ci,
    counted_trials,
    tried_trials,
)
from postreason_dspy.optimizers.wordings import POST_REASONING_WORDINGS
from postreason_dspy.secrets import redact

TRIALS = "trials.jsonl"
DEMO_SETS = "demo_sets.json"
SEARCH = "search.json"
STUDY_DB = "study.db"
MAX_REPEATS = 100  # duplicates in a row before the sampler is taken to have nothing new to offer
SELECTIONS = ("best", "cheapest-within-ci")
PRUNERS = ("bound", "median", "halving")


@contextmanager
def _exclusive(run_dir: Path | None) -> Iterator[None]:
    """One process at a time works in a run folder."""
    if run_dir is None:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / ".search.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(f"another process is searching in {run_dir}") from None
        yield


class PostReasonSearch(Teleprompter):
    """Tune instructions and few-shot demos of a (post-reasoning) DSPy program with Optuna.

    Args:
        metric: `metric(example, prediction, trace=None)`, truthy when right.
        num_trials: counted trials (finished, not duplicates), the baseline included; with a shared
            storage, the study's total over all workers.
        num_demo_sets: bootstrapped demo sets offered per predictor (besides the program's own demos);
            0 searches instructions only; None: as many as the budget can try (see `racing`).
        max_bootstrapped_demos: demos in the largest set (sets hold k, k-1, ..., 1 in turn), each from a
            training example the model got right (full mode).
        demo_styles: "justified" (the model's justification kept) and/or "bare" (left empty) demos.
        max_labeled_demos: labeled examples (no justification) added to each set: 0 unless asked for.
        wordings: the post-reasoning instruction templates to choose among.
        seed: the sampler's and the demo sets' seed.
        storage: an Optuna storage URL or object; default: `run_dir/study.db`, or memory without a run_dir.
        study_name: default `default_study_name(...)` of the program, the splits, the model and the seed.
        run_dir: where demo_sets.json, trials.jsonl and search.json go (and the default study.db).
        max_lm_calls: stop cleanly once the study has spent this many LM calls (bootstrap and trials).
        aggregate: `aggregate(examples, correct_flags) -> score` (default: the share correct).
        heartbeat_interval / grace_period: a RUNNING trial silent for `grace_period` seconds belongs to
            a dead worker (shared storages only: in a private storage every RUNNING trial at start is one).
        on_trial: called with each TrialRecord and the search's progress (for a progress display).
        adapters: output formats to choose among (names of `postreason_dspy.bound_adapter.ADAPTERS`, or
            chat/xml/plain); empty: the format is not searched.
        rationale_fields: rationale field names to choose among per PostReason (see `space.RATIONALE_VARIANTS`).
        num_proposals / prompt_model: clause wordings to ask of the prompt model (default: the task model).
        withhold_text: the task's text must reach no file (GPQA): no demos and no proposed wordings are
            allowed, and a failed trial's note names the exception's type only (its message may quote a prompt).
        minibatch / pruner: race candidates on growing dev minibatches from this size ("bound"; "halving"
            for successive halving as well; "median" for Optuna's MedianPruner); None scores every
            candidate on all of dev.
        select: "best" dev score, or "cheapest-within-ci" (fewest output tokens per answer within the
            95% Wilson interval of the best).
    """

    def __init__(
        self,
        metric: Metric,
        *,
        num_trials: int = 20,
        num_demo_sets: int | None = 3,
        max_bootstrapped_demos: int = 3,
        demo_styles: Sequence[str] = ("justified",),
        max_labeled_demos: int = 0,
        wordings: Sequence[str] = POST_REASONING_WORDINGS,
        seed: int = 0,
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        run_dir: str | Path | None = None,
        max_lm_calls: int | None = None,
        aggregate: Aggregate = mean_score,
        heartbeat_interval: float = 30.0,
        grace_period: float = 120.0,
        on_trial: Callable[[TrialRecord, dict[str, Any]], None] | None = None,
        adapters: Sequence[str] = (),
        rationale_fields: Sequence[str] = (),
        num_proposals: int = 0,
        prompt_model: dspy.LM | None = None,
        minibatch: int | None = None,
        pruner: str = "bound",
        select: str = "best",
        withhold_text: bool = False,
    ):
        super().__init__()
        if withhold_text and (num_demo_sets != 0 or max_labeled_demos or num_proposals):
            raise ConfigurationError("the task's text must not be stored: demos and proposed wordings would quote its "
                                     "examples (set num_demo_sets, max_labeled_demos and num_proposals to 0)")
        self.withhold_text = withhold_text
        if num_trials < 1 or (num_demo_sets is not None and num_demo_sets < 0):
            raise ConfigurationError("num_trials must be at least 1 and num_demo_sets at least 0")
        if minibatch is not None and minibatch < 1:
            raise ConfigurationError(f"minibatch must be at least 1, not {minibatch}")
        if pruner == "halving" and minibatch is None:
            raise ConfigurationError("pruner 'halving' races candidates on minibatches: give minibatch too")
        if not demo_styles or set(demo_styles) - set(demo_sets.DEMO_STYLES):
            raise ConfigurationError(f"demo_styles must be some of {', '.join(demo_sets.DEMO_STYLES)}, "
                                     f"not {', '.join(demo_styles) or 'none'}")
        self.demo_styles = tuple(dict.fromkeys(demo_styles))
        if num_proposals < 0:
            raise ConfigurationError(f"num_proposals must be 0 or more, not {num_proposals}")
        if select not in SELECTIONS or pruner not in PRUNERS:
            raise ConfigurationError(f"select must be one of {', '.join(SELECTIONS)} and pruner one of "
                                     f"{', '.join(PRUNERS)}, not {select!r} / {pruner!r}")
        try:
            self.adapters = tuple(dict.fromkeys(adapter_name(a) for a in adapters))
            self.rationale_variants = [rationale_variant(name) for name in dict.fromkeys(rationale_fields)]
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.num_proposals = num_proposals
        self.prompt_model = prompt_model
        self.minibatch = minibatch
        self.pruner = pruner
        self.select = select
        if max_lm_calls is not None and max_lm_calls < 1:
            raise ConfigurationError(f"max_lm_calls must be at least 1, not {max_lm_calls}")
        self.metric = metric
        self.num_trials = num_trials
        self.num_demo_sets = num_demo_sets
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.wordings = tuple(wordings)
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.private = storage is None
        if storage is None and self.run_dir is not None:
            storage = f"sqlite:///{self.run_dir.resolve() / STUDY_DB}"
        self.storage = storage
        self.study_name = study_name
        self.max_lm_calls = max_lm_calls
        self.aggregate = aggregate
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.on_trial = on_trial
        self.log = JsonlLog(self.run_dir / TRIALS) if self.run_dir is not None else None

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
        self.direct = direct
        if not valset:
            raise ConfigurationError("PostReasonSearch needs a non-empty valset (a dev split disjoint from trainset)")
        shared = {demo_sets.example_id(ex) for ex in trainset} & {demo_sets.example_id(ex) for ex in valset}
        if shared:
            raise ConfigurationError(
                f"valset shares {len(shared)} examples with trainset (e.g. {sorted(shared)[0]!r}): "
                "demos would be scored on themselves"
            )
        with _exclusive(self.run_dir):
            return self._compile(student, list(trainset), list(valset), teacher)

    def _compile(
        self, student: dspy.Module, trainset: list[dspy.Example], valset: list[dspy.Example], teacher: Any
    ) -> dspy.Module:
        started = time.perf_counter()
        lm = dspy.settings.lm
        name = self.study_name or default_study_name(
            program=json_id(student.dump_state()),
            train=[demo_sets.example_id(ex) for ex in trainset],
            dev=[demo_sets.example_id(ex) for ex in valset],
            model=getattr(lm, "model", None),
            seed=self.seed,
        )
        # Workers sharing a study each sample with their own seed, or they would all propose the same candidates.
        sampler_seed = self.seed if self.private else int(json_id([self.seed, socket.gethostname(), os.getpid()]), 16)
        study = open_study(self.storage, name, sampler_seed % 2**31)
        if self.log is not None:
            self.log.repair()
        self._retire(study, grace=0.0 if self.private else self.grace_period)
        self.rationales = demo_sets.rationale_fields(student)
        num_sets = self.num_demo_sets if self.num_demo_sets is not None else demo_sets_for_budget(
            self.max_lm_calls, self.num_trials, len(valset), len(trainset), self.minibatch, self.pruner)
        document = self._demo_sets(study, student, trainset, teacher, num_sets)
        instructions = instruction_candidates(student, [*self.wordings, *self._proposals(study, student, trainset)])
        options = [demo_sets.demo_options(document, i) for i in range(len(instructions))]
        space = {f"instruction_{i}": CategoricalDistribution(list(range(len(opts)))) for i, opts in
                 enumerate(instructions)}
        space.update({f"demos_{i}": CategoricalDistribution(list(range(len(opts)))) for i, opts in enumerate(options)})
        self.extra = self._extra_dimensions(student)
        space.update({name: CategoricalDistribution(list(range(len(choices)))) for name, choices in self.extra.items()})
        self._ensure_baseline(study, space)
        stopped = self._loop(study, student, valset, instructions, options, space)
        best = best_trial(study)
        if best is None:
            raise ConfigurationError(f"the search stopped ({stopped}) before any trial finished")
        if self.select == "cheapest-within-ci":
            best = cheapest_within_ci(study, len(valset))
        program = rebuild_from_study(student, study, best, direct=self.direct)
        program.study = study
        program.score = best.value
        program.adapter = best.user_attrs.get("adapter")
        program.format = best.user_attrs.get("format", "post")
        program.program_kwargs = tuned_kwargs(best.user_attrs.get("rationales"))
        program.record = self._record(study, stopped, time.perf_counter() - started, best, len(valset))
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / SEARCH, program.record)
        return program

    # ----- optional dimensions -----

    def _proposals(self, study: optuna.Study, student: dspy.Module, trainset: list[dspy.Example]) -> list[str]:
        """The prompt model's valid clause proposals: the study's (a resume reuses them), else asked now."""
        if self.num_proposals == 0:
            return []
        stored = study.user_attrs.get("proposed_wordings")
        if stored is None:
            began = time.perf_counter()
            valid, dropped, usage = propose_wordings(student, trainset, self.num_proposals, self.prompt_model,
                                                     seed=self.seed)
            stored = {"valid": valid, "dropped": dropped,
                      "usage": {**usage.to_dict(), "seconds": round(time.perf_counter() - began, 3)}}
            study.set_user_attr("proposed_wordings", stored)
        return [w for w in stored["valid"] if w not in self.wordings]

    def _extra_dimensions(self, student: dspy.Module) -> dict[str, list[Any]]:
        """Parameter name -> choices (index 0: the program as given) of the enabled optional dimensions."""
        extra: dict[str, list[Any]] = {}
        if self.direct is not None:
            extra["format"] = ["post", "direct"]
        if len(self.demo_styles) > 1:
            extra["demo_style"] = list(self.demo_styles)
        if self.adapters:
            active = active_adapter_name()
            extra["adapter"] = [active, *(a for a in self.adapters if a != active)]
        if self.rationale_variants:
            owners = {id(m.predict): m for _, m in student.named_sub_modules() if isinstance(m, PostReason)}
            for i, predictor in enumerate(student.predictors()):
                owner = owners.get(id(predictor))
                current = owner.rationale_field if owner is not None else None
                extra[f"rationale_{i}"] = [None, *(list(v) for v in self.rationale_variants if v[0] != current)] \
                    if owner is not None else [None]
        return extra

    def _choices(self, params: dict[str, int], n: int) -> tuple[str | None, list[RationaleVariant | None] | None]:
        """(adapter, rationale variants per predictor) of a trial's parameters; None where not searched."""
        adapter = self.extra["adapter"][params["adapter"]] if "adapter" in self.extra else None
        rationales = [self.extra[f"rationale_{i}"][params[f"rationale_{i}"]] for i in range(n)] \
            if self.rationale_variants else None
        return adapter, rationales

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
            began = time.perf_counter()
            document, usage = demo_sets.bootstrap_demo_sets(
                student, trainset, self.metric, num_sets=num_sets,
                max_bootstrapped_demos=self.max_bootstrapped_demos, max_labeled_demos=self.max_labeled_demos,
                seed=self.seed, teacher=teacher,
            )
            seconds = round(time.perf_counter() - began, 3)
            study.set_user_attr("bootstrap_usage", {**usage.to_dict(), "seconds": seconds})
            if self.max_labeled_demos == 0:
                for i, rationale in enumerate(demo_sets.rationale_fields(student)):
                    for entry in document["sets"]:
                        if rationale and any(not str(d.get(rationale) or "").strip() for d in entry["demos"][i]):
                            raise AssertionError("a bootstrapped post-reasoning demo lacks its justification")
            again = study.user_attrs.get("demo_sets")  # another worker may have stored its sets meanwhile
            document = demo_sets.check_hash(again, study.study_name) if again is not None else document
        if study.user_attrs.get("demo_sets") is None:
            study.set_user_attr("demo_sets", document)
        if path is not None and local is None:
            demo_sets.write_demo_sets(path, document)
        return document

    # ----- trials -----

    def _ensure_baseline(self, study: optuna.Study, space: dict[str, CategoricalDistribution]) -> None:
        """Queue the unmodified program unless it is scored, queued or running."""
        for trial in study.get_trials(deepcopy=False):
            if trial.user_attrs.get("baseline") and trial.state in (
                TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING
            ):
                return
        study.enqueue_trial({name: 0 for name in space}, user_attrs={"baseline": True})

    def _retire(self, study: optuna.Study, grace: float) -> None:
        def log(trial: FrozenTrial) -> None:
            self._emit(TrialRecord(
                number=trial.number, state="interrupted", params=dict(trial.params),
                instructions=[], demo_set_ids=[], demo_ids=[], dev_score=None, lm_calls=0, input_tokens=0,
                output_tokens=0, seconds=0.0, baseline=bool(trial.user_attrs.get("baseline")),
                note="its worker stopped mid-trial; queued again",
            ), study)

        retire_stale_trials(study, grace, log)

    def _spent(self, study: optuna.Study) -> int:
        calls = (study.user_attrs.get("bootstrap_usage") or {}).get("lm_calls", 0)
        calls += ((study.user_attrs.get("proposed_wordings") or {}).get("usage") or {}).get("lm_calls", 0)
        return calls + sum(t.user_attrs.get("lm_calls", 0) for t in study.get_trials(deepcopy=False))

    def _loop(
        self,
        study: optuna.Study,
        student: dspy.Module,
        valset: list[dspy.Example],
        instructions: list[list[Wording]],
        options: list[list[tuple[str, list[dict], list[str]]]],
        space: dict[str, CategoricalDistribution],
    ) -> str:
        """Run trials until the study has `num_trials` counted ones; returns why it stopped."""
        size = 1
        for distribution in space.values():
            size *= len(distribution.choices)
        repeats = 0
        while True:
            interrupt.check()  # between trials (inside one, every LM call checks)
            counted = tried_trials(study)
            if len(counted) >= self.num_trials:
                return "budget"
            if len({t.user_attrs.get("candidate") for t in counted}) >= size:
                return "exhausted"
            if self.max_lm_calls is not None and self._spent(study) >= self.max_lm_calls:
                return "max_lm_calls"
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if len(counted) + len(running) >= self.num_trials:  # other workers hold the rest: wait for them
                time.sleep(min(self.heartbeat_interval, 1.0))
                self._retire(study, self.grace_period)
                continue
            if repeats >= MAX_REPEATS:
                return "exhausted"
            trial = study.ask(space)
            if self._surplus(study, trial):
                continue
            outcome = self._run_trial(study, trial, student, valset, instructions, options)
            if outcome == "capped":
                return "max_lm_calls"
            repeats = repeats + 1 if outcome == "duplicate" else 0

    def _surplus(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Two workers that asked for the last trial at once: the later one hands it back (pruned, requeued)."""
        earlier = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number < trial.number]
        if len(tried_trials(study)) + len(earlier) < self.num_trials:
            return False
        fixed = study._storage.get_trial_system_attrs(trial._trial_id).get("fixed_params")
        study.tell(trial, state=TrialState.PRUNED)
        if fixed is not None:
            study.enqueue_trial(fixed, user_attrs={k: v for k, v in trial.user_attrs.items() if k != "heartbeat"})
        time.sleep(min(self.heartbeat_interval, 1.0))
        return True

    def _run_trial(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        student: dspy.Module,
        valset: list[dspy.Example],
        instructions: list[list[Wording]],
        options: list[list[tuple[str, list[dict], list[str]]]],
    ) -> str:
        """Score one trial, or record it as a duplicate; returns its state ("capped": stopped by max_lm_calls)."""
        params = dict(trial.params)
        n = len(instructions)
        adapter, rationales = self._choices(params, n)
        answer_format = self.extra["format"][params["format"]] if "format" in self.extra else None
        chosen = [options[i][params[f"demos_{i}"]] for i in range(n)]
        set_ids = [set_id for set_id, _, _ in chosen]
        bootstrapped = any(set_id != "none" and not set_id.startswith("given:") for set_id in set_ids)
        style = self.demo_styles[params.get("demo_style", 0)] if bootstrapped else None  # the given demos stay
        demos = [demo_sets.styled(d, rationale, style or "justified")
                 for (_, d, _), rationale in zip(chosen, self.rationales, strict=True)]
        if answer_format == "direct":  # no wording, rationale or justification: what a direct answer lacks
            wordings, rationales = [], None
            program = apply_direct(self.direct, demos, adapter=adapter)
            texts = [prompt_instructions(p) for p in program.predictors()]
            candidate = json_id(["direct", set_ids, adapter])
        else:
            wordings = [instructions[i][params[f"instruction_{i}"]] for i in range(n)]
            program = apply_candidate(student, wordings, demos, adapter=adapter, rationales=rationales)
            texts = [prompt_instructions(p) for p in program.predictors()]
            searched = [choice for choice in (adapter, rationales) if choice is not None]
            candidate = json_id([wordings, set_ids, *searched, *(["bare"] if style == "bare" else [])])
        baseline = bool(trial.user_attrs.get("baseline"))
        record = TrialRecord(
            number=trial.number, state="complete", params=params, instructions=texts, demo_set_ids=set_ids,
            demo_ids=[ids for _, _, ids in chosen],
            dev_score=None, lm_calls=0, input_tokens=0, output_tokens=0, seconds=0.0, baseline=baseline,
            retry_of=trial.user_attrs.get(RETRY_OF), adapter=adapter,
            rationale_fields=[v[0] if v else None for v in rationales] if rationales is not None else None,
            format=answer_format, demo_style=style,
        )
        attrs = {"candidate": candidate, "instructions": texts, "wordings": wordings, "demo_set_ids": set_ids}
        attrs.update({key: value for key, value in (("adapter", adapter), ("rationales", rationales),
                                                    ("format", answer_format), ("demo_style", style))
                      if value is not None})
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        earlier = next((t for t in tried_trials(study) if t.user_attrs.get("candidate") == candidate), None)
        if earlier is not None:
            trial.set_user_attr(DUPLICATE_OF, earlier.number)
            if earlier.state == TrialState.PRUNED:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, earlier.value)
            record.state, record.dev_score, record.duplicate_of = "duplicate", earlier.value, earlier.number
            self._emit(record, study)
            return record.state
        spent = self._spent(study)
        heartbeat = Heartbeat(study, trial, self.heartbeat_interval)
        try:
            scored, cut = self._score(
                study, trial, program, valset,
                may_call=lambda usage: self.max_lm_calls is None or spent + usage.calls < self.max_lm_calls,
            )
        except BaseException as exc:
            heartbeat.stop()
            study.tell(trial, state=TrialState.FAIL)
            interrupted = isinstance(exc, KeyboardInterrupt)
            record.state = "interrupted" if interrupted else "failed"
            record.note = type(exc).__name__ if self.withhold_text else f"{type(exc).__name__}: {exc}"
            if interrupted:  # re-run it next time, not counted
                study.enqueue_trial(params, user_attrs={"baseline": baseline, RETRY_OF: trial.number})
            self._emit(record, study)
            raise
        heartbeat.stop()
        self._fill(record, scored.usage, scored.seconds, scored.unparsed)
        record.answer_tokens = round(scored.usage.output_tokens / len(scored.correct), 3) if scored.correct else None
        for key, value in {**scored.usage.to_dict(), "answer_tokens": record.answer_tokens,
                           "seconds": record.seconds}.items():
            trial.set_user_attr(key, value)
        if cut is not None:
            trial.set_user_attr(MINIBATCH_PRUNED, True)
            trial.set_user_attr("eliminated", cut)
            study.tell(trial, state=TrialState.PRUNED)
            record.state, record.note, record.eliminated = "pruned", describe(cut, len(valset)), cut
            self._emit(record, study)
            return record.state
        if scored.stopped:
            study.tell(trial, state=TrialState.PRUNED)
            record.state = "pruned"
            record.note = f"max_lm_calls={self.max_lm_calls} reached after {len(scored.correct)} of {len(valset)}"
            record.dev_score = None
            if baseline:
                study.enqueue_trial(params, user_attrs={"baseline": True, RETRY_OF: trial.number})
            self._emit(record, study)
            return "capped"
        study.tell(trial, scored.score)
        record.dev_score = scored.score
        self._emit(record, study)
        return record.state

    def _score(
        self, study: optuna.Study, trial: optuna.Trial, program: dspy.Module, valset: list[dspy.Example],
        may_call: Callable[[Usage], bool],
    ) -> tuple[Scored, dict[str, Any] | None]:
        """The candidate's dev result, and the evidence that eliminated it in the race (None if it survived).

        Without `minibatch`, one pass over dev. With it, after each step but the last (`racing.steps`): the
        running score goes to Optuna as an intermediate value, and the rules of `racing` may end it."""
        usage, correct, unparsed, seconds = Usage(), [], 0, 0.0
        best = best_trial(study)
        n, start = len(valset), 0
        for step in steps(n, self.minibatch, self.pruner):
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
            if cut is None and self.pruner == "halving":
                cut = halving_cut(study, trial.number, done, running)
            if cut is None and self.pruner == "median" and trial.should_prune():
                cut = {"rule": "median", "n": done, "score": running}
            if cut is not None:
                return Scored(running, correct, unparsed, usage, seconds), cut
        return Scored(self.aggregate(valset, correct), correct, unparsed, usage, seconds), None

    @staticmethod
    def _fill(record: TrialRecord, usage: Usage, seconds: float, unparsed: int) -> None:
        record.lm_calls, record.input_tokens = usage.calls, usage.input_tokens
        record.output_tokens = usage.output_tokens
        record.seconds, record.unparsed = round(seconds, 3), unparsed

    # ----- records -----

    def _progress(self, study: optuna.Study) -> dict[str, Any]:
        trials = study.get_trials(deepcopy=False)
        best = best_trial(study)
        return {
            "counted": len(tried_trials(study)),  # pruned-on-minibatch trials count toward the budget
            "planned": self.num_trials,
            "best": best.value if best is not None else None,
            "lm_calls": self._spent(study),
            "input_tokens": sum(t.user_attrs.get("input_tokens", 0) for t in trials),
            "output_tokens": sum(t.user_attrs.get("output_tokens", 0) for t in trials),
        }

    def _emit(self, record: TrialRecord, study: optuna.Study) -> None:
        line = {**record.__dict__, "worker": f"{socket.gethostname()}:{os.getpid()}",
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        if self.log is not None:
            self.log.append(line)
        if self.on_trial is not None:
            self.on_trial(record, self._progress(study))

    def _record(
        self, study: optuna.Study, stopped: str, seconds: float, chosen: FrozenTrial, n_dev: int
    ) -> dict[str, Any]:
        trials = study.get_trials(deepcopy=False)
        best = best_trial(study)
        baseline = next((t for t in counted_trials(study) if t.user_attrs.get("baseline")), None)
        states = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
        storage = self.storage if isinstance(self.storage, str) else type(self.storage).__name__
        return {
            "study_name": study.study_name,
            "storage": redact(storage) if storage else "memory",
            "stopped": stopped,
            "max_lm_calls": self.max_lm_calls,
            **self._progress(study),
            "duplicates": sum(DUPLICATE_OF in t.user_attrs for t in trials),
            "trial_states": states,
            "bootstrap": study.user_attrs.get("bootstrap_usage"),
            "demo_sets_hash": study.user_attrs["demo_sets"]["hash"],
            "best": {"number": chosen.number, "dev_score": chosen.value, "params": chosen.params,
                     "instructions": chosen.user_attrs["instructions"],
                     "demo_set_ids": chosen.user_attrs["demo_set_ids"],
                     "answer_tokens": chosen.user_attrs.get("answer_tokens"),
                     **{key: chosen.user_attrs[key] for key in ("adapter", "rationales", "format", "demo_style")
                        if key in chosen.user_attrs}},
            "baseline": {"number": baseline.number, "dev_score": baseline.value} if baseline else None,
            "seconds_this_session": round(seconds, 3),
            "seconds_total": self._seconds(study),
            **self._options_record(study, best, chosen, n_dev),
        }

    @staticmethod
    def _seconds(study: optuna.Study) -> float:
        """The search's time over every session: bootstrap, proposals and each scored trial (a resume that
        scores nothing adds nothing, unlike `seconds_this_session`)."""
        proposals = study.user_attrs.get("proposed_wordings") or {}
        parts = [study.user_attrs.get("bootstrap_usage"), proposals.get("usage")]
        seconds = sum((part or {}).get("seconds", 0) for part in parts)
        return round(seconds + sum(t.user_attrs.get("seconds", 0) for t in study.get_trials(deepcopy=False)), 3)

    def _options_record(
        self, study: optuna.Study, best: FrozenTrial, chosen: FrozenTrial, n_dev: int
    ) -> dict[str, Any]:
        """What the optional dimensions did (nothing when none is on, so a default search records what it did)."""
        extra: dict[str, Any] = {}
        if self.num_demo_sets is None:
            extra["demo_sets"] = len(study.user_attrs["demo_sets"]["sets"])
        for key in ("format", "demo_style"):
            if key in self.extra:
                extra[f"{key}s"] = self.extra[key]
        if self.select != "best":
            extra["select"] = self.select
            extra["top_dev"] = {"number": best.number, "dev_score": best.value,
                                "answer_tokens": best.user_attrs.get("answer_tokens")}
        if self.minibatch is not None:
            extra["minibatch"] = self.minibatch
            extra["pruned_on_minibatch"] = len(tried_trials(study)) - len(counted_trials(study))
            rules = [t.user_attrs["eliminated"]["rule"] for t in tried_trials(study) if "eliminated" in t.user_attrs]
            extra["race"] = {"pruner": self.pruner, "steps": steps(n_dev, self.minibatch, self.pruner),
                             "eliminated_by": {rule: rules.count(rule) for rule in sorted(set(rules))}}
        if "proposed_wordings" in study.user_attrs:
            extra["proposed_wordings"] = study.user_attrs["proposed_wordings"]
        return extra

