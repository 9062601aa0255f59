"""The answering strategies under one interface, so an evaluation can name them.

- `direct`:    the signature as is (a plain answer);
- `post`:      `PostReason` in answer-only mode: told a justification follows, stopped after the answer,
               so it costs what `direct` costs;
- `post_full`: `PostReason` in full mode: the answer, then the justification;
- `cot`:       `StrictChainOfThought`, reasoning then the answer (the same signature as `dspy.ChainOfThought`).

All four predict through `StrictPredict` (one LM call, no JSON fallback) under the attribute name
`predict`, so their saved states are interchangeable only where their fields are. `register_strategy`
adds strategies of your own under new names (it checks them first: it is the only way in), and
`list_strategies` names them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import dspy
from dspy.signatures.signature import Signature, ensure_signature

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.modules import PostReason
from postreason_dspy.predict import OnParseError, StrictPredict


class Direct(dspy.Module):
    """Answer directly: the baseline whose token cost post-reasoning's answer-only mode matches."""

    def __init__(self, signature: str | type[Signature], *, on_parse_error: OnParseError = "raise", **config: Any):
        super().__init__()
        self.predict = StrictPredict(signature, on_parse_error=on_parse_error, **config)

    def forward(self, **kwargs: Any) -> dspy.Prediction:
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> dspy.Prediction:
        return await self.predict.acall(**kwargs)


class StrictChainOfThought(Direct):
    """Reason first, then answer: `dspy.ChainOfThought`'s signature, predicted strictly.

    Unlike `dspy.ChainOfThought` it makes exactly one LM call: no JSON-adapter retry of a malformed
    completion, which raises `CompletionParseError` (or is marked, with `on_parse_error="mark"`).
    """

    def __init__(self, signature: str | type[Signature], *, on_parse_error: OnParseError = "raise", **config: Any):
        extended = ensure_signature(signature).prepend(
            name="reasoning", field=dspy.OutputField(desc="${reasoning}"), type_=str
        )
        super().__init__(extended, on_parse_error=on_parse_error, **config)


_STRATEGIES: dict[str, Callable[..., dspy.Module]] = {
    "direct": Direct,
    "post": partial(PostReason, mode="answer_only"),
    "post_full": partial(PostReason, mode="full"),
    "cot": StrictChainOfThought,
}

# Names go into comma-separated --benchmark/--strategy lists, `--data NAME=PATH` and file names.
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def check_name(kind: str, name: str) -> str:
    """`name` if it can name a `kind` ("benchmark" or "strategy") everywhere, else ConfigurationError."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigurationError(
            f"{kind} name {name!r} is not valid: use lowercase letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (no spaces, ',', ':' or '=')"
        )
    return name


def register_strategy(name: str, factory: Callable[..., dspy.Module], *, replace: bool = False) -> None:
    """Make `factory` the answering strategy `name`, for `make_strategy`, task programs and `postreason eval`.

    The contract a factory keeps (the built-in `direct`, `post`, `post_full` and `cot` all do):

    - It is called as `factory(signature, *, on_parse_error="raise" | "mark", **config)`: `signature`
      is a string or `dspy.Signature` class; `config` (e.g. `max_tokens=`) goes to the predictor.
    - It returns a `dspy.Module` whose `forward(**inputs)` returns a `dspy.Prediction` carrying every
      output field of `signature` (it may add fields of its own, as `cot` adds `reasoning`).
    - It predicts through `StrictPredict`, so each prediction is exactly one LM call (an evaluation
      counts tokens and latency per call), and passes `on_parse_error` on: with "mark", a completion
      that does not parse gives a prediction whose outputs are None and whose `parse_error` and
      `completion` say why, instead of an exception.

    `name` (lowercase letters, digits, '_', '-', '.') is then valid in `postreason eval --strategy NAME`
    (for the CLI, the module that registers it must be imported: see POSTREASON_PLUGINS in
    `postreason_dspy.cli`). An existing name raises ConfigurationError unless `replace=True`.
    The factory is tried once on "question -> answer" (no LM call), so a broken one fails here.
    """
    check_name("strategy", name)
    if name in _STRATEGIES and not replace:
        raise ConfigurationError(f"strategy {name!r} is already registered; pass replace=True to replace it")
    if not callable(factory):
        raise ConfigurationError(f"strategy {name!r}: the factory must be callable, not {type(factory).__name__}")
    try:
        module = factory("question -> answer", on_parse_error="mark")
    except Exception as exc:
        raise ConfigurationError(
            f"strategy {name!r}: factory('question -> answer', on_parse_error='mark') failed: {exc}"
        ) from exc
    if not isinstance(module, dspy.Module):
        raise ConfigurationError(
            f"strategy {name!r}: the factory must return a dspy.Module, not {type(module).__name__}"
        )
    _STRATEGIES[name] = factory


def list_strategies() -> list[str]:
    """The names of every strategy, built-in ones first, then those registered, in order."""
    return list(_STRATEGIES)


def make_strategy(name: str, signature: str | type[Signature], **kwargs: Any) -> dspy.Module:
    """Build the module for strategy `name` (built in, or added by `register_strategy`) over `signature`.

    Extra keyword arguments go to the module (e.g. `instruction=` for the post strategies,
    `on_parse_error="mark"` or LM config such as `max_tokens=` for all).
    """
    try:
        factory = _STRATEGIES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown strategy {name!r}; choose from {', '.join(_STRATEGIES)}"
        ) from None
    return factory(signature, **kwargs)
