"""The documentation: the site builds with `mkdocs build --strict`, every command page is that command's
`--help`, the code the pages name exists, and README.md stays a short front page whose links resolve."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from postreason_dspy.cli import COMMAND_MODULES

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
README_MAX_LINES = 250

# What a user sees for `postreason ARGV --help`, printed by the CLI's own entry point in a fresh process
# (no plugins, nothing registered by other tests), at the width the docs are rendered at.
HELP_SCRIPT = """
import contextlib, io, json, sys
from postreason_dspy.cli import main
out = []
for argv in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    out.append(text.getvalue())
print(json.dumps(out))
"""


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clean_env(hooks: ModuleType) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "POSTREASON_PLUGINS"}
    return {**env, "COLUMNS": str(hooks.HELP_COLUMNS), "NO_MKDOCS_2_WARNING": "1"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as CI builds it: strict, so a broken link, anchor or snippet fails the build."""
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
               "--site-dir", str(out)]
    result = subprocess.run(command, cwd=ROOT, env=_clean_env(_hooks()), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _code_blocks(page: Path) -> list[str]:
    """The text of each code block of a built page, as a reader would copy it."""
    blocks = re.findall(r"<pre[^>]*>(.*?)</pre>", page.read_text(), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks]


def test_every_command_has_a_page_holding_its_help(site: Path):
    hooks = _hooks()
    _, commands = hooks.command_helps()
    assert list(commands) == list(COMMAND_MODULES)
    invocations = [argv for _, helps in commands.values() for argv, _ in helps]
    assert ["local", "up"] in invocations and ["benchmarks", "show"] in invocations
    result = subprocess.run([sys.executable, "-c", HELP_SCRIPT, json.dumps(invocations)], cwd=ROOT,
                            env=_clean_env(hooks), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    expected = dict(zip(map(tuple, invocations), json.loads(result.stdout), strict=True))
    for name, (_, helps) in commands.items():
        blocks = _code_blocks(site / "commands" / name / "index.html")
        wanted = [expected[tuple(argv)] for argv, _ in helps]
        assert [block.rstrip() for block in blocks] == [text.rstrip() for text in wanted], name
        assert blocks[0].startswith(f"usage: postreason {name} ")


def test_the_command_index_lists_every_command(site: Path):
    index = (site / "commands" / "index.html").read_text()
    for name in COMMAND_MODULES:
        assert f'href="{name}/"' in index


def test_results_are_served_as_they_are_on_disk(site: Path):
    """Pages link to results/ by its path in the repository; the build serves those very files."""
    served = site / "results" / "answer-cost-30.json"
    assert served.read_bytes() == (ROOT / "results" / "answer-cost-30.json").read_bytes()
    assert (site / "results" / "csqa-0.5b-100" / "report" / "index.html").exists()
    assert (site / "runs" / "index.html").exists()  # runs/README.md


def _named_code(text: str) -> set[str]:
    """Repository paths and dotted module names the text names in backticks."""
    paths = re.findall(r"`((?:postreason_dspy|programs|optimizers|scripts|tests)/[\w./-]*)`", text)
    modules = re.findall(r"`(postreason_dspy(?:\.\w+)+)`", text)
    return set(paths) | set(modules)


def _exists(name: str) -> bool:
    if "/" in name:
        return (ROOT / name).exists()
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes on it
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("page", [*PAGES, README], ids=lambda page: page.relative_to(ROOT).as_posix())
def test_the_code_a_page_names_exists(page: Path):
    """Modules move: a page naming a file or module that is gone fails here, not in a reader's hands."""
    missing = sorted(name for name in _named_code(page.read_text()) if not _exists(name))
    assert not missing, f"{page.name} names what does not exist: {missing}"


def test_the_readme_is_a_short_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "<!-- study-headline -->" in text
    assert "arXiv" in text and "2605.06165" in text
    assert "make demo" in text and "make test" in text


def test_the_readme_links_resolve():
    """Relative links of the front page point at files or folders of the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [target.split("#")[0] for target in targets if not re.match(r"[a-z]+:", target) and target[0] != "#"]
    assert local, "the README links into the docs"
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, missing
