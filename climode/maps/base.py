"""What every map shares: the coastline, labelled gridlines, the region shown, the times in the titles,
and the figures' resolution and panel width.

Coastlines come from the Natural Earth 1:110m GeoJSON shipped in ``climode.resources``;
cartopy's own Natural Earth features (which download on first use) are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import cartopy.crs as ccrs
import cartopy.feature as cfeature
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from shapely.geometry import shape

from ..errors import ClimodeError

DPI = 110
PANEL_W = 4.5  # inches
Centre = tuple[float, float]  # (lat, lon) in degrees; (y, x) on a projected grid
Extent = tuple[tuple[float, float], tuple[float, float]]  # ((lat0, lat1), (lon0, lon1)) degrees
Region = str | Extent | None  # "LAT0:LAT1,LON0:LON1", a box, or None ("full" and "storm" too): the data's own extent


@lru_cache(maxsize=1)
def _coastline() -> cfeature.ShapelyFeature:
    text = files("climode.resources").joinpath("ne_110m_coastline.geojson").read_text()
    geoms = [shape(f["geometry"]) for f in json.loads(text)["features"]]
    return cfeature.ShapelyFeature(geoms, ccrs.PlateCarree(), facecolor="none", edgecolor="0.15", linewidth=0.7)


def _when(value) -> str:
    return (value if hasattr(value, "strftime") else pd.Timestamp(value)).strftime("%Y-%m-%d %H:%M")


def _hours(value) -> float:
    """A lead time in hours, whether stored as a number of hours or decoded as a timedelta."""
    return float(value / np.timedelta64(1, "h")) if isinstance(value, np.timedelta64) else float(value)


def _valid(obj: xr.Dataset | xr.DataArray) -> str:
    """``"valid TIME   +LEAD h"`` for one time of a forecast (its scalar ``time`` and ``lead_time``); "" without one."""
    if "time" not in obj.coords or obj["time"].ndim:
        return ""
    lead = obj.coords.get("lead_time")
    lead = f"   {_hours(lead.values[()]):+g} h" if lead is not None and not lead.ndim else ""
    return f"valid {_when(obj['time'].values[()])}{lead}"


def _gridlines(ax, lons: Sequence[float], lats: Sequence[float]) -> None:
    """Labelled lat/lon gridlines (left and bottom) spanning ``lons`` and ``lats`` (degrees, first and last)."""
    grid = ax.gridlines(
        crs=ccrs.PlateCarree(),
        draw_labels=True,
        linewidth=0.3,
        color="0.4",
        alpha=0.5,
        xlocs=(MaxNLocator(6).tick_values(*lons) + 180) % 360 - 180,
        ylocs=MaxNLocator(5).tick_values(*lats),
    )
    grid.top_labels = grid.right_labels = False
    grid.xlabel_style = grid.ylabel_style = {"size": 7}


def _zone(value) -> str:
    """How the times are meant: UTC on the real-world calendars, else the model calendar's name."""
    calendar = getattr(value, "calendar", "standard") or "standard"
    return "UTC" if calendar in ("standard", "gregorian", "proleptic_gregorian") else f"{calendar} calendar"


def _heading(ds: xr.Dataset, zone: str) -> str | None:
    """The figure's title from a forecast's provenance: the model and the initial time."""
    model = Path(str(ds.attrs.get("climode_checkpoint", ""))).name
    init = ds.coords.get("forecast_reference_time")
    parts = [f"climode Vid-ODE ({model})" if model else None]
    if init is not None and init.size == 1:
        parts.append(f"initial time {_when(init.values.item())}")
    parts = [p for p in parts if p]
    return "\n".join(parts) + f"  (times: {zone})" if parts else None


