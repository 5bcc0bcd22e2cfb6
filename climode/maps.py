"""Forecast maps: sea level pressure, wind vectors and the storm centre on cartopy, with no network.

Coastlines come from the Natural Earth 1:110m GeoJSON shipped in ``climode.resources``;
cartopy's own Natural Earth features (which download on first use) are never touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import cartopy.crs as ccrs
import cartopy.feature as cfeature
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from shapely.geometry import shape

from .errors import ClimodeError
from .io.write import fields, replacing

DPI = 110
ARROWS = 20  # wind vectors across the domain
PANEL_W = 4.5  # inches

Centre = tuple[float, float]  # (lat, lon) in degrees; (y, x) on a projected grid


@lru_cache(maxsize=1)
def _coastline() -> cfeature.ShapelyFeature:
    text = files("climode.resources").joinpath("ne_110m_coastline.geojson").read_text()
    geoms = [shape(f["geometry"]) for f in json.loads(text)["features"]]
    return cfeature.ShapelyFeature(geoms, ccrs.PlateCarree(), facecolor="none", edgecolor="0.15", linewidth=0.7)


@dataclass(frozen=True)
class _Plan:
    """What all panels and frames share: the field and its colour levels, the wind and its scale, the map."""

    ds: xr.Dataset  # dims (time, y, x, ...)
    field: xr.DataArray
    label: str
    levels: np.ndarray
    is_pressure: bool
    wind: tuple[xr.DataArray, xr.DataArray] | None
    key_speed: float
    proj: ccrs.Projection | None  # None: a projected grid on plain axes
    lon0: float  # central longitude; x = lon - lon0
    x: np.ndarray
    y: np.ndarray
    centres: Sequence[Centre] | None

    @classmethod
    def of(cls, ds: xr.Dataset, wind: Sequence[str], pressure: str, centres: Sequence[Centre] | None) -> _Plan:
        if not ds.data_vars or not ds.sizes.get("time"):
            raise ValueError("the forecast has no data variable or no time to draw")
        if centres is not None and len(centres) != ds.sizes["time"]:
            raise ValueError(f"{len(centres)} centres for {ds.sizes['time']} times")
        if pressure in ds:
            hpa = ds[pressure].attrs.get("units") in ("hPa", "mbar", "mb")
            field, label = ds[pressure] * (1.0 if hpa else 0.01), "sea level pressure (hPa)"
        else:  # the first variable that is not wind
            names = fields(ds)
            field = ds[next((n for n in names if n not in wind), names[0])]
            units = field.attrs.get("units")
            label = str(field.attrs.get("long_name", field.name)) + (f" ({units})" if units else "")
        geo = "lat" in field.dims and "lon" in field.dims
        ydim, xdim = ("lat", "lon") if geo else field.dims[-2:]
        ds, field = (a.transpose("time", ydim, xdim, ...) for a in (ds, field))
        levels = MaxNLocator(12).tick_values(float(np.nanmin(field.values)), float(np.nanmax(field.values)))
        uv = (ds[wind[0]], ds[wind[1]]) if len(wind) == 2 and all(w in ds for w in wind) else None
        top = max(float(np.nanmax(np.hypot(uv[0].values, uv[1].values))), 1.0) if uv else 1.0
        decade = 10.0 ** math.floor(math.log10(top))
        key_speed = next(k * decade for k in (5, 2, 1) if k * decade <= top)
        if geo:
            lon = ds["lon"].values.astype(float)
            lon0 = (lon[0] + lon[-1]) / 2
            proj, x, y = ccrs.PlateCarree(central_longitude=lon0), lon - lon0, ds["lat"].values
        else:
            proj, lon0 = None, 0.0
            x, y = (ds[d].values if d in ds.coords else np.arange(ds.sizes[d]) for d in (xdim, ydim))
        return cls(
            ds,
            field,
            label,
            levels,
            pressure in ds,
            uv,
            key_speed,
            proj,
            lon0,
            np.asarray(x, float),
            np.asarray(y, float),
            centres,
        )

    def centre(self, i: int) -> tuple[float, float] | None:
        """Panel ``i``'s storm centre as (x, y) in plot coordinates: ``centres[i]`` or the pressure minimum."""
        if self.centres is not None:
            lat, lon = (float(c) for c in self.centres[i])
            if not (math.isfinite(lat) and math.isfinite(lon)):
                return None
            return ((lon - self.lon0 + 180.0) % 360.0 - 180.0 if self.proj else lon), lat
        values = self.field.isel(time=i).values
        if not self.is_pressure or np.isnan(values).all():
            return None
        j, k = np.unravel_index(np.nanargmin(values), values.shape)
        return self.x[k], self.y[j]


def _when(value) -> str:
    return (value if hasattr(value, "strftime") else pd.Timestamp(value)).strftime("%Y-%m-%d %H:%M")


