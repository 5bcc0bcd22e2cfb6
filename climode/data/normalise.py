"""Per-variable normalisation: statistics computed out of core, applied and inverted exactly.

Statistics are a dict ``{variable: {"method": "minmax"|"zscore", ...}}`` holding ``min``/``max``
or ``mean``/``std`` in the variable's physical units; they are JSON-serialisable so they travel
with shards and checkpoints.
"""

from __future__ import annotations

import dask
import numpy as np
import torch
import xarray as xr

from ..errors import check_choice

METHODS = ("minmax", "zscore")


def compute_stats(ds: xr.Dataset, variables: list[str], method: str = "minmax") -> dict:
    """Statistics of ``variables`` over all of ``ds`` (NaN ignored), computed with dask in one pass."""
    check_choice("normalisation", method, METHODS)
    if method == "minmax":
        lazy = {v: (ds[v].min(skipna=True), ds[v].max(skipna=True)) for v in variables}
    else:
        lazy = {v: (ds[v].mean(skipna=True), ds[v].std(skipna=True)) for v in variables}
    (values,) = dask.compute(lazy)
    keys = ("min", "max") if method == "minmax" else ("mean", "std")
    return {v: {"method": method, keys[0]: float(a), keys[1]: float(b)} for v, (a, b) in values.items()}


def _scale(stats: dict) -> tuple[float, float]:
    if stats["method"] == "minmax":
        return stats["min"], max(stats["max"] - stats["min"], 1e-12)
    return stats["mean"], max(stats["std"], 1e-12)


def _broadcast(frames, values: tuple[float, ...], axis: int):
    shape = [1] * frames.ndim
    shape[axis] = len(values)
    if isinstance(frames, np.ndarray):
        return np.asarray(values, dtype=np.float64).reshape(shape)
    return frames.new_tensor(values, dtype=torch.float64).reshape(shape)


def normalise(frames, stats: dict, variables: list[str], axis: int = -3):
    """Scale ``frames`` (numpy or torch) whose ``axis`` runs over ``variables`` (default (..., C, H, W))."""
    offset, scale = zip(*(_scale(stats[v]) for v in variables))
    out = (frames - _broadcast(frames, offset, axis)) / _broadcast(frames, scale, axis)
    return out.astype(frames.dtype) if isinstance(frames, np.ndarray) else out.to(frames.dtype)


def denormalise(frames, stats: dict, variables: list[str], axis: int = -3):
    """The inverse of ``normalise``, in physical units."""
    offset, scale = zip(*(_scale(stats[v]) for v in variables))
    out = frames * _broadcast(frames, scale, axis) + _broadcast(frames, offset, axis)
    return out.astype(frames.dtype) if isinstance(frames, np.ndarray) else out.to(frames.dtype)
