"""Forecast verification against a truth file, WeatherBench-2 style, as small composable pieces.

Fields follow the toolkit convention (``climode.io.fields``): dims (time, lat, lon), lat
ascending (degrees_north), lon in 0..360 (degrees_east), U850/V850 in m s-1, PSL in Pa, NaN
where missing. A forecast also carries the scalar coordinate ``forecast_reference_time`` (the
time of its last input frame), which persistence -- the truth then, held constant -- starts from.
An ensemble forecast has dims (realization, time, lat, lon): its mean is scored as a forecast, and
its members by ``climode.verification.ensemble``.
"""

from __future__ import annotations

import warnings

import cftime
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ClimodeError
from ..geo.grid import periodic
from ..geo.storms import FOLLOW_KM, INTENSITY_KM, follow_storm, great_circle_km, intensity, storm_centre
from ..io.write import fields
from .metrics import rmse as lat_weighted_rmse

MODEL = "vid-ode"
PERSISTENCE = "persistence"
ERRORS = {"psl_min_hpa": "psl_min_abs_hpa", "wind_max_ms": "wind_max_abs_ms"}  # intensity -> its error score
GREGORIAN = {"standard", "gregorian", "proleptic_gregorian"}  # one calendar for the dates verified (after 1582)
TOLERANCE = 1e-6  # degrees: coordinates this close are the same
MEMBER = "realization"  # an ensemble forecast's member dim


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


def _calendar(time) -> str:
    """The calendar of a time: a cftime date's own; numpy datetime64 is proleptic Gregorian."""
    return getattr(time, "calendar", None) or "proleptic_gregorian"


def _in_calendar(truth: xr.Dataset, like) -> tuple[xr.Dataset, str | None]:
    """The truth with its times relabelled into the calendar (and type) of the time ``like`` by their date
    stamps, when they differ; times whose stamp is no date of that calendar (30 February in noleap) are
    left out. Also the truth's calendar when it is another than ``like``'s (Gregorian ones count as one)."""
    times = truth["time"].values
    if not len(times) or (
        isinstance(times[0], np.datetime64) == isinstance(like, np.datetime64)
        and _calendar(times[0]) == _calendar(like)
    ):
        return truth, None

    def relabel(time):
        try:
            if isinstance(like, np.datetime64):
                return np.datetime64(pd.Timestamp(*_key(time)), "ns")
            return cftime.datetime(*_key(time), calendar=like.calendar, has_year_zero=like.has_year_zero)
        except ValueError:
            return None

    labels = [relabel(t) for t in times]
    kept = [k for k, label in enumerate(labels) if label is not None]
    truth = truth.isel(time=kept).assign_coords(time=("time", np.array([labels[k] for k in kept]), truth["time"].attrs))
    calendar = _calendar(times[0])
    return truth, None if {calendar, _calendar(like)} <= GREGORIAN else calendar


