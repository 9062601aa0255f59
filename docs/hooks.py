"""MkDocs hooks: the command reference rendered from the argparse parsers at build time, results/ served from disk.

Nothing generated is committed: `docs/commands/<name>.md` exists only inside a build, rendered from
`postreason_dspy.cli.build_parser()`, so a command's page cannot drift from its `--help`. The measured
results are linked where they lie (`results/...`, `runs/README.md`); the build serves those files as they
are on disk, so `mkdocs build --strict` fails on a link to a result that is not there.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
HELP_COLUMNS = 100  # the terminal width the reference is rendered at (argparse reads $COLUMNS)
COMMANDS_NAV = "Commands"  # the nav section the hook fills with one page per command
SERVED = ("results", "runs/README.md")  # paths under the repository served beside the docs

# The guide page that explains each command; a command missing here still gets its page, without the link.
GUIDES = {
    "local": ("Getting started", "index.md#the-local-model"),
    "benchmarks": ("Benchmarks", "guide/benchmarks.md"),
    "eval": ("Evaluation", "guide/evaluation.md"),
    "report": ("Evaluation", "guide/evaluation.md#reports-and-statistics"),
    "tune": ("Tuning", "guide/tuning.md"),
    "export": ("Export and distillation", "guide/export-distill.md"),
    "distill": ("Export and distillation", "guide/export-distill.md#distil-fine-tuning-data"),
    "finetune": ("Post-reason tuning", "guide/finetune.md"),
}


@contextmanager
def _help_width() -> Iterator[None]:
    """argparse wraps help at $COLUMNS: fix it, so the pages do not depend on the terminal that builds them."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _actions(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """A parser's sub-commands in declaration order: name -> (one-line help, parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


@functools.cache  # one build asks twice (nav, then pages)
def command_helps() -> tuple[str, dict[str, tuple[str, list[tuple[list[str], str]]]]]:
    """`postreason --help`, and per command: its one-line help and the `--help` of it and of each action.

    An action's argv is what a user types after `postreason` (`["local", "up"]`). Plugins are not loaded,
    so the reference shows the package's own benchmarks and strategies.
    """
    from postreason_dspy.cli import build_parser  # imported late: dspy is slow to import

    with _help_width():
        parser = build_parser()
        commands = {}
        for name, (summary, sub) in _actions(parser).items():
            helps = [([name], sub.format_help())]
            helps += [([name, action], subsub.format_help()) for action, (_, subsub) in _actions(sub).items()]
            commands[name] = (summary, helps)
        return parser.format_help(), commands


def _fenced(text: str) -> str:
    """A code block around `text`, its fence longer than any run of backticks inside it."""
    fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`+", text))])
    return f"{fence}text\n{text.rstrip()}\n{fence}\n"


def _command_page(name: str, summary: str, helps: list[tuple[list[str], str]]) -> str:
    lines = [f"# postreason {name}\n", f"{summary[:1].upper()}{summary[1:]}.\n"]
    if name in GUIDES:
        title, link = GUIDES[name]
        lines.append(f"How and why to use it: [{title}](../{link}).\n")
    lines.append("*Generated from the command's argument parser at build time: this is its `--help`.*\n")
    for argv, text in helps:
        if len(argv) > 1:
            lines.append(f"## postreason {' '.join(argv)}\n")
        lines.append(_fenced(text))
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for a Markdown table cell, where a bare | would start a new cell."""
    return text.replace("|", r"\|")


def _index_page(top: str, commands: dict[str, tuple[str, list]]) -> str:
    rows = "\n".join(f"| [`{name}`]({name}.md) | {_cell(summary)} |" for name, (summary, _) in commands.items())
    return (
        "# Commands\n\nEvery `postreason` command, one page each, generated from its argument parser.\n\n"
        f"| command | what it does |\n|---|---|\n{rows}\n\n## postreason --help\n\n{_fenced(top)}"
    )


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """List one page per command under the Commands section, and let snippets find files from the repo root."""
    _, commands = command_helps()
    pages = [{f"postreason {name}": f"commands/{name}.md"} for name in commands]
    for entry in config.nav or []:
        if isinstance(entry, dict) and COMMANDS_NAV in entry:
            entry[COMMANDS_NAV] = ["commands/index.md", *pages]
    config.mdx_configs.setdefault("pymdownx.snippets", {})["base_path"] = [str(ROOT)]
    return config


def _served_files(config: MkDocsConfig) -> Iterator[File]:
    for entry in SERVED:
        path = ROOT / entry
        for source in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if source.is_file():
                uri = source.relative_to(ROOT).as_posix()
                yield File.generated(config, uri, abs_src_path=str(source), inclusion=InclusionLevel.NOT_IN_NAV)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated command pages and the files under results/ (as they are on disk)."""
    top, commands = command_helps()
    files.append(File.generated(config, "commands/index.md", content=_index_page(top, commands)))
    for name, (summary, helps) in commands.items():
        files.append(File.generated(config, f"commands/{name}.md", content=_command_page(name, summary, helps)))
    for file in _served_files(config):
        files.append(file)
    return files
