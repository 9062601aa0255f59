"""POSTREASON_PLUGINS: your own benchmarks and strategies on the command line.

A benchmark or strategy registered in Python exists only once the module registering it is
imported. Every `postreason` command first imports each entry of the comma-separated
POSTREASON_PLUGINS: a module name (`mypackage.benchmarks`, importable from the environment) or the
path of a Python file (`./capitals.py`, imported as the module `capitals`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from postreason_dspy.cli.options import split_names
from postreason_dspy.errors import ConfigurationError

PLUGINS_VARIABLE = "POSTREASON_PLUGINS"


def load_plugins(value: str | None = None) -> list[ModuleType]:
    """Import every entry of `value` (default: $POSTREASON_PLUGINS), in order; a second call reuses them."""
    text = os.environ.get(PLUGINS_VARIABLE, "") if value is None else value
    return [_load(entry) for entry in split_names(text)]


def _load(entry: str) -> ModuleType:
    is_file = entry.endswith(".py") or os.sep in entry or "/" in entry
    try:
        return _load_file(Path(entry)) if is_file else importlib.import_module(entry)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{PLUGINS_VARIABLE}: {entry!r}: {exc}") from exc
    except ModuleNotFoundError as exc:
        if exc.name != entry:
            raise _import_failed(entry, exc) from exc
        raise ConfigurationError(
            f"{PLUGINS_VARIABLE}: no module named {entry!r}; install it, add its folder to PYTHONPATH, "
            f"or give the file's path (./{entry}.py)"
        ) from None
    except Exception as exc:
        raise _import_failed(entry, exc) from exc


def _import_failed(entry: str, exc: Exception) -> ConfigurationError:
    """One line naming the error and where in the plugin it happened."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return ConfigurationError(
        f"{PLUGINS_VARIABLE}: importing {entry!r} failed: {type(exc).__name__}: {exc} "
        f"({frame.filename}, line {frame.lineno})"
    )


def _load_file(path: Path) -> ModuleType:
    """Import a .py file under its stem, once: registering its benchmarks twice would be refused."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ConfigurationError(f"no such file {str(path)!r}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
            return loaded
        raise ConfigurationError(f"a module {name!r} is already imported from {loaded.__file__}; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{str(path)!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it, as import does (dataclasses look their module up)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
