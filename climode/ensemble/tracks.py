"""The storm tracks of an ensemble's members: each member's storm centre followed through its PSL."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from ..geo.storms import FOLLOW_KM, follow_storm


def member_tracks(ens: xr.Dataset, start: tuple[float, float], radius_km: float = FOLLOW_KM) -> pd.DataFrame:
    """Each member's storm centre (``follow_storm`` through its PSL from ``start`` (lat, lon), the
    centre at the last input): columns realization, time, lat, lon (degrees), psl_min (Pa)."""
    tables = []
    for m in ens["realization"].values:
        table = follow_storm(ens["PSL"].sel(realization=m), start, radius_km)
        tables.append(table.assign(realization=int(m))[["realization", "time", "lat", "lon", "psl_min"]])
    return pd.concat(tables, ignore_index=True)


def storm_tracks(ens: xr.Dataset) -> pd.DataFrame | None:
    """``member_tracks`` from the storm centre the forecast recorded at its last input
    (``climode_storm_start``), or None where it has none (no PSL)."""
    start = ens.attrs.get("climode_storm_start")
    if "PSL" not in ens or start is None:
        return None
    return member_tracks(ens, (float(start[0]), float(start[1])))
