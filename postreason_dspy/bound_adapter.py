"""A program that carries its own output format: it runs every call under the adapter it was tuned with.

DSPy takes the adapter from the global settings, so a program tuned for XMLAdapter or PlainTextAdapter
would silently run with ChatAdapter elsewhere. `with_adapter` returns a copy whose class is a subclass of
the program's own that enters `dspy.context(adapter=...)` on every call: predictor names, saved state and
`isinstance` checks stay as they were, and copies (`deepcopy`) keep the adapter.
"""

from __future__ import annotations

from typing import Any

import dspy

from postreason_dspy.adapters import adapter_class, adapter_name


class _AdapterBound:
    """Mixin of `with_adapter`'s classes: every call runs under `self.bound_adapter`."""

    bound_adapter: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with dspy.context(adapter=adapter_class(self.bound_adapter)()):
            return super().__call__(*args, **kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        with dspy.context(adapter=adapter_class(self.bound_adapter)()):
            return await super().acall(*args, **kwargs)


_CLASSES: dict[type, type] = {}


def _bound_class(cls: type) -> type:
    if issubclass(cls, _AdapterBound):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type(cls.__name__, (_AdapterBound, cls), {"__module__": cls.__module__,
                                                                   "__qualname__": cls.__qualname__})
    return _CLASSES[cls]


def with_adapter(program: dspy.Module, name: str) -> dspy.Module:
    """A copy of `program` that runs with adapter `name` whatever the global settings say."""
    name = adapter_name(name)
    copy = program.deepcopy()
    copy.__class__ = _bound_class(type(copy))
    copy.bound_adapter = name
    return copy


def bound_adapter(program: dspy.Module) -> str | None:
    """The adapter `program` carries (see `with_adapter`), or None."""
    return getattr(program, "bound_adapter", None) if isinstance(program, _AdapterBound) else None
