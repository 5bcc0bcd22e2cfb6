"""Opened files brought to the toolkit's convention (``climode.io.fields``): coordinate names,
longitudes in [0, 360), latitudes ascending, dims ordered; U850/V850/PSL converted to m s-1 and Pa
(a numeric time axis without CF units is read as hours by ``climode.times.hours_axis``)."""

from __future__ import annotations

import re
import warnings

import cftime
import numpy as np
import xarray as xr

from ..conventions import (
    COORD_ATTRS,
    COORD_NAMES,
    VARIABLES,
    Variable,
    bounds,
    conversion,
    read_units,
)
from ..errors import ClimodeError
from ..geo.grid import apply_triangulated, regular_axes, triangulated
from ..times import to_hours

# ---------------------------------------------------------------- coordinates


def _datetimes(var: xr.Variable) -> bool:
    """Whether ``var`` holds decoded dates (datetime64 or cftime objects)."""
    if var.dtype.kind == "M":
        return True
    return var.dtype.kind == "O" and var.size > 0 and isinstance(var.values.flat[0], cftime.datetime)


def _cf_role(var: xr.Variable) -> str | None:
    """ "time", "lat" or "lon" when ``var``'s CF attributes say so (standard_name, units, axis)."""
    attrs = var.attrs
    units = str(attrs.get("units", "")).lower().replace(" ", "")
    if attrs.get("standard_name") == "time" or attrs.get("axis") == "T" or (var.ndim <= 1 and _datetimes(var)):
        return "time"
    if attrs.get("standard_name") == "latitude" or units in ("degrees_north", "degree_north", "degrees_n", "degree_n"):
        return "lat"
    if attrs.get("standard_name") == "longitude" or units in ("degrees_east", "degree_east", "degrees_e", "degree_e"):
        return "lon"
    return None


def rename_coords(ds: xr.Dataset) -> xr.Dataset:
    """Rename time/lat/lon aliases (dims or coordinates only), or else the one coordinate (or scalar
    data variable, as radar archives keep their time) that CF attributes or decoded dates identify,
    and make 1-D ones dimensions."""
    present = set(ds.dims) | set(ds.coords)
    renames = {}
    for target, candidates in COORD_NAMES.items():
        found = next((c for c in candidates if c in present), None)
        if found is None and target not in present:
            by_role = [n for n in ds.variables if _cf_role(ds[n].variable) == target]
            by_role = [n for n in by_role if n in ds.coords or ds[n].ndim <= (0 if target == "time" else 2)]
            found = by_role[0] if len(by_role) == 1 else None
        if found is not None and found != target and target not in present:
            renames[found] = target
    ds = ds.set_coords([n for n in renames if n in ds.data_vars]).rename(renames)
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


# ---------------------------------------------------------------- units


def _units_factor(name: str, known: Variable, units: object, sample: np.ndarray) -> float:
    """Factor to ``known.units`` (1 when fine); warns on a conversion or a guess, refuses units that
    cannot be read or measure another quantity."""
    finite = sample[np.isfinite(sample)]
    lo, hi = known.plausible or (np.nan, np.nan)
    looks_hpa = known.units == "Pa" and finite.size and lo <= 100 * np.median(finite) <= hi
    factor = conversion(units, known.units) if units is not None else 1.0
    if units is not None and factor is None:
        kind = "cannot be read as" if read_units(units) is None else "measure another quantity than"
        raise ClimodeError(
            f"{name} has units {units!r}, which {kind} {known.units}; climode converts any unit of that "
            f"quantity (e.g. {known.examples}): set the units attribute to what the values are in"
        )
    if looks_hpa and units is not None and factor == 1.0:
        raise ClimodeError(
            f"{name} is labelled {units!r} but its values look like hPa (median {np.median(finite):.1f}; "
            f"sea-level pressure is near 101325 Pa); set its units attribute to 'hPa' and climode converts it "
            f"(xarray: ds['{name}'].attrs['units'] = 'hPa'; NCO: ncatted -a units,{name},o,c,hPa FILE)"
        )
    if looks_hpa and factor == 1.0:  # no units attribute: hPa is the likely reading
        warnings.warn(
            f"{name}: values look like hPa (median {np.median(finite):.1f}) and there is no units attribute; "
            "converting to Pa (x100)",
            stacklevel=4,
        )
        return 100.0
    if units is None:
        warnings.warn(f"{name} has no units attribute; assuming {known.units}", stacklevel=4)
    elif abs(factor - 1.0) > 1e-9:
        warnings.warn(f"{name}: converting {units!r} to {known.units!r} (x{factor:g})", stacklevel=4)
    return 1.0 if abs(factor - 1.0) <= 1e-9 else factor


def fix_units(name: str, da: xr.DataArray, sample: np.ndarray) -> xr.DataArray:
    known = VARIABLES.get(name)
    if known is None:
        return da
    factor = _units_factor(name, known, da.attrs.get("units"), sample)
    out = da if factor == 1.0 else da * factor
    return out.assign_attrs(da.attrs, units=known.units)


