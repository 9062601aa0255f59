"""A command's options derived from its config dataclass (see `postreason_dspy.flags`).

    add_config_options(parser, TuneConfig)          one option per flagged field; the help states its default
    add_config_options(group, SETTINGS, leave_out=("seed",))  an instance's values as the defaults; some left out
    config_from_args(TuneConfig, args, models=...)  the config: given options over the defaults, plus `values`
    setting_dests(TuneConfig)                       the options `--resume` refuses (those not `resumable`)

Every derived option defaults to None, so a command can tell an option given from one left out (`--resume`
refuses the settings a run keeps), and a config built from no options is the config's default.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any, TypeVar

from postreason_dspy.cli.options import comma_list, count_or
from postreason_dspy.flags import Option, nest, options
from postreason_dspy.flags import from_dict as config_from_dict

T = TypeVar("T")


def _argument(option: Option) -> dict[str, Any]:
    """add_argument's keywords for `option`."""
    flag, default = option.flag, option.default
    shown = option.shown_default()
    text = flag.help + (f" (default {shown})" if shown is not None else "")
    if isinstance(default, bool):
        return {"dest": flag.dest, "action": "store_const", "const": not flag.negated, "help": text}
    if flag.none is not None:
        kind = count_or(flag.none)
    elif isinstance(default, tuple):
        kind = comma_list
    else:
        kind = flag.type or (type(default) if default is not None else str)
    metavar = flag.metavar or (f"N|{flag.none}" if flag.none else None)
    keywords = {"dest": flag.dest, "type": kind, "metavar": metavar, "help": text}
    return {**keywords, "choices": flag.choices} if flag.choices else keywords


def add_config_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, config: Any,
                       titles: dict[str, str] | None = None, leave_out: Collection[str] = ()) -> None:
    """One option per flagged field of `config` (a class, or an instance whose values are the defaults the help
    states) but those named in `leave_out`; the fields of a nested settings class `name` go into an argument
    group titled `titles[name]` (if given)."""
    groups: dict[str, Any] = {}
    for option in options(config):
        if option.path[-1] in leave_out:
            continue
        nested = option.path[0] if len(option.path) > 1 else None
        target = parser
        if nested is not None and titles and nested in titles:
            target = groups.setdefault(nested, parser.add_argument_group(titles[nested]))
        target.add_argument(option.flag.name, **_argument(option))


def config_from_args(cls: type[T], args: argparse.Namespace, base: T | None = None, **values: Any) -> T:
    """`cls` from the options `add_config_options` declared (those not given keep the defaults: `base`'s, else
    the declared ones) and `values` (the settings a command reads its own way, such as --model or --data)."""
    given = {}
    for option in options(cls):
        value = getattr(args, option.flag.dest, None)
        if value is not None:
            given[option.path] = None if value == option.flag.none else value
    return config_from_dict(cls, {**nest(given), **values}, base)


def setting_dests(cls: type) -> tuple[str, ...]:
    """The argparse names of the options that define a run: `--resume` takes them from its record instead."""
    return tuple(option.flag.dest for option in options(cls) if not option.flag.resumable)
