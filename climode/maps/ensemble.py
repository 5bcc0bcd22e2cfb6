"""Ensemble maps, for (realization, time, lat, lon) forecasts: a track plume (each member's track thin,
the mean bold, the observed track marked), spaghetti (one contour per member, the mean's bold) and
probability maps (in %, blank below the lowest level), alone or as the panels of one page
(``plot_ensemble``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cartopy.crs as ccrs
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from ..io.atomic import replacing
from ..io.write import fields
from .base import (
    DPI,
    PANEL_W,
    Extent,
    Region,
    _extent,
    _geo_axes,
    _grid_extent,
    _heading,
    _valid,
    _when,
    _zone,
)

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


def _points_extent(lat: np.ndarray, lon: np.ndarray, pad: float = TRACK_PAD) -> Extent:
    """A box around points (degrees), ``pad`` wide, contiguous across the dateline and the meridian."""
    if not lat.size:
        raise ValueError("no track point to draw and no region given")
    ref = _mean_lon(lon)
    east = (lon - ref + 180) % 360 - 180
    return (max(lat.min() - pad, -90.0), min(lat.max() + pad, 90.0)), (ref + east.min() - pad, ref + east.max() + pad)


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