# ---------------------------------------------------------------- levels and other dims

LEVEL_NAMES = ("pressure_level", "plev", "lev", "level", "isobaricInhPa", "pressure", "air_pressure")
_HPA = {"hpa": 1.0, "mb": 1.0, "mbar": 1.0, "millibar": 1.0, "millibars": 1.0, "pa": 0.01, "kpa": 10.0}


def _level_dim(da: xr.DataArray, extra: list[str]) -> str | None:
    """The dim among ``extra`` that is a vertical level: by name, CF axis Z / positive, or pressure units."""
    for dim in extra:
        coord = da.coords.get(dim)
        attrs = coord.attrs if coord is not None else {}
        if dim in LEVEL_NAMES or attrs.get("axis") == "Z" or "positive" in attrs or _hpa(attrs) is not None:
            return dim
    return None


def _hpa(attrs) -> float | None:
    """Factor from a level coordinate's units to hPa, None when they are not pressure units."""
    return _HPA.get(str(attrs.get("units", "")).strip().lower())


def select_level(da: xr.DataArray, name: str, source: str, level: float | None, where: str) -> xr.DataArray:
    """``da`` with the dims besides time and the grid's two taken away: a size-1 dim squeezed, a
    vertical level chosen by value (``level``, hPa for pressure levels, else the coordinate's own
    units; for U850/V850 850 hPa when none is named). Anything else is refused in one line naming the
    levels and the ``NAME=VAR@LEVEL`` syntax of ``--vars``."""
    space = set(da["lat"].dims) | set(da["lon"].dims) if {"lat", "lon"} <= set(da.coords) else {"lat", "lon", "y", "x"}
    extra = [d for d in da.dims if d != "time" and d not in space]
    dim = _level_dim(da, extra)
    known = VARIABLES.get(name)
    if dim is not None and level is None and known is not None and known.plev_pa and da.sizes[dim] > 1:
        level = known.plev_pa / 100.0 if _hpa(da[dim].attrs) is not None else None
    if level is not None:
        if dim is None:
            raise ClimodeError(
                f"{where}: {source} has no level dimension to take level {level:g} from (dims {da.dims})"
            )
        values = np.asarray(da[dim].values, float) * (_hpa(da[dim].attrs) or 1.0) if dim in da.coords else None
        match = [] if values is None else np.flatnonzero(np.isclose(values, level, rtol=0, atol=1e-6 * max(1, level)))
        if not len(match):
            raise ClimodeError(f"{where}: {source} has no level {level:g} on {dim} (levels there: {_levels(da, dim)})")
        da = da.isel({dim: int(match[0])})
        extra.remove(dim)
    for d in [d for d in extra if da.sizes[d] == 1]:
        da = da.isel({d: 0})
    left = [d for d in extra if d in da.dims]
    if left:
        d = left[0]
        hint = f"name one as --vars {name}={source}@LEVEL" if d == dim else f"select one {d} before (ds.isel({d}=0))"
        raise ClimodeError(
            f"{where}: {source} has {da.sizes[d]} values on {d} ({_levels(da, d)}) besides time and the grid, "
            f"and none was chosen: {hint}"
        )
    return da


def _levels(da: xr.DataArray, dim: str) -> str:
    if dim not in da.coords:
        return f"{da.sizes[dim]} without coordinates"
    values = ", ".join(f"{v:g}" for v in np.asarray(da[dim].values, float)[:12])
    units = da[dim].attrs.get("units", "")
    return f"{values}{' ...' if da.sizes[dim] > 12 else ''} {units}".strip()


# ---------------------------------------------------------------- curvilinear grids


