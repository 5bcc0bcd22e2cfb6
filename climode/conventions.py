"""The one home of climode's conventions: the dims of a field, the coordinate names found in files
and the attributes written, the variables climode knows (aliases, canonical units, CF attributes),
unit conversions and the origin of hours.

Every field climode reads or writes has dims ``(time, lat, lon)``: ``time`` cftime objects on the
input's calendar, ``lat`` degrees_north ascending, ``lon`` degrees_east in [0, 360); U850 and V850
(850 hPa winds) in m s-1, PSL (sea-level pressure) in Pa.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DIMS = ("time", "lat", "lon")
# names a file may give the coordinates, tried in order
COORD_NAMES = {
    "time": ("time", "timestep", "valid_time", "t"),
    "lat": ("lat", "latitude", "nav_lat"),
    "lon": ("lon", "longitude", "nav_lon"),
}
COORD_ATTRS = {
    "lat": {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "lon": {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
    "plev": {
        "standard_name": "air_pressure",
        "long_name": "pressure level",
        "units": "Pa",
        "positive": "down",
        "axis": "Z",
    },
}
LAYOUTS = ("valid", "lead")  # forecasts on a valid-time axis, or init_time x lead_time (WeatherBench 2)
REFTIME_NAMES = ("reftime", "reference_time", "ref_time")  # a file's origin of a bare-hours time axis

# hours: every time climode computes with is a float number of hours since this origin, on the data's calendar
TIME_ORIGIN = "0001-01-01 00:00:00"
HOURS_SINCE = f"hours since {TIME_ORIGIN}"
HOUR_UNITS = ("hours", "hour", "hrs", "hr", "h")  # a bare time axis in these units holds hours

# units -> factor to the canonical unit, keyed by the lower-cased units string without spaces
KNOT = 1852.0 / 3600.0  # m s-1
_MS = (
    "ms-1",
    "m/s",
    "ms**-1",
    "ms^-1",
    "m.s-1",
    "m.s**-1",
    "m/sec",
    "mps",
    "meter/second",
    "meters/second",
    "metre/second",
    "metres/second",
)
_KNOTS = ("knot", "knots", "kt", "kts", "kn")
WIND_UNITS = {**dict.fromkeys(_MS, 1.0), **dict.fromkeys(_KNOTS, KNOT)}
PRESSURE_UNITS = {
    **dict.fromkeys(("pa", "pascal", "pascals"), 1.0),
    **dict.fromkeys(("hpa", "mb", "mbar", "millibar", "millibars", "hectopascal", "hectopascals"), 100.0),
}


@dataclass(frozen=True)
class Variable:
    """A variable climode knows: names to look for in files, its CF identity and canonical units."""

    aliases: tuple[str, ...]
    standard_name: str
    long_name: str
    units: str
    factors: Mapping[str, float]  # normalised units string -> factor to ``units``
    plausible: tuple[float, float] | None = None  # the physically plausible range, in ``units``
    plev_pa: float | None = None  # the pressure level it lies on (a scalar ``plev`` coordinate when written)

    def cf(self) -> dict[str, str]:
        """The CF attributes climode writes for this variable."""
        return {"standard_name": self.standard_name, "long_name": self.long_name, "units": self.units}


VARIABLES = {
    "U850": Variable(
        ("u", "u850", "ua", "u_component_of_wind", "eastward_wind"),
        "eastward_wind",
        "zonal wind at 850 hPa",
        "m s-1",
        WIND_UNITS,
        plausible=(-150.0, 150.0),
        plev_pa=85000.0,
    ),
    "V850": Variable(
        ("v", "v850", "va", "v_component_of_wind"),
        "northward_wind",
        "meridional wind at 850 hPa",
        "m s-1",
        WIND_UNITS,
        plausible=(-150.0, 150.0),
        plev_pa=85000.0,
    ),
    "PSL": Variable(
        ("msl", "slp", "psl", "mean_sea_level_pressure", "air_pressure_at_mean_sea_level"),
        "air_pressure_at_mean_sea_level",
        "sea level pressure",
        "Pa",
        PRESSURE_UNITS,
        plausible=(85000.0, 110000.0),
    ),
}
STORM_VARIABLES = ("U850", "V850", "PSL")  # what the storm models forecast, in this channel order


def cf_attrs(name: str, source: Mapping | None = None) -> dict:
    """CF attributes of variable ``name``: climode's own for the names it knows, otherwise the
    input's (standard_name, long_name, units) where given."""
    if name in VARIABLES:
        return VARIABLES[name].cf()
    keep = ("standard_name", "long_name", "units")
    return {k: v for k, v in (source or {}).items() if k in keep}
