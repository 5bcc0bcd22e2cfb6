"""Names of a package imported on first use (PEP 562), so that importing the package, or running a
command under it, loads nothing heavy until a name is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(namespace: dict, homes: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for the package whose globals are ``namespace``: each name of ``homes``
    (public name -> the relative module that defines it) is imported from its home on first use and
    kept in ``namespace``; any other name is an AttributeError."""
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name], package), name)
        namespace[name] = value
        return value

    return __getattr__
