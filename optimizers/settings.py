"""`SearchSettings`: what `PostReasonSearch` searches and how far, declared and checked in one place.

Each field carries the `postreason tune` flag that sets it (`postreason_dspy.flags`), so the search's
keyword arguments, the tune command's options and their help, `TuneConfig` (which embeds these settings)
and the command line a tune run records are all this one list. The defaults here are the library's
(`PostReasonSearch(metric, num_trials=20)`); a tune starts from its own (`tuning.run.TUNE_SEARCH`).
What is not a setting stays a keyword of `PostReasonSearch`: the metric, where the study and trials live,
and the live objects (prompt model, progress callback).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from postreason_dspy.adapters import adapter_name
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.flags import flag_of, setting
from postreason_dspy.optimizers.demos import DEMO_STYLES
from postreason_dspy.optimizers.space import rationale_variant
from postreason_dspy.optimizers.wordings import POST_REASONING_WORDINGS

SELECTIONS = ("best", "cheapest-within-ci")
PRUNERS = ("bound", "median", "halving")


@dataclass(frozen=True)
class SearchSettings:
    """The search's settings (see `PostReasonSearch` for what each dimension does)."""

    num_trials: int = setting(
        20, flag="--trials", metavar="N", help="counted trials (finished, not duplicates), the baseline included; "
        "with a shared storage, the study's total over all workers")
    num_demo_sets: int | None = setting(
        3, flag="--demo-sets", none="auto", help="bootstrapped demo sets offered per "
        "predictor besides the program's own demos; 0 searches instructions only; auto: as many as the budget "
        "can try")
    max_bootstrapped_demos: int = setting(
        3, flag="--max-demos", metavar="K", help="demos in the largest set; sets hold k, k-1, ..., 1, each from a "
        "training example the model got right")
    demo_styles: tuple[str, ...] = setting(
        ("justified",), flag="--demo-styles", metavar="LIST", help="demos with the model's justification "
        "('justified'), with it left empty ('bare'), or both")
    max_labeled_demos: int = setting(0)  # labeled examples (no justification) added to each set
    wordings: tuple[str, ...] = field(default=POST_REASONING_WORDINGS, repr=False)  # the instructions chosen among
    seed: int = setting(0, flag="--seed", metavar="S", help="seed of the sampler, the demo sets and a tune's splits")
    max_lm_calls: int | None = setting(
        None, flag="--max-lm-calls", type=int, metavar="C", help="stop the search cleanly once it has spent C LM "
        "calls (bootstrap and trials)")
    adapters: tuple[str, ...] = setting(
        (), flag="--adapters", metavar="LIST", help="also search the output format among these adapters, e.g. "
        "chat,xml,plain (the program keeps the one chosen)")
    rationale_fields: tuple[str, ...] = setting(
        (), flag="--rationale-fields", metavar="LIST", help="also search the rationale field's name (and "
        "description) among these, e.g. justification,explanation,verification")
    num_proposals: int = setting(
        0, flag="--propose", metavar="N", help="ask the prompt model for N more clause wordings (shown train "
        "examples and the signature); valid ones join the candidates")
    minibatch: int | None = setting(
        None, flag="--minibatch", type=int, metavar="K", help="race candidates on dev questions from K at a time "
        "and eliminate those that fall behind (survivors are scored on all of dev)")
    pruner: str = setting(
        "bound", flag="--pruner", choices=PRUNERS, help="with --minibatch: 'bound' (exact: cannot beat the best), "
        "'halving' (successive halving: also keep only the top third at K, 3K, 9K... questions) or 'median' "
        "(also Optuna's MedianPruner)")
    select: str = setting(
        "best", flag="--select", choices=SELECTIONS, help="'best' dev accuracy, or 'cheapest-within-ci': fewest "
        "output tokens per answer within the 95%% Wilson interval of the best")
    # The task's text must reach no file (GPQA): no demos, no proposals, failures named by type only.
    withhold_text: bool = setting(False)

    def __post_init__(self) -> None:
        at_least = {"num_trials": 1, "num_demo_sets": 0, "max_bootstrapped_demos": 0, "max_labeled_demos": 0,
                    "num_proposals": 0, "max_lm_calls": 1, "minibatch": 1}
        for name, least in at_least.items():
            value = getattr(self, name)
            if value is not None and value < least:
                self._refuse(name, f"must be at least {least}, not {value}")
        if not self.demo_styles or set(self.demo_styles) - set(DEMO_STYLES):
            self._refuse("demo_styles", f"must be some of {', '.join(DEMO_STYLES)}, "
                         f"not {', '.join(self.demo_styles) or 'none'}")
        for name, allowed in (("select", SELECTIONS), ("pruner", PRUNERS)):
            if getattr(self, name) not in allowed:
                self._refuse(name, f"must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.pruner == "halving" and self.minibatch is None:
            self._refuse("pruner", "'halving' races candidates on minibatches: give minibatch too")
        if self.withhold_text and (self.num_demo_sets != 0 or self.max_labeled_demos or self.num_proposals):
            raise ConfigurationError("the task's text must not be stored: demos and proposed wordings would quote its "
                                     "examples (set num_demo_sets, max_labeled_demos and num_proposals to 0)")
        try:
            adapters = tuple(dict.fromkeys(adapter_name(name) for name in self.adapters))
            for name in self.rationale_fields:
                rationale_variant(name)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        for name, value in (("adapters", adapters), ("demo_styles", self.demo_styles),
                            ("rationale_fields", self.rationale_fields)):
            object.__setattr__(self, name, tuple(dict.fromkeys(value)))
        object.__setattr__(self, "wordings", tuple(self.wordings))

    def _refuse(self, name: str, problem: str) -> None:
        flag = flag_of(type(self), name)
        raise ConfigurationError(f"{name} {problem}" + (f" ({flag})" if flag else ""))

    def withholding_text(self) -> SearchSettings:
        """These settings for a task whose text must reach no file (GPQA): the wordings only, no demos, no
        proposals (demos and proposals would quote its questions)."""
        return replace(self, withhold_text=True, num_demo_sets=0, max_bootstrapped_demos=0, max_labeled_demos=0,
                       num_proposals=0)
