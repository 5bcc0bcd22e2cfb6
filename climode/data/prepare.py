"""Fields -> tiles -> irregular samples -> shards: the lazy construction of a shard store.

Everything here builds dask graphs; nothing is computed until the store is written (or the
statistics are computed), so with dask.distributed the work is spread over workers and
memory stays bounded by the chunk size, not by the number of input files.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict

import cftime
import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .. import __version__
from ..errors import ClimodeError
from ..tiles import Tile, extract
from ..tracks import storm_periods
from .normalise import compute_stats
from .sampling import SamplingConfig, draw_many, every_window
from .shards import SPLITS, staged, tracks_table

REFERENCE = "hours since 0001-01-01 00:00:00"
BATCH = 64  # time steps or samples computed per dask graph


def split_storms(storms: list[str], fractions=(0.8, 0.1, 0.1)) -> dict[str, str]:
    """Assign each storm to train/val/test by a stable hash of its id (never one storm in two splits)."""
    ordered = sorted(storms, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    n = len(ordered)
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    return {s: ("test" if i < n_test else "val" if i < n_test + n_val else "train") for i, s in enumerate(ordered)}


def to_hours(times, calendar: str) -> np.ndarray:
    """cftime datetimes -> float hours since 0001-01-01 on ``calendar``."""
    return np.asarray(cftime.date2num(list(times), REFERENCE, calendar=calendar), dtype=np.float64)


def step_hours(ds: xr.Dataset) -> float:
    """The typical spacing of ``ds.time`` in hours (the median; storage is assumed regular)."""
    hours = to_hours(ds.time.values, ds.time.values[0].calendar)
    return float(np.median(np.diff(hours))) if len(hours) > 1 else 3.0


def _step_index(ds_hours: np.ndarray, hours: float) -> int:
    return int(np.argmin(np.abs(ds_hours - hours)))


def _time_blocks(ds: xr.Dataset, fractions=(0.8, 0.1, 0.1)) -> pd.DataFrame:
    """Contiguous train/val/test blocks of the record, for data with no storm selection."""
    times = ds.time.values
    edges = np.round(np.cumsum((0,) + fractions) * len(times)).astype(int)
    return pd.DataFrame([{"storm": name, "start": times[a], "end": times[b - 1]}
                         for name, a, b in zip(SPLITS, edges[:-1], edges[1:], strict=True) if b > a])


def plan_samples(ds: xr.Dataset, tiles: list[Tile] | None, tracks: pd.DataFrame | None, sampling: SamplingConfig,
                 per_period: int, seed: int) -> pd.DataFrame:
    """One row per sample: tile, storm, split and the step indices (into ``ds.time``) of its
    inputs, their observed flags and its targets.

    With tracks, each storm's stay in a tile is a period, ``per_period`` samples are drawn from
    it, and storms are split by ``split_storms``. Without tracks the record is cut into
    contiguous train/val/test blocks (80/10/10) and every window of each block is a sample.
    ``tiles`` None takes the whole grid (any grid, e.g. projected y/x) as one tile, "grid".
    """
    calendar = ds.time.values[0].calendar
    ds_hours = to_hours(ds.time.values, calendar)
    rng = np.random.default_rng(seed)
    rows = []
    for tile in tiles or [None]:
        periods = _time_blocks(ds) if tracks is None else storm_periods(tracks, tile.lat_range, tile.lon_range)
        for period in periods.itertuples():
            first = _step_index(ds_hours, to_hours([period.start], calendar)[0])
            last = _step_index(ds_hours, to_hours([period.end], calendar)[0])
            n = last - first + 1
            drawn = every_window(n, sampling, rng) if tracks is None else draw_many(n, sampling, per_period, rng)
            for inputs, observed, targets in drawn:
                rows.append({"tile": tile.name if tile else "grid", "storm": str(period.storm),
                             "inputs": first + inputs, "observed": observed, "targets": first + targets})
    if not rows:
        what = "no storm stays inside the tiles long enough" if tracks is not None else "the record is too short"
        need = sampling.steps(sampling.min_gap_h) * (sampling.n_in - 1) + sampling.steps(sampling.lead_step_h) * (
            sampling.n_out) + 1
        raise ClimodeError(f"no samples: {what} for {sampling.n_in} inputs and {sampling.n_out} targets "
                           f"(at least {need} steps of {sampling.step_h:g} h are needed)")
    plan = pd.DataFrame(rows)
    if tracks is None:
        plan["split"] = plan.storm
    else:
        splits = split_storms(sorted(set(plan.storm)))
        plan["split"] = plan.storm.map(splits) if len(splits) > 1 else "train"
    return plan


def _tile_field(ds: xr.Dataset, tile: Tile | None, steps: np.ndarray, variables: list[str],
                resolution: float | None) -> xr.Dataset:
    """The tile's fields (or the whole grid's, for ``tile`` None) at ``steps`` as one float32
    array (time, variable, y, x)."""
    field = ds[variables].isel(time=steps)
    if tile is not None:
        field = extract(field, tile, resolution)
    field = field.to_array("variable")
    y, x = field.dims[-2:]
    field = field.transpose("time", "variable", y, x).astype(np.float32).chunk({"time": 1, "variable": -1})
    return xr.Dataset({"field": field.chunk({y: -1, x: -1})}, coords={"step": ("time", steps)}).drop_vars("time")


def _write_in_batches(dataset: xr.Dataset, store, dim: str, batch: int = BATCH) -> None:
    """Write ``dataset`` to a new zarr store ``batch`` entries of ``dim`` at a time, so that each
    dask graph, and the memory of the scheduler and workers, stays the same size however long
    ``dim`` is."""
    dataset.to_zarr(store, mode="w", compute=False, consolidated=False, zarr_format=2)  # widest readership
    along = [name for name, var in dataset.variables.items() if dim in var.dims]
    for start in range(0, dataset.sizes[dim], batch):
        part = dataset[along].isel({dim: slice(start, start + batch)})
        part.drop_vars([c for c in part.coords if dim not in part[c].dims]).to_zarr(
            store, region={dim: slice(start, start + batch)}, consolidated=False)


def _read_sample(store: str, positions: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """One sample's frames (T, C, H, W) from a staged tile store, unobserved frames NaN."""
    field = xr.open_zarr(store, chunks=None, consolidated=False)["field"]
    frames = field.isel(time=positions).values  # reads only these steps
    frames[~keep] = np.nan
    return frames


