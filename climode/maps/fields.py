"""Forecast maps a forecaster reads at a glance, on cartopy, with no network.

With pressure and winds: 850 hPa wind speed filled, isobars as labelled black contours every 4 hPa,
wind vectors scaled to the region's winds (the strongest clipped), the storm centre as a hollow ring
with its track so far (neither hides the core), a zoomed inset on the storm when the region is wide,
and titles with the model, the initial time, each panel's valid time and lead. Other variables are
filled in their own units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cartopy.crs as ccrs
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..io.atomic import replacing
from ..io.write import fields
from .base import DPI, PANEL_W, Centre, _coastline, _gridlines, _heading, _valid, _zone

ARROWS = 20  # wind vectors across the domain
SPEED_CMAP = "YlOrRd"
ISOBAR_HPA = 4.0  # isobar interval
INSET_DEG = 20.0  # a region wider than this (degrees of longitude) gets a zoomed inset on the storm
INSET_HALF = (5.0, 7.0)  # the inset's half size, (lat, lon) degrees


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
    isobars: np.ndarray | None = None  # hPa, when the fill is wind speed and the pressure is drawn as lines
    pressure: xr.DataArray | None = None  # hPa
    zone: str = ""  # "UTC", or the calendar the times are on

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
        uv = (ds[wind[0]], ds[wind[1]]) if len(wind) == 2 and all(w in ds for w in wind) else None
        speed = np.hypot(uv[0].values, uv[1].values) if uv else None
        top = max(float(np.nanpercentile(speed, 90)), 1.0) if uv else 1.0  # the region's winds, not the storm's peak
        decade = 10.0 ** math.floor(math.log10(top))
        key_speed = next(k * decade for k in (5, 2, 1) if k * decade <= top)
        pressure_hpa, isobars = None, None
        if pressure in ds and uv is not None:  # speed filled, pressure as isobars
            pressure_hpa = field
            lo, hi = float(np.nanmin(field.values)), float(np.nanmax(field.values))
            isobars = np.arange(math.floor(lo / ISOBAR_HPA) * ISOBAR_HPA, hi + ISOBAR_HPA, ISOBAR_HPA)
            field = field.copy(data=speed).rename("speed")
            label = "850 hPa wind speed (m/s)" if wind[0].endswith("850") else "wind speed (m/s)"
        levels = MaxNLocator(12).tick_values(
            0.0 if isobars is not None else float(np.nanmin(field.values)), float(np.nanmax(field.values))
        )
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
            isobars,
            pressure_hpa,
            _zone(ds["time"].values[0]),
        )

    @cached_property
    def _centres_xy(self) -> list[tuple[float, float] | None]:
        return [self._find_centre(i) for i in range(self.ds.sizes["time"])]

    def centre(self, i: int) -> tuple[float, float] | None:
        """Panel ``i``'s storm centre as (x, y) in plot coordinates: ``centres[i]`` or the pressure
        minimum (found once per panel, for its marker and for the later panels' tracks)."""
        return self._centres_xy[i]

    def _find_centre(self, i: int) -> tuple[float, float] | None:
        if self.centres is not None:
            lat, lon = (float(c) for c in self.centres[i])
            if not (math.isfinite(lat) and math.isfinite(lon)):
                return None
            return ((lon - self.lon0 + 180.0) % 360.0 - 180.0 if self.proj else lon), lat
        values = (self.pressure if self.pressure is not None else self.field).isel(time=i).values
        if not self.is_pressure or np.isnan(values).all():
            return None
        j, k = np.unravel_index(np.nanargmin(values), values.shape)
        return self.x[k], self.y[j]


def _wind_arrows(ax, plan: _Plan, i: int, step: int, kw: dict, x=None, y=None, sub=None):
    """Thinned wind vectors, the key's length about one arrow spacing; those above 1.5 times the key are
    drawn at 1.5 times its length (the fill gives their speed), so that arrows never cross the core."""
    u, v = (w.isel(time=i).values for w in plan.wind)
    if sub is not None:
        u, v = u[sub], v[sub]
    u, v = u[::step, ::step], v[::step, ::step]
    speed = np.hypot(u, v)
    clip = np.minimum(1.0, 1.5 * plan.key_speed / np.maximum(speed, 1e-9))
    xs = (plan.x if x is None else x)[::step]
    ys = (plan.y if y is None else y)[::step]
    return ax.quiver(
        xs, ys, u * clip, v * clip, scale=plan.key_speed * ARROWS, scale_units="width", width=0.003,
        zorder=3, **kw,
    )  # fmt: skip


def _isobars(ax, x, y, values, levels, kw: dict, size: float = 6):
    lines = ax.contour(x, y, values, levels=levels, colors="black", linewidths=0.6, zorder=2.5, **kw)
    lines.set_gid("isobars")
    ax.clabel(lines, levels[::2] if len(levels) > 12 else levels, inline=True, fontsize=size, fmt="%d")
    return lines


def _centre_mark(ax, plan: _Plan, i: int, kw: dict) -> None:
    """A hollow ring at the centre and the track of the earlier panels' centres: the core stays visible."""
    track = [c for c in (plan.centre(k) for k in range(i + 1)) if c is not None]
    if len(track) > 1:
        ax.plot(*np.array(track).T, color="white", linewidth=1.0, linestyle="--", marker=".", markersize=3,
                gid="track", zorder=4, scalex=False, scaley=False, **kw)  # fmt: skip
    if (xy := plan.centre(i)) is not None:
        ax.plot(*xy, marker="o", markersize=16, markerfacecolor="none", markeredgecolor="white",
                markeredgewidth=1.3, gid="centre", zorder=4, scalex=False, scaley=False, **kw)  # fmt: skip


def _inset(ax, plan: _Plan, i: int) -> None:
    """A zoomed view of the storm's core in the panel's upper right corner."""
    if plan.proj is None or plan.isobars is None or np.ptp(plan.x) <= INSET_DEG or (xy := plan.centre(i)) is None:
        return
    (dy, dx), (cx, cy) = INSET_HALF, xy
    near_x, near_y = np.abs(plan.x - cx) <= dx, np.abs(plan.y - cy) <= dy
    if near_x.sum() < 4 or near_y.sum() < 4:
        return
    inset = ax.inset_axes([0.64, 0.52, 0.35, 0.46], projection=plan.proj)
    inset.set_gid("inset")
    kw = {"transform": plan.proj}
    x, y = plan.x[near_x], plan.y[near_y]
    inset.set_extent([x[0], x[-1], y[0], y[-1]], crs=plan.proj)
    sub = np.ix_(near_y, near_x)
    inset.contourf(x, y, plan.field.isel(time=i).values[sub], levels=plan.levels, cmap=SPEED_CMAP, extend="max", **kw)
    _isobars(inset, x, y, plan.pressure.isel(time=i).values[sub], plan.isobars, kw, size=5)
    _wind_arrows(inset, plan, i, max(1, math.ceil(max(x.size, y.size) / 10)), kw, x, y, sub)
    inset.add_feature(_coastline(), zorder=2)
    for spine in inset.spines.values():
        spine.set_edgecolor("white")


def _panel(fig: Figure, spec, plan: _Plan, i: int):
    if plan.proj is not None:
        ax = fig.add_subplot(spec, projection=plan.proj)
        ax.set_extent([plan.x[0], plan.x[-1], plan.y[0], plan.y[-1]], crs=plan.proj)
        ax.add_feature(_coastline(), gid="coastline", zorder=2)
        _gridlines(ax, plan.x[[0, -1]] + plan.lon0, plan.y[[0, -1]])
        kw = {"transform": plan.proj}
    else:
        ax = fig.add_subplot(spec, aspect="equal")
        kw = {}
    cmap = SPEED_CMAP if plan.isobars is not None else "viridis"
    extend = "max" if plan.isobars is not None else "both"
    filled = ax.contourf(
        plan.x, plan.y, plan.field.isel(time=i).values, levels=plan.levels, cmap=cmap, extend=extend, **kw
    )
    if plan.isobars is not None:
        _isobars(ax, plan.x, plan.y, plan.pressure.isel(time=i).values, plan.isobars, kw)
    if plan.wind is not None:
        step = max(1, math.ceil(max(plan.x.size, plan.y.size) / ARROWS))
        arrows = _wind_arrows(ax, plan, i, step, kw)
        ax.quiverkey(
            arrows, 0.85, 1.03, plan.key_speed, f"{plan.key_speed:g} m/s", labelpos="W", fontproperties={"size": 8}
        )
    _centre_mark(ax, plan, i, kw)
    _inset(ax, plan, i)
    ax.set_title(_valid(plan.ds.isel(time=i)), fontsize=9, loc="left")
    return filled


def _figure(plan: _Plan, times: Sequence[int], title: str | None) -> Figure:
    n = len(times)
    ncols = min(n, 3 if n in (5, 6, 9) else 4)
    nrows = math.ceil(n / ncols)
    aspect = min(max(np.ptp(plan.y) / max(np.ptp(plan.x), 1e-9), 0.3), 1.5)
    height = ((PANEL_W - 0.6) * aspect + 0.8) * nrows + 0.8 + 0.4 * (1 + bool(title))  # + titles, labels, colour bar
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
    heading = _heading(plan.ds, plan.zone)
    if title or heading:
        fig.suptitle(f"{title}\n{heading}" if title and heading else title or heading, fontsize=10)
    return fig


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
