"""The normalisation statistics of a store's training samples, computed out of core
(``climode.normalise`` holds the ``Stats`` type and applies them)."""

from __future__ import annotations

import dask
import xarray as xr

from ..errors import check_choice
from ..normalise import METHODS, Stats


def compute_stats(ds: xr.Dataset, variables: list[str], method: str = "minmax") -> Stats:
    """Statistics of ``variables`` over all of ``ds`` (NaN ignored), computed with dask in one pass."""
    check_choice("normalisation", method, tuple(METHODS))
    if method == "minmax":
        lazy = {v: (ds[v].min(skipna=True), ds[v].max(skipna=True)) for v in variables}
    else:
        lazy = {v: (ds[v].mean(skipna=True), ds[v].std(skipna=True)) for v in variables}
    (values,) = dask.compute(lazy)
    low, high = METHODS[method]
    return Stats.from_dict({v: {"method": method, low: float(a), high: float(b)} for v, (a, b) in values.items()})
