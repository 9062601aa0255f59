"""Settings declared once, as dataclass fields that carry their command-line flag.

A setting is one field: `setting(default, flag="--trials", help=...)`. From the fields come the command's
options and the defaults its help shows (`postreason_dspy.cli.config_options`), the command line that
reproduces a config (`command_words`) and the config read back from its JSON (`from_dict`), so no second
list of the settings can drift from the first. A field whose default is itself such a dataclass (a tune's
`SearchSettings`) is nested: its flags are the config's too, with the embedding default's values.

    trials: int = setting(16, flag="--trials", help="counted trials")
    sizes: int | None = setting(40, flag="--train-size", help="...", none="all")   # 'all' on the command line
    cot: bool = setting(False, flag="--with-cot", help="...")                      # a switch
    direct: bool = setting(True, flag="--no-direct", help="...")                    # a switch that turns it off
    styles: tuple[str, ...] = setting(("a",), flag="--styles", help="...")         # a comma-separated list
"""

from __future__ import annotations

import dataclasses
import shlex
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from postreason_dspy.secrets import redact

FLAG = "postreason_flag"
T = TypeVar("T")


@dataclass(frozen=True)
class Flag:
    """How a setting is spelled on the command line and explained in its help.

    `none` is the word that stands for None ('all', 'auto'); `resumable` settings may be given again on
    `--resume` (how a run executes, or a password the record does not keep)."""

    name: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    metavar: str | None = None
    none: str | None = None
    resumable: bool = False

    @property
    def dest(self) -> str:
        """The argparse attribute: --max-demos -> max_demos, --no-direct-candidate -> no_direct_candidate."""
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def negated(self) -> bool:
        """A `--no-...` switch: given, it sets its (default True) field to False."""
        return self.name.startswith("--no-")


@dataclass(frozen=True)
class Option:
    """A flagged field as a command sees it: where it sits in the config and the default the command starts from."""

    flag: Flag
    path: tuple[str, ...]
    default: Any

    def words(self, value: Any) -> list[str]:
        """The command-line words that give `value` (none for a switch that is off or an unset value)."""
        if isinstance(value, bool):
            return [self.flag.name] if value is not self.flag.negated else []
        if value is None:
            return [self.flag.name, self.flag.none] if self.flag.none else []
        if isinstance(value, tuple):
            return [self.flag.name, ",".join(map(str, value))] if value else []
        return [self.flag.name, str(value)]

    def shown_default(self) -> str | None:
        """The default as the help states it, or None when there is nothing to state (a switch, an unset value)."""
        if isinstance(self.default, bool) or self.default is MISSING:
            return None
        words = self.words(self.default)
        return words[1] if len(words) == 2 else None


def setting(default: Any = MISSING, *, flag: str | None = None, help: str = "", **spelling: Any) -> Any:
    """A dataclass field holding a setting; with `flag`, one of its command's options (see `Flag`)."""
    metadata = {FLAG: Flag(flag, help, **spelling)} if flag else {}
    return dataclasses.field(default=default, metadata=metadata)


def _defaults(config: Any) -> dict[str, Any]:
    """Field name -> default: the values of an instance, or the declared defaults of a class."""
    if not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in fields(config)}
    found = {}
    for f in fields(config):
        if f.default is not MISSING:
            found[f.name] = f.default
        elif f.default_factory is not MISSING:
            found[f.name] = f.default_factory()
    return found


def options(config: Any, path: tuple[str, ...] = ()) -> Iterator[Option]:
    """Every flagged field of `config` (a class or an instance, whose values are then the defaults) and of the
    settings dataclasses its fields hold by default, in declaration order."""
    defaults = _defaults(config)
    for f in fields(config):
        default = defaults.get(f.name, MISSING)
        if is_dataclass(default) and not isinstance(default, type):
            yield from options(default, (*path, f.name))
        elif FLAG in f.metadata:
            yield Option(f.metadata[FLAG], (*path, f.name), default)


def _value_at(config: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def flag_of(cls: type, name: str) -> str:
    """The flag of field `name` of `cls` (for messages that name the setting as the user gave it), or ''."""
    flag = next((f.metadata[FLAG] for f in fields(cls) if f.name == name and FLAG in f.metadata), None)
    return flag.name if flag else ""


def command_words(config: Any) -> list[str]:
    """The options that reproduce `config`: every flagged setting that has a value."""
    return [word for option in options(type(config)) for word in option.words(_value_at(config, option.path))]


def command_line(*words: str) -> str:
    """A shell command line from its words, with server passwords redacted: for records and resume lines."""
    return shlex.join(redact(word) for word in words)


def nest(values: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """{("search", "seed"): 1, ("limit",): 2} -> {"search": {"seed": 1}, "limit": 2}."""
    nested: dict[str, Any] = {}
    for path, value in values.items():
        node = nested
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return nested


def from_dict(cls: type[T], data: Mapping[str, Any], base: T | None = None) -> T:
    """`cls` from its JSON form (`dataclasses.asdict`): lists back to tuples, nested settings onto their default,
    unknown keys ignored; fields `data` lacks keep `base`'s values (default: the declared defaults)."""
    hints = get_type_hints(cls)
    defaults = _defaults(cls if base is None else base)
    values = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value, default = data[f.name], defaults.get(f.name)
        if is_dataclass(default) and isinstance(value, Mapping):
            values[f.name] = from_dict(type(default), value, default)
        else:
            values[f.name] = _typed(hints[f.name], value)
    return cls(**values) if base is None else dataclasses.replace(base, **values)


def _typed(hint: Any, value: Any) -> Any:
    """`value` read from JSON as `hint` asks: tuples (of tuples) from lists."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        return _typed(next(arg for arg in get_args(hint) if arg is not type(None)), value)
    if origin is tuple and isinstance(value, list | tuple):
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], item) for item in value)
        return tuple(_typed(arg, item) for arg, item in zip(args, value, strict=True))
    return value
