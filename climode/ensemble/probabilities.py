"""The probabilities a forecaster issues from an ensemble: of events (``wind>=17``, ``PSL<=980hPa``)
per cell and time, and of the storm centre passing within a radius (strike)."""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..conventions import DEFAULT_EVENTS, STRIKE_KM, VARIABLES, conversion
from ..errors import ClimodeError
from ..geo.storms import great_circle_km
from .tracks import storm_tracks


@dataclass(frozen=True)
class Event:
    """``variable op threshold`` in the variable's units (``wind``: the 850 hPa speed, m s-1)."""

    variable: str
    op: str
    threshold: float
    text: str

    @property
    def name(self) -> str:
        """A variable name for its probability, from the event as written: ``wind>=30kt`` ->
        ``probability_wind_ge_30kt``."""
        value = self.text.split(self.op, 1)[1].replace(".", "p").replace("-", "m")
        return f"probability_{self.variable}_{_OPS[self.op][1]}_{re.sub(r'[^0-9A-Za-z]', '', value)}"

    def occurs(self, fields: xr.Dataset) -> xr.DataArray:
        """0/1 where the event holds in ``fields`` (members or the truth), NaN where undefined."""
        value = _quantity(fields, self.variable)
        return _OPS[self.op][0](value, self.threshold).astype(np.float32).where(value.notnull())


_OPS = {">=": (operator.ge, "ge"), ">": (operator.gt, "gt"), "<=": (operator.le, "le"), "<": (operator.lt, "lt")}
_EVENT = re.compile(r"^\s*([A-Za-z_][\w@.]*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _quantity(fields: xr.Dataset, variable: str) -> xr.DataArray:
    if variable == "wind":
        return np.hypot(fields["U850"], fields["V850"])
    return fields[variable]


def _units(variable: str, units: dict[str, str]) -> str:
    if variable == "wind":
        return "m s-1"
    return units.get(variable) or (VARIABLES[variable].units if variable in VARIABLES else "")


def parse_events(spec: str, variables: Sequence[str], units: dict[str, str] | None = None) -> list[Event]:
    """The events of ``--probability`` (``"wind>=17,wind>=33kt,PSL<=980hPa"``): a variable of
    ``variables`` (or ``wind``, the 850 hPa speed, where U850 and V850 are), an operator and a
    threshold with optional units, converted to the variable's (``units``, else climode's canonical
    ones). ClimodeError naming the entry for anything else, before any work."""
    units = units or {}
    known = list(variables) + (["wind"] if {"U850", "V850"} <= set(variables) else [])
    events = []
    for text in [t for t in str(spec).split(",") if t.strip()] or [""]:
        match = _EVENT.match(text)
        if not match:
            raise ClimodeError(
                f"--probability: cannot read {text.strip()!r}; write VARIABLE OP THRESHOLD [UNITS] with OP one of "
                ">=, >, <=, <, e.g. 'wind>=17' or 'PSL<=980hPa'"
            )
        variable, op, value, given = match.groups()
        if variable not in known:
            raise ClimodeError(
                f"--probability: unknown variable {variable!r} in {text.strip()!r}; the forecast has {', '.join(known)}"
            )
        threshold = float(value)
        own = _units(variable, units)
        if given:
            factor = conversion(given, own) if own else None
            if factor is None:
                raise ClimodeError(
                    f"--probability: {text.strip()!r} gives units {given!r}, which are not units of {variable} "
                    f"({own or 'unknown units'})"
                )
            threshold *= factor
        events.append(Event(variable, op, threshold, text.strip()))
    return events


def probability(ens: xr.Dataset, event: Event) -> xr.DataArray:
    """(time, lat, lon) the share of members in which ``event`` holds (units 1)."""
    share = event.occurs(ens).mean("realization")
    units = _units(event.variable, {k: v.attrs.get("units", "") for k, v in ens.data_vars.items()})
    what = "850 hPa wind speed" if event.variable == "wind" else event.variable
    return share.rename(event.name).assign_attrs(
        long_name=f"probability of {what} {event.op} {event.threshold:g} {units}".strip(),
        units="1",
        threshold=event.threshold,
        threshold_units=units,
        comparison=event.op,
    )


def strike_probability(
    tracks: pd.DataFrame, like: xr.DataArray, members: int, radius_km: float = STRIKE_KM
) -> xr.DataArray:
    """(time, lat, lon) the share of ``members`` whose centre (``member_tracks``) passed within
    ``radius_km`` of each cell at or before each time of ``like`` (a (time, lat, lon) field)."""
    lat, lon = like["lat"].values, like["lon"].values
    times = list(like["time"].values)
    hit = np.zeros((members, len(times), lat.size, lon.size), bool)
    for row in tracks.dropna(subset=["lat"]).itertuples():
        k = times.index(row.time)
        near = great_circle_km(lat[:, None], lon[None, :], row.lat, row.lon) <= radius_km
        hit[int(row.realization), k:] |= near
    share = hit.mean(0).astype(np.float32)
    return xr.DataArray(
        share,
        coords={"time": like["time"], "lat": like["lat"], "lon": like["lon"]},
        dims=("time", "lat", "lon"),
        name="strike_probability",
        attrs={
            "long_name": f"probability that the storm centre passes within {radius_km:g} km by this time",
            "units": "1",
            "radius_km": radius_km,
        },
    )


def products(
    ens: xr.Dataset,
    events: Sequence[Event] | str = DEFAULT_EVENTS,
    strike_km: float | None = STRIKE_KM,
    tracks: pd.DataFrame | None = None,
) -> xr.Dataset:
    """The probabilities of an ensemble forecast (``climode.forecast(..., members=N)``): one
    (time, lat, lon) field per event (``parse_events``' specification or its events) and, where PSL is
    forecast and the forecast says where the storm was at the last input (``climode_storm_start``),
    the strike probability within ``strike_km`` (None: none), from the members' ``tracks`` (default
    ``storm_tracks``)."""
    if isinstance(events, str):
        units = {k: v.attrs.get("units", "") for k, v in ens.data_vars.items()}
        events = parse_events(events, [str(v) for v in ens.data_vars if "realization" in ens[v].dims], units)
    out = {event.name: probability(ens, event) for event in events}
    tracks = storm_tracks(ens) if tracks is None and strike_km is not None else tracks
    if strike_km is not None and tracks is not None:
        out["strike_probability"] = strike_probability(
            tracks, ens["PSL"].isel(realization=0), ens.sizes["realization"], strike_km
        )
    return xr.Dataset(out)
