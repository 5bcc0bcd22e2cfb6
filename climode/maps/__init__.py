"""Maps on cartopy, drawn with no network: forecast panels and their animation, storm tracks, and an
ensemble's track plume, spaghetti and probability maps.

- ``base``: the shipped coastline, gridlines, the region a map shows (``region``, ``parse_region``).
- ``fields``: one panel per forecast time (``draw_forecast``, ``plot_forecast``).
- ``animate``: the same panels as GIF or MP4 frames (``animate_forecast``).
- ``tracks``: storm tracks over a field and basin tiles (``draw_tracks``).
- ``ensemble``: ``draw_plume``, ``draw_spaghetti``, ``draw_probability`` and the page of all three
  (``plot_ensemble``).

The library draws on matplotlib ``Figure`` objects and never imports pyplot.
"""

from __future__ import annotations

from .animate import animate_forecast
from .base import DPI, PANEL_W, Centre, Extent, Region, parse_region, region
from .ensemble import (
    MEMBER_COLOUR,
    OBSERVED_COLOUR,
    PROBABILITY_CMAP,
    PROBABILITY_LEVELS,
    SPAGHETTI_PSL_HPA,
    SPAGHETTI_WIND,
    TRACK_LABELS,
    TRACK_PAD,
    draw_plume,
    draw_probability,
    draw_spaghetti,
    ensemble_mean_track,
    plot_ensemble,
)
from .fields import ARROWS, INSET_DEG, INSET_HALF, ISOBAR_HPA, SPEED_CMAP, draw_forecast, plot_forecast
from .tracks import TRACK_STYLES, draw_tracks

__all__ = [
    "ARROWS",
    "DPI",
    "INSET_DEG",
    "INSET_HALF",
    "ISOBAR_HPA",
    "MEMBER_COLOUR",
    "OBSERVED_COLOUR",
    "PANEL_W",
    "PROBABILITY_CMAP",
    "PROBABILITY_LEVELS",
    "SPAGHETTI_PSL_HPA",
    "SPAGHETTI_WIND",
    "SPEED_CMAP",
    "TRACK_LABELS",
    "TRACK_PAD",
    "TRACK_STYLES",
    "Centre",
    "Extent",
    "Region",
    "animate_forecast",
    "draw_forecast",
    "draw_plume",
    "draw_probability",
    "draw_spaghetti",
    "draw_tracks",
    "ensemble_mean_track",
    "parse_region",
    "plot_ensemble",
    "plot_forecast",
    "region",
]
