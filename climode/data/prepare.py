"""Fields -> tiles -> irregular samples -> shards: the lazy construction of a shard store.

Everything here builds dask graphs; nothing is computed until the store is written (or the
statistics are computed), so with dask.distributed the work is spread over workers and
memory stays bounded by the chunk size, not by the number of input files. The samples are chosen
by ``climode.data.plan``; the store's layout is told in ``climode.data.shards``.

``build_store`` is the pipeline assembled once, from files to the store: the ``climode prepare``
command (``climode.pipeline.prepare``), gridded training data (``climode.data.gridded.prepare``)
and the protocols' storms (``climode.protocols.data.storm_shards``) all run it. Its steps: open the
fields (``climode.open_fields``), refuse a tile off their grid, the irregular sampling
(``climode.data.plan.sampling_for``), read the tracks, start dask (``climode.data.cluster``), detect
storms on the fields when asked and no tracks were given, then plan the samples and write the
shards (``prepare_shards``). The store is written to a temporary path and renamed into place when
complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .._version import __version__
from ..conventions import HOURS_SINCE, STORM_VARIABLES
from ..errors import ClimodeError
from ..geo.detect import detect
from ..geo.tiles import Tile, extract
from ..io.fields import PathLike, open_fields
from ..io.tracks import read_tracks
from ..times import to_hours
from .cluster import dask_client
from .plan import FRACTIONS, plan_samples, plan_short, sampling_for
from .sampling import SamplingConfig
from .shards import check_no_leak, shared_frames, staged, tracks_table
from .stats import compute_stats

BATCH = 64  # time steps or samples computed per dask graph
log = logging.getLogger(__name__)


def _tile_field(
    ds: xr.Dataset, tile: Tile | None, steps: np.ndarray, variables: list[str], resolution: float | None
) -> xr.Dataset:
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
            store, region={dim: slice(start, start + batch)}, consolidated=False
        )


def _read_sample(store: str, positions: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """One sample's frames (T, C, H, W) from a staged tile store, unobserved frames NaN."""
    field = xr.open_zarr(store, chunks=None, consolidated=False)["field"]
    frames = field.isel(time=positions).values  # reads only these steps
    frames[~keep] = np.nan
    return frames


def _stage_tiles(
    stage: Path,
    ds: xr.Dataset,
    tiles: list[Tile] | None,
    plan: pd.DataFrame,
    steps_of: dict[int, np.ndarray],
    variables: list[str],
    resolution: float | None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], da.Array, tuple[str, str]]:
    """Each tile of the plan regridded once over the steps its samples use, written to
    ``stage/tile-NAME.zarr``; returns the tiles' (y, x) grids, the samples' frames (sample, step,
    variable, y, x) as one lazy array of one task per sample, and the grid's dim names."""
    grids, parts = {}, []
    for name, rows in plan.groupby("tile").groups.items():
        tile = next((t for t in tiles or [] if t.name == name), None)
        steps = np.unique(np.concatenate([steps_of[i] for i in rows]))
        field = _tile_field(ds, tile, steps, variables, resolution)
        _write_in_batches(field, stage / f"tile-{name}.zarr", "time")
        grids[name] = tuple(field[d].values for d in field.field.dims[-2:])
        for i in rows:
            keep = np.concatenate((plan.observed[i], np.ones(len(plan.targets[i]), dtype=bool)))
            lazy = dask.delayed(_read_sample)(
                str(stage / f"tile-{name}.zarr"), np.searchsorted(steps, steps_of[i]), keep
            )
            parts.append((i, da.from_delayed(lazy, (len(keep), len(variables), *field.field.shape[2:]), np.float32)))
    frames = da.stack([p for _, p in sorted(parts, key=lambda x: x[0])])
    return grids, frames, field.field.dims[-2:]


