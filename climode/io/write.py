"""Writing forecasts: CF metadata, NetCDF and zarr, never half-written.

NetCDF files and new zarr stores are written to a temporary path and renamed into place.
Appending to an existing zarr store works on a copy that replaces the original only when the
append is complete, so an interrupted or failed append leaves the store as it was; the atomic
files, sets and locks are ``climode.io.atomic``'s. ``climode.outputs`` chooses among these and
the other output formats by name or suffix.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import COORD_ATTRS, TIME_ORIGIN, VARIABLES, cf_attrs
from ..errors import ClimodeError
from .atomic import commit, copy_tree, locked, replacing, staging_path, sweep

FILL = np.float32(1.0e20)
FLAG = "filled"  # the forecast's status flag: 1 where a value derives from missing input cells that were filled
FLAG_ATTRS = {
    "long_name": "forecast derived from filled missing input cells",
    "standard_name": "status_flag",
    "flag_values": np.array([0, 1], np.int8),
    "flag_meanings": "from_valid_input from_filled_input",
}


def fields(ds: xr.Dataset) -> list[str]:
    """The forecast fields of ``ds``: its data variables that are not status flags (``FLAG``)."""
    return [str(name) for name, da in ds.data_vars.items() if "flag_values" not in da.attrs]


def with_cf(ds: xr.Dataset, sources: dict[str, dict] | None = None) -> xr.Dataset:
    """``ds`` with CF attributes on its variables and lat/lon coordinates, data as float32, and the
    scalar coordinate ``plev`` (Pa) on the variables of a pressure level (U850, V850) only."""
    out = ds.copy()
    for name in fields(out):
        out[name] = out[name].astype(np.float32)
        own = {k: v for k, v in ds[name].attrs.items() if k not in ("_FillValue", "missing_value")}
        out[name].attrs = {**own, **cf_attrs(name, (sources or {}).get(name))}
    level = {n: VARIABLES[n].plev_pa for n in fields(out) if n in VARIABLES and VARIABLES[n].plev_pa}
    if len(set(level.values())) == 1 and "plev" not in out.variables:
        out = out.assign_coords(plev=((), next(iter(level.values()))))
    for name, attrs in COORD_ATTRS.items():
        if name in out.coords:
            out[name].attrs.update(attrs)
    for name, da in out.data_vars.items():  # each variable lists its own auxiliary coordinates
        own = [str(c) for c in out.coords if c not in out.dims and set(out[c].dims) <= set(da.dims)]
        listed = " ".join(c for c in own if c != "plev" or name in level)
        da.encoding.pop("coordinates", None)
        if listed:
            da.encoding["coordinates"] = listed
    out.attrs.setdefault("Conventions", "CF-1.8")
    return out


def lead_layout(forecast: xr.Dataset) -> xr.Dataset:
    """A forecast of ``climode.forecast`` (valid-time layout) laid out as WeatherBench 2 and
    earth2studio write forecasts, for many initialisations in one store.

    Returns dims (init_time, lead_time, lat, lon): ``init_time`` (cftime; standard_name
    forecast_reference_time, the last input frame's time), ``lead_time`` (timedelta64; standard_name
    forecast_period) and the coordinate ``valid_time`` (init_time, lead_time)."""
    if "lead_time" not in forecast.coords or "forecast_reference_time" not in forecast.coords:
        raise ClimodeError("the lead layout needs a forecast of climode.forecast (lead_time, forecast_reference_time)")
    hours = forecast["lead_time"].values.astype(np.float64)
    leads = np.rint(hours * 3.6e12).astype("timedelta64[ns]")
    out = forecast.drop_vars(["lead_time", "forecast_reference_time"]).rename(time="lead_time")
    out = out.assign_coords(
        lead_time=("lead_time", leads, {"standard_name": "forecast_period", "long_name": "time after the last input"})
    ).expand_dims(init_time=[forecast["forecast_reference_time"].values.item()])
    out = out.assign_coords(
        valid_time=(("init_time", "lead_time"), forecast["time"].values[None], {"standard_name": "time"})
    )
    out["init_time"].attrs = {"standard_name": "forecast_reference_time", "long_name": "time of the last input frame"}
    return out.transpose("init_time", "lead_time", ...)


def _along(ds: xr.Dataset) -> str:
    """The dim forecasts are appended along: time, or init_time in the lead layout."""
    return "init_time" if "init_time" in ds.dims else "time"


def _encoding(ds: xr.Dataset, calendar: str | None, netcdf: bool) -> dict:
    enc: dict = {
        name: {"dtype": "float32", "_FillValue": FILL} if name in fields(ds) else {"dtype": "int8", "_FillValue": None}
        for name in map(str, ds.data_vars)
    }
    if netcdf:
        for name in ds.data_vars:
            enc[str(name)].update(zlib=True, complevel=4)
    enc.update({name: {"_FillValue": None} for name in ds.coords})  # CF: coordinates have no fill value
    for name in ("time", "init_time", "valid_time", "forecast_reference_time"):
        if name in ds.coords and calendar:  # integers, so that a time reads back exactly as it was asked for
            whole = all(getattr(t, "microsecond", 0) == 0 for t in np.ravel(ds[name].values))
            unit = "seconds" if whole else "microseconds"
            enc[name].update(units=f"{unit} since {TIME_ORIGIN}", calendar=calendar, dtype="int64")
    if "lead_time" in ds.coords and ds["lead_time"].dtype.kind == "m":
        enc["lead_time"].update(units="hours", dtype="float64")
    return enc


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` holds a zarr store (its group metadata: ``.zgroup`` in format 2, ``zarr.json`` in 3)."""
    return (path / ".zgroup").exists() or (path / "zarr.json").exists()


