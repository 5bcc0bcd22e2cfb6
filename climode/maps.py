"""Forecast maps a forecaster reads at a glance, on cartopy, with no network.

With pressure and winds: 850 hPa wind speed filled, isobars as labelled black contours every 4 hPa,
wind vectors scaled to the region's winds (the strongest clipped), the storm centre as a hollow ring
with its track so far (neither hides the core), a zoomed inset on the storm when the region is wide,
and titles with the model, the initial time, each panel's valid time and lead. Other variables are
filled in their own units.

Ensembles (realization, time, lat, lon) get a track plume (each member's track thin, the mean bold, the
observed track marked), spaghetti (one contour per member, the mean's bold) and probability maps (in %,
blank below the lowest level), alone or as the panels of one page (``plot_ensemble``).

Coastlines come from the Natural Earth 1:110m GeoJSON shipped in ``climode.resources``;
cartopy's own Natural Earth features (which download on first use) are never touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.resources import files
from pathlib import Path

import cartopy.crs as ccrs
import cartopy.feature as cfeature
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter
from PIL import Image
from shapely.geometry import shape

from .errors import ClimodeError
from .io.write import fields, replacing

DPI = 110
ARROWS = 20  # wind vectors across the domain
PANEL_W = 4.5  # inches
SPEED_CMAP = "YlOrRd"
ISOBAR_HPA = 4.0  # isobar interval
INSET_DEG = 20.0  # a region wider than this (degrees of longitude) gets a zoomed inset on the storm
INSET_HALF = (5.0, 7.0)  # the inset's half size, (lat, lon) degrees

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


TRACK_STYLES = ("-", "--", ":", "-.")


def draw_tracks(
    tracks: Mapping[str, pd.DataFrame],
    *,
    field: xr.DataArray | None = None,
    boxes: Sequence = (),
    extent: tuple[tuple[float, float], tuple[float, float]] | None = None,
    title: str | None = None,
) -> Figure:
    """One map of storm tracks, e.g. the true, detected and forecast tracks of the same storms.

    tracks: label -> table with ``lat`` and ``lon`` (degrees; lon 0..360 or past it) and, optionally,
        ``storm`` (one line per storm; else one line), in time order. Each label has its own colour,
        line style and width (the first widest, so later ones drawn over it stay readable), a dot
        at each point and a ring at each storm's first point.
    field: (lat, lon) filled beneath, in its own units (PSL in Pa is drawn in hPa).
    boxes: ``climode.geo.tiles.Tile`` outlines (basin tiles), labelled with their names.
    extent: ((lat0, lat1), (lon0, lon1)) degrees; default: the field, else the tracks and boxes, padded.
    """
    points = [t for t in tracks.values() if len(t)]
    lons = np.concatenate([np.asarray(t["lon"], float) % 360 for t in points] or [np.zeros(0)])
    if extent is None:
        if field is not None:
            extent = (float(field.lat.min()), float(field.lat.max())), (float(field.lon.min()), float(field.lon.max()))
        elif len(lons) or boxes:
            lats = np.concatenate([np.asarray(t["lat"], float) for t in points] or [np.zeros(0)])
            lat_edges = [*lats, *(v for b in boxes for v in b.lat_range)]
            lon_edges = [*lons, *(v for b in boxes for v in (b.lon0 % 360, b.lon0 % 360 + b.width))]
            extent = (min(lat_edges) - 5, max(lat_edges) + 5), (min(lon_edges) - 5, max(lon_edges) + 5)
        else:
            raise ClimodeError("draw_tracks needs tracks, a field or boxes to draw")
    (lat0, lat1), (lon0, lon1) = extent
    centre = (lon0 + lon1) / 2
    proj = ccrs.PlateCarree(central_longitude=centre)
    aspect = min(max((lat1 - lat0) / max(lon1 - lon0, 1e-9), 0.3), 1.5)
    fig = Figure(figsize=(9, 9 * aspect + 1.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot(projection=proj)
    ax.set_extent([lon0 - centre, lon1 - centre, lat0, lat1], crs=proj)
    if field is not None:
        units = field.attrs.get("units")
        values = field / 100 if units == "Pa" else field
        label = f"{field.name} ({'hPa' if units == 'Pa' else units})" if units else str(field.name)
        filled = ax.contourf(field.lon.values - centre, field.lat.values, values.values, levels=16, cmap="Blues_r",
                             transform=proj)  # fmt: skip
        fig.colorbar(filled, ax=ax, orientation="horizontal", shrink=0.6, aspect=40, label=label)
    ax.add_feature(_coastline(), zorder=2)
    for box in boxes:
        (b0, b1), w = box.lat_range, box.lon0 % 360 - centre
        ax.plot([w, w + box.width, w + box.width, w, w], [b0, b0, b1, b1, b0], color="0.3", linewidth=1.2,
                transform=proj, gid=f"box {box.name}")  # fmt: skip
        ax.text(w + 1, b1 - 1, box.name, va="top", fontsize=8, color="0.3", transform=proj, clip_on=True)
    colours = iter(("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "black"))
    for k, (label, table) in enumerate(tracks.items()):
        colour, style = next(colours, "0.4"), TRACK_STYLES[k % len(TRACK_STYLES)]
        groups = table.groupby("storm", sort=False) if "storm" in table else [(label, table)]
        for n, (_, storm) in enumerate(groups):
            lon = np.unwrap(np.asarray(storm["lon"], float) % 360, period=360) - centre
            lat = np.asarray(storm["lat"], float)
            first = label if n == 0 else None
            ax.plot(lon, lat, linestyle=style, color=colour, marker=".", markersize=max(5 - 2 * k, 2), transform=proj,
                    linewidth=max(3.2 - 1.6 * k, 1.0), label=first, gid=f"track {label}")  # fmt: skip
            ax.plot(lon[:1], lat[:1], marker="o", markersize=9, markerfacecolor="none", color=colour, transform=proj)
    if tracks:
        ax.legend(loc="lower left", fontsize=8)
    gl = ax.gridlines(draw_labels=True, linewidth=0.3, color="0.6")
    gl.top_labels = gl.right_labels = False
    if title:
        ax.set_title(title, fontsize=10)
    return fig


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
    """A GIF (or, for a ``.mp4`` path, an H.264 MP4) at ``path`` with one map frame per time of ``ds``
    (as in :func:`draw_forecast`, colour levels and wind scale fixed across frames), ``fps`` frames per
    second, looping; written atomically."""
    path = Path(path)
    plan = _Plan.of(ds, wind, pressure, centres)
    frames = []
    for i in range(ds.sizes["time"]):
        fig = _figure(plan, [i], title)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB"))
        fig.clear()
    if path.suffix.lower() in (".mp4", ".m4v", ".mov"):
        from .video.write import write_mp4  # imageio-ffmpeg: H.264

        even = [np.asarray(f)[: f.height // 2 * 2, : f.width // 2 * 2] for f in frames]  # yuv420p: even sides
        return write_mp4(np.stack(even).transpose(0, 3, 1, 2), path, fps)
    with replacing(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return path


# Ensembles: the track plume, spaghetti of one contour per member, probability maps, and the three on one page.

Extent = tuple[tuple[float, float], tuple[float, float]]  # ((lat0, lat1), (lon0, lon1)) degrees
Region = str | Extent | None  # "LAT0:LAT1,LON0:LON1", a box, or None ("full" and "storm" too): the data's own extent
MEMBER_COLOUR = "tab:blue"
OBSERVED_COLOUR = "tab:red"
PROBABILITY_CMAP = "YlGnBu"
PROBABILITY_LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SPAGHETTI_PSL_HPA = 1000.0  # draw_spaghetti's default PSL contour
SPAGHETTI_WIND = 17.0  # m/s, its default wind speed contour: gale, tropical-storm force (34 kt)
TRACK_PAD = 5.0  # degrees around the tracks, when a plume's extent is not given
TRACK_LABELS = 6  # time labels along the mean track, at most


def _need(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if missing := [c for c in columns if c not in table]:
        raise ValueError(f"{what} lack column(s) {', '.join(missing)} (have {', '.join(map(str, table.columns))})")


def _x(lon, centre: float) -> np.ndarray:
    """Longitudes along a track or a grid's row (degrees, 0..360 or past it) as x = lon - ``centre``: unwrapped,
    so nothing jumps at the dateline or the meridian, and shifted by whole turns to lie about 0."""
    lon = np.unwrap(np.asarray(lon, float), period=360)
    return lon - centre - 360 * np.round((lon.mean() - centre) / 360) if lon.size else lon


def _mean_lon(lon: np.ndarray) -> float:
    """The mean of longitudes (degrees) taken unwrapped about their circular mean, in 0..360: 358 and 2 give 0."""
    rad = np.radians(lon)
    ref = math.degrees(math.atan2(np.sin(rad).mean(), np.cos(rad).mean()))
    return float((ref + ((lon - ref + 180) % 360 - 180).mean()) % 360)


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


def _points_extent(lat: np.ndarray, lon: np.ndarray, pad: float = TRACK_PAD) -> Extent:
    """A box around points (degrees), ``pad`` wide, contiguous across the dateline and the meridian."""
    if not lat.size:
        raise ValueError("no track point to draw and no region given")
    ref = _mean_lon(lon)
    east = (lon - ref + 180) % 360 - 180
    return (max(lat.min() - pad, -90.0), min(lat.max() + pad, 90.0)), (ref + east.min() - pad, ref + east.max() + pad)


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


def _label(ax, title: str | None, valid: str) -> None:
    ax.set_title("\n".join(t for t in (title, valid) if t), fontsize=9, loc="left")


def ensemble_mean_track(tracks: pd.DataFrame) -> pd.DataFrame:
    """The ensemble-mean track of member tracks (``realization``, ``time``, ``lat``, ``lon``): at each time the
    mean position of the members with a centre then, longitude averaged unwrapped (members either side of
    0/360 average near 0, not 180; given in 0..360), and ``members``, how many; in time order."""
    _need(tracks, ("realization", "time", "lat", "lon"), "member tracks")
    rows = [
        (t, float(g["lat"].mean()), _mean_lon(g["lon"].to_numpy(float)), g["realization"].nunique())
        for t, g in tracks.groupby("time", sort=True)
    ]
    return pd.DataFrame(rows, columns=["time", "lat", "lon", "members"])


def draw_plume(
    tracks: pd.DataFrame,
    mean_track: pd.DataFrame | None = None,
    observed: pd.DataFrame | None = None,
    ax=None,
    region: Region = None,
    title: str | None = None,
) -> Figure:
    """The track plume of an ensemble: each member's track (``tracks``: ``realization``, ``time``, ``lat``, ``lon``
    degrees, lon 0..360) a thin line, the mean track (default :func:`ensemble_mean_track`) bold with its times
    (DD/HH) along it, the ``observed`` track (``time``, ``lat``, ``lon``) with a marker at each time.

    The lines' gids: ``"member R"``, ``"mean"``, ``"observed"``. ``ax``: a PlateCarree GeoAxes to draw on
    (default: a new figure). ``region``: "LAT0:LAT1,LON0:LON1" or ((lat0, lat1), (lon0, lon1)) degrees; default
    the tracks' extent, padded."""
    _need(tracks, ("realization", "time", "lat", "lon"), "member tracks")
    if observed is not None:
        _need(observed, ("time", "lat", "lon"), "the observed track")
    mean = ensemble_mean_track(tracks) if mean_track is None else mean_track
    shown = [t for t in (tracks, mean, observed) if t is not None and len(t)]
    lat, lon = (np.concatenate([t[c].to_numpy(float) for t in shown] or [np.zeros(0)]) for c in ("lat", "lon"))
    ax, centre = _geo_axes(ax, _extent(region, None) or _points_extent(lat, lon))
    members = tracks.groupby("realization", sort=True)
    kw = {"transform": ax.projection}
    for k, (member, track) in enumerate(members):
        track = track.sort_values("time")
        label = f"members ({members.ngroups})" if k == 0 else None
        ax.plot(_x(track["lon"], centre), track["lat"].to_numpy(float), color=MEMBER_COLOUR, linewidth=0.8, alpha=0.6,
                label=label, gid=f"member {member}", zorder=3, **kw)  # fmt: skip
    if len(mean):
        mean = mean.sort_values("time")
        x, y = _x(mean["lon"], centre), mean["lat"].to_numpy(float)
        ax.plot(x, y, color="black", linewidth=2.6, marker=".", markersize=6, label="ensemble mean", gid="mean",
                zorder=4, **kw)  # fmt: skip
        ax.plot(x[:1], y[:1], marker="o", markersize=10, markerfacecolor="none", color="black", gid="mean start",
                zorder=4, **kw)  # fmt: skip
        for i in range(0, len(x), math.ceil(len(x) / TRACK_LABELS)):
            stamp = _when(mean["time"].iloc[i])
            when = f"{stamp[8:10]}/{stamp[11:13]}"  # DD/HH, at the map's x, y
            ax.annotate(when, (x[i], y[i]), xytext=(4, 4), textcoords="offset points", fontsize=7, zorder=5)
    if observed is not None and len(observed):
        observed = observed.sort_values("time")
        ax.plot(_x(observed["lon"], centre), observed["lat"].to_numpy(float), color=OBSERVED_COLOUR, linewidth=1.8,
                marker="o", markersize=4, label="observed", gid="observed", zorder=5, **kw)  # fmt: skip
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8, framealpha=0.8)
    if title is None and len(mean):
        first, last = mean["time"].iloc[[0, -1]]
        title = f"track plume, {members.ngroups} members\n{_when(first)} to {_when(last)} ({_zone(first)})"
    _label(ax, title, "")
    return ax.figure


