"""What an evaluation run compares: models x benchmarks x strategies, on the same examples of each benchmark."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from postreason_dspy import flags
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.records import Setting, grid
from postreason_dspy.flags import setting
from postreason_dspy.strategies import list_strategies

DEFAULT_STRATEGIES: tuple[str, ...] = ("direct", "post", "cot")
DEFAULT_LIMIT = 20
BASELINE = "direct"


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides a run's results; stored in config.json so `--resume` redoes nothing differently.

    `limit=None` takes the whole split. `data` maps a benchmark to a local file to read it from.
    `programs` maps a strategy label to a saved program file (program.json) evaluated as a strategy of its
    own; the labels join `strategies` after the named ones. Every strategy is compared with `direct` when
    direct is in the run; `pairs` names further (treatment, baseline) comparisons, such as tuned vs untuned.
    `threads` and `retries` only change how the run executes, so a resumed run may change them. Each flagged
    field is an option of `postreason eval` (`postreason_dspy.flags`); the others have a grammar of their own.
    """

    models: tuple[str, ...] = ("local",)
    benchmarks: tuple[str, ...] = ("gsm8k",)
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    limit: int | None = setting(DEFAULT_LIMIT, flag="--limit", none="all", help="examples per benchmark, or 'all'")
    split: str = setting("test", flag="--split", choices=("test", "dev", "train"),
                         help="the benchmark's split the examples come from")
    seed: int = setting(0, flag="--seed", help="order of the examples before --limit cuts")
    max_tokens: int = setting(512, flag="--max-tokens", help="per LM call")
    temperature: float = setting(0.0, flag="--temperature", help="the sampling temperature")
    api_base: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    threads: int = setting(1, flag="--threads", resumable=True, help="examples in flight at once; the local "
                           "server answers one request at a time, remote APIs gain from more")
    retries: int = setting(3, flag="--retries", resumable=True, help="retries of a transient LM error, with backoff")
    programs: dict[str, str] = field(default_factory=dict)
    pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        strategies = list_strategies()
        clash = [label for label in self.programs if label in strategies]
        if clash:
            raise ConfigurationError(
                f"program label {clash[0]!r} is also a strategy's name: label the file with --program PATH=NAME"
            )
        merged = (*[name for name in self.strategies if name not in self.programs], *self.programs)
        object.__setattr__(self, "strategies", merged)
        object.__setattr__(self, "pairs", tuple((str(a), str(b)) for a, b in self.pairs))
        for name, values in (("model", self.models), ("benchmark", self.benchmarks), ("strategy", self.strategies)):
            if not values:
                raise ConfigurationError(f"give at least one {name}")
            if len(set(values)) != len(values):
                raise ConfigurationError(f"a {name} is listed twice: {', '.join(values)}")
        unknown = [name for name in self.strategies if name not in strategies and name not in self.programs]
        if unknown:
            raise ConfigurationError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(strategies)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigurationError(f"--limit must be 1 or more (or 'all'), not {self.limit}")
        if self.max_tokens < 1:
            raise ConfigurationError(f"--max-tokens must be 1 or more, not {self.max_tokens}")
        if self.threads < 1:
            raise ConfigurationError(f"--threads must be 1 or more, not {self.threads}")
        if self.retries < 0:
            raise ConfigurationError(f"--retries must be 0 or more, not {self.retries}")
        for pair in self.pairs:
            if pair[0] == pair[1] or any(name not in self.strategies for name in pair):
                known = ", ".join(self.strategies)
                raise ConfigurationError(f"pair {pair[0]}:{pair[1]} needs two strategies of this run ({known})")
        stray = sorted(set(self.data) - set(self.benchmarks))
        if stray:
            raise ConfigurationError(f"--data names {stray[0]!r}, which is not among the benchmarks of this run")

    def settings(self) -> list[Setting]:
        """Every (model, benchmark, strategy) of the run, in run order."""
        return grid(self.models, self.benchmarks, self.strategies)

    def command(self) -> str:
        """The `postreason eval` command line that starts this run (the server URL shown without credentials)."""
        named = [name for name in self.strategies if name not in self.programs]
        words = ["postreason", "eval", *(word for model in self.models for word in ("--model", model)),
                 "--benchmark", ",".join(self.benchmarks), "--strategy", ",".join(named)]
        words += [word for label, path in self.programs.items() for word in ("--program", f"{path}={label}")]
        words += [word for a, b in self.pairs for word in ("--pair", f"{a}:{b}")]
        words += flags.command_words(self)
        words += [word for name, path in self.data.items() for word in ("--data", f"{name}={path}")]
        words += ["--api-base", self.api_base] if self.api_base else []
        return flags.command_line(*words)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        """The config stored in a run's config.json (lists back to tuples)."""
        return flags.from_dict(cls, data)