def _shard_dataset(
    ds: xr.Dataset,
    tiles: list[Tile] | None,
    plan: pd.DataFrame,
    steps_of: dict[int, np.ndarray],
    staged_tiles: tuple[dict, da.Array, tuple[str, str]],
    variables: list[str],
    resolution: float | None,
    tracks: pd.DataFrame | None,
    sampling: SamplingConfig,
    provenance: dict,
) -> xr.Dataset:
    """The shard store's variables and attributes (layout: ``climode.data.shards``), frames lazy."""
    grids, frames, dims = staged_tiles
    calendar = ds.time.values[0].calendar
    ds_hours = to_hours(ds.time.values, calendar)
    coord_names = ("lat", "lon") if dims == ("lat", "lon") else tuple(f"{d}_coord" for d in dims)
    return xr.Dataset(
        {
            "frames": (("sample", "step", "variable", "y", "x"), frames),
            "hours": (("sample", "step"), np.stack([ds_hours[steps_of[i]] for i in plan.index])),
            coord_names[0]: (("sample", "y"), np.stack([grids[t][0] for t in plan.tile])),
            coord_names[1]: (("sample", "x"), np.stack([grids[t][1] for t in plan.tile])),
            "storm": ("sample", plan.storm.to_numpy().astype(str)),
            "tile": ("sample", plan.tile.to_numpy().astype(str)),
            "split": ("sample", plan.split.to_numpy().astype(str)),
            **tracks_table(tracks, lambda t: to_hours(t, calendar)),
        },
        coords={"variable": variables},
        attrs={
            "variables": json.dumps(variables),
            "n_in": sampling.input_frames,
            "n_out": sampling.targets,
            "calendar": calendar,
            "time_reference": HOURS_SINCE,
            "sampling": json.dumps(asdict(sampling)),
            "tiles": json.dumps([asdict(t) for t in tiles or [] if t.name in grids]),
            "resolution": resolution or "native",
            "climode_version": __version__,
            "units": json.dumps({v: str(ds[v].attrs.get("units", "")) for v in variables}),
            **{k: str(v) for k, v in provenance.items()},
        },
    )


def write_shards(
    out,
    ds: xr.Dataset,
    tiles: list[Tile] | None,
    plan: pd.DataFrame,
    variables: list[str],
    resolution: float | None,
    normalisation: str,
    tracks: pd.DataFrame | None,
    sampling: SamplingConfig,
    provenance: dict,
    overwrite: bool = False,
) -> Path:
    """Write the shard store (see ``climode.data.shards``) in three dask passes inside a staging
    directory: each tile regridded once over the steps its samples use; one task per sample
    gathering its frames; statistics of the training split read back. The staging directory
    is renamed to ``out`` only when all of it is written. A plan with no training sample, or whose
    held-out targets are frames (same tile and time) of training samples, is refused (ClimodeError)
    before anything is written. Returns ``out``'s path."""
    split = plan.split.to_numpy()
    if not (split == "train").any():
        raise ClimodeError(f"the plan for {out} has no training samples; give a longer record or more storms")
    steps_of = {r.Index: np.concatenate((r.inputs, r.targets)) for r in plan.itertuples()}
    shares = shared_frames(
        split, plan.tile.to_numpy(), np.stack([steps_of[i] for i in plan.index]), sampling.input_frames
    )
    check_no_leak(shares, f"the plan for {out}", "plan it with plan_samples (time-block splits)")
    with staged(out, overwrite) as stage:
        staged_tiles = _stage_tiles(stage, ds, tiles, plan, steps_of, variables, resolution)
        shards = _shard_dataset(
            ds, tiles, plan, steps_of, staged_tiles, variables, resolution, tracks, sampling, provenance
        )
        store = stage / "shards.zarr"
        _write_in_batches(shards, store, "sample")
        written = xr.open_zarr(store, consolidated=False)["frames"].isel(sample=np.nonzero(split == "train")[0])
        stats = compute_stats(written.to_dataset("variable"), variables, normalisation)
        zarr.open_group(str(store), mode="r+").attrs["normalisation"] = json.dumps(stats.to_dict())
        zarr.consolidate_metadata(str(store))  # its last metadata change: xr.open_zarr reads it without a warning
        for name in staged_tiles[0]:
            shutil.rmtree(stage / f"tile-{name}.zarr")
    return Path(out)


