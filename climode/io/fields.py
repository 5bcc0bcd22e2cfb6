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
import importlib.util
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from ..errors import ClimodeError
from ..geo.grid import grid_step, onto
from ..times import hours_axis
from .coords import accumulation, fix_units, rename_coords
from .variables import RATE, as_requested, find_variables, lookup, read_mapping
from .write import is_zarr_store

PathLike = str | os.PathLike


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
    """One file (lazy, no dask yet) or zarr store (dask, its own chunks), CF-decoded with cftime; a
    time-like variable (CF units "... since ...") with missing values is refused before decoding,
    which would turn them into dates."""
    zarr = _is_zarr(path)
    if path.is_dir() and not zarr:
        raise ClimodeError(f"{path} is a directory but not a zarr store (no .zgroup or zarr.json)")
    grib = not zarr and _is_grib(path)
    if grib and importlib.util.find_spec("cfgrib") is None:
        raise ClimodeError(
            f"{path} is GRIB, which needs cfgrib (pip install -e '.[grib]', with ecCodes); or convert it to NetCDF "
            f"first: grib_to_netcdf -o {path.stem}.nc {path}, or cdo -f nc copy {path} {path.stem}.nc"
        )
    try:
        with warnings.catch_warnings():  # a store without consolidated metadata is read as well, just slower
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
            raw = xr.open_dataset(
                path,
                engine="zarr" if zarr else "cfgrib" if grib else "netcdf4",
                chunks={} if zarr else None,
                cache=False,
                decode_times=False,
                decode_timedelta=False,
                mask_and_scale=True,
            )
        _check_times_present(raw, path)
        return xr.decode_cf(
            raw,
            decode_times=xr.coders.CFDatetimeCoder(use_cftime=True),
            decode_timedelta=False,
            mask_and_scale=False,
            concat_characters=False,
            decode_coords=False,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClimodeError(f"cannot open {path}: {exc}") from None


def _is_grib(path: Path) -> bool:
    """Whether ``path`` is a GRIB file (its first bytes, whatever its name)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"GRIB"
    except OSError:
        return False


def _check_times_present(ds: xr.Dataset, path: Path) -> None:
    """Refuse a 1-D time variable (units "... since ...") with missing values, naming where."""
    for name, var in ds.variables.items():
        if var.ndim == 1 and "since" in str(var.attrs.get("units", "")) and var.dtype.kind == "f":
            missing = np.flatnonzero(~np.isfinite(np.asarray(var.values)))
            if len(missing):
                raise ClimodeError(
                    f"{path}: time variable {name!r} has {len(missing)} missing value(s) (NaN or its fill value) at "
                    f"position(s) {', '.join(map(str, missing[:5]))}; every frame needs its time: drop those frames "
                    f"(ds.isel({var.dims[0]}=...)) or set their times"
                )


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


# ---------------------------------------------------------------- joining in time and across variables


def _missing(name: str, mapping: Mapping[str, str], paths: Sequence[Path], present: set[str]) -> ClimodeError:
    names, standard_name, _ = lookup(name, mapping)
    looked = ", ".join(names) + (f" or standard_name {standard_name}" if standard_name else "")
    return ClimodeError(
        f"variable {name!r} not found (looked for {looked}) in {_describe(paths)}; "
        f"data variables there: {', '.join(sorted(present)) or 'none'}{_groups(paths)}"
    )


def _groups(paths: Sequence[Path]) -> str:
    """Where NetCDF4 files keep variables in groups (which climode does not read): the groups, and how to flatten."""
    found = {}
    for path in paths:
        if path.is_file():
            try:
                with netCDF4.Dataset(path) as nc:
                    if nc.groups:
                        found[path] = list(nc.groups)
            except OSError:
                continue
    if not found:
        return ""
    path, groups = next(iter(found.items()))
    return (
        f" ({path} keeps its variables in the NetCDF4 group(s) {', '.join('/' + g for g in groups)}, which climode "
        f"does not read; flatten them first: ncks -G : {path} flat.nc, or "
        f"xr.open_dataset(path, group='{groups[0]}').to_netcdf('flat.nc'))"
    )


def _check_increasing(name: str, times: np.ndarray, origins: np.ndarray) -> None:
    bad = np.nonzero(~np.asarray(times[1:] > times[:-1], dtype=bool))[0]
    if len(bad):
        i = bad[0]
        kind = "repeated" if times[i + 1] == times[i] else "decreasing"
        if origins[i] != origins[i + 1]:
            raise ClimodeError(
                f"{name}: files {origins[i]} and {origins[i + 1]} overlap in time ({kind}: {origins[i]} reaches "
                f"{times[i]}, {origins[i + 1]} has {times[i + 1]}); give each time once"
            )
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


def _describe_grid(da: xr.DataArray) -> str:
    lat, lon = da["lat"].values, da["lon"].values
    return f"{lat.size} x {lon.size}, lat {lat[0]:g} to {lat[-1]:g}, lon {lon[0]:g} to {lon[-1]:g}"


def _one_grid(arrays: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """The variables on the first one's lat/lon grid: one on a grid of its own (PSL on a half-cell
    shifted ``lat_p``/``lon_p``) is interpolated bilinearly onto it, with a warning, when its grid
    covers it to within one of its cells; otherwise refused, naming both grids."""
    (first, ref), *rest = arrays.items()
    if not {"lat", "lon"} <= set(ref.dims):
        return arrays
    out = {first: ref}
    for name, da in rest:
        same = {"lat", "lon"} <= set(da.dims) and all(
            da[c].shape == ref[c].shape and np.allclose(da[c].values, ref[c].values, rtol=0, atol=1e-6)
            for c in ("lat", "lon")
        )
        if same or not {"lat", "lon"} <= set(da.dims):
            out[name] = da.assign_coords(lat=ref["lat"], lon=ref["lon"]) if same else da
            continue
        covered = all(
            da[c].values[0] - grid_step(da[c]) <= ref[c].values[0]
            and ref[c].values[-1] <= da[c].values[-1] + grid_step(da[c])
            for c in ("lat", "lon")
        )
        if not covered:
            raise ClimodeError(
                f"{name} is on a grid ({_describe_grid(da)}) that does not cover {first}'s ({_describe_grid(ref)}); "
                "put the variables on one grid first (xESMF, CDO remapbil)"
            )
        warnings.warn(
            f"{name} is on a grid of its own ({_describe_grid(da)}), not {first}'s ({_describe_grid(ref)}); "
            f"interpolated bilinearly onto {first}'s grid",
            stacklevel=3,
        )
        out[name] = onto(da, ref["lat"].values, ref["lon"].values).assign_coords(lat=ref["lat"], lon=ref["lon"])
    return out


def _merge(arrays: dict[str, xr.DataArray]) -> xr.Dataset:
    """The variables in one Dataset on one grid (``_one_grid``); their times must match exactly.
    Variable attrs kept, no global ones."""
    arrays = _one_grid(arrays)
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


def _pieces(
    files: Sequence[Path],
    names: tuple[str, ...],
    mapping: Mapping[str, str],
    hours: tuple[bool, str | None, str],
    chunks: Mapping[str, int] | None,
) -> tuple[dict[str, list[tuple[Path, xr.DataArray]]], set[str]]:
    """Each requested variable's pieces (file, array) in the order of ``files``, and every data
    variable the files hold; a file with none of them is skipped.
    ``hours``: ``hours_axis``'s (time_in_hours, reference_time, calendar)."""
    pieces: dict[str, list[tuple[Path, xr.DataArray]]] = {name: [] for name in names}
    present: set[str] = set()
    for path in files:
        ds = rename_coords(_open_one(path))
        present.update(map(str, ds.data_vars))
        found = find_variables(ds, names, mapping, path)
        if not found:
            continue
        if "time" in ds.coords and ds["time"].ndim == 0:  # one frame per file (radar archives): a time axis of one
            ds = ds.expand_dims("time")
        ds = hours_axis(ds, path, *hours)
        notes = {}
        for name, (var, level) in found.items():
            da, note = as_requested(ds, var, name, level, path, chunks)
            pieces[name].append((path, da if _is_zarr(path) else _default_fill_missing(da)))
            notes[note] = None
        for note in filter(None, notes):
            warnings.warn(note, stacklevel=3)
    return pieces, present


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
    mapping = read_mapping(mapping, names)
    files = _expand(paths)
    pieces, present = _pieces(files, names, mapping, (time_in_hours, reference_time, calendar or "standard"), chunks)
    for name in names:
        if not pieces[name]:
            raise _missing(name, mapping, files, present)
    sources = ", ".join(map(str, dict.fromkeys(p for name in names for p, _ in pieces[name])))
    arrays = {}
    for name in names:
        da = _concat_time(name, pieces[name])
        sample = _first_step(da)
        _check_not_empty(name, da, sample, sources)
        as_rate = mapping.get(name, "").endswith(RATE)
        arrays[name] = accumulation(
            fix_units(name, da, sample), name, mapping.get(name, name).removesuffix(RATE), as_rate
        )
    ds = _merge(arrays)
    ds.attrs["climode_sources"] = sources
    return ds


__all__ = ["open_fields"]
