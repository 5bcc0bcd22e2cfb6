"""Tropical-cyclone tracks: readers, a built-in detector on PSL/U850/V850 fields, and verification.

A track table is a DataFrame with one row per storm per time and columns ``storm`` (str id),
``time`` (cftime datetimes of any calendar, or numpy datetime64, as the source gives), ``lat``
(deg N), ``lon`` (deg E, 0..360) and, where known, ``psl_min`` (Pa) and ``vmax`` (m/s).

The detector follows the TempestExtremes recipe (Zarzycki & Ullrich 2017) with its own code:
local PSL minima with a closed contour, wind speed near the centre, stitched into tracks.
"""

from .detect import detect, match
from .geometry import KM_PER_DEG, great_circle_km, in_box, storm_periods
from .readers import COLUMNS, read_ibtracs, read_tempest, read_tracks

__all__ = [
    "COLUMNS",
    "KM_PER_DEG",
    "detect",
    "great_circle_km",
    "in_box",
    "match",
    "read_ibtracs",
    "read_tempest",
    "read_tracks",
    "storm_periods",
]
