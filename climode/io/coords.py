"""Opened files brought to the toolkit's convention (``climode.io.fields``): coordinate names,
longitudes in [0, 360), latitudes ascending, dims ordered; a numeric time axis without CF units
read as hours since a reference; U850/V850/PSL converted to m s-1 and Pa."""

from __future__ import annotations

import warnings
from pathlib import Path

import cftime
import numpy as np
import xarray as xr

from ..conventions import COORD_ATTRS, COORD_NAMES, HOUR_UNITS, REFTIME_NAMES, TIME_ORIGIN, VARIABLES, Variable
from ..errors import ClimodeError
from ..times import parse_date

# ---------------------------------------------------------------- coordinates


def rename_coords(ds: xr.Dataset) -> xr.Dataset:
    """Rename time/lat/lon aliases (dims or coordinates only) and make 1-D ones dimensions."""
    present = set(ds.dims) | set(ds.coords)
    renames = {}
    for target, candidates in COORD_NAMES.items():
        found = next((c for c in candidates if c in present), None)
        if found is not None and found != target and target not in present:
            renames[found] = target
    ds = ds.rename(renames)
    for name in COORD_NAMES:
        if name in ds.coords and ds[name].ndim == 1 and ds[name].dims[0] != name:
            ds = ds.swap_dims({ds[name].dims[0]: name})
    return ds


def _wrap_lon(ds: xr.Dataset) -> xr.Dataset:
    """Longitudes to [0, 360); a 1-D lon axis sorted ascending with data reordered, duplicates dropped."""
    if "lon" not in ds.coords:
        return ds
    lon = ds["lon"]
    ds = ds.assign_coords(lon=(lon % 360).assign_attrs(lon.attrs, units=COORD_ATTRS["lon"]["units"]))
    if lon.dims != ("lon",):
        return ds
    _, first = np.unique(ds["lon"].values, return_index=True)
    return ds if np.array_equal(first, np.arange(lon.size)) else ds.isel(lon=first)


def _ascending_lat(ds: xr.Dataset) -> xr.Dataset:
    """Latitudes ascending (ERA5 stores them 90..-90)."""
    if "lat" not in ds.coords:
        return ds
    ds = ds.assign_coords(lat=ds["lat"].assign_attrs(units=COORD_ATTRS["lat"]["units"]))
    if ds["lat"].dims != ("lat",) or ds.indexes["lat"].is_monotonic_increasing:
        return ds
    return ds.sortby("lat")


def _order_dims(ds: xr.Dataset) -> xr.Dataset:
    """Dims in the order (time, ..., lat, lon) or (time, ..., y, x)."""
    space = next((pair for pair in (("lat", "lon"), ("y", "x")) if set(pair) <= set(ds.dims)), ())
    return ds.transpose("time", ..., *space, missing_dims="ignore")


def normalise_coords(ds: xr.Dataset) -> xr.Dataset:
    """Coordinates to the toolkit convention: dims (time, ..., lat, lon) with lat ascending and
    lon in [0, 360) ascending; projected grids keep (time, ..., y, x). Lazy: no data is read."""
    return _order_dims(_ascending_lat(_wrap_lon(rename_coords(ds))))


# ---------------------------------------------------------------- time


def _file_reftime(ds: xr.Dataset, path: Path) -> str | None:
    """The reference date a file gives as text (e.g. the geocat ``reftime`` "1996 01 05 00:00")."""
    name = next((n for n in REFTIME_NAMES if n in ds.variables and ds[n].dtype.kind in "SUO"), None)
    if name is None:
        return None
    value = ds[name].values.item()
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return parse_date(text, f"{path}: reference time variable {name!r}")


def hours_axis(
    ds: xr.Dataset, path: Path, time_in_hours: bool, reference_time: str | None, calendar: str
) -> xr.Dataset:
    """Turn a numeric time axis without CF units into cftime objects (hours since a reference)."""
    if "time" not in ds.coords or ds["time"].dtype.kind not in "iuf":
        return ds
    time = ds["time"]
    units = time.attrs.get("units")
    if units is not None and str(units).strip().lower() not in HOUR_UNITS:
        raise ClimodeError(f"{path}: time axis has units {units!r}, not CF 'UNITS since YYYY-MM-DD'")
    if not time_in_hours:
        raise ClimodeError(
            f"{path}: the time axis has numbers and no units; if they are hours, pass "
            f"--time-in-hours (time_in_hours=True) with a reference time (default {TIME_ORIGIN})"
        )
    if reference_time is not None:
        ref = parse_date(reference_time, "reference_time")
    else:
        ref = _file_reftime(ds, path) or TIME_ORIGIN
    try:
        dates = cftime.num2date(time.values, f"hours since {ref}", calendar=calendar, only_use_cftime_datetimes=True)
    except ValueError as exc:
        raise ClimodeError(f"{path}: cannot read time as hours since {ref} ({calendar} calendar): {exc}") from None
    attrs = {k: v for k, v in time.attrs.items() if k != "units"}
    return ds.assign_coords(time=("time", np.asarray(dates), attrs))


# ---------------------------------------------------------------- units


def _unit_key(units: object) -> str:
    return str(units).strip().lower().replace(" ", "")


def _units_factor(name: str, known: Variable, units: object, sample: np.ndarray) -> float | None:
    """Factor to ``known.units`` (1 when fine), or None to leave values with unknown units; warns."""
    finite = sample[np.isfinite(sample)]
    lo, hi = known.plausible or (np.nan, np.nan)
    looks_hpa = known.units == "Pa" and finite.size and lo <= 100 * np.median(finite) <= hi
    factor = known.factors.get(_unit_key(units)) if units is not None else 1.0
    if looks_hpa and units is not None and factor == 1.0:
        raise ClimodeError(
            f"{name} is labelled {units!r} but its values look like hPa (median {np.median(finite):.1f}; "
            f"sea-level pressure is near 101325 Pa); set its units attribute to 'hPa' and climode converts it "
            f"(xarray: ds['{name}'].attrs['units'] = 'hPa'; NCO: ncatted -a units,{name},o,c,hPa FILE)"
        )
    if looks_hpa and factor == 1.0:  # no units attribute: hPa is the likely reading
        warnings.warn(
            f"{name}: values look like hPa (median {np.median(finite):.1f}) although units are "
            "there is no units attribute; converting to Pa (x100)",
            stacklevel=4,
        )
        return 100.0
    if units is None:
        warnings.warn(f"{name} has no units attribute; assuming {known.units}", stacklevel=4)
    elif factor is None:
        warnings.warn(f"{name} has unknown units {units!r}; values left as they are", stacklevel=4)
    elif factor != 1.0:
        warnings.warn(f"{name}: converting {units!r} to {known.units!r} (x{factor:g})", stacklevel=4)
    return factor


def fix_units(name: str, da: xr.DataArray, sample: np.ndarray) -> xr.DataArray:
    known = VARIABLES.get(name)
    if known is None:
        return da
    factor = _units_factor(name, known, da.attrs.get("units"), sample)
    if factor is None:
        return da
    out = da if factor == 1.0 else da * factor
    return out.assign_attrs(da.attrs, units=known.units)
