"""The wheel's package list: every package folder is installed, programs/ and optimizers/ under our namespace."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _package_folders() -> dict[str, Path]:
    """Every importable package the repository holds, by the name it installs under."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    roots = {"postreason_dspy": ROOT / "postreason_dspy", **{name: ROOT / folder for name, folder in mapping.items()}}
    found = {}
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found[".".join((name, *relative))] = init.parent
    return found


def test_every_package_folder_is_listed_and_nothing_installs_at_top_level():
    listed = PYPROJECT["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(_package_folders())
    assert all(name == "postreason_dspy" or name.startswith("postreason_dspy.") for name in listed)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_library_never_imports_generic_top_level_names():
    for folder in ("postreason_dspy", "programs", "optimizers", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            bad = {name for name in _imports(path) if name.split(".")[0] in ("programs", "optimizers")}
            assert not bad, f"{path} imports {bad}"


LAYERS = ["programs", "benchmarks", "evaluation", "cli"]  # each may import the ones before it, never after


def test_dependencies_point_one_way_core_programs_benchmarks_evaluation_cli():
    folders = {"programs": ROOT / "programs", **{layer: ROOT / "postreason_dspy" / layer for layer in LAYERS[1:]}}
    core = [p for p in (ROOT / "postreason_dspy").glob("*.py")]
    for layer_index, layer in enumerate([None, *LAYERS]):
        files = core if layer is None else list(folders[layer].rglob("*.py"))
        later = LAYERS[layer_index:]
        for path in files:
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] != "postreason_dspy" or len(parts) < 2:
                    continue
                assert parts[1] not in later, f"{path.relative_to(ROOT)} imports {name} from a later layer"