def _matching(
    forecast: xr.Dataset, truth: xr.Dataset, reference, calendar: str | None = None
) -> tuple[list[int], list[int], int]:
    """Indices of the forecast times verified, of the same times in the truth, and of the reference time
    in the truth. Forecast times missing from the truth or not after the reference are skipped with a
    warning. ``calendar``: the truth's, named in the refusals when it is not the forecast's."""
    index = {_key(t): k for k, t in enumerate(truth["time"].values)}
    fc_times = forecast["time"].values
    calendars = (
        f" (the forecast's calendar is {_calendar(reference)}, the truth's {calendar}: times are matched by "
        "their date stamps)"
        if calendar
        else ""
    )
    found = [k for k, t in enumerate(fc_times) if _key(t) in index]
    if not found:
        raise ClimodeError(
            f"no forecast time is in the truth{calendars}: forecast {_span(fc_times)}, "
            f"truth {_span(truth['time'].values)}"
        )
    if _key(reference) not in index:
        raise ClimodeError(
            f"the truth has no field at the forecast reference time {_text(reference)} (the last "
            f"input frame), which persistence needs{calendars}; truth {_span(truth['time'].values)}"
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


def _grid(ds: xr.Dataset) -> str:
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


def _on_grid(truth: xr.Dataset, forecast: xr.Dataset) -> tuple[xr.Dataset, np.ndarray | None]:
    """The truth on the forecast's lat/lon grid, NaN where it has no value, and the mask (lat, lon) of the
    forecast cells it covers (None: all). Where the two grids hold the same cells over their common
    extent (the same grid, a part of it, or a larger one) the truth's cells are taken as they are; any
    other truth is interpolated bilinearly, with a warning naming both grids. A truth that covers no
    forecast cell is refused."""
    lat, lon = forecast["lat"].values, forecast["lon"].values
    covered = _covered(lat, truth["lat"].values)[:, None] & _covered(lon, truth["lon"].values)[None, :]
    if not covered.any():
        raise ClimodeError(f"the truth ({_grid(truth)}) does not overlap the forecast ({_grid(forecast)})")
    shared = [_shared(truth[d].values, forecast[d].values) for d in ("lat", "lon")]
    if None not in shared:
        (lat_t, lat_f), (lon_t, lon_f) = shared
        on_grid = truth.isel(lat=lat_t, lon=lon_t).assign_coords(lat=lat[lat_f], lon=lon[lon_f])
        if on_grid.sizes["lat"] != len(lat) or on_grid.sizes["lon"] != len(lon):
            on_grid = on_grid.reindex(lat=lat, lon=lon)
    else:
        warnings.warn(
            f"the truth is on another grid ({_grid(truth)}) than the forecast ({_grid(forecast)}): "
            "interpolated bilinearly to the forecast's",
            stacklevel=3,
        )
        mask = xr.DataArray(covered, coords={"lat": forecast["lat"], "lon": forecast["lon"]})
        on_grid = truth.interp(lat=forecast["lat"], lon=forecast["lon"], method="linear").where(mask)
    return on_grid.assign_coords(lat=forecast["lat"], lon=forecast["lon"]), None if covered.all() else covered


def _clear(centres: np.ndarray, covered: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
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


def _track_rows(track: pd.DataFrame, strength: pd.DataFrame, reference) -> list[dict]:
    """A track (``follow_storm``) and its ``intensity`` as JSON-ready rows."""
    columns = ["lat", "lon", *strength.columns.drop("time")]
    values = np.column_stack([track["lat"], track["lon"], *(strength[c] for c in columns[2:])])
    return [
        {"time": _text(t), "lead_time": _hours(t, reference), **dict(zip(columns, _floats(row)))}
        for t, row in zip(track["time"], values)
    ]


def _ensemble(members: xr.Dataset, truth: xr.Dataset) -> dict:
    """``ensemble_scores`` of the members against the truth at the same times and cells, JSON-ready:
    {"members": m, metric: {variable: [per lead]}}."""
    from .ensemble import ensemble_scores  # scores (and scipy.stats) load only for an ensemble

    table = ensemble_scores(members, truth)
    out: dict = {"members": int(members.sizes[MEMBER])}
    for (metric, variable), rows in table.groupby(["metric", "variable"], sort=False):
        out.setdefault(metric, {})[variable] = _floats(rows["value"])
    return out


def verify(
    forecast: xr.Dataset, truth: xr.Dataset, start: tuple[float, float] | None = None, radius_km: float = FOLLOW_KM
) -> dict:
    """Score a forecast and persistence against the truth, per lead time (hours after the reference time).

    Parameters
    ----------
    forecast : ``climode.forecast``'s output: dims (time, lat, lon), physical units, with the scalar
        coordinate ``forecast_reference_time``; or an ensemble of them, dims (realization, time, lat,
        lon), whose mean (where every member is finite) is scored as the forecast, and whose members
        get the ensemble scores too.
    truth : the true fields, dims (time, lat, lon), times increasing, holding every forecast
        variable and the reference time. Forecast times are matched to truth times by their date
        stamps (year to second); a truth in another calendar (360_day against noleap) is compared
        at the stamps both calendars have, with a warning, and refused, naming both calendars, when
        no forecast time has one. Where the grids hold the same cells over their common extent the
        truth's cells are taken as they are, else the truth is interpolated (bilinear) to the forecast
        grid, with a warning naming both grids.
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

    For an ensemble the scores above ("vid-ode") are of the ensemble mean, and the scores hold
    ``"ensemble": {"members": m, "crps": {variable: [per lead]}, "spread": {...}, "skill": {...},
    "ratio": {...}, "brier": {"wind_speed>=17": [per lead], "wind_speed>=33": [...]}}`` (Brier
    scores with U850 and V850) from ``climode.verification.ensemble.ensemble_scores`` over the same cells
    as RMSE (cos(lat) weighted); units under "units" ("crps", "spread", "skill" per variable; "ratio"
    and "brier" "1").

    A truth that covers only part of the forecast domain is scored where it is, with a warning giving
    the share it covers (cos-latitude weighted): RMSE over the covered cells only. One that covers none
    is refused. A storm-centred score needs every cell that ``intensity`` searches, so with a partial
    truth the track, minimum PSL and maximum wind errors of every method (all of them, so that the
    methods stay compared on the same lead times) are NaN at each lead time where the truth's or the
    forecast's storm -- and at every lead time where the truth's storm at the reference time -- is
    outside the covered part or within ``INTENSITY_KM`` of its edge (where that edge is the forecast
    domain's own, too), with a warning; the scores then hold ``"storm": {..., "left_out":
    {"lead_times": [...], "reason": "..."}}``. A partial truth also adds ``"coverage": {"share":
    fraction, "truth_grid": "..."}``.
    """
    variables = fields(forecast)
    missing = [name for name in variables if name not in truth.data_vars]
    if missing:
        raise ClimodeError(f"the truth lacks {', '.join(missing)} (it holds {', '.join(map(str, truth.data_vars))})")
    members = forecast if MEMBER in forecast.dims else None
    for name, ds in (("forecast", forecast), ("truth", truth)):
        allowed = {MEMBER} if name == "forecast" else set()
        wrong = [v for v in variables if set(ds[v].dims) - allowed != {"time", "lat", "lon"}]
        if wrong:
            raise ClimodeError(
                f"the {name}'s {wrong[0]} has dims ({', '.join(map(str, ds[wrong[0]].dims))}); "
                "verification takes (time, lat, lon) on a lat/lon grid"
                + (", and (realization, time, lat, lon) for an ensemble forecast" if name == "forecast" else "")
            )
    if members is not None:  # the deterministic scores are of the ensemble mean
        forecast = forecast.mean(MEMBER, skipna=False, keep_attrs=True)
    reference = _reference_time(forecast)
    truth, calendar = _in_calendar(truth, reference)
    kept, matched, ref_index = _matching(forecast, truth, reference, calendar)
    if calendar:
        warnings.warn(
            f"the truth's calendar ({calendar}) is not the forecast's ({_calendar(reference)}): times matched "
            f"by their date stamps (year to second), {len(kept)} forecast time(s) scored",
            stacklevel=2,
        )
    forecast = forecast.isel(time=kept)
    if members is not None:
        members = members.isel(time=kept)
    window = truth[variables].isel(time=slice(ref_index, max(matched) + 1)).compute()
    window, covered = _on_grid(window, forecast)
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
    if members is not None:
        leads = ("time", np.array(scores["lead_times"]), {"units": "hours"})
        scores["ensemble"] = _ensemble(members[variables].assign_coords(lead_time=leads), truth_now)
        scores["units"].update({"crps": units, "spread": units, "skill": units, "ratio": "1", "brier": "1"})
    if covered is not None:
        weights = np.cos(np.radians(forecast["lat"].values))[:, None]
        share = float((covered * weights).sum() / (weights.sum() * covered.shape[1]))
        scores["coverage"] = {"share": share, "truth_grid": _grid(truth)}
        warnings.warn(
            f"the truth ({_grid(truth)}) covers {np.floor(share * 1000) / 10:g}% of the forecast domain "
            f"({_grid(forecast)}): only that part is scored",
            stacklevel=2,
        )
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
    scored = np.ones(len(at), bool)
    if covered is not None:  # the storm, in the truth then and now and in the forecast, well inside the truth
        grid = covered, forecast["lat"].values, forecast["lon"].values
        then = _clear(np.array([[origin["lat"], origin["lon"]]]), *grid)[0]
        scored = then & _clear(true_now[["lat", "lon"]].to_numpy(), *grid) & _clear(guesses[MODEL][0], *grid)
    for name, (centres, strength) in guesses.items():
        method = scores["methods"][name]
        km = great_circle_km(centres[:, 0], centres[:, 1], true_now["lat"].to_numpy(), true_now["lon"].to_numpy())
        method["track_km"] = _floats(np.where(scored, km, np.nan))
        for column, error in measures.items():
            difference = np.abs(strength[column].to_numpy() - true_strength[column].to_numpy())
            method[error] = _floats(np.where(scored, difference, np.nan))
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
    if not scored.all():
        reason = (
            f"the storm (truth or forecast) is outside the truth's coverage or within {INTENSITY_KM:g} km of its edge"
        )
        scores["storm"]["left_out"] = {
            "lead_times": [scores["lead_times"][k] for k in np.flatnonzero(~scored)],
            "reason": reason,
        }
        warnings.warn(
            f"storm scores (track, minimum PSL, maximum wind) left out (NaN) at {(~scored).sum()} of {len(at)} "
            f"lead time(s): {reason}",
            stacklevel=2,
        )
    return scores


# ------------------------------------------------------------------------------------ table


def _aligned(header: list[list[str]], leads: list[float], data: list[list[float]], digits: list[int]) -> list[str]:
    """Right-aligned text lines: the two ``header`` lines (one pair per column, the leads' first), a row per
    lead time and a mean row of the columns ``data``, each number with its column's ``digits``."""

    def cell(x: float, places: int) -> str:
        return f"{x:.{places}f}" if np.isfinite(x) else "-"

    rows = [list(line) for line in zip(*header)]
    rows += [[f"{lead:g}"] + [cell(col[i], d) for col, d in zip(data, digits)] for i, lead in enumerate(leads)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no mean
        rows.append(["mean"] + [cell(np.nanmean(col), d) for col, d in zip(data, digits)])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return ["  ".join(text.rjust(w) for text, w in zip(r, widths)).rstrip() for r in rows]


def _ensemble_table(scores: dict) -> str:
    """The ensemble scores of ``verify`` (``scores["ensemble"]``) as text: per lead time CRPS and spread-skill
    ratio of each variable, Brier score of each wind event; PSL CRPS in hPa."""
    ensemble, units = scores["ensemble"], scores["units"]["crps"]
    shown = {v: ("hPa", 0.01) if v == "PSL" and u == "Pa" else (u, 1.0) for v, u in units.items()}
    columns = [("CRPS", "crps", v, v, shown[v][1], 2) for v in ensemble.get("crps", {})]
    columns += [("ratio", "ratio", v, v, 1.0, 2) for v in ensemble.get("ratio", {})]
    columns += [("Brier", "brier", e, e.removeprefix("wind_speed"), 1.0, 3) for e in ensemble.get("brier", {})]
    header = [["", "lead (h)"]]
    header += [
        [group if k == 0 or columns[k - 1][0] != group else "", label]
        for k, (group, _, _, label, _, _) in enumerate(columns)
    ]
    data = [[np.nan if x is None else x * scale for x in ensemble[m][v]] for _, m, v, _, scale, _ in columns]
    legend = (
        f"ensemble of {ensemble['members']} members (the scores above are of its mean); CRPS: "
        + ", ".join(f"{v} {u}" for v, (u, _) in shown.items())
        + "; ratio = spread-skill ratio (1: calibrated, < 1: under-, > 1: over-dispersive)"
    )
    if ensemble.get("brier"):
        legend += (
            "; Brier score of 850 hPa wind speed "
            + ", ".join(e.removeprefix("wind_speed") for e in ensemble["brier"])
            + " m s-1"
        )
    lines = _aligned(header, scores["lead_times"], data, [c[5] for c in columns])
    return legend + "\n" + "\n".join(lines)


def format_table(scores: dict) -> str:
    """``verify``'s scores as a text table: one row per lead time and a mean row, each score for
    the model next to persistence; PSL RMSE in hPa. For an ensemble, a second table follows: CRPS and
    spread-skill ratio per variable and Brier score per wind event (``scores["ensemble"]``)."""
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

    data = [series(m, path, scale) for _, path, scale in columns for m in methods]
    header = [["", "lead (h)"]] + [
        [label if k == 0 else "", m] for label, _, _ in columns for k, m in enumerate(methods)
    ]
    legend = "RMSE: " + ", ".join(f"{v} {u}" for v, u in rmse_units.items())
    if "track_km" in first:
        legend += "; track error km; dPSLmin = |error of minimum PSL| hPa"
    if "wind_max_abs_ms" in first:
        legend += "; dVmax = |error of maximum 850 hPa wind| m s-1"
    table = legend + "\n" + "\n".join(_aligned(header, scores["lead_times"], data, [2] * len(data)))
    return (table + "\n" + _ensemble_table(scores)) if "ensemble" in scores else table
