"""Fields -> tiles -> irregular samples -> shards: the lazy construction of a shard store.

Everything here builds dask graphs; nothing is computed until the store is written (or the
statistics are computed), so with dask.distributed the work is spread over workers and
memory stays bounded by the chunk size, not by the number of input files.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import cftime
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..errors import ClimodeError
from ..tiles import Tile, extract
from ..tracks import storm_periods
from .normalise import compute_stats
from .sampling import SamplingConfig, draw_many
from .shards import SPLITS, tracks_table

REFERENCE = "hours since 0001-01-01 00:00:00"


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


def plan_samples(ds: xr.Dataset, tiles: list[Tile], tracks: pd.DataFrame | None, sampling: SamplingConfig,
                 per_period: int, seed: int) -> pd.DataFrame:
    """One row per sample: tile, storm, period and the step indices (into ``ds.time``) of its
    inputs, their observed flags and its targets. Without tracks every window is a period."""
    calendar = ds.time.values[0].calendar
    ds_hours = to_hours(ds.time.values, calendar)
    rng = np.random.default_rng(seed)
    rows = []
    for tile in tiles:
        if tracks is None:
            periods = pd.DataFrame({"storm": ["all"], "start": [ds.time.values[0]], "end": [ds.time.values[-1]]})
        else:
            periods = storm_periods(tracks, tile.lat_range, tile.lon_range)
        for period in periods.itertuples():
            first = _step_index(ds_hours, to_hours([period.start], calendar)[0])
            last = _step_index(ds_hours, to_hours([period.end], calendar)[0])
            for inputs, observed, targets in draw_many(last - first + 1, sampling, per_period, rng):
                rows.append({"tile": tile.name, "storm": str(period.storm), "inputs": first + inputs,
                             "observed": observed, "targets": first + targets})
    if not rows:
        what = "no storm stays inside the tiles long enough" if tracks is not None else "the record is too short"
        need = sampling.steps(sampling.max_gap_h) * (sampling.n_in - 1) + sampling.n_out
        raise ClimodeError(f"no samples: {what} for {sampling.n_in} inputs and {sampling.n_out} targets "
                           f"(about {need} steps of {sampling.step_h:g} h are needed)")
    return pd.DataFrame(rows)


def _sample_frames(tile_ds: xr.Dataset, variables: list[str], row) -> da.Array:
    steps = np.concatenate((row.inputs, row.targets))
    frames = tile_ds[variables].to_array("variable").transpose("time", "variable", "lat", "lon")
    frames = frames.isel(time=steps).data.astype(np.float32)
    keep = np.concatenate((row.observed, np.ones(len(row.targets), dtype=bool)))
    return da.where(keep[:, None, None, None], frames, np.float32(np.nan))


def build(ds: xr.Dataset, tiles: list[Tile], plan: pd.DataFrame, variables: list[str], resolution: float | None,
          normalisation: str, tracks: pd.DataFrame | None, sampling: SamplingConfig, provenance: dict) -> xr.Dataset:
    """The lazy shard dataset (see ``climode.data.shards``), with statistics of the training split."""
    calendar = ds.time.values[0].calendar
    tile_fields = {t.name: extract(ds, t, resolution) for t in tiles if t.name in set(plan.tile)}
    frames = da.stack([_sample_frames(tile_fields[r.tile], variables, r) for r in plan.itertuples()])
    frames = frames.rechunk((1, *frames.shape[1:]))
    ds_hours = to_hours(ds.time.values, calendar)
    hours = np.stack([ds_hours[np.concatenate((r.inputs, r.targets))] for r in plan.itertuples()])
    lat = np.stack([tile_fields[r.tile].lat.values for r in plan.itertuples()])
    lon = np.stack([tile_fields[r.tile].lon.values for r in plan.itertuples()])
    splits = split_storms(sorted(set(plan.storm)))
    split = plan.storm.map(splits).to_numpy() if len(splits) > 1 else np.full(len(plan), "train")
    train = np.nonzero(split == "train")[0]
    if not len(train):
        raise ClimodeError("no training samples after splitting by storm; give more storms or data")
    stats_source = xr.Dataset({v: (("s", "t", "y", "x"), frames[train][:, :, i]) for i, v in enumerate(variables)})
    stats = compute_stats(stats_source, variables, normalisation)
    out = xr.Dataset(
        {"frames": (("sample", "step", "variable", "y", "x"), frames),
         "hours": (("sample", "step"), hours),
         "lat": (("sample", "y"), lat), "lon": (("sample", "x"), lon),
         "storm": ("sample", plan.storm.to_numpy().astype(str)),
         "tile": ("sample", plan.tile.to_numpy().astype(str)),
         "split": ("sample", split.astype(str)),
         **tracks_table(tracks, lambda t: to_hours(t, calendar))},
        coords={"variable": variables},
        attrs={"variables": json.dumps(variables), "normalisation": json.dumps(stats),
               "n_in": sampling.input_frames, "n_out": sampling.n_out, "calendar": calendar,
               "time_reference": REFERENCE, "sampling": json.dumps(asdict(sampling)),
               "tiles": json.dumps([asdict(t) for t in tiles]), "resolution": resolution or "native",
               "climode_version": __version__, **{k: str(v) for k, v in provenance.items()}},
    )
    out["frames"].attrs.update(units=json.dumps({v: str(ds[v].attrs.get("units", "")) for v in variables}))
    return out


__all__ = ["SPLITS", "build", "plan_samples", "split_storms", "step_hours", "to_hours"]
