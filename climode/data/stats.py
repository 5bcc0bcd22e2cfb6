"""The normalisation statistics of a store's training samples, computed out of core
(``climode.normalise`` holds the ``Stats`` type and applies them)."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from ..errors import ClimodeError, check_choice
from ..normalise import METHODS, Stats


def compute_stats(ds: xr.Dataset, variables: list[str], method: str = "minmax") -> Stats:
    """Statistics of ``variables`` over all of ``ds`` (NaN ignored) and the range seen, in one dask pass."""
    check_choice("normalisation", method, tuple(METHODS))
    lazy = {v: (ds[v].min(skipna=True), ds[v].max(skipna=True)) for v in variables}
    if method == "zscore":
        lazy = {v: (*lazy[v], ds[v].mean(skipna=True), ds[v].std(skipna=True)) for v in variables}
    (values,) = dask.compute(lazy)
    for v, x in values.items():
        if not np.isfinite(x).all() or float(x[1]) <= float(x[0]):
            what = "has no valid value" if not np.isfinite(x[0]) else f"is constant ({float(x[0]):g})"
            raise ClimodeError(
                f"variable {v} {what} in the training data; a model cannot be scaled on it: leave it out"
            )
    low, high = METHODS[method]
    return Stats.from_dict(
        {
            v: {
                "method": method,
                low: float(x[-2]),
                high: float(x[-1]),
                "seen_min": float(x[0]),
                "seen_max": float(x[1]),
            }
            for v, x in values.items()
        }
    )
