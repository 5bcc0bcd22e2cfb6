"""What fields must satisfy before any model sees them: finite values, physically plausible ranges,
a grid large enough for the model, frames with enough valid cells to count as observations, and a
word on missing regions of the last input frame.

Problems a forecast cannot survive are refused with one ``ClimodeError`` naming the variable, what
was found and what is allowed; doubtful ones are warned about (``UserWarning``).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import xarray as xr

from ..conventions import VARIABLES
from ..errors import ClimodeError
from ..normalise import Stats

MIN_CELLS = 16  # per side on the model's grid: the encoder works at 1/4, so 4 x 4 latent cells
MEMORY_SHARE = 0.8  # of the available memory, at most, for a forecast's fields
STATS_MARGIN = 0.5  # a variable may pass its training range by this share of the range before a warning
USABLE = 0.1  # a frame with fewer valid cells than this share (all variables together) is a missing frame


def source(ds: xr.Dataset) -> str:
    """How messages name ``ds``: the files it was read from (``open_fields``), else "the input"."""
    where = str(ds.attrs.get("climode_sources") or "the input")
    return where if len(where) < 120 else where[:117] + "..."


def check_values(ds: xr.Dataset, variables, stats: Stats | None = None) -> None:
    """Refuse Inf values and values outside a known variable's plausible range (``conventions``);
    warn when a variable without a known range leaves its training range (``stats``) by more than
    STATS_MARGIN of that range. NaN is a missing cell, never refused here."""
    where = source(ds)
    for name in variables:
        values = np.asarray(ds[name].values)
        infinite = np.isinf(values)
        if infinite.any():
            first = _where(ds[name], infinite)
            raise ClimodeError(
                f"{where}: {name} has {int(infinite.sum())} infinite value(s) (Inf or -Inf, first {first}); "
                "climode takes NaN for a missing cell, never Inf"
            )
        finite = values[np.isfinite(values)]
        if not finite.size:
            continue
        known = VARIABLES.get(name)
        low, high = float(finite.min()), float(finite.max())
        if known is not None and known.plausible is not None:
            lo, hi = known.plausible
            outside = (finite < lo) | (finite > hi)
            if outside.any():
                raise ClimodeError(
                    f"{where}: {name} has {int(outside.sum())} value(s) outside the plausible {lo:g} to {hi:g} "
                    f"{known.units} (found {low:g} to {high:g} {known.units}); check its units and fill values"
                )
        elif stats is not None and name in stats.variables:
            scaling = stats.variables[name]
            if scaling.method == "minmax":
                lo, hi = scaling.first, scaling.second
            else:
                lo, hi = scaling.first - 4 * scaling.second, scaling.first + 4 * scaling.second
            margin = STATS_MARGIN * (hi - lo)
            if low < lo - margin or high > hi + margin:
                warnings.warn(
                    f"{where}: {name} spans {low:g} to {high:g}, beyond what the model was trained on "
                    f"({lo:g} to {hi:g}) by more than {STATS_MARGIN:.0%} of that range; check its units",
                    stacklevel=3,
                )


def available_memory() -> int | None:
    """Bytes of memory this machine can give without swapping (Linux ``MemAvailable``; free pages
    elsewhere on POSIX); None where it cannot be told."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_memory(ds: xr.Dataset, variables, n_queries: int) -> None:
    """Refuse, before anything is read, a forecast whose fields will not fit in the memory available:
    the inputs as stored plus, per query time, the forecast and its working copies (about 24 bytes per
    cell and variable) on ``ds``'s grid, against MEMORY_SHARE of what the machine has free."""
    cells = int(np.prod(ds[variables[0]].shape[-2:]))
    inputs = sum(ds[v].size * ds[v].dtype.itemsize for v in variables)
    need = inputs + n_queries * len(variables) * cells * 24
    free = available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        shape = " x ".join(map(str, ds[variables[0]].shape[-2:]))
        raise ClimodeError(
            f"{source(ds)}: forecasting {ds.sizes['time']} input frames at {n_queries} time(s) on its {shape} grid "
            f"takes about {_size(need)}, more than the {_size(MEMORY_SHARE * free)} this "
            "machine can spare: forecast a region (subset lat/lon), a coarser grid, or fewer times per call"
        )