def _probability_label(probability: xr.DataArray) -> str:
    """The probability's name (long_name, else name); refuses other dims than (lat, lon) or (time, lat, lon) and
    values outside 0..1."""
    label = str(probability.attrs.get("long_name") or probability.name or "probability")
    if set(probability.dims) not in ({"lat", "lon"}, {"time", "lat", "lon"}):
        raise ValueError(f"probability {label!r} has dims {probability.dims}; need (lat, lon) or (time, lat, lon)")
    values = probability.values
    if np.isfinite(values).any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if lo < 0 or hi > 1:
            hint = "; give a fraction, not a percentage" if 1 < hi <= 100 and lo >= 0 else ""
            raise ValueError(f"probability {label!r} has values outside 0..1 ({lo:g} to {hi:g}){hint}")
    return label


def _probability_panel(ax, probability: xr.DataArray, centre: float, levels: np.ndarray):
    x = _x(probability["lon"].values, centre)
    filled = ax.contourf(x, probability["lat"].values, probability.transpose("lat", "lon").values, levels=levels,
                         cmap=PROBABILITY_CMAP, transform=ax.projection, zorder=1)  # fmt: skip
    filled.set_gid("probability")
    return filled


def draw_probability(
    probability: xr.DataArray,
    ax=None,
    region: Region = None,
    title: str | None = None,
    levels: Sequence[float] = PROBABILITY_LEVELS,
    *,
    times: Sequence[int] | None = None,
) -> Figure:
    """A probability map (0..1, drawn as %; e.g. of wind above a threshold, or of the storm centre passing
    near): filled between ``levels`` (and 1), below the lowest left blank, the colour bar labelled with the
    DataArray's ``long_name``. For a (time, lat, lon) probability, the last time (said in the title), or a row
    of panels for the indices ``times``. Values outside 0..1 are refused (ValueError).

    ``ax``: a PlateCarree GeoAxes to draw one panel on (default: a new figure). ``region``:
    "LAT0:LAT1,LON0:LON1" or ((lat0, lat1), (lon0, lon1)) degrees; default the grid's extent."""
    label = _probability_label(probability)
    bounds = np.asarray(levels, float)
    if not (bounds.size and np.all(np.diff(bounds) > 0) and 0 < bounds[0] and bounds[-1] <= 1):
        raise ValueError(f"probability levels {tuple(levels)} must rise within (0, 1]")
    bounds = np.append(bounds, 1.0) if bounds[-1] < 1 else bounds
    if "time" in probability.dims:
        n = probability.sizes["time"]
        if not n:
            raise ValueError(f"probability {label!r} has no time to draw")
        picks = [n - 1] if times is None else [range(n)[i] for i in times]
        note = f" (last of {n} times)" if times is None and n > 1 else ""
        panels = [probability.isel(time=i) for i in picks]
    elif times is not None:
        raise ValueError(f"times= given, but probability {label!r} has no time dimension")
    else:
        panels, note = [probability], ""
    extent = _extent(region, _grid_extent(probability))
    if len(panels) == 1:
        axes = [_geo_axes(ax, extent, bar=True)]
    elif ax is not None:
        raise ValueError("a row of panels (several times=) draws its own figure: give no ax")
    else:
        (lat0, lat1), (lon0, lon1) = extent
        aspect = min(max((lat1 - lat0) / max(lon1 - lon0, 1e-9), 0.3), 1.5)
        fig = Figure(figsize=(PANEL_W * len(panels), (PANEL_W - 0.6) * aspect + 2.0), dpi=DPI, layout="constrained")
        grid = fig.add_gridspec(1, len(panels))
        proj = ccrs.PlateCarree(central_longitude=(lon0 + lon1) / 2)
        axes = [_geo_axes(fig.add_subplot(grid[0, k], projection=proj), extent) for k in range(len(panels))]
    for (ax, centre), field in zip(axes, panels):
        filled = _probability_panel(ax, field, centre, bounds)
        _label(ax, title if len(panels) == 1 else None, _valid(field) + note)
    fig = axes[0][0].figure
    fig.colorbar(filled, ax=[a for a, _ in axes], orientation="horizontal", shrink=0.8, aspect=30, label=label,
                 ticks=bounds, format=PercentFormatter(1.0, decimals=0))  # fmt: skip
    if title and len(panels) > 1:
        fig.suptitle(title, fontsize=10)
    return fig


