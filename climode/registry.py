"""One registry style for every kind of plug-in chosen by name (models, baselines, metrics,
datasets, protocols, presets), as pySTEPS's ``get_method(name)``: a dict from name to the thing,
whose ``get_method`` refuses an unknown name in one line that lists the choices. Each registry's
call contract is written in the docstring of the module that fills it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from .errors import ClimodeError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Things of one ``kind`` by name; ``unavailable`` names those that exist but cannot be used
    here (a missing optional package), each with the one-line reason."""

    def __init__(self, kind: str, items: Mapping[str, T] | None = None, unavailable: Mapping[str, str] | None = None):
        super().__init__(items or {})
        self.kind = kind
        self.unavailable = dict(unavailable or {})

    def get_method(self, name: str) -> T:
        """The thing called ``name``; ClimodeError naming the choices when there is none."""
        if name in self.unavailable:
            raise ClimodeError(self.unavailable[name])
        if name not in self:
            raise ClimodeError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
        return self[name]
