"""Storm tracks on one map, e.g. the true, detected and forecast tracks of the same storms, over a field
and basin tiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cartopy.crs as ccrs
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from ..errors import ClimodeError
from .base import DPI, _coastline

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
