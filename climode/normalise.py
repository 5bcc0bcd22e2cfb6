"""Normalisation, in one place: the statistics a model's inputs were scaled with (``Stats``) and the
wrapper that puts them around a model (``Normalised``), so that forecasts speak physical units.

A model works on scaled frames: ``(x - offset) / scale`` per variable, where min-max scaling takes
``offset = min, scale = max - min`` and z-scores ``offset = mean, scale = std``, all in the
variable's physical units. The statistics are computed once when a store is written
(``climode.data.prepare``), saved with the store and with every checkpoint trained on it, and read
back here as a ``Stats``; their JSON form is ``{variable: {"method": "minmax", "min": .., "max": ..}}``
or ``{variable: {"method": "zscore", "mean": .., "std": ..}}``, each with the range training saw
(``seen_min``, ``seen_max``) where it was kept. Samples from a store are scaled (the
units the model trains and is scored in); ``Normalised`` takes and returns physical units.

Only numpy and torch are needed here, so a bare model can be wrapped without the data stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

METHODS = {"minmax": ("min", "max"), "zscore": ("mean", "std")}  # method -> its two statistics
TINY = 1e-12  # the smallest scale: a constant variable is shifted, not divided by zero


@dataclass(frozen=True)
class Scaling:
    """One variable's statistics in its physical units: ``method`` ("minmax" or "zscore") and its
    two statistics ``first`` (min or mean) and ``second`` (max or std); ``seen`` the least and
    greatest value training saw (None in statistics written before it was kept)."""

    method: str
    first: float
    second: float
    seen: tuple[float, float] | None = None

    @property
    def offset(self) -> float:
        return self.first

    @property
    def scale(self) -> float:
        spread = self.second - self.first if self.method == "minmax" else self.second
        return max(spread, TINY)

    def to_dict(self) -> dict:
        low, high = METHODS[self.method]
        seen = {"seen_min": self.seen[0], "seen_max": self.seen[1]} if self.seen else {}
        return {"method": self.method, low: self.first, high: self.second, **seen}


@dataclass(frozen=True)
class Stats:
    """Per-variable ``Scaling`` (physical units), in the order the variables were written."""

    variables: dict[str, Scaling]

    @classmethod
    def from_dict(cls, values: dict) -> Stats:
        """The statistics of their JSON form (module docstring); an unknown method is refused."""
        out = {}
        for name, entry in values.items():
            method = entry.get("method") if isinstance(entry, dict) else None
            if method not in METHODS:
                raise ValueError(f"normalisation of {name!r}: method {method!r} is not one of {', '.join(METHODS)}")
            low, high = METHODS[method]
            seen = (float(entry["seen_min"]), float(entry["seen_max"])) if "seen_min" in entry else None
            out[name] = Scaling(method, float(entry[low]), float(entry[high]), seen)
        return cls(out)

    def to_dict(self) -> dict:
        return {name: scaling.to_dict() for name, scaling in self.variables.items()}

    def __len__(self) -> int:
        """Variables with statistics: empty statistics are false, as no statistics."""
        return len(self.variables)

    def _factors(self, frames, variables: list[str], axis: int):
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise KeyError(f"no normalisation statistics for {', '.join(missing)} (have {', '.join(self.variables)})")
        shape = [1] * frames.ndim
        shape[axis] = len(variables)
        pairs = [(self.variables[v].offset, self.variables[v].scale) for v in variables]
        if isinstance(frames, np.ndarray):
            values = np.asarray(pairs, dtype=np.float64).T
            return values[0].reshape(shape), values[1].reshape(shape)
        values = frames.new_tensor(pairs, dtype=torch.float64).T
        return values[0].reshape(shape), values[1].reshape(shape)

    def normalise(self, frames, variables: list[str], axis: int = -3):
        """Scaled ``frames`` (numpy or torch, any shape; ``axis`` runs over ``variables``, default
        (..., C, H, W)), in the input's dtype."""
        offset, scale = self._factors(frames, variables, axis)
        out = (frames - offset) / scale
        return out.astype(frames.dtype) if isinstance(frames, np.ndarray) else out.to(frames.dtype)

    def denormalise(self, frames, variables: list[str], axis: int = -3):
        """The inverse of ``normalise``: ``frames`` back in physical units."""
        offset, scale = self._factors(frames, variables, axis)
        out = frames * scale + offset
        return out.astype(frames.dtype) if isinstance(frames, np.ndarray) else out.to(frames.dtype)


class Normalised(nn.Module):
    """A model that takes and returns physical units: ``model`` (called as
    ``model(frames, times, query) -> {"frames": ..., ...}``, ``climode.model``) with the statistics
    ``stats`` of its ``variables`` (channel order) around it.

    ``forward(frames, times, query)``: ``frames`` (B, L, C, H, W) in physical units, NaN missing.
    Returns the model's outputs with ``frames`` (B, K, C, H, W) in physical units; the other
    outputs (flows, weights, validity, ...) are the model's own. ``residual`` stays scaled: parts are
    composed in the model's units, with ``scale_inputs`` and ``physical`` on either side.
    """

    def __init__(self, model: nn.Module, stats: Stats | None, variables: list[str]):
        super().__init__()
        self.model, self.stats, self.variables = model, stats, list(variables)

    def scale_inputs(self, frames):
        """``frames`` (..., C, H, W) in physical units -> the model's units."""
        return frames if self.stats is None else self.stats.normalise(frames, self.variables)

    def physical(self, frames):
        """``frames`` (..., C, H, W) in the model's units -> physical units."""
        return frames if self.stats is None else self.stats.denormalise(frames, self.variables)

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query: torch.Tensor) -> dict:
        out = dict(self.model(self.scale_inputs(frames), times, query))
        out["frames"] = self.physical(out["frames"])
        return out
