"""Forecast verification against a truth file, WeatherBench-2 style, as small composable pieces.

Fields follow the toolkit convention (``climode.data.fields``): dims (time, lat, lon), lat
ascending (degrees_north), lon in 0..360 (degrees_east), U850/V850 in m s-1, PSL in Pa, NaN
where missing. A forecast also carries the scalar coordinate ``forecast_reference_time`` (the
time of its last input frame), which persistence -- the truth then, held constant -- starts from.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ClimodeError
from .metrics import rmse as lat_weighted_rmse
from .output import fields
from .tracks import great_circle_km
from .tracks.centre import quadratic_minima

MODEL = "vid-ode"
PERSISTENCE = "persistence"
FOLLOW_KM = 400.0  # how far a storm centre may move between consecutive frames
INTENSITY_KM = 300.0  # radius around the centre searched for minimum PSL and maximum wind
ERRORS = {"psl_min_hpa": "psl_min_abs_hpa", "wind_max_ms": "wind_max_abs_ms"}  # intensity -> its error score


def _periodic(lon: np.ndarray) -> bool:
    """Whether a regular longitude axis goes round the globe."""
    step = np.diff(lon)
    return lon.size > 2 and np.allclose(step, step[0]) and abs(lon.size * step[0] - 360.0) < 0.5 * step[0]


def storm_centre(
    psl: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    near: tuple[float, float] | None = None,
    radius_km: float = FOLLOW_KM,
    half: int = 1,
) -> tuple[float, float, float]:
    """The PSL minimum of a (lat, lon) field (Pa), within radius_km of ``near`` (lat, lon) when given.

    The grid cell of lowest PSL is refined to sub-grid by a least-squares quadratic fitted to its
    (2 half + 1)^2 neighbourhood (3x3 by default) when the fit is a minimum inside that window;
    NaN cells are left out of the fit. Returns (lat degrees_north, lon degrees_east 0..360,
    psl_min Pa, never above the cell's value); all NaN when no finite cell is in reach.
    """
    psl = np.asarray(psl, float)
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    reach = np.isfinite(psl)
    if near is not None:
        reach &= great_circle_km(lat[:, None], lon[None, :], near[0], near[1]) <= radius_km
    if not reach.any():
        return float("nan"), float("nan"), float("nan")
    i, j = np.unravel_index(np.argmin(np.where(reach, psl, np.inf)), psl.shape)
    (di,), (dj,), (value,) = quadratic_minima(psl, i, j, half, _periodic(lon))
    centre_lat = np.interp(i + di, np.arange(lat.size), lat)
    spacing = np.gradient(lon)[j] if lon.size > 1 else 0.0
    return float(centre_lat), float((lon[j] + dj * spacing) % 360.0), float(value)


def follow_storm(psl: xr.DataArray, start: tuple[float, float], radius_km: float = FOLLOW_KM) -> pd.DataFrame:
    """Track a low through PSL (time, lat, lon) in Pa: at each time, the ``storm_centre`` within
    radius_km of the previous centre (the first: of ``start``, (lat, lon) in degrees).

    Returns columns time, lat, lon (degrees) and psl_min (Pa), one row per time; a time with no
    finite PSL in reach gives NaN and the search goes on from the last centre found.
    """
    values = np.asarray(psl.transpose("time", "lat", "lon").values, float)
    lat, lon = psl["lat"].values, psl["lon"].values
    rows, near = [], (float(start[0]), float(start[1]))
    for field in values:
        centre = storm_centre(field, lat, lon, near=near, radius_km=radius_km)
        rows.append(centre)
        if np.isfinite(centre[0]):
            near = centre[:2]
    table = pd.DataFrame(rows, columns=["lat", "lon", "psl_min"])
    table.insert(0, "time", psl["time"].values)
    return table


def intensity(
    ds: xr.Dataset,
    centre_lat: float | Sequence[float],
    centre_lon: float | Sequence[float],
    radius_km: float = INTENSITY_KM,
    psl: str = "PSL",
    u: str = "U850",
    v: str = "V850",
) -> pd.DataFrame:
    """Storm intensity per time of ``ds`` (time, lat, lon) around centres (degrees; one per time, or one for all).

    Returns columns time, psl_min_hpa (lowest PSL, hPa) and, when ``ds`` holds both winds,
    wind_max_ms (highest sqrt(u^2 + v^2), m s-1), each over the grid cells within radius_km of
    the centre; NaN where the centre is NaN or no finite cell is in reach.
    """
    times = ds["time"].values
    clat = np.broadcast_to(np.asarray(centre_lat, float), times.shape)
    clon = np.broadcast_to(np.asarray(centre_lon, float), times.shape)
    near = (
        great_circle_km(
            ds["lat"].values[None, :, None], ds["lon"].values[None, None, :], clat[:, None, None], clon[:, None, None]
        )
        <= radius_km
    )

    def extreme(field: np.ndarray, lowest: bool) -> np.ndarray:
        fill = np.inf if lowest else -np.inf
        masked = np.where(near & np.isfinite(field), field, fill)
        found = masked.min((1, 2)) if lowest else masked.max((1, 2))
        return np.where(np.isfinite(found), found, np.nan)

    table = pd.DataFrame({"time": times})
    table["psl_min_hpa"] = extreme(np.asarray(ds[psl].transpose("time", "lat", "lon").values, float), True) / 100.0
    if u in ds and v in ds:
        speed = np.hypot(*(np.asarray(ds[name].transpose("time", "lat", "lon").values, float) for name in (u, v)))
        table["wind_max_ms"] = extreme(speed, False)
    return table


# ------------------------------------------------------------------------------------ verify


def _key(time) -> tuple[int, ...]:
    """A calendar-free label of a time (cftime or numpy datetime64) to match times across files."""
    t = pd.Timestamp(time) if isinstance(time, np.datetime64) else time
    return t.year, t.month, t.day, t.hour, t.minute, t.second


def _text(time) -> str:
    year, month, day, hour, minute, second = _key(time)
    return f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"


def _span(times: np.ndarray) -> str:
    return f"{_text(times[0])} to {_text(times[-1])} ({len(times)} times)" if len(times) else "no times"


def _hours(time, origin) -> float:
    return pd.Timedelta(time - origin).total_seconds() / 3600.0


def _floats(values) -> list[float | None]:
    """JSON-ready numbers: NaN as None (null)."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(values, float)]


def _reference_time(forecast: xr.Dataset):
    if "forecast_reference_time" not in forecast.coords or forecast["forecast_reference_time"].ndim:
        raise ClimodeError(
            "the forecast has no scalar forecast_reference_time coordinate (the time of its last "
            "input frame), which persistence starts from"
        )
    return forecast["forecast_reference_time"].values[()]


def _matching(forecast: xr.Dataset, truth: xr.Dataset, reference) -> tuple[list[int], list[int], int]:
    """Indices of the forecast times verified, of the same times in the truth, and of the reference time
    in the truth. Forecast times missing from the truth or not after the reference are skipped with a warning."""
    index = {_key(t): k for k, t in enumerate(truth["time"].values)}
    fc_times = forecast["time"].values
    found = [k for k, t in enumerate(fc_times) if _key(t) in index]
    if not found:
        raise ClimodeError(
            f"no forecast time is in the truth: forecast {_span(fc_times)}, truth {_span(truth['time'].values)}"
        )
    if _key(reference) not in index:
        raise ClimodeError(
            f"the truth has no field at the forecast reference time {_text(reference)} (the last "
            f"input frame), which persistence needs; truth {_span(truth['time'].values)}"
        )
    kept = [k for k in found if _hours(fc_times[k], reference) > 0]
    skipped = sorted(set(range(len(fc_times))) - set(kept))
    if skipped:
        warnings.warn(
            f"{len(skipped)} forecast time(s) not in the truth or not after the reference time "
            f"{_text(reference)} skipped: {', '.join(_text(fc_times[k]) for k in skipped[:5])}"
            + (" ..." if len(skipped) > 5 else ""),
            stacklevel=3,
        )
    if not kept:
        raise ClimodeError(
            f"no forecast time after the reference time {_text(reference)} is in the truth: "
            f"forecast {_span(fc_times)}, truth {_span(truth['time'].values)}"
        )
    return kept, [index[_key(fc_times[k])] for k in kept], index[_key(reference)]


def _on_grid(truth: xr.Dataset, forecast: xr.Dataset) -> xr.Dataset:
    """The truth on the forecast's lat/lon grid: as it is when the grids agree, else bilinear interpolation."""
    same = all(
        truth[d].shape == forecast[d].shape and np.allclose(truth[d].values, forecast[d].values) for d in ("lat", "lon")
    )
    if same:
        return truth.assign_coords(lat=forecast["lat"], lon=forecast["lon"])
    return truth.interp(lat=forecast["lat"], lon=forecast["lon"], method="linear")


def _track_rows(track: pd.DataFrame, strength: pd.DataFrame, reference) -> list[dict]:
    """A track (``follow_storm``) and its ``intensity`` as JSON-ready rows."""
    columns = ["lat", "lon", *strength.columns.drop("time")]
    values = np.column_stack([track["lat"], track["lon"], *(strength[c] for c in columns[2:])])
    return [
        {"time": _text(t), "lead_time": _hours(t, reference), **dict(zip(columns, _floats(row)))}
        for t, row in zip(track["time"], values)
    ]


def verify(
    forecast: xr.Dataset, truth: xr.Dataset, start: tuple[float, float] | None = None, radius_km: float = FOLLOW_KM
) -> dict:
    """Score a forecast and persistence against the truth, per lead time (hours after the reference time).

    ``forecast`` and ``truth``: (time, lat, lon) Datasets in the module's convention, truth times
    increasing; the truth must hold every forecast variable and the forecast_reference_time, and
    is interpolated (bilinear) to the forecast grid when the grids differ. Forecast times are
    matched to truth times by value (year to second). Returns a JSON-ready dict (NaN as null)::

        {"reference_time": "YYYY-MM-DD HH:MM:SS", "times": [...], "lead_times": [hours, ...],
         "units": {...}, "methods": {"vid-ode": scores, "persistence": scores},
         "storm": {"start": [lat, lon], "tracks": {"truth": rows, "vid-ode": rows}}}   # when PSL is present

    where scores = {"rmse": {variable: [per lead]}, "track_km": [...], "psl_min_abs_hpa": [...],
    "wind_max_abs_ms": [...]} (the last three with PSL; wind also needs U850 and V850) and
    rows = [{"time", "lead_time", "lat", "lon", "psl_min_hpa"[, "wind_max_ms"]}] (the truth's from
    the reference time on). RMSE is ``lat_weighted_rmse``; storms are followed by ``follow_storm``
    (radius_km per frame) from ``start`` (default: the deepest PSL minimum of the truth at the
    reference time) -- the forecast from the truth's centre at the reference time -- and
    measured by ``intensity``; persistence keeps the reference time's centre and intensity.
    """
    variables = fields(forecast)
    missing = [name for name in variables if name not in truth.data_vars]
    if missing:
        raise ClimodeError(f"the truth lacks {', '.join(missing)} (it holds {', '.join(map(str, truth.data_vars))})")
    reference = _reference_time(forecast)
    kept, matched, ref_index = _matching(forecast, truth, reference)
    forecast = forecast.isel(time=kept)
    window = truth[variables].isel(time=slice(ref_index, max(matched) + 1)).compute()
    window = _on_grid(window, forecast)
    at = [i - ref_index for i in matched]  # the verified times within the window
    truth_now = window.isel(time=at).assign_coords(time=forecast["time"])
    initial = window.isel(time=0, drop=True)
    persisted = initial.broadcast_like(truth_now).transpose(*truth_now[variables[0]].dims)
    times = forecast["time"].values
    units = {name: str(forecast[name].attrs.get("units", truth[name].attrs.get("units", ""))) for name in variables}
    scores: dict = {
        "reference_time": _text(reference),
        "times": [_text(t) for t in times],
        "lead_times": [_hours(t, reference) for t in times],
        "units": {"lead_times": "hours", "rmse": units},
        "methods": {
            name: {"rmse": {v: _floats(lat_weighted_rmse(fc[v], truth_now[v])) for v in variables}}
            for name, fc in ((MODEL, forecast), (PERSISTENCE, persisted))
        },
    }
    if "PSL" not in variables:
        return scores
    if start is None:
        start = storm_centre(initial["PSL"].values, initial["lat"].values, initial["lon"].values)[:2]
    truth_track = follow_storm(window["PSL"], start, radius_km)
    origin = truth_track.iloc[0]
    if not np.isfinite(origin["lat"]):
        raise ClimodeError(
            f"no storm to follow: the truth has no PSL within {radius_km:g} km of "
            f"({start[0]:g}, {start[1]:g}) at the reference time {_text(reference)}"
        )
    model_track = follow_storm(forecast["PSL"], (origin["lat"], origin["lon"]), radius_km)
    truth_strength = intensity(window, truth_track["lat"], truth_track["lon"])
    model_strength = intensity(forecast, model_track["lat"], model_track["lon"])
    true_now, true_strength = truth_track.iloc[at], truth_strength.iloc[at]
    guesses = {
        MODEL: (model_track[["lat", "lon"]].to_numpy(), model_strength),
        PERSISTENCE: (np.array([[origin["lat"], origin["lon"]]]), truth_strength.iloc[[0] * len(at)]),
    }
    measures = {c: e for c, e in ERRORS.items() if c in truth_strength}
    for name, (centres, strength) in guesses.items():
        method = scores["methods"][name]
        method["track_km"] = _floats(
            great_circle_km(centres[:, 0], centres[:, 1], true_now["lat"].to_numpy(), true_now["lon"].to_numpy())
        )
        for column, error in measures.items():
            method[error] = _floats(np.abs(strength[column].to_numpy() - true_strength[column].to_numpy()))
    scores["units"].update(
        {
            "track_km": "km",
            "psl_min_abs_hpa": "hPa",
            "wind_max_abs_ms": "m s-1",
            "lat": "degrees_north",
            "lon": "degrees_east",
            "psl_min_hpa": "hPa",
            "wind_max_ms": "m s-1",
        }
    )
    scores["storm"] = {
        "start": [float(start[0]), float(start[1])],
        "radius_km": radius_km,
        "tracks": {
            "truth": _track_rows(truth_track, truth_strength, reference),
            MODEL: _track_rows(model_track, model_strength, reference),
        },
    }
    return scores


# ------------------------------------------------------------------------------------ table


def format_table(scores: dict) -> str:
    """``verify``'s scores as a text table: one row per lead time and a mean row, each score for
    the model next to persistence; PSL RMSE in hPa."""
    methods = list(scores["methods"])
    first = scores["methods"][methods[0]]
    rmse_units = {v: "hPa" if v == "PSL" and u == "Pa" else u for v, u in scores["units"]["rmse"].items()}
    columns = [
        (f"{v}", ("rmse", v), 0.01 if rmse_units[v] != scores["units"]["rmse"][v] else 1.0) for v in first["rmse"]
    ]
    columns += [
        (label, (key,), 1.0)
        for key, label in (("track_km", "track"), ("psl_min_abs_hpa", "dPSLmin"), ("wind_max_abs_ms", "dVmax"))
        if key in first
    ]

    def series(method: str, path: tuple[str, ...], scale: float) -> list[float]:
        values = scores["methods"][method]
        for part in path:
            values = values[part]
        return [np.nan if x is None else x * scale for x in values]

    def cell(x: float) -> str:
        return f"{x:.2f}" if np.isfinite(x) else "-"

    data = [series(m, path, scale) for _, path, scale in columns for m in methods]
    header = [["", "lead (h)"]] + [
        [label if k == 0 else "", m] for label, _, _ in columns for k, m in enumerate(methods)
    ]
    rows = [list(line) for line in zip(*header)]
    rows += [[f"{lead:g}"] + [cell(col[i]) for col in data] for i, lead in enumerate(scores["lead_times"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no mean
        rows.append(["mean"] + [cell(np.nanmean(col)) for col in data])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    legend = "RMSE: " + ", ".join(f"{v} {u}" for v, u in rmse_units.items())
    if "track_km" in first:
        legend += "; track error km; dPSLmin = |error of minimum PSL| hPa"
    if "wind_max_abs_ms" in first:
        legend += "; dVmax = |error of maximum 850 hPa wind| m s-1"
    return legend + "\n" + "\n".join("  ".join(text.rjust(w) for text, w in zip(r, widths)).rstrip() for r in rows)
