"""Gridded fields opened lazily (xarray + dask) in one convention.

``open_fields`` returns a Dataset whose variables carry the *requested* names, dims
``(time, [other,] lat, lon)`` -- or ``(time, [other,] y, x)`` on a projected grid with no
1-D lat/lon -- with
  ``time``  cftime objects, calendar of the file kept, strictly increasing;
  ``lat``   degrees_north, ascending;
  ``lon``   degrees_east in [0, 360), ascending, no duplicate (cyclic) column;
  U850/V850 in m s-1, PSL in Pa; missing values as NaN; dask arrays, nothing loaded
  beyond the coordinates and the first time step of each variable (see ``open_fields``);
  ``attrs["climode_sources"]`` the files used, comma-separated.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from ..conventions import VARIABLES
from ..errors import ClimodeError
from .coords import fix_units, hours_axis, normalise_coords, rename_coords
from .write import is_zarr_store

PathLike = str | os.PathLike
DEFAULT_CHUNKS = {"time": 1}


def parse_variables(text: str, mapped: bool = False) -> tuple[list[str], dict[str, str]]:
    """The one reading of ``--vars``-style text: ``"U850=u,V850=v,precip"`` -> (["U850", "V850",
    "precip"], {"U850": "u", "V850": "v"}) (requested names in order; requested name -> name in the
    file). With ``mapped`` every item must be ``NAME=FILE_NAME``. Empty text gives nothing."""
    names: list[str] = []
    mapping: dict[str, str] = {}
    form = "NAME=FILE_NAME" if mapped else "NAME or NAME=FILE_NAME"
    for item in text.split(",") if text.strip() else []:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not key or (sep and not value) or "=" in value or (mapped and not sep):
            raise ClimodeError(
                f"malformed variable list {text!r}: expected {form}[,{form}...], got item {item.strip()!r}"
            )
        if key in names:
            raise ClimodeError(f"malformed variable list {text!r}: {key!r} is named twice")
        names.append(key)
        if sep:
            mapping[key] = value
    return names, mapping


def parse_mapping(text: str) -> dict[str, str]:
    """``"U850=u,V850=v,PSL=p"`` -> ``{"U850": "u", ...}`` (requested name -> name in file)."""
    return parse_variables(text, mapped=True)[1]


# ---------------------------------------------------------------- files


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or is_zarr_store(path)


def _expand(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """Files and stores named by a path, a glob or a list of them, in order, without repeats."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ClimodeError("no input files given")
    found: dict[Path, None] = {}
    for item in items:
        text = os.path.expanduser(os.fspath(item))
        if any(c in text for c in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise ClimodeError(f"no file matches {text!r}")
            found.update(dict.fromkeys(map(Path, matches)))
        elif not os.path.exists(text):
            raise ClimodeError(f"input {text!r} not found")
        else:
            found[Path(text)] = None
    return list(found)


def _open_one(path: Path) -> xr.Dataset:
    """One file (lazy, no dask yet) or zarr store (dask, its own chunks), CF-decoded with cftime."""
    zarr = _is_zarr(path)
    if path.is_dir() and not zarr:
        raise ClimodeError(f"{path} is a directory but not a zarr store (no .zgroup or zarr.json)")
    try:
        return xr.open_dataset(
            path,
            engine="zarr" if zarr else "netcdf4",
            chunks={} if zarr else None,
            cache=False,
            decode_times=xr.coders.CFDatetimeCoder(use_cftime=True),
            decode_timedelta=False,
            mask_and_scale=True,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClimodeError(f"cannot open {path}: {exc}") from None


def _default_fill_missing(da: xr.DataArray) -> xr.DataArray:
    """NaN where a float NetCDF variable that declares no ``_FillValue`` holds netCDF's default fill
    (9.97e36): the cells a writer never set, missing by the netCDF conventions, which xarray decodes
    only when the attribute is there."""
    dtype = np.dtype(da.encoding.get("dtype", da.dtype))
    if dtype.kind != "f" or {"_FillValue", "missing_value"} & set(da.encoding):
        return da
    return da.where(da != dtype.type(netCDF4.default_fillvals[dtype.str[1:]]))


def _describe(paths: Sequence[Path]) -> str:
    names = [str(p) for p in paths]
    return ", ".join(names) if len(names) <= 5 else f"{', '.join(names[:4])} and {len(names) - 4} more"


# ---------------------------------------------------------------- variables


def _lookup(name: str, mapping: Mapping[str, str]) -> tuple[tuple[str, ...], str | None]:
    """Names to try for ``name`` and the CF standard_name to fall back on; a mapping entry is exclusive."""
    if name in mapping:
        return (mapping[name],), None
    known = VARIABLES.get(name)
    return ((name, *known.aliases), known.standard_name) if known else ((name,), None)


def _find(ds: xr.Dataset, names: tuple[str, ...], standard_name: str | None) -> str | None:
    found = next((n for n in names if n in ds.data_vars), None)
    if found is None and standard_name is not None:
        found = next((n for n, v in ds.data_vars.items() if v.attrs.get("standard_name") == standard_name), None)
    return found


def _missing(name: str, mapping: Mapping[str, str], paths: Sequence[Path], present: set[str]) -> ClimodeError:
    names, standard_name = _lookup(name, mapping)
    looked = ", ".join(names) + (f" or standard_name {standard_name}" if standard_name else "")
    return ClimodeError(
        f"variable {name!r} not found (looked for {looked}) in {_describe(paths)}; "
        f"data variables there: {', '.join(sorted(present)) or 'none'}"
    )


def _check_increasing(name: str, times: np.ndarray, origins: np.ndarray) -> None:
    bad = np.nonzero(~np.asarray(times[1:] > times[:-1], dtype=bool))[0]
    if len(bad):
        i = bad[0]
        kind = "repeated" if times[i + 1] == times[i] else "decreasing"
        raise ClimodeError(
            f"times of {name} are not strictly increasing ({kind}): {times[i]} ({origins[i]}) "
            f"is followed by {times[i + 1]} ({origins[i + 1]})"
        )


def _concat_time(name: str, pieces: list[tuple[Path, xr.DataArray]]) -> xr.DataArray:
    """One variable's pieces (file, array) joined along time, in order of their first time."""
    if any("time" not in da.dims for _, da in pieces):
        if len(pieces) > 1:
            raise ClimodeError(f"{name} has no time axis but is in several files: {_describe([p for p, _ in pieces])}")
        return pieces[0][1]
    nonempty = [(p, da) for p, da in pieces if da.sizes["time"]]
    if not nonempty:
        return pieces[0][1]
    pieces = nonempty
    calendars = {getattr(da["time"].values[0], "calendar", None) for _, da in pieces}
    if len(calendars) > 1:
        raise ClimodeError(
            f"{name}: files use different calendars {sorted(map(str, calendars))}: {_describe([p for p, _ in pieces])}"
        )
    pieces.sort(key=lambda piece: piece[1]["time"].values[0])
    try:
        da = (
            xr.concat(
                [da for _, da in pieces],
                dim="time",
                coords="minimal",
                compat="override",
                join="exact",
                combine_attrs="override",
            )
            if len(pieces) > 1
            else pieces[0][1]
        )
    except ValueError as exc:
        raise ClimodeError(
            f"{name}: files {_describe([p for p, _ in pieces])} are on different grids ({exc})"
        ) from None
    origins = np.repeat([str(p) for p, _ in pieces], [piece.sizes["time"] for _, piece in pieces])
    _check_increasing(name, da["time"].values, origins)
    return da


def _merge(arrays: dict[str, xr.DataArray]) -> xr.Dataset:
    """The variables in one Dataset; their coordinates must match exactly. Variable attrs kept, no global ones."""
    try:
        ds = xr.merge(
            [da.rename(name) for name, da in arrays.items()], join="exact", compat="override", combine_attrs="drop"
        )
    except ValueError as exc:
        shapes = "; ".join(f"{n} {dict(da.sizes)}" for n, da in arrays.items())
        raise ClimodeError(f"the variables are not on one grid and time axis ({shapes}): {exc}") from None
    return ds.assign({name: ds[name].assign_attrs(da.attrs) for name, da in arrays.items()})


# ---------------------------------------------------------------- checks and units


def _first_step(da: xr.DataArray) -> np.ndarray:
    """The first time step's values (one chunk read), or all values for a variable without (or with empty) time."""
    return np.asarray((da.isel(time=0) if da.sizes.get("time") else da).values, dtype=float)


def _check_not_empty(name: str, da: xr.DataArray, sample: np.ndarray, sources: str) -> None:
    """All-NaN check: free when the first step has a value, else one full pass over the variable."""
    if np.isnan(sample).all() and not bool(da.notnull().any().compute()):
        raise ClimodeError(f"variable {name} is all missing (NaN, or the file's fill value) in {sources}")


# ---------------------------------------------------------------- entry point


def _has_dask(ds: xr.Dataset) -> bool:
    """Whether ``ds`` already holds dask arrays (a zarr store opened with its own chunks)."""
    return any(v.chunks is not None for v in ds.data_vars.values())


def open_fields(
    paths: PathLike | Sequence[PathLike],
    variables: Sequence[str] = ("U850", "V850", "PSL"),
    mapping: Mapping[str, str] | str | None = None,
    time_in_hours: bool = False,
    reference_time: str | None = None,
    calendar: str | None = None,
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Open ``variables`` from NetCDF files / zarr stores as one lazy Dataset in the toolkit's convention.

    Variables may sit one per file and/or be split along time across files; files of one frame each with a
    scalar time (radar archives) are stacked in time order, gaps kept as gaps. Each requested name is
    found by its ``mapping`` entry alone, else by the name itself, else (U850, V850, PSL) by known
    aliases and then the CF standard_name. Cost: the first time step of each variable is read (unit
    and emptiness checks); a variable whose first step is all NaN is read in full once.

    Parameters
    ----------
    paths : a path, a glob ("cam5/*.nc") or a list of them; NetCDF files or zarr stores.
    variables : the names to open, in order (default U850, V850, PSL).
    mapping : names in the files, a dict or text "U850=u,V850=v,PSL=msl".
    time_in_hours : read a numeric time axis without units as hours since ``reference_time``
        ("YYYY-MM-DD[ HH:MM:SS]"; default the file's text ``reftime`` variable, else 0001-01-01)
        in ``calendar`` (default standard); files with CF time units are decoded as they say.
    chunks : dask chunks by the normalised dim names (default one time step per chunk; zarr
        stores keep their own).

    Returns
    -------
    xarray.Dataset
        dims (time, [other,] lat, lon) -- or (time, [other,] y, x) on a projected grid --, time
        as cftime dates in the file's calendar, strictly increasing; lat ascending
        (degrees_north); lon in [0, 360) ascending (degrees_east); U850/V850 in m s-1 and PSL in
        Pa (converted when the file says otherwise); NaN where missing; dask arrays.

    Raises
    ------
    ClimodeError
        for every problem the user can fix (a missing file or variable, mixed grids, ...), naming it.
    """
    names = tuple(dict.fromkeys((variables,) if isinstance(variables, str) else variables))
    if not names:
        raise ClimodeError("no variables requested")
    mapping = parse_mapping(mapping) if isinstance(mapping, str) else dict(mapping or {})
    files = _expand(paths)
    pieces: dict[str, list[tuple[Path, xr.DataArray]]] = {name: [] for name in names}
    present: set[str] = set()
    for path in files:
        ds = rename_coords(_open_one(path))
        present.update(map(str, ds.data_vars))
        found = {name: _find(ds, *_lookup(name, mapping)) for name in names}
        found = {name: var for name, var in found.items() if var is not None}
        if not found:
            continue
        if "time" in ds.coords and ds["time"].ndim == 0:  # one frame per file (radar archives): a time axis of one
            ds = ds.expand_dims("time")
        ds = hours_axis(ds, path, time_in_hours, reference_time, calendar or "standard")
        sub = xr.Dataset({name: ds[var] for name, var in found.items()})
        spec = DEFAULT_CHUNKS if chunks is None and not _has_dask(sub) else (chunks or {})
        sub = normalise_coords(sub.chunk({k: v for k, v in spec.items() if k in sub.dims}))
        if not _is_zarr(path):
            sub = sub.assign({name: _default_fill_missing(sub[name]) for name in found})
        for name in found:
            pieces[name].append((path, sub[name]))
    for name in names:
        if not pieces[name]:
            raise _missing(name, mapping, files, present)
    used = list(dict.fromkeys(p for name in names for p, _ in pieces[name]))
    sources = ", ".join(map(str, used))
    arrays = {}
    for name in names:
        da = _concat_time(name, pieces[name])
        sample = _first_step(da)
        _check_not_empty(name, da, sample, sources)
        arrays[name] = fix_units(name, da, sample)
    ds = _merge(arrays)
    ds.attrs["climode_sources"] = sources
    return ds


__all__ = ["open_fields", "parse_mapping", "parse_variables"]
