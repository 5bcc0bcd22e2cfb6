"""The CF attributes that matter, checked on a written NetCDF file (no maintained CF checker on PyPI
works offline: cfchecker and compliance-checker fetch the standard-name table)."""

import re

import netCDF4

TIME_UNITS = re.compile(r"^(seconds|minutes|hours|days) since \d{1,4}-\d{1,2}-\d{1,2}( \d{1,2}:\d{2}(:\d{2})?)?$")
PERIOD_UNITS = ("seconds", "minutes", "hours", "days")
CALENDARS = (
    "standard",
    "gregorian",
    "proleptic_gregorian",
    "noleap",
    "365_day",
    "all_leap",
    "366_day",
    "360_day",
    "julian",
)


def cf_problems(path) -> list[str]:
    """Every CF problem found in the NetCDF file ``path``; empty when none."""
    problems = []
    with netCDF4.Dataset(path) as nc:
        if not str(getattr(nc, "Conventions", "")).startswith("CF-"):
            problems.append("no global Conventions = 'CF-x.y'")
        names = set(nc.variables)
        for name, var in nc.variables.items():
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            where = f"variable {name}"
            is_coord = (
                var.dimensions == (name,)
                or name
                in " ".join(
                    str(v.getncattr("coordinates")) for v in nc.variables.values() if "coordinates" in v.ncattrs()
                ).split()
            )
            std = attrs.get("standard_name")
            if std is None or not re.fullmatch(r"[a-z][a-z0-9_]*", str(std)):
                problems.append(f"{where}: standard_name {std!r}")
            if std == "status_flag":
                values, meanings = attrs.get("flag_values"), str(attrs.get("flag_meanings", "")).split()
                if values is None or len(meanings) != len(values):
                    problems.append(f"{where}: flag_values and flag_meanings do not pair")
                continue
            units = attrs.get("units")
            if units is None:
                problems.append(f"{where}: no units")
            if is_coord and "_FillValue" in attrs:
                problems.append(f"{where}: a coordinate with a _FillValue")
            if std in ("time", "forecast_reference_time"):
                if not TIME_UNITS.match(str(units)) or attrs.get("calendar") not in CALENDARS:
                    problems.append(f"{where}: time units {units!r} / calendar {attrs.get('calendar')!r}")
            if std == "forecast_period" and str(units) not in PERIOD_UNITS:
                problems.append(f"{where}: forecast_period units {units!r}")
            if std == "latitude" and units != "degrees_north":
                problems.append(f"{where}: latitude units {units!r}")
            if std == "longitude" and units != "degrees_east":
                problems.append(f"{where}: longitude units {units!r}")
            if std == "air_pressure" and (units != "Pa" or attrs.get("positive") != "down"):
                problems.append(f"{where}: pressure level units {units!r}, positive {attrs.get('positive')!r}")
            for key in ("coordinates", "ancillary_variables"):
                missing = [n for n in str(attrs.get(key, "")).split() if n not in names]
                if missing:
                    problems.append(f"{where}: {key} names missing variables {missing}")
    return problems