def check_grid(ds: xr.Dataset, where: str) -> None:
    """Refuse a grid smaller than MIN_CELLS x MIN_CELLS (the last two dims of ``ds``'s variables)."""
    dims = list(next(iter(ds.data_vars.values())).dims[-2:])
    shape = [ds.sizes[d] for d in dims]
    if min(shape) < MIN_CELLS:
        raise ClimodeError(
            f"{where} is {shape[0]} x {shape[1]} cells ({', '.join(dims)}) on the model's grid; the model needs "
            f"at least {MIN_CELLS} x {MIN_CELLS} (it encodes at a quarter of the resolution): give a larger region"
        )


def usable_frames(ds: xr.Dataset, variables) -> tuple[xr.Dataset, list]:
    """``ds`` (time, ...) without the frames that have fewer than USABLE of their cells valid over
    ``variables`` together, and the times of those left out. Such a frame is a missing observation:
    filling nine tenths of a frame from older ones would pass stale fields off as the latest state, so
    the forecast starts from the last usable frame instead. One warning names the frames left out;
    a record with no usable frame is refused."""
    T = ds.sizes["time"]
    share = np.mean([np.isfinite(ds[v].values).reshape(T, -1).mean(1) for v in variables], 0)
    keep = share >= USABLE
    if keep.all():
        return ds, []
    if not keep.any():
        raise ClimodeError(
            f"{source(ds)}: no input frame has {USABLE:.0%} of its cells valid (the best has {share.max():.1%})"
        )
    skipped = list(ds.time.values[~keep])
    listed = ", ".join(f"{t} ({s:.0%} valid)" for t, s in zip(skipped, share[~keep]))
    last = ds.time.values[np.flatnonzero(keep)[-1]]
    warnings.warn(
        f"{source(ds)}: input frame(s) {listed} have fewer than {USABLE:.0%} of their cells valid and are "
        f"treated as missing frames; the forecast starts from the last usable frame, {last}, and lead times "
        "count from it (the output lists them in climode_skipped_input_times)",
        stacklevel=3,
    )
    return ds.isel(time=np.flatnonzero(keep)), skipped


def warn_missing_last(ds: xr.Dataset, variables) -> None:
    """Warn when the last observed frame (one with any finite cell) misses cells where an earlier
    frame had values: the forecast there is built from the last valid values, not from that frame."""
    T = ds.sizes["time"]
    observed = np.any([np.isfinite(ds[name].values).reshape(T, -1).any(1) for name in variables], 0)
    last = int(np.flatnonzero(observed)[-1])
    variables = list(variables)
    hole = np.zeros(ds[variables[0]].shape[-2:], bool)
    for name in variables:
        values = ds[name].values
        earlier = np.isfinite(values[:last]).any(0) if last else np.zeros_like(hole)
        hole |= ~np.isfinite(values[last]) & earlier
    if hole.any():
        box = _box(ds[variables[0]].isel(time=last), hole)
        warnings.warn(
            f"{source(ds)}: the last input frame ({ds.time.values[last]}) is missing {int(hole.sum())} of {hole.size} "
            f"cells ({hole.mean():.0%}{box}) that earlier frames have; the forecast there starts from their last "
            "valid values (what depends on them is flagged in the output's `filled`; --mask-filled sets it NaN)",
            stacklevel=3,
        )


def _where(da: xr.DataArray, mask: np.ndarray) -> str:
    index = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return ", ".join(f"{d}={da[d].values[i]}" if d in da.coords else f"{d}={i}" for d, i in zip(da.dims, index))


def _box(da: xr.DataArray, mask: np.ndarray) -> str:
    if not {"lat", "lon"} <= set(da.dims):
        return ""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    lat, lon = da.lat.values, da.lon.values
    return f"; lat {lat[rows[0]]:g} to {lat[rows[-1]]:g}, lon {lon[cols[0]]:g} to {lon[cols[-1]]:g}"
