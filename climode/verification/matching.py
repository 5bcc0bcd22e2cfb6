"""How a forecast and a truth are matched for verification: the forecast's reference time, its times
found in the truth by their date stamps (``climode.times.date_key``), the truth brought onto the
forecast's lat/lon grid, and which storm centres lie well inside the cells the truth covers."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..errors import ClimodeError
from ..geo.grid import periodic
from ..geo.storms import INTENSITY_KM, great_circle_km
from ..times import calendar_of, date_key, describe_times, hours_after, stamp

TOLERANCE = 1e-6  # degrees: coordinates this close are the same


def reference_time(forecast: xr.Dataset):
    """The forecast's scalar ``forecast_reference_time`` (the time of its last input frame), which
    persistence starts from; refused when it has none."""
    if "forecast_reference_time" not in forecast.coords or forecast["forecast_reference_time"].ndim:
        raise ClimodeError(
            "the forecast has no scalar forecast_reference_time coordinate (the time of its last "
            "input frame), which persistence starts from"
        )
    return forecast["forecast_reference_time"].values[()]


def match_times(
    forecast: xr.Dataset, truth: xr.Dataset, reference, calendar: str | None = None
) -> tuple[list[int], list[int], int]:
    """Indices of the forecast times verified, of the same times in the truth, and of the reference time
    in the truth. Forecast times missing from the truth or not after the reference are skipped with a
    warning. ``calendar``: the truth's, named in the refusals when it is not the forecast's."""
    index = {date_key(t): k for k, t in enumerate(truth["time"].values)}
    fc_times = forecast["time"].values
    calendars = (
        f" (the forecast's calendar is {calendar_of(reference)}, the truth's {calendar}: times are matched by "
        "their date stamps)"
        if calendar
        else ""
    )
    found = [k for k, t in enumerate(fc_times) if date_key(t) in index]
    if not found:
        raise ClimodeError(
            f"no forecast time is in the truth{calendars}: forecast {describe_times(fc_times)}, "
            f"truth {describe_times(truth['time'].values)}"
        )
    if date_key(reference) not in index:
        raise ClimodeError(
            f"the truth has no field at the forecast reference time {stamp(reference)} (the last "
            f"input frame), which persistence needs{calendars}; truth {describe_times(truth['time'].values)}"
        )
    kept = [k for k in found if hours_after(fc_times[k], reference) > 0]
    skipped = sorted(set(range(len(fc_times))) - set(kept))
    if skipped:
        warnings.warn(
            f"{len(skipped)} forecast time(s) not in the truth or not after the reference time "
            f"{stamp(reference)} skipped: {', '.join(stamp(fc_times[k]) for k in skipped[:5])}"
            + (" ..." if len(skipped) > 5 else ""),
            stacklevel=4,  # the caller of verify
        )
    if not kept:
        raise ClimodeError(
            f"no forecast time after the reference time {stamp(reference)} is in the truth: "
            f"forecast {describe_times(fc_times)}, truth {describe_times(truth['time'].values)}"
        )
    return kept, [index[date_key(fc_times[k])] for k in kept], index[date_key(reference)]


def describe_grid(ds: xr.Dataset) -> str:
    """A lat/lon grid in words: its cells, spacing and extent."""
    lat, lon = ds["lat"].values, ds["lon"].values
    step = "x".join(f"{np.median(np.diff(c)):g}" if len(c) > 1 else "-" for c in (lat, lon))
    return (
        f"{len(lat)} x {len(lon)} cells of {step} degrees, lat {lat.min():g} to {lat.max():g}, "
        f"lon {lon.min():g} to {lon.max():g}"
    )


def _covered(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Which ``values`` (one axis of the forecast grid) the truth's ``coords`` cover: inside their extent
    and within half their usual spacing of one of them (not in a gap)."""
    if not len(coords):
        return np.zeros(len(values), bool)
    coords = np.sort(coords)
    step = np.median(np.diff(coords)) if len(coords) > 1 else 0.0
    right = np.clip(np.searchsorted(coords, values), 0, len(coords) - 1)
    gap = np.minimum(np.abs(values - coords[right]), np.abs(values - coords[np.maximum(right - 1, 0)]))
    return (gap <= step / 2 + TOLERANCE) & (values >= coords[0] - TOLERANCE) & (values <= coords[-1] + TOLERANCE)


def _shared(truth: np.ndarray, forecast: np.ndarray) -> tuple[slice, slice] | None:
    """Where two ascending grid axes hold the same values over their common extent (a slice of each), if they do."""
    bounds = [max(truth[0], forecast[0]) - TOLERANCE, min(truth[-1], forecast[-1]) + TOLERANCE]
    mine, theirs = (slice(*np.searchsorted(axis, bounds)) for axis in (truth, forecast))
    same = len(truth[mine]) == len(forecast[theirs]) and np.allclose(truth[mine], forecast[theirs], atol=TOLERANCE)
    return (mine, theirs) if same else None


def on_grid(truth: xr.Dataset, forecast: xr.Dataset) -> tuple[xr.Dataset, np.ndarray | None]:
    """The truth on the forecast's lat/lon grid, NaN where it has no value, and the mask (lat, lon) of the
    forecast cells it covers (None: all). Where the two grids hold the same cells over their common
    extent (the same grid, a part of it, or a larger one) the truth's cells are taken as they are; any
    other truth is interpolated bilinearly, with a warning naming both grids. A truth that covers no
    forecast cell is refused."""
    lat, lon = forecast["lat"].values, forecast["lon"].values
    covered = _covered(lat, truth["lat"].values)[:, None] & _covered(lon, truth["lon"].values)[None, :]
    if not covered.any():
        raise ClimodeError(
            f"the truth ({describe_grid(truth)}) does not overlap the forecast ({describe_grid(forecast)})"
        )
    shared = [_shared(truth[d].values, forecast[d].values) for d in ("lat", "lon")]
    if None not in shared:
        (lat_t, lat_f), (lon_t, lon_f) = shared
        on_grid = truth.isel(lat=lat_t, lon=lon_t).assign_coords(lat=lat[lat_f], lon=lon[lon_f])
        if on_grid.sizes["lat"] != len(lat) or on_grid.sizes["lon"] != len(lon):
            on_grid = on_grid.reindex(lat=lat, lon=lon)
    else:
        warnings.warn(
            f"the truth is on another grid ({describe_grid(truth)}) than the forecast ({describe_grid(forecast)}): "
            "interpolated bilinearly to the forecast's",
            stacklevel=3,
        )
        mask = xr.DataArray(covered, coords={"lat": forecast["lat"], "lon": forecast["lon"]})
        on_grid = truth.interp(lat=forecast["lat"], lon=forecast["lon"], method="linear").where(mask)
    return on_grid.assign_coords(lat=forecast["lat"], lon=forecast["lon"]), None if covered.all() else covered


def clear_of_edges(centres: np.ndarray, covered: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Whether each storm centre (N, 2) is inside the ``covered`` part (lat, lon) of the grid, at least
    ``INTENSITY_KM`` (the radius intensity searches) from its edge, where the grid's own edge counts
    (in longitude only when the grid is not periodic); False for a NaN centre."""
    edge = ~covered
    edge[[0, -1]] = True
    if not periodic(lon):
        edge[:, [0, -1]] = True
    return np.array(
        [
            np.isfinite(c).all()
            and not (edge & (great_circle_km(lat[:, None], lon[None, :], c[0], c[1]) <= INTENSITY_KM)).any()
            for c in centres
        ]
    )