def regular(da: xr.DataArray, where: str) -> tuple[xr.DataArray, str]:
    """``da`` on a curvilinear grid (2-D ``lat``/``lon`` coordinates, as WRF's XLAT/XLONG) linearly
    interpolated onto a regular lat/lon grid of about the source's spacing (``geo.grid.regular_axes``;
    Delaunay triangles of the source points, NaN outside their hull), and the sentence that says so.
    Lazy: each time chunk is interpolated when it is read."""
    lat, lon = (da[c].isel(time=0) if "time" in da[c].dims else da[c] for c in ("lat", "lon"))
    if lat.dims != lon.dims or lat.ndim != 2:
        raise ClimodeError(
            f"{where}: lat and lon of a curvilinear grid must share their two dims, found {lat.dims}, {lon.dims}"
        )
    lat_v, lon_v = np.asarray(lat.values, float), np.asarray(lon.values, float)
    if not (np.isfinite(lat_v).all() and np.isfinite(lon_v).all()):
        raise ClimodeError(f"{where}: the curvilinear grid's lat/lon have missing values")
    if np.ptp(lon_v) > 180:  # -180..180 across the date line
        lon_v = lon_v % 360
    lat_out, lon_out = regular_axes(lat_v, lon_v)
    index, weights = triangulated(lat_v, lon_v, lat_out, lon_out)
    shape = (len(lat_out), len(lon_out))
    body = da.drop_vars(["lat", "lon"]).transpose(..., *lat.dims)
    out = xr.apply_ufunc(
        apply_triangulated,
        body,
        kwargs={"index": index, "weights": weights, "shape": shape},
        input_core_dims=[list(lat.dims)],
        output_core_dims=[["lat", "lon"]],
        dask="parallelized",
        output_dtypes=[da.dtype],
        dask_gufunc_kwargs={"output_sizes": dict(zip(("lat", "lon"), shape))},
        keep_attrs=True,
    )
    out = out.assign_coords(lat=("lat", lat_out, COORD_ATTRS["lat"]), lon=("lon", lon_out, COORD_ATTRS["lon"]))
    step = float(np.diff(lat_out[:2])[0]) if len(lat_out) > 1 else float("nan")
    note = (
        f"{where}: curvilinear grid ({' x '.join(map(str, lat.shape))} points with 2-D lat/lon) regridded to a "
        f"regular {step:g}-degree grid, lat {lat_out[0]:g} to {lat_out[-1]:g}, lon {lon_out[0] % 360:g} to "
        f"{lon_out[-1] % 360:g}, by linear interpolation on the triangulated points (NaN outside them); to choose "
        "the grid, regrid first (xESMF, CDO remapbil)"
    )
    return out, note


# ---------------------------------------------------------------- accumulations

_INTERVAL = re.compile(r"interval:\s*([\d.]+)\s*([a-z]+)", re.IGNORECASE)


def _accumulated_over(da: xr.DataArray) -> float | None:
    """Hours each value accumulates over: CF ``cell_methods`` "time: sum (interval: 10 minutes)", else
    the record's median time step; None when neither tells."""
    match = _INTERVAL.search(str(da.attrs.get("cell_methods", "")))
    if match:
        read = read_units(match.group(2))
        if read is not None and read[1] == (0, 1, 0, 0):
            return float(match.group(1)) * read[0] / 3600.0
    if da.sizes.get("time", 0) > 1:
        calendar = getattr(da["time"].values[0], "calendar", "standard")
        return float(np.median(np.diff(to_hours(da["time"].values, calendar))))
    return None


def _is_accumulation(da: xr.DataArray) -> bool:
    """A precipitation-like amount: CF "time: sum", a standard_name ending in _amount, or an amount's
    units (kg m-2, mm, m) on a variable with precipitation bounds."""
    attrs = da.attrs
    if "time: sum" in str(attrs.get("cell_methods", "")) or str(attrs.get("standard_name", "")).endswith("_amount"):
        return True
    read = read_units(attrs["units"]) if "units" in attrs else None
    amount = read is not None and read[1] in ((-2, 0, 1, 0), (1, 0, 0, 0))
    return amount and bounds(str(da.name), attrs)[0] == 0.0


def accumulation(da: xr.DataArray, name: str, source: str, as_rate: bool) -> xr.DataArray:
    """An accumulated variable (``_is_accumulation``) as it is, with a warning that says so and what it
    assumes, or (``as_rate``) divided by the time it accumulates over, in mm h-1 (kg m-2 of water =
    1 mm). Anything else is returned unchanged; ``as_rate`` on it is refused."""
    if not _is_accumulation(da):
        if as_rate:
            raise ClimodeError(
                f"{name}: {source}:rate asks for an accumulation as a rate, but {source} (units "
                f"{da.attrs.get('units', 'none')!r}, cell_methods {da.attrs.get('cell_methods', 'none')!r}) is not one"
            )
        return da
    hours = _accumulated_over(da)
    units = da.attrs.get("units", "kg m-2")
    if not as_rate:
        over = f"{hours * 60:g} min" if hours is not None else "one time step"
        warnings.warn(
            f"{name} is an accumulation ({units} per {over}): forecast as amounts per {over}, which assumes every "
            f"time step accumulates over as long; --vars {name}={source}:rate reads it as a rate in mm h-1",
            stacklevel=4,
        )
        return da
    read = read_units(units)
    if hours is None or read is None:
        raise ClimodeError(
            f"{name}: cannot tell what {source} ({units!r}) accumulates over; give cell_methods "
            "'time: sum (interval: 10 minutes)' or more than one time"
        )
    to_mm = read[0] if read[1] == (-2, 0, 1, 0) else read[0] * 1000.0  # kg m-2 of water, or a depth in m
    attrs = {k: v for k, v in da.attrs.items() if k not in ("units", "cell_methods", "standard_name")}
    rate = da * (to_mm / hours)
    rate.attrs = {**attrs, "units": "mm h-1", "climode_rate_from": f"{units} per {hours * 60:g} min"}
    return rate