def parse_region(spec: str) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``"LAT0:LAT1,LON0:LON1"`` -> ((lat0, lat1), (lon0, lon1)) degrees; None for "storm" or "full"."""
    if spec in ("storm", "full"):
        return None
    try:
        (lat0, lat1), (lon0, lon1) = (tuple(float(v) for v in part.split(":")) for part in spec.split(","))
    except ValueError:
        raise ClimodeError(f"map region {spec!r} is not 'storm', 'full' or LAT0:LAT1,LON0:LON1 (degrees)") from None
    if not (lat0 < lat1 and lon0 < lon1):
        raise ClimodeError(f"map region {spec!r}: need LAT0 < LAT1 and LON0 < LON1")
    return (lat0, lat1), (lon0, lon1)


def region(
    ds: xr.Dataset, spec: str = "storm", pressure: str = "PSL", size: tuple[float, float] = (24.0, 36.0)
) -> xr.Dataset:
    """The part of ``ds`` (time, lat, lon) to map: ``"full"``; ``"storm"``, a ``size`` = (lat, lon)
    degrees box centred on the ``pressure`` minimum of the first time (the whole domain when it is
    no larger, or when there is no pressure); or ``"LAT0:LAT1,LON0:LON1"`` in degrees."""
    if spec == "full" or "lat" not in ds.dims or "lon" not in ds.dims:
        return ds
    if spec == "storm":
        if pressure not in ds:
            return ds
        field = ds[pressure].isel(time=0)
        field = field.mean("realization") if "realization" in field.dims else field  # an ensemble's mean
        if np.isnan(field.values).all():
            return ds
        i, j = np.unravel_index(np.nanargmin(field.values), field.shape)
        lat, lon = float(ds.lat[i]), float(ds.lon[j])
        box = (lat - size[0] / 2, lat + size[0] / 2), (lon - size[1] / 2, lon + size[1] / 2)
    else:
        box = parse_region(spec)
    (lat0, lat1), (lon0, lon1) = box
    lons = ds.lon.values
    keep_lon = (lons >= lon0 % 360) & (lons <= lon0 % 360 + (lon1 - lon0)) if lon1 - lon0 < 360 else lons == lons
    cut = ds.isel(lat=(ds.lat.values >= lat0) & (ds.lat.values <= lat1), lon=keep_lon)
    if cut.sizes["lat"] < 2 or cut.sizes["lon"] < 2:
        raise ClimodeError(f"map region {spec!r} holds no part of the forecast's grid")
    return cut


def _extent(region: Region, default: Extent | None) -> Extent | None:
    """``region`` as ((lat0, lat1), (lon0, lon1)) degrees; ``default`` for None, "full" or "storm"."""
    box = parse_region(region) if isinstance(region, str) else region
    if box is None:
        return default
    (lat0, lat1), (lon0, lon1) = box
    if not (lat0 < lat1 and lon0 < lon1):
        raise ClimodeError(f"map region {box!r}: need LAT0 < LAT1 and LON0 < LON1")
    return (float(lat0), float(lat1)), (float(lon0), float(lon1))


def _grid_extent(obj: xr.Dataset | xr.DataArray) -> Extent:
    lon = np.unwrap(obj["lon"].values.astype(float), period=360)
    return (float(obj["lat"].min()), float(obj["lat"].max())), (float(lon[0]), float(lon[-1]))


def _geo_axes(ax, extent: Extent, bar: bool = False, width: float = 7.0):
    """``ax`` (a cartopy GeoAxes on PlateCarree) or a new figure's (with room for a colour bar below, ``bar``),
    showing ``extent`` with the coastline and labelled gridlines; and its central longitude (x = lon - centre)."""
    (lat0, lat1), (lon0, lon1) = extent
    if ax is None:
        aspect = min(max((lat1 - lat0) / max(lon1 - lon0, 1e-9), 0.3), 1.5)
        fig = Figure(figsize=(width, (width - 0.6) * aspect + 1.0 + 0.8 * bar), dpi=DPI, layout="constrained")
        ax = fig.add_subplot(projection=ccrs.PlateCarree(central_longitude=(lon0 + lon1) / 2))
    elif not isinstance(getattr(ax, "projection", None), ccrs.PlateCarree):
        raise ValueError("ax must be a cartopy GeoAxes on PlateCarree")
    centre = round(float(ccrs.PlateCarree().transform_point(0.0, 0.0, ax.projection)[0]), 6)
    shift = centre + 360 * round(((lon0 + lon1) / 2 - centre) / 360)
    ax.set_extent([lon0 - shift, lon1 - shift, lat0, lat1], crs=ax.projection)
    ax.add_feature(_coastline(), gid="coastline", zorder=2)
    _gridlines(ax, (lon0, lon1), (lat0, lat1))
    return ax, centre
