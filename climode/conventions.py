"""The one home of climode's conventions: the dims of a field, the coordinate names found in files
and the attributes written, the variables climode knows (aliases, canonical units, CF attributes),
unit conversions and the origin of hours.

Every field climode reads or writes has dims ``(time, lat, lon)``: ``time`` cftime objects on the
input's calendar, ``lat`` degrees_north ascending, ``lon`` degrees_east in [0, 360); U850 and V850
(850 hPa winds) in m s-1, PSL (sea-level pressure) in Pa.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

DIMS = ("time", "lat", "lon")
# names a file may give the coordinates, tried in order
COORD_NAMES = {
    "time": ("time", "timestep", "valid_time", "t", "XTIME"),
    "lat": ("lat", "latitude", "nav_lat", "XLAT", "XLAT_M"),
    "lon": ("lon", "longitude", "nav_lon", "XLONG", "XLONG_M"),
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
# ensembles (climode.ensemble): the events whose probability is written by default, in m s-1 of the
# 850 hPa wind (NHC's 34 and 64 kt are 10 m winds, about 0.8 of those at 850 hPa over the ocean), and
# the strike radius, km (ECMWF's)
DEFAULT_EVENTS = "wind>=17,wind>=33"
STRIKE_KM = 120.0
OUTPUT_LAYOUTS = ("valid", "lead")  # forecasts on a valid-time axis, or init_time x lead_time (WeatherBench 2)
REFTIME_NAMES = ("reftime", "reference_time", "ref_time")  # a file's origin of a bare-hours time axis

# hours: every time climode computes with is a float number of hours since this origin, on the data's calendar
TIME_ORIGIN = "0001-01-01 00:00:00"
HOURS_SINCE = f"hours since {TIME_ORIGIN}"
HOUR_UNITS = ("hours", "hour", "hrs", "hr", "h")  # a bare time axis in these units holds hours

KNOT = 1852.0 / 3600.0  # m s-1

# Units: a udunits-style product of symbols, each with an optional SI prefix and an integer power
# ("km h-1", "m s**-1", "m/s", "kg m-1 s-2", "hPa", "knots"), read into a factor to SI and the powers
# of (metre, second, kilogram); two units convert when their powers agree.
_SI = {  # symbol (lower case) -> (factor to SI, powers of m, s, kg, K)
    **dict.fromkeys(("m", "meter", "meters", "metre", "metres"), (1.0, (1, 0, 0, 0))),
    **dict.fromkeys(("s", "sec", "second", "seconds"), (1.0, (0, 1, 0, 0))),
    **dict.fromkeys(("min", "minute", "minutes"), (60.0, (0, 1, 0, 0))),
    **dict.fromkeys(("h", "hr", "hour", "hours"), (3600.0, (0, 1, 0, 0))),
    **dict.fromkeys(("d", "day", "days"), (86400.0, (0, 1, 0, 0))),
    **dict.fromkeys(("g", "gram", "grams"), (1e-3, (0, 0, 1, 0))),
    **dict.fromkeys(("ft", "foot", "feet"), (0.3048, (1, 0, 0, 0))),
    **dict.fromkeys(("mi", "mile", "miles"), (1609.344, (1, 0, 0, 0))),
    **dict.fromkeys(("nmi",), (1852.0, (1, 0, 0, 0))),
    **dict.fromkeys(("knot", "knots", "kt", "kts", "kn"), (KNOT, (1, -1, 0, 0))),
    **dict.fromkeys(("mph",), (0.44704, (1, -1, 0, 0))),
    **dict.fromkeys(("kph", "kmh"), (1 / 3.6, (1, -1, 0, 0))),
    **dict.fromkeys(("mps",), (1.0, (1, -1, 0, 0))),
    **dict.fromkeys(("pa", "pascal", "pascals"), (1.0, (-1, -2, 1, 0))),
    **dict.fromkeys(("n", "newton", "newtons"), (1.0, (1, -2, 1, 0))),
    **dict.fromkeys(("bar", "bars"), (1e5, (-1, -2, 1, 0))),
    **dict.fromkeys(("mb", "mbar", "millibar", "millibars"), (100.0, (-1, -2, 1, 0))),
    **dict.fromkeys(("atm",), (101325.0, (-1, -2, 1, 0))),
    **dict.fromkeys(("torr", "mmhg"), (133.322387415, (-1, -2, 1, 0))),
    **dict.fromkeys(("inhg",), (3386.389, (-1, -2, 1, 0))),
    **dict.fromkeys(("psi",), (6894.757293168, (-1, -2, 1, 0))),
    **dict.fromkeys(("k", "kelvin"), (1.0, (0, 0, 0, 1))),
    **dict.fromkeys(("1",), (1.0, (0, 0, 0, 0))),
    **dict.fromkeys(("%", "percent"), (0.01, (0, 0, 0, 0))),
}
_PREFIXES = {"da": 10.0, "k": 1e3, "h": 1e2, "d": 0.1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "µ": 1e-6}
_COMPACT = {"ms-1": "m s-1", "ms**-1": "m s-1", "ms^-1": "m s-1", "m.s-1": "m s-1", "m.s**-1": "m s-1"}
_FACTOR = re.compile(r"([a-zµ%]+|1)(?:\*\*|\^)?([+-]?\d+)?")


def _symbol(word: str) -> tuple[float, tuple[int, ...]] | None:
    if word in _SI:
        return _SI[word]
    for prefix, scale in _PREFIXES.items():
        if word.startswith(prefix) and word[len(prefix) :] in _SI:
            factor, powers = _SI[word[len(prefix) :]]
            return scale * factor, powers
    return None


def read_units(units: object) -> tuple[float, tuple[int, ...]] | None:
    """``units`` (a udunits-style string) -> (factor to SI, powers of metre, second, kilogram, kelvin), or None
    when it cannot be read. "km h-1" -> (0.2778, (1, -1, 0, 0)); "hPa" -> (100, (-1, -2, 1, 0))."""
    text = " ".join(str(units).strip().lower().replace(" per ", "/").split())
    text = _COMPACT.get(text.replace(" ", ""), text)
    factor, powers = 1.0, [0, 0, 0, 0]
    for i, part in enumerate(text.split("/")):
        if not part.strip() and i:
            return None
        for token in re.split(r"[ .*]+(?=[a-zµ%1])", part.strip()) if part.strip() else []:
            match = _FACTOR.fullmatch(token.strip())
            found = _symbol(match.group(1)) if match else None
            if found is None:
                return None
            power = int(match.group(2) or 1) * (-1 if i else 1)
            factor *= found[0] ** power
            powers = [p + power * q for p, q in zip(powers, found[1])]
    return (factor, tuple(powers)) if text else None


def conversion(units: object, to: str) -> float | None:
    """The factor that takes values in ``units`` to ``to``, or None when ``units`` cannot be read or is
    another kind of quantity (a wind in K)."""
    have, want = read_units(units), read_units(to)
    return None if have is None or want is None or have[1] != want[1] else have[0] / want[0]


@dataclass(frozen=True)
class Variable:
    """A variable climode knows: names to look for in files, its CF identity and canonical units."""

    aliases: tuple[str, ...]
    standard_name: str
    long_name: str
    units: str
    plausible: tuple[float, float] | None = None  # the physically plausible range, in ``units``
    plev_pa: float | None = None  # the pressure level it lies on (a scalar ``plev`` coordinate when written)
    examples: str = ""  # units of its quantity a file may use, for messages

    def cf(self) -> dict[str, str]:
        """The CF attributes climode writes for this variable."""
        return {"standard_name": self.standard_name, "long_name": self.long_name, "units": self.units}


VARIABLES = {
    "U850": Variable(
        ("u", "u850", "ua", "u_component_of_wind", "eastward_wind"),
        "eastward_wind",
        "zonal wind at 850 hPa",
        "m s-1",
        plausible=(-150.0, 150.0),
        plev_pa=85000.0,
        examples="m s-1, km h-1, knots, mph",
    ),
    "V850": Variable(
        ("v", "v850", "va", "v_component_of_wind"),
        "northward_wind",
        "meridional wind at 850 hPa",
        "m s-1",
        plausible=(-150.0, 150.0),
        plev_pa=85000.0,
        examples="m s-1, km h-1, knots, mph",
    ),
    "PSL": Variable(
        ("msl", "slp", "psl", "mean_sea_level_pressure", "air_pressure_at_mean_sea_level"),
        "air_pressure_at_mean_sea_level",
        "sea level pressure",
        "Pa",
        plausible=(85000.0, 110000.0),
        examples="Pa, hPa, mb, kPa, inHg",
    ),
}
STORM_VARIABLES = ("U850", "V850", "PSL")  # what the storm models forecast, in this channel order


# Variables physics bounds, whatever the model says: (lower, upper) in the variable's own units by CF
# standard_name; fractions go to 100 in "%". Names and units only precipitation has give (0, None).
BOUNDED = {
    **dict.fromkeys(
        (
            "precipitation_flux",
            "precipitation_amount",
            "lwe_precipitation_rate",
            "lwe_thickness_of_precipitation_amount",
            "convective_precipitation_flux",
            "large_scale_precipitation_flux",
            "rainfall_rate",
            "rainfall_flux",
            "rainfall_amount",
            "thickness_of_rainfall_amount",
            "snowfall_flux",
            "snowfall_amount",
            "humidity_mixing_ratio",
            "relative_humidity",
            "wind_speed",
            "atmosphere_mass_content_of_water_vapor",
        ),
        (0.0, None),
    ),
    **dict.fromkeys(
        ("specific_humidity", "cloud_area_fraction", "sea_ice_area_fraction", "land_area_fraction"), (0.0, 1.0)
    ),
}
PRECIPITATION_NAMES = ("precip", "precipitation", "rain", "rainfall", "rainrate", "rr", "pr", "tp", "prate", "snow")


def bounds(name: str, attrs: Mapping) -> tuple[float | None, float | None]:
    """The physical bounds of variable ``name`` whose attributes are ``attrs`` (standard_name, units),
    in its units: ``BOUNDED`` by standard_name, else (0, None) for a precipitation-like name or units
    (kg m-2, kg m-2 s-1, mm, mm h-1, ...), else none."""
    units = str(attrs.get("units", ""))
    found = BOUNDED.get(str(attrs.get("standard_name", "")))
    if found is not None:
        return (found[0], 100.0) if found[1] == 1.0 and units.strip() in ("%", "percent") else found
    read = read_units(units) if units else None
    precip_units = read is not None and (
        read[1] in ((-2, 0, 1, 0), (-2, -1, 1, 0))
        or ("mm" in units.lower() and read[1] in ((1, 0, 0, 0), (1, -1, 0, 0)))
    )
    return (0.0, None) if name.lower() in PRECIPITATION_NAMES or precip_units else (None, None)


def cf_attrs(name: str, source: Mapping | None = None) -> dict:
    """CF attributes of variable ``name``: climode's own for the names it knows, otherwise the
    input's (standard_name, long_name, units) where given."""
    if name in VARIABLES:
        return VARIABLES[name].cf()
    keep = ("standard_name", "long_name", "units")
    return {k: v for k, v in (source or {}).items() if k in keep}