def prepare_shards(
    out,
    ds: xr.Dataset,
    variables: list[str],
    sampling: SamplingConfig,
    *,
    tiles: list[Tile] | None = None,
    tracks: pd.DataFrame | None = None,
    samples_per_storm: int = 0,
    seed: int = 0,
    fractions: tuple[float, float, float] | None = None,
    spans: dict[str, tuple[float, float]] | None = None,
    resolution: float | None = None,
    normalisation: str = "minmax",
    provenance: dict | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Fields -> samples -> shards: plan the samples of ``ds`` (``climode.data.plan.plan_samples``:
    storms' stays in ``tiles`` when ``tracks`` are given, else every window of the grid) and write
    them to the store ``out`` (``write_shards``). Returns the plan. ``fractions`` None: 80/10/10, or
    on a record too short for that the held-out blocks given up (``plan_short``). The whole pipeline,
    from files, is ``build_store``."""
    if fractions is None and not spans:
        plan = plan_short(ds, tiles, tracks, sampling, samples_per_storm, seed)
    else:
        plan = plan_samples(ds, tiles, tracks, sampling, samples_per_storm, seed, fractions or FRACTIONS, spans)
    source = {"source_files": ds.attrs.get("climode_sources", ""), **(provenance or {})}
    write_shards(
        out, ds, tiles, plan, variables, resolution, normalisation, tracks, sampling, source, overwrite=overwrite
    )
    return plan


def build_store(
    fields: xr.Dataset | PathLike | Sequence[PathLike],
    out: PathLike,
    variables: Sequence[str],
    *,
    mapping: Mapping[str, str] | None = None,
    time_in_hours: bool = False,
    reference_time: str | None = None,
    calendar: str | None = None,
    tiles: list[Tile] | None = None,
    resolution: float | None = None,
    n_in: int = 5,
    n_out: int = 5,
    max_gap_h: float = 48.0,
    min_gap_h: float | None = None,
    lead_step_h: float | None = None,
    rate: float | None = None,
    between: bool = False,
    tracks: PathLike | pd.DataFrame | None = None,
    detect_storms: bool = False,
    samples_per_storm: int = 0,
    seed: int = 0,
    fractions: tuple[float, float, float] | None = None,
    spans: dict[str, tuple[float, float]] | None = None,
    normalisation: str = "minmax",
    provenance: dict | None = None,
    overwrite: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Fields -> sampling -> tracks -> tiles -> the shard store ``out``; returns the sample plan.

    ``fields``: files, globs or a zarr store, opened with ``variables`` and the reading options
    (``climode.open_fields``), or a Dataset already opened (the reading options then unused).
    ``tiles`` None keeps the whole grid as one tile; a tile off the grid is refused before any work.
    Gaps and steps are in hours (``sampling_for``). ``tracks``: a track file (``climode.io.tracks``)
    or table; without them, ``detect_storms`` runs climode's detector on the fields when they hold
    U850, V850 and PSL, and otherwise every window is a sample. ``fractions``, ``spans``: the time
    blocks (``prepare_shards``). ``provenance``: attributes of the store, to which the tracks' file
    (or "detected") is added. ``scheduler``, ``workers``: ``climode.data.cluster.dask_client``.
    """
    ds = fields
    if not isinstance(ds, xr.Dataset):  # positional: mapping, time_in_hours, reference_time, calendar
        ds = open_fields(fields, variables, mapping or None, time_in_hours, reference_time, calendar)
    for tile in tiles or []:  # a tile off the grid is refused before any work
        extract(ds.isel(time=[0]), tile)
    sampling = sampling_for(
        ds, n_in, n_out, max_gap_h=max_gap_h, min_gap_h=min_gap_h, lead_step_h=lead_step_h, rate=rate, between=between
    )
    provenance = dict(provenance or {})
    if tracks is not None and not isinstance(tracks, pd.DataFrame):
        provenance["tracks_file"] = str(tracks)
        tracks = read_tracks(tracks, calendar=ds.time.values[0].calendar)
    with dask_client(scheduler, workers):
        if tracks is None and detect_storms and set(STORM_VARIABLES) <= set(variables):
            log.info("detecting storms on the fields ...")
            tracks = detect(ds)
            provenance["tracks_file"] = "detected"
        return prepare_shards(
            out,
            ds,
            list(variables),
            sampling,
            tiles=tiles,
            tracks=tracks,
            samples_per_storm=samples_per_storm,
            seed=seed,
            fractions=fractions,
            spans=spans,
            resolution=resolution,
            normalisation=normalisation,
            provenance=provenance,
            overwrite=overwrite,
        )


__all__ = ["build_store", "prepare_shards", "write_shards"]
