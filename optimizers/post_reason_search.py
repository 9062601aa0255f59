"""`PostReasonSearch`: an Optuna search over post-reasoning instruction wordings and demo sets.

The best wording and demos differ between models, so this tunes them per model on a dev set. Like
MIPROv2 it asks Optuna's TPE sampler for one categorical per predictor (instruction index, demo-set
index) and scores each candidate with `dspy.Evaluate`; unlike MIPROv2 the instruction candidates are
post-reasoning wordings (see `postreason_dspy.optimizers.wordings`) rather than LM-proposed ones. Demo sets are
bootstrapped with every `PostReason` in full mode, so demos carry real justifications even when the
program answers in answer-only mode, which also keeps each trial as cheap as a direct answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dspy
import optuna
from dspy.teleprompt import Teleprompter
from dspy.teleprompt.utils import create_n_fewshot_demo_sets

from postreason_dspy import PostReason, with_mode
from postreason_dspy.optimizers.wordings import POST_REASONING_WORDINGS
from postreason_dspy.signatures import post_reason_instructions

Metric = Callable[..., Any]


def instruction_candidates(program: dspy.Module, wordings: Sequence[str]) -> list[list[str]]:
    """Per predictor (in `program.predictors()` order): its current instructions first, then, for a
    PostReason's predictor, its base instructions with each post-reasoning wording."""
    owners = {id(m.predict): m for _, m in program.named_sub_modules() if isinstance(m, PostReason)}
    candidates = []
    for predictor in program.predictors():
        options = [predictor.signature.instructions]
        owner = owners.get(id(predictor))
        if owner is not None:
            base = owner.base_signature
            outputs = list(base.output_fields)
            for wording in wordings:
                text = post_reason_instructions(base.instructions, outputs, owner.rationale_field, wording)
                if text not in options:
                    options.append(text)
        candidates.append(options)
    return candidates


class PostReasonSearch(Teleprompter):
    """Tune instructions and few-shot demos of a (post-reasoning) DSPy program with Optuna.

    Args:
        metric: `metric(example, prediction, trace=None)`, truthy or a number.
        num_trials: candidate programs scored on the dev set (the unmodified program is the first).
        num_demo_sets: demo sets per predictor, including the empty set (see DSPy's
            `create_n_fewshot_demo_sets`); 1 searches instructions only.
        max_bootstrapped_demos / max_labeled_demos: demo set sizes.
        wordings: the post-reasoning instruction templates to choose among.
        num_threads: threads for `dspy.Evaluate` (1 for a single local server).
        seed: the sampler's and the demo sets' seed.
        storage / study_name: an Optuna storage URL (e.g. "sqlite:///runs/search.db") so an
            interrupted search keeps its finished trials and resumes with the same study name.
    """

    def __init__(
        self,
        metric: Metric,
        *,
        num_trials: int = 20,
        num_demo_sets: int = 4,
        max_bootstrapped_demos: int = 3,
        max_labeled_demos: int = 3,
        wordings: Sequence[str] = POST_REASONING_WORDINGS,
        num_threads: int = 1,
        seed: int = 0,
        storage: str | None = None,
        study_name: str | None = None,
    ):
        super().__init__()
        if num_trials < 1 or num_demo_sets < 1:
            raise ValueError("num_trials and num_demo_sets must be at least 1")
        self.metric = metric
        self.num_trials = num_trials
        self.num_demo_sets = num_demo_sets
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.wordings = tuple(wordings)
        self.num_threads = num_threads
        self.seed = seed
        self.storage = storage
        self.study_name = study_name

    def _demo_sets(self, student: dspy.Module, trainset: list[dspy.Example]) -> list[list[list[Any]]]:
        n_predictors = len(student.predictors())
        if self.num_demo_sets == 1:
            return [[[]] for _ in range(n_predictors)]
        sets = create_n_fewshot_demo_sets(
            student=student,
            num_candidate_sets=self.num_demo_sets,
            trainset=trainset,
            max_labeled_demos=self.max_labeled_demos,
            max_bootstrapped_demos=self.max_bootstrapped_demos,
            metric=self.metric,
            teacher_settings={},
            teacher=with_mode(student, "full"),  # demos with real justifications
            seed=self.seed,
        )
        return [sets[i] for i in range(n_predictors)]

    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: list[dspy.Example],
        teacher: dspy.Module | None = None,
        valset: list[dspy.Example] | None = None,
        **kwargs: Any,
    ) -> dspy.Module:
        """Return the best candidate found; it carries `.study` (the Optuna study) and `.score`."""
        valset = valset or trainset
        if not valset:
            raise ValueError("PostReasonSearch needs a non-empty valset (or trainset) to score candidates")
        instructions = instruction_candidates(student, self.wordings)
        demo_sets = self._demo_sets(student, trainset)
        evaluate = dspy.Evaluate(
            devset=valset, metric=self.metric, num_threads=self.num_threads, display_progress=False, failure_score=0.0
        )

        def build(params: dict[str, int]) -> dspy.Module:
            candidate = student.deepcopy()
            for i, predictor in enumerate(candidate.predictors()):
                predictor.signature = predictor.signature.with_instructions(instructions[i][params[f"instruction_{i}"]])
                predictor.demos = list(demo_sets[i][params[f"demos_{i}"]])
            return candidate

        def objective(trial: optuna.Trial) -> float:
            params = {}
            for i in range(len(instructions)):
                for kind, options in (("instruction", instructions[i]), ("demos", demo_sets[i])):
                    params[f"{kind}_{i}"] = trial.suggest_categorical(f"{kind}_{i}", list(range(len(options))))
            return float(evaluate(build(params)).score)

        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=self.seed, multivariate=True),
            storage=self.storage,
            study_name=self.study_name,
            load_if_exists=self.storage is not None,
        )
        if not study.trials:
            baseline = {f"{kind}_{i}": 0 for i in range(len(instructions)) for kind in ("instruction", "demos")}
            study.enqueue_trial(baseline)
        remaining = self.num_trials - len([t for t in study.trials if t.state.is_finished()])
        if remaining > 0:
            study.optimize(objective, n_trials=remaining)
        best = build(study.best_params)
        best.study = study
        best.score = study.best_value
        return best