def check_writable(path: Path, overwrite: bool, hint: str = "", store: bool = False) -> None:
    """Refuse (ClimodeError) an existing ``path`` unless ``overwrite``, and a missing or read-only parent.
    What ``overwrite`` may replace is an output of the same kind: a file for a file, a zarr ``store``
    for a store, never a user's directory."""
    if path.exists() and not overwrite:
        raise ClimodeError(f"{path} exists; pass --overwrite{hint} to replace it (or choose another output)")
    if path.is_dir() and not store:
        raise ClimodeError(f"{path} is a directory; give a file path for this output")
    if path.exists() and store and not is_zarr_store(path):
        raise ClimodeError(f"{path} exists and is not a zarr store; it is not replaced: choose another output")
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ClimodeError(f"cannot write {path}: {parent} does not exist or is not writable")


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse (ClimodeError) an output that would replace an input: one that is an input file (the same
    path once symlinks are resolved, or the same file under another name: a hard link), lies inside an
    input zarr store, or is a store that holds an input."""
    for output in outputs:
        for given in inputs:
            out, src = output.resolve(), given.resolve()
            if out == src or (out.exists() and src.exists() and os.path.samefile(out, src)):
                raise ClimodeError(f"output {output} is the input {given}; choose another output")
            if src in out.parents or out in src.parents:
                where = "lies inside the input store" if src in out.parents else "holds the input"
                raise ClimodeError(f"output {output} {where} {given}; choose another output")


def write_netcdf(ds: xr.Dataset, path: str | Path, calendar: str | None = None, overwrite: bool = False) -> Path:
    """Write ``ds`` as compressed float32 CF NetCDF, atomically (a temporary file, then renamed),
    holding the file's lock (``locked``) from the check that it may be written.

    Parameters
    ----------
    ds : a forecast (``climode.forecast``; dims (time, lat, lon), or the lead layout's (init_time,
        lead_time, lat, lon)) or any fields in the toolkit's convention, physical units.
    path : the file; an existing one is refused unless ``overwrite``.
    calendar : the calendar every time-like coordinate is written on (whole seconds since 0001-01-01);
        default as xarray encodes them.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with locked([path]):
        check_writable(path, overwrite)
        with replacing(path) as tmp:
            with_cf(ds).to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds, calendar, netcdf=True))
    return path


def check_appendable(ds: xr.Dataset, path: Path) -> None:
    """Refuse (ClimodeError naming ``path``) appending ``ds`` to the zarr store at ``path``: other
    variables, another layout, grid, lead times or calendar, or times not after the store's last."""
    store = xr.open_zarr(
        path, consolidated=False, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True), decode_timedelta=True
    )
    if set(store.data_vars) != set(ds.data_vars):
        raise ClimodeError(
            f"cannot append to {path}: it holds {', '.join(sorted(store.data_vars))}, "
            f"the forecast {', '.join(sorted(ds.data_vars))}"
        )
    along = _along(ds)
    if along not in store.dims:
        raise ClimodeError(f"cannot append to {path}: it is not a forecast store along {along} (another --layout?)")
    for dim in ("lat", "lon", "lead_time"):
        if dim in ds.dims and dim in ds.coords and not np.array_equal(store[dim].values, ds[dim].values):
            what = "lead times differ" if dim == "lead_time" else f"{dim} grid differs"
            raise ClimodeError(f"cannot append to {path}: its {what} from the forecast's")
    last, first = store[along].values[-1], ds[along].values[0]
    if getattr(last, "calendar", None) != getattr(first, "calendar", None):
        raise ClimodeError(
            f"cannot append to {path}: calendar {getattr(last, 'calendar', 'standard')} "
            f"differs from the forecast's {getattr(first, 'calendar', 'standard')}"
        )
    if not first > last:
        raise ClimodeError(
            f"cannot append to {path}: the forecast starts at {first}, not after the store's last time {last}"
        )


def to_zarr(ds: xr.Dataset, path: Path, calendar: str | None = None, append: bool = False) -> Path:
    """Write ``ds`` as a new zarr store at ``path`` (chunks: one time step, whole grid; consolidated
    metadata), or with ``append`` add it along time (init_time in the lead layout) to the store there,
    in place: ``write_zarr`` and ``climode.outputs`` call it on a staging copy."""
    along = _along(ds)
    data = with_cf(ds).chunk({along: 1, **{d: -1 for d in ds.dims if d != along}})
    if append:
        data.to_zarr(path, append_dim=along, consolidated=True)
    else:
        data.to_zarr(path, mode="w", consolidated=True, zarr_format=2, encoding=_encoding(ds, calendar, netcdf=False))
    return path


def write_zarr(
    ds: xr.Dataset, path: str | Path, calendar: str | None = None, append: bool = False, overwrite: bool = False
) -> Path:
    """Write ``ds`` to a zarr store (chunks: one time step, whole grid), or append it along time
    (along init_time in the lead layout).

    A new store is written beside ``path`` and renamed into place. An append is made on a copy
    of the store that replaces it only once complete. Either holds the store's lock (``locked``)
    throughout. Stores carry consolidated metadata (``.zmetadata``).
    """
    path = Path(path)
    stage = staging_path(path)
    try:
        with locked([path]):
            sweep(path)
            shutil.rmtree(stage, ignore_errors=True)
            appending = append and path.exists()
            if appending:
                check_appendable(ds, path)
                copy_tree(path, stage)
            else:
                check_writable(path, overwrite, store=True)
            to_zarr(ds, stage, calendar, append=appending)
            commit({path: stage})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path