def _spaghetti_field(ens: xr.Dataset, variable: str, level: float | None, wind: Sequence[str]):
    """(field, level, what): the member fields (realization, time, lat, lon), the contour value in the field's
    units, and its words."""
    if "realization" not in ens.dims:
        raise ValueError("draw_spaghetti needs an ensemble: a realization dimension")
    if variable == "wind":
        if not all(w in ens for w in wind):
            raise ValueError(f"wind speed needs {' and '.join(wind)} in the ensemble")
        field = np.hypot(ens[wind[0]], ens[wind[1]])
        level = SPAGHETTI_WIND if level is None else float(level)
        where = "850 hPa wind speed" if wind[0].endswith("850") else "wind speed"
        what = f"{where} {level:g} m/s"
    elif variable not in ens:
        raise ValueError(f"{variable!r} is not in the ensemble (has {', '.join(fields(ens))})")
    else:
        field = ens[variable]
        units = field.attrs.get("units", "Pa" if variable == "PSL" else "")
        hpa = units in ("hPa", "mbar", "mb")
        if level is None:
            if variable != "PSL":
                raise ValueError(f"give level= for {variable!r} (defaults exist for PSL and wind)")
            level = SPAGHETTI_PSL_HPA * (1.0 if hpa else 100.0)
        level = float(level)
        what = f"{variable} {level / 100:g} hPa" if units == "Pa" else f"{variable} {level:g} {units}".rstrip()
    return field.transpose("realization", "time", "lat", "lon"), level, what