def _panel(fig: Figure, spec, plan: _Plan, i: int):
    if plan.proj is not None:
        ax = fig.add_subplot(spec, projection=plan.proj)
        ax.set_extent([plan.x[0], plan.x[-1], plan.y[0], plan.y[-1]], crs=plan.proj)
        ax.add_feature(_coastline(), gid="coastline", zorder=2)
        grid = ax.gridlines(
            crs=ccrs.PlateCarree(),
            draw_labels=True,
            linewidth=0.3,
            color="0.4",
            alpha=0.5,
            xlocs=(MaxNLocator(6).tick_values(*plan.x[[0, -1]] + plan.lon0) + 180) % 360 - 180,
            ylocs=MaxNLocator(5).tick_values(*plan.y[[0, -1]]),
        )
        grid.top_labels = grid.right_labels = False
        grid.xlabel_style = grid.ylabel_style = {"size": 7}
        kw = {"transform": plan.proj}
    else:
        ax = fig.add_subplot(spec, aspect="equal")
        kw = {}
    filled = ax.contourf(
        plan.x, plan.y, plan.field.isel(time=i).values, levels=plan.levels, cmap="viridis", extend="both", **kw
    )
    if plan.wind is not None:
        step = max(1, math.ceil(max(plan.x.size, plan.y.size) / ARROWS))
        u, v = (w.isel(time=i).values[::step, ::step] for w in plan.wind)
        arrows = ax.quiver(
            plan.x[::step],
            plan.y[::step],
            u,
            v,
            scale=plan.key_speed * ARROWS / 1.5,
            scale_units="width",
            width=0.003,
            zorder=3,
            **kw,
        )
        ax.quiverkey(
            arrows, 0.85, 1.03, plan.key_speed, f"{plan.key_speed:g} m/s", labelpos="W", fontproperties={"size": 8}
        )
    if (xy := plan.centre(i)) is not None:
        ax.plot(
            *xy,
            marker="X",
            color="red",
            markeredgecolor="white",
            markersize=11,
            gid="centre",
            zorder=4,
            scalex=False,
            scaley=False,
            **kw,
        )
    lead = f"   {float(plan.ds['lead_time'][i]):+g} h" if "lead_time" in plan.ds.coords else ""
    ax.set_title(f"{_when(plan.ds['time'].values[i])}{lead}", fontsize=10, loc="left")
    return filled


def _figure(plan: _Plan, times: Sequence[int], title: str | None) -> Figure:
    n = len(times)
    ncols = min(n, 3 if n in (5, 6, 9) else 4)
    nrows = math.ceil(n / ncols)
    aspect = min(max(np.ptp(plan.y) / max(np.ptp(plan.x), 1e-9), 0.3), 1.5)
    height = ((PANEL_W - 0.6) * aspect + 0.8) * nrows + 0.8 + (0.4 if title else 0)  # + titles, labels, colour bar
    fig = Figure(figsize=(PANEL_W * ncols, height), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    filled = [_panel(fig, grid[k // ncols, k % ncols], plan, i) for k, i in enumerate(times)]
    fig.colorbar(
        filled[0],
        ax=fig.axes,
        orientation="horizontal",
        shrink=0.6,
        aspect=40,
        label=plan.label,
        ticks=plan.levels[:: math.ceil(len(plan.levels) / (4 * ncols))],
    )
    if title:
        fig.suptitle(title)
    return fig


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


def draw_forecast(
    ds: xr.Dataset,
    *,
    wind: Sequence[str] = ("U850", "V850"),
    pressure: str = "PSL",
    centres: Sequence[Centre] | None = None,
    title: str | None = None,
) -> Figure:
    """One map panel per time of ``ds`` (dims time, lat, lon; lat degrees_north, lon degrees_east,
    possibly past 360), or plain axes for a projected (time, y, x) grid.

    Filled contours of ``pressure`` (Pa, drawn in hPa; else the first data variable in its own
    units) on the same levels in every panel, thinned ``wind`` vectors (m/s), the storm centre at
    the pressure minimum or ``centres[i]`` = (lat, lon) (NaN: none), valid and lead time (hours).
    """
    return _figure(_Plan.of(ds, wind, pressure, centres), range(ds.sizes["time"]), title)


def plot_forecast(ds: xr.Dataset, path: str | Path, **kw) -> Path:
    """Draw ``ds`` as :func:`draw_forecast` does (``kw`` go to it) and write a PNG at ``path``, atomically."""
    path = Path(path)
    fig = draw_forecast(ds, **kw)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
    return path


def animate_forecast(
    ds: xr.Dataset,
    path: str | Path,
    *,
    fps: float = 2,
    wind: Sequence[str] = ("U850", "V850"),
    pressure: str = "PSL",
    centres: Sequence[Centre] | None = None,
    title: str | None = None,
) -> Path:
    """A GIF at ``path`` with one map frame per time of ``ds`` (as in :func:`draw_forecast`, colour levels
    and wind scale fixed across frames), ``fps`` frames per second, looping; written atomically."""
    path = Path(path)
    plan = _Plan.of(ds, wind, pressure, centres)
    frames = []
    for i in range(ds.sizes["time"]):
        fig = _figure(plan, [i], title)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB"))
        fig.clear()
    with replacing(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return path
