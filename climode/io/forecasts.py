"""Forecast files read back: what ``climode forecast`` writes (a NetCDF file or a zarr store in the
valid-time layout), as the Dataset ``climode.verify`` scores."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from ..errors import ClimodeError
from .write import fields, is_zarr_store


def _forecast_fields(ds: xr.Dataset) -> list[str]:
    """The forecast's (time, lat, lon) fields; in an ensemble its (realization, time, lat, lon) members,
    not the probabilities, mean and spread written beside them."""
    names = [name for name in fields(ds) if set(ds[name].dims) - {"realization"} == {"time", "lat", "lon"}]
    if any("realization" in ds[name].dims for name in names):
        names = [name for name in names if "realization" in ds[name].dims]
    return names


def open_forecast(path: str | os.PathLike) -> xr.Dataset:
    """The forecast at ``path``, a NetCDF file or a zarr store, loaded: its fields (dims time, lat, lon;
    an ensemble's members with realization first) and coordinates, times as cftime.

    Raises ClimodeError for a missing path, a folder that is not a zarr store, an unreadable file, or
    one without such fields (e.g. in the lead layout, init_time x lead_time)."""
    where = Path(path)
    zarr = where.is_dir() and is_zarr_store(where)
    if where.is_dir() and not zarr:
        raise ClimodeError(
            f"forecast {path} is a directory but not a zarr store (no .zgroup or zarr.json): give a forecast "
            "NetCDF file or zarr store, as python -m climode.forecast writes"
        )
    if not where.exists():
        raise ClimodeError(f"forecast file {path} not found")
    try:
        ds = xr.open_dataset(
            path,
            engine="zarr" if zarr else None,
            decode_times=xr.coders.CFDatetimeCoder(use_cftime=True),
            decode_timedelta=False,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClimodeError(f"cannot open forecast {path}: {exc}") from None
    names = _forecast_fields(ds)
    if not names:
        lead = "init_time" in ds.dims
        layout = " in the lead layout (init_time, lead_time); give one in the valid-time layout" if lead else ""
        raise ClimodeError(
            f"forecast {path} has no (time, lat, lon) variable{layout} "
            f"(it holds {', '.join(map(str, ds.data_vars)) or 'none'})"
        )
    with ds:
        return ds[names].load()


__all__ = ["open_forecast"]
