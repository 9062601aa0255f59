"""Options shared by commands, declared once so every command spells, defaults and explains them alike.

    add_model_option(parser)                 --model (one; `repeatable=True` for eval's several)
    add_api_base_option(parser)              --api-base
    add_runs_dir_option(parser)              --runs-dir
    add_run_id_option / add_no_progress_option
    add_data_option + data_paths(values, benchmarks)   --data NAME=PATH (or PATH when one benchmark is named)
    count_or_all                             the type of --limit and other sizes: a number or 'all'
    limits_per_benchmark(values, benchmarks)   distill's --limit [NAME=]N: N for each benchmark, NAME=N for one
    command_line(*words) / rerun_command(args, *extra)   a command line (passwords redacted), for a resume line
    refuse_settings_on_resume(args, names)   --resume takes a run's settings from its record, not the command line
    lm_from_args(args, **settings)           the dspy.LM that --model and --api-base name

Keys never come from the command line, only from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dspy

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.flags import command_line
from postreason_dspy.io import refuse_changes
from postreason_dspy.models import LOCAL, resolve_lm

MODEL_HELP = (
    f"'{LOCAL}' (the embedded llama.cpp server) or a DSPy/litellm model string such as openai/gpt-4o-mini, "
    f"hosted_vllm/NAME, ollama_chat/NAME (default: $POSTREASON_MODEL or {LOCAL})"
)


def default_model() -> str:
    return os.environ.get("POSTREASON_MODEL", LOCAL)


def add_model_option(parser: argparse.ArgumentParser, repeatable: bool = False) -> None:
    """--model; repeatable ones collect a list (None when not given, so a command can tell)."""
    if repeatable:
        parser.add_argument("--model", action="append", metavar="M", help="repeatable; " + MODEL_HELP)
    else:
        parser.add_argument("--model", default=default_model(), metavar="M", help=MODEL_HELP)


def add_api_base_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-base",
        default=os.environ.get("POSTREASON_API_BASE"),
        help="server URL for the model(s) (default: $POSTREASON_API_BASE, else each provider's own); "
        "no user:password@ in it; keys come only from the environment",
    )


def add_runs_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default: runs)")


def add_run_id_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", help="name the run directory (default: time and a random suffix)")


def add_no_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", metavar="[NAME=]PATH",
                        help="read benchmark NAME from a local file (its fields: `postreason benchmarks show NAME`); "
                        "plain PATH when one benchmark is named; repeatable")


def named_values(option: str, values: list[str] | None, benchmarks: tuple[str, ...],
                 what: str = "a value") -> tuple[list[str], dict[str, str]]:
    """A repeatable option's values split into the plain ones and NAME=VALUE ones by benchmark; a NAME that is
    not one of `benchmarks`, a name given twice or an empty VALUE is refused."""
    plain: list[str] = []
    named: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep:
            plain.append(value)
            continue
        name = name.strip()
        if name not in benchmarks:
            raise ConfigurationError(f"{option} names {name!r}, which is not a benchmark of this command "
                                     f"({', '.join(benchmarks)})")
        if not rest.strip():
            raise ConfigurationError(f"{option} {value}: give {what} after '='")
        if name in named:
            raise ConfigurationError(f"{option} names {name!r} twice")
        named[name] = rest.strip()
    return plain, named


def data_paths(values: list[str] | None, benchmarks: tuple[str, ...]) -> dict[str, str]:
    """What `add_data_option` collected, as benchmark -> path: NAME=PATH, or PATH for the one benchmark named."""
    plain, found = named_values("--data", values, benchmarks, "the file's path")
    for path in plain:
        if len(benchmarks) != 1:
            raise ConfigurationError(f"--data {path}: with several benchmarks, give it as NAME=PATH")
        if benchmarks[0] in found:
            raise ConfigurationError(f"--data names {benchmarks[0]!r} twice")
        found[benchmarks[0]] = path
    return found


def limits_per_benchmark(values: list[str] | None, benchmarks: tuple[str, ...],
                         option: str = "--limit") -> dict[str, int | None]:
    """A repeatable `option` [NAME=]N as benchmark -> examples to take (None: all): a plain N or 'all' sets every
    benchmark's, NAME=N one benchmark's (over the plain one), so a mixture can take fewer of a slow source."""
    plain, named = named_values(option, values, benchmarks)
    if len(plain) > 1:
        raise ConfigurationError(f"{option} {' '.join(plain)}: give one limit for every benchmark, NAME=N for one")

    def size(text: str) -> int | None:
        try:
            value = count_or_all(text)
        except argparse.ArgumentTypeError as error:
            raise ConfigurationError(f"{option}: {error}") from None
        if isinstance(value, str):  # 'all'
            return None
        if value < 0:
            raise ConfigurationError(f"{option} must be 0 or more, not {value}")
        return value

    default = size(plain[0]) if plain else None
    return {name: size(named[name]) if name in named else default for name in benchmarks}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and --api-base, for a command (or script) that calls one model."""
    add_model_option(parser)
    add_api_base_option(parser)


def lm_from_args(args: argparse.Namespace, **settings: Any) -> dspy.LM:
    """resolve_lm for the arguments `add_model_arguments` declared."""
    return resolve_lm(args.model, api_base=args.api_base, **settings)


def count_or(word: str) -> Callable[[str], int | str]:
    """An argparse type for a size: a whole number, or `word` ('all' for --limit, 'auto' for --demo-sets)."""

    def parse(text: str) -> int | str:
        if text.lower() == word:
            return word
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or {word!r}, not {text!r}") from None

    return parse


count_or_all = count_or("all")


def split_names(text: str) -> list[str]:
    """A comma-separated list without blanks: 'a, b,,c' -> ['a', 'b', 'c']."""
    return [name.strip() for name in text.split(",") if name.strip()]


def comma_list(text: str) -> tuple[str, ...]:
    """An argparse type for a comma-separated list of at least one name: 'chat,xml' -> ('chat', 'xml')."""
    names = tuple(split_names(text))
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def refuse_settings_on_resume(args: argparse.Namespace, names: tuple[str, ...], may_change: str = "") -> None:
    """A resumed run keeps the settings it started with: refuse any of `names` given on the command line."""
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name, None) is not None]
    refuse_changes(given, "--resume continues a run with its own settings: drop the options that would change them",
                   may_change or "start a new run for other settings")


def rerun_command(args: argparse.Namespace, *extra: str) -> str:
    """`postreason` with the arguments it was given and `extra` ones not among them: what a command that
    resumes by running again prints when it is stopped."""
    given = list(getattr(args, "argv", []))
    return command_line("postreason", *given, *(arg for arg in extra if arg not in given))
