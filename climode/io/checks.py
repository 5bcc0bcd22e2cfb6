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
from ..geo.grid import grid_step
from ..normalise import Stats

MIN_CELLS = 16  # per side on the model's grid: the encoder works at 1/4, so 4 x 4 latent cells
MEMORY_SHARE = 0.8  # of the available memory, at most, for a forecast
STATS_MARGIN = 0.5  # a variable may pass its training range by this share of the range before a warning
USABLE = 0.1  # a frame with fewer valid cells than this share (all variables together) is a missing frame


def source(ds: xr.Dataset) -> str:
    """How messages name ``ds``: the files it was read from (``open_fields``), else "the input"."""
    where = str(ds.attrs.get("climode_sources") or "the input")
    return where if len(where) < 120 else where[:117] + "..."


def check_values(ds: xr.Dataset, variables, stats: Stats | None = None) -> None:
    """Refuse Inf values and values outside a known variable's plausible range (``conventions``);
    warn when a variable without a known range leaves the range its training saw (``stats``; mean
    +- 6 std for statistics without it) by more than STATS_MARGIN of that range. NaN is a missing
    cell, never refused here."""
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
            if scaling.seen is not None:
                lo, hi = scaling.seen
            elif scaling.method == "minmax":
                lo, hi = scaling.first, scaling.second
            else:  # statistics written before the range seen was kept: a wide guess at it
                lo, hi = scaling.first - 6 * scaling.second, scaling.first + 6 * scaling.second
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


# A forecast's peak memory and one-core time, calibrated on the bundled model (width 16) by peak RSS and
# wall time on 0.05- to 1-degree grids, 5 to 20 input frames, 3 to 48 query times, leads to 9000 h
# (tests/test_bounds.py lists the runs; the estimate is 1.1 to 1.9 times their peaks). Per input cell
# and variable: INPUT_BYTES per input frame besides the input as stored (its native copy, the box
# mean's padded copies and counts on the way to the model's grid), QUERY_BYTES per query time (the
# model's frames, flows and weights upsampled, the inputs warped along them, their detail, the outputs,
# and the dependence probe's second forecast, counted always: whether the inputs have NaN is known only
# once they are read). Per model cell of a batch of windows and unit of the model's width: LATENT_BYTES
# per input frame, query time and decoder ODE step (its states).
INPUT_BYTES, QUERY_BYTES = 36, 88
LATENT_BYTES = (16, 64, 4)
WINDOW_BATCH = 4  # windows the model forecasts at once (prediction.predict)
OVERHEAD_BYTES = 32 * 2**20  # torch's buffers of a first forecast
# seconds per input cell and variable, for each input frame and twice each query time (the probe):
# CELL_S, the box mean down to the model's grid included (running sums: the same whatever the box's
# width); per model cell and unit of width: MODEL_S per query time and ODE step
CELL_S = 2e-6
MODEL_S = (6e-7, 6e-8)
# per cell, variable, query time and member beyond the first (climode.ensemble.perturb): the member's
# float32 frames, its scaled copy and warp's grid and output (MEMBER_BYTES), and their time (MEMBER_S)
MEMBER_BYTES, MEMBER_S = 24, 1e-7
MAX_HOURS = 24.0  # a forecast estimated to run longer on one core is refused as unbounded


def forecast_cost(
    ds: xr.Dataset,
    variables,
    n_queries: int,
    resolution: float | None = None,
    tile_shape: tuple[int, int] | None = None,
    width: int = 0,
    steps: float = 0.0,
    members: int = 1,
) -> tuple[float, float]:
    """(bytes, seconds): the peak memory and the one-core time of forecasting ``variables`` of ``ds``
    (time, ..., H, W; not read) at ``n_queries`` times with a model of ``width`` channels (0: a baseline)
    on a ``resolution``-degree lat/lon grid (None: ``ds``'s own) in windows of ``tile_shape`` cells,
    its decoder taking ``steps`` ODE steps to the latest query: the whole path, from the inputs as
    stored through the model's grid and back to the outputs on ``ds``'s grid, ``members`` of them
    (``climode.ensemble``: each a copy of the outputs, perturbed)."""
    frames, channels = ds.sizes["time"], len(variables)
    cells = int(np.prod(ds[variables[0]].shape[-2:]))
    ratio = 1.0  # model cells per input cell
    if resolution is not None and {"lat", "lon"} <= set(ds.coords):
        dy, dx = abs(grid_step(ds.lat.values)), grid_step(np.sort(ds.lon.values))
        ratio = dy * dx / resolution**2
    model = cells * ratio
    batch = min(model, WINDOW_BATCH * float(np.prod(tile_shape))) if tile_shape else model
    inputs = sum(ds[v].size * ds[v].dtype.itemsize for v in variables)
    need = (
        inputs
        + cells * channels * (frames * INPUT_BYTES + n_queries * QUERY_BYTES)
        + batch * width * (frames * LATENT_BYTES[0] + n_queries * LATENT_BYTES[1] + steps * LATENT_BYTES[2])
        + cells * channels * n_queries * max(members - 1, 0) * MEMBER_BYTES
        + OVERHEAD_BYTES
    )
    seconds = (
        cells * channels * (frames + 2 * n_queries) * CELL_S
        + model * width * (n_queries * MODEL_S[0] + steps * MODEL_S[1])
        + cells * channels * n_queries * max(members - 1, 0) * MEMBER_S
    )
    return need, seconds


def check_memory(ds: xr.Dataset, variables, n_queries: int, **model) -> None:
    """Refuse, before anything is read, a forecast (``forecast_cost``'s arguments; ``model`` its
    resolution, tile_shape, width and steps) that will not fit in MEMORY_SHARE of the memory this
    machine has free, or that would run for more than MAX_HOURS."""
    need, seconds = forecast_cost(ds, variables, n_queries, **model)
    shape = " x ".join(map(str, ds[variables[0]].shape[-2:]))
    members = model.get("members", 1)
    what = f"{source(ds)}: forecasting {ds.sizes['time']} input frames at {n_queries:,} time(s) on its {shape} grid"
    what += f" with {members:,} members" if members > 1 else ""
    way_out = "forecast a region (subset lat/lon), a coarser grid, or fewer times per call" + (
        " or fewer members" if members > 1 else ""
    )
    free = available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise ClimodeError(
            f"{what} takes about {_size(need)}, more than the {_size(MEMORY_SHARE * free)} this machine can "
            f"spare: {way_out}"
        )
    if seconds > MAX_HOURS * 3600:
        raise ClimodeError(
            f"{what} would run for about {seconds / 3600:,.0f} hours on one core (climode refuses more than "
            f"{MAX_HOURS:g} as unbounded): {way_out}"
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