def draw_spaghetti(
    ens: xr.Dataset,
    variable: str = "PSL",
    level: float | None = None,
    time: int = -1,
    ax=None,
    region: Region = None,
    title: str | None = None,
    *,
    wind: Sequence[str] = ("U850", "V850"),
) -> Figure:
    """Spaghetti: the ``level`` contour of ``variable`` for every member of ``ens`` (realization, time, lat, lon) at
    time index ``time`` (or a time value), thin, and the ensemble mean's bold (gids ``"member R"``, ``"mean"``).

    ``variable``: a variable of ``ens`` (level in its units; PSL's default 1000 hPa, i.e. 100000 Pa) or
    ``"wind"``, the speed of ``wind`` (default level 17 m/s, tropical-storm force). ``ax``, ``region``: as in
    :func:`draw_probability`."""
    field, level, what = _spaghetti_field(ens, variable, level, wind)
    field = field.isel(time=time) if isinstance(time, int | np.integer) else field.sel(time=time)
    ax, centre = _geo_axes(ax, _extent(region, _grid_extent(ens)))
    x, y = _x(field["lon"].values, centre), field["lat"].values
    kw = {"levels": [level], "transform": ax.projection}
    for member in field["realization"].values:
        lines = ax.contour(x, y, field.sel(realization=member).values, colors=MEMBER_COLOUR, linewidths=0.9,
                           alpha=0.7, zorder=3, **kw)  # fmt: skip
        lines.set_gid(f"member {member}")
    mean = ax.contour(x, y, field.mean("realization").values, colors="black", linewidths=2.4, zorder=4, **kw)
    mean.set_gid("mean")
    n = field.sizes["realization"]
    ax.legend(
        handles=[
            Line2D([], [], color=MEMBER_COLOUR, linewidth=0.9, alpha=0.7, label=f"members ({n})"),
            Line2D([], [], color="black", linewidth=2.4, label="ensemble mean"),
        ],
        loc="best",
        fontsize=8,
        framealpha=0.8,
    )
    _label(ax, title or f"spaghetti: {what}", _valid(field))
    return ax.figure