def write_shards(out, ds: xr.Dataset, tiles: list[Tile], plan: pd.DataFrame, variables: list[str],
                 resolution: float | None, normalisation: str, tracks: pd.DataFrame | None,
                 sampling: SamplingConfig, provenance: dict, overwrite: bool = False):
    """Write the shard store (see ``climode.data.shards``) in three dask passes inside a staging
    directory: each tile regridded once over the steps its samples use; one task per sample
    gathering its frames; statistics of the training split read back. The staging directory
    is renamed to ``out`` only when all of it is written."""
    calendar = ds.time.values[0].calendar
    ds_hours = to_hours(ds.time.values, calendar)
    split = plan.split.to_numpy()
    if not (split == "train").any():
        raise ClimodeError("no training samples after splitting by storm; give more storms or data")
    steps_of = {r.Index: np.concatenate((r.inputs, r.targets)) for r in plan.itertuples()}
    with staged(out, overwrite) as stage:
        grids, parts = {}, []
        for name, rows in plan.groupby("tile").groups.items():
            tile = next((t for t in tiles or [] if t.name == name), None)
            steps = np.unique(np.concatenate([steps_of[i] for i in rows]))
            field = _tile_field(ds, tile, steps, variables, resolution)
            _write_in_batches(field, stage / f"tile-{name}.zarr", "time")
            grids[name] = tuple(field[d].values for d in field.field.dims[-2:])
            for i in rows:
                keep = np.concatenate((plan.observed[i], np.ones(len(plan.targets[i]), dtype=bool)))
                lazy = dask.delayed(_read_sample)(str(stage / f"tile-{name}.zarr"),
                                                  np.searchsorted(steps, steps_of[i]), keep)
                parts.append((i, da.from_delayed(lazy, (len(keep), len(variables), *field.field.shape[2:]),
                                                 np.float32)))
        frames = da.stack([p for _, p in sorted(parts, key=lambda x: x[0])])
        dims = field.field.dims[-2:]
        coord_names = ("lat", "lon") if dims == ("lat", "lon") else tuple(f"{d}_coord" for d in dims)
        shards = xr.Dataset(
            {"frames": (("sample", "step", "variable", "y", "x"), frames),
             "hours": (("sample", "step"), np.stack([ds_hours[steps_of[i]] for i in plan.index])),
             coord_names[0]: (("sample", "y"), np.stack([grids[t][0] for t in plan.tile])),
             coord_names[1]: (("sample", "x"), np.stack([grids[t][1] for t in plan.tile])),
             "storm": ("sample", plan.storm.to_numpy().astype(str)),
             "tile": ("sample", plan.tile.to_numpy().astype(str)),
             "split": ("sample", split.astype(str)),
             **tracks_table(tracks, lambda t: to_hours(t, calendar))},
            coords={"variable": variables},
            attrs={"variables": json.dumps(variables), "n_in": sampling.input_frames, "n_out": sampling.targets,
                   "calendar": calendar, "time_reference": REFERENCE, "sampling": json.dumps(asdict(sampling)),
                   "tiles": json.dumps([asdict(t) for t in tiles or [] if t.name in grids]),
                   "resolution": resolution or "native", "climode_version": __version__,
                   "units": json.dumps({v: str(ds[v].attrs.get("units", "")) for v in variables}),
                   **{k: str(v) for k, v in provenance.items()}})
        store = stage / "shards.zarr"
        _write_in_batches(shards, store, "sample")
        written = xr.open_zarr(store, consolidated=False)["frames"].isel(sample=np.nonzero(split == "train")[0])
        stats = compute_stats(written.to_dataset("variable"), variables, normalisation)
        zarr.open_group(str(store), mode="r+").attrs["normalisation"] = json.dumps(stats)
        for name in grids:
            shutil.rmtree(stage / f"tile-{name}.zarr")
        return store


__all__ = ["SPLITS", "plan_samples", "split_storms", "step_hours", "to_hours", "write_shards"]
