"""Forecast verification against a truth file, WeatherBench-2 style, as small composable pieces.

Fields follow the toolkit convention (``climode.io.fields``): dims (time, lat, lon), lat
ascending (degrees_north), lon in 0..360 (degrees_east), U850/V850 in m s-1, PSL in Pa, NaN
where missing. A forecast also carries the scalar coordinate ``forecast_reference_time`` (the
time of its last input frame), which persistence -- the truth then, held constant -- starts from.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ClimodeError
from ..geo.storms import FOLLOW_KM, follow_storm, great_circle_km, intensity, storm_centre
from ..io.write import fields
from .metrics import rmse as lat_weighted_rmse

MODEL = "vid-ode"
PERSISTENCE = "persistence"
ERRORS = {"psl_min_hpa": "psl_min_abs_hpa", "wind_max_ms": "wind_max_abs_ms"}  # intensity -> its error score


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

    Parameters
    ----------
    forecast : ``climode.forecast``'s output: dims (time, lat, lon), physical units, with the scalar
        coordinate ``forecast_reference_time``.
    truth : the true fields, dims (time, lat, lon), times increasing, holding every forecast
        variable and the reference time; interpolated (bilinear) to the forecast grid when the grids
        differ. Forecast times are matched to truth times by value (year to second).
    start : (lat, lon) degrees near the storm at the reference time (default: the deepest PSL
        minimum of the truth then).
    radius_km : how far a followed storm centre may move between frames.

    Returns
    -------
    dict
        JSON-ready (NaN as null)::

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