def _named(probabilities) -> list[tuple[str | None, xr.DataArray]]:
    if probabilities is None:
        return []
    if isinstance(probabilities, xr.DataArray):
        return [(None, probabilities)]
    if isinstance(probabilities, Mapping):
        return list(probabilities.items())
    return [(None, p) for p in probabilities]


def plot_ensemble(
    ens: xr.Dataset,
    path: str | Path,
    tracks: pd.DataFrame | None = None,
    observed: pd.DataFrame | None = None,
    probabilities: xr.DataArray | Sequence[xr.DataArray] | Mapping[str, xr.DataArray] | None = None,
    *,
    region: Region = None,
    title: str | None = None,
) -> Path:
    """One PNG at ``path`` (written atomically) with an ensemble's panels on the same map: the track plume
    (when ``tracks`` are given, with ``observed``; :func:`draw_plume`), the spaghetti of PSL at 1000 hPa (else
    of wind speed) at the last time (:func:`draw_spaghetti`), and each probability map (:func:`draw_probability`;
    a mapping's keys are the panels' titles). ``region``: as in :func:`draw_probability`; default the grid's."""
    path = Path(path)
    extent = _extent(region, _grid_extent(ens))
    draws = []
    if tracks is not None:
        draws.append(lambda ax: draw_plume(tracks, observed=observed, ax=ax, region=extent))
    variable = "PSL" if "PSL" in ens else "wind"
    draws.append(lambda ax: draw_spaghetti(ens, variable, ax=ax, region=extent))
    for name, p in _named(probabilities):
        _probability_label(p)  # refused before any drawing
        draws.append(lambda ax, p=p, name=name: draw_probability(p, ax=ax, region=extent, title=name))
    (lat0, lat1), (lon0, lon1) = extent
    ncols = min(len(draws), 3 if len(draws) != 4 else 2)
    nrows = math.ceil(len(draws) / ncols)
    aspect = min(max((lat1 - lat0) / max(lon1 - lon0, 1e-9), 0.3), 1.5)
    width = PANEL_W + 0.7
    plain = len(draws) - len(_named(probabilities))  # the first panels have no colour bar
    height = sum((width - 0.7) * aspect + 0.6 + 0.8 * ((r + 1) * ncols > plain) for r in range(nrows))
    fig = Figure(figsize=(width * ncols, height + 0.5), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    proj = ccrs.PlateCarree(central_longitude=(lon0 + lon1) / 2)
    for k, draw in enumerate(draws):
        ax = fig.add_subplot(grid[k // ncols, k % ncols], projection=proj)
        ax.set_anchor("S")  # as a colour bar anchors its map: maps level along a row
        draw(ax)
    heading = _heading(ens, _zone(ens["time"].values[0]))
    top = title or f"climode ensemble, {ens.sizes.get('realization', 1)} members"
    fig.suptitle(f"{top}\n{heading}" if heading else top, fontsize=10)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
    return path
