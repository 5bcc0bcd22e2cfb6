"""``climode.prepare``: fields in files -> basin tiles -> irregular storm samples -> a shard store.

    plan = climode.prepare("cam5/*.nc", "tiles.zarr", tracks="tracks.csv")   # ``climode prepare``

The library verb behind the ``climode prepare`` command, whose options its keywords mirror; the
pipeline itself is assembled once, in ``climode.data.prepare.build_store``, which gridded training
data and the protocols run too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .conventions import STORM_VARIABLES
from .data.prepare import build_store
from .data.shards import open_store
from .errors import ClimodeError
from .geo.tiles import Tile, parse_tiles
from .io.fields import PathLike
from .io.variables import parse_variables

BASINS = "east-pacific-atlantic"  # the default tiles: the paper's two basins


def _variables(variables: str | Sequence[str], mapping: str | Mapping[str, str] | None) -> tuple[list, dict]:
    """The variables to keep and their names in the files: ``variables`` (NAME or NAME=NAME_IN_FILE, as
    text or a list), then any other name ``mapping`` gives (text as ``--vars``, or a dict)."""
    names, found = parse_variables(variables if isinstance(variables, str) else ",".join(variables))
    if isinstance(mapping, str):
        more, extra = parse_variables(mapping)
    else:
        more, extra = list(mapping or {}), dict(mapping or {})
    names += [name for name in more if name not in names]
    if not names:
        raise ClimodeError("no variable to prepare: give --variables (e.g. U850,V850,PSL) or --vars")
    return names, {**found, **extra}


def _tiles(basins: str | Sequence[Tile] | None) -> list[Tile] | None:
    """Tiles from basin names, 'regular' or LAT0:LON0 boxes (``parse_tiles``); None or 'none': the whole grid."""
    if basins is None or (isinstance(basins, str) and basins == "none"):
        return None
    return parse_tiles(basins) if isinstance(basins, str) else list(basins)


def prepare(
    inputs: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    variables: str | Sequence[str] = STORM_VARIABLES,
    mapping: str | Mapping[str, str] | None = None,
    time_in_hours: bool = False,
    reference_time: str | None = None,
    calendar: str | None = None,
    basins: str | Sequence[Tile] | None = BASINS,
    resolution: float | None = 1.0,
    n_in: int = 5,
    n_out: int = 5,
    min_gap: float | None = None,
    max_gap: float = 48.0,
    lead_step: float | None = None,
    rate: float | None = None,
    between: bool = False,
    tracks: PathLike | pd.DataFrame | None = None,
    all_windows: bool = False,
    samples_per_storm: int = 8,
    seed: int = 0,
    fractions: tuple[float, float, float] | None = None,
    normalisation: str = "minmax",
    overwrite: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """Fields in files -> basin tiles -> irregular storm samples -> the shard store ``out`` (``climode
    prepare``, whose options these keywords mirror; hours for gaps and steps).

    Parameters
    ----------
    inputs : NetCDF files, globs, or a zarr store.
    variables, mapping : the variables to keep and their names in the files, NAME or NAME=NAME_IN_FILE
        (text "U850=u,V850=v" or a list; ``mapping`` also a dict); the names ``mapping`` adds are kept too.
    time_in_hours, reference_time, calendar : how to read a time axis without units (``climode.open_fields``).
    basins : basin names, 'regular' or LAT0:LON0 boxes, comma-separated, or Tiles; None or 'none' keeps
        the whole grid (any grid, e.g. projected y/x).
    resolution : the tiles' grid in degrees; None or 0 keeps the native grid.
    n_in, n_out, min_gap, max_gap, lead_step, rate, between : the irregular sampling
        (``climode.data.sampling``); ``min_gap`` and ``lead_step`` default to the storage step.
    tracks : a track file (IBTrACS CSV, TempestExtremes, climode's CSV) or table; without it storms are
        detected on the fields, unless ``all_windows`` (every window a sample).
    samples_per_storm, seed : samples drawn from each storm's stay in a tile, in each time block.
    fractions : train, val, test shares of the record (default 80/10/10, less on a short record).
    normalisation : "minmax" or "zscore", statistics of the training split.
    overwrite : replace an existing ``out``.
    scheduler, workers : a dask.distributed scheduler's address, else a LocalCluster of ``workers``
        processes (0: dask's threads in this process).

    Returns
    -------
    pandas.DataFrame
        the sample plan, one row per sample: tile, storm, split and the step indices of its inputs,
        their observed flags and its targets (the store is at ``out``).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ClimodeError(f"{out} exists; pass --overwrite to replace it")
    names, mapping = _variables(variables, mapping)
    plan = build_store(
        inputs, out, names,
        mapping=mapping, time_in_hours=bool(time_in_hours), reference_time=reference_time, calendar=calendar,
        tiles=_tiles(basins), resolution=resolution or None,
        n_in=n_in, n_out=n_out, max_gap_h=max_gap, min_gap_h=min_gap, lead_step_h=lead_step, rate=rate, between=between,
        tracks=tracks, detect_storms=not all_windows, samples_per_storm=samples_per_storm, seed=seed,
        fractions=fractions, normalisation=normalisation, overwrite=overwrite, scheduler=scheduler, workers=workers,
        provenance={"tracks_file": "none" if tracks is None else "table"},  # a file's path replaces it
    )  # fmt: skip
    open_store(out)  # refuses a store whose held-out targets are frames of training samples
    return plan


__all__ = ["prepare"]
