"""Forecast verification against a truth file, WeatherBench-2 style, as small composable pieces.

Fields follow the toolkit convention (``climode.io.fields``): dims (time, lat, lon), lat
ascending (degrees_north), lon in 0..360 (degrees_east), U850/V850 in m s-1, PSL in Pa, NaN
where missing. A forecast also carries the scalar coordinate ``forecast_reference_time`` (the
time of its last input frame), which persistence -- the truth then, held constant -- starts from.
An ensemble forecast has dims (realization, time, lat, lon): its mean is scored as a forecast, and
its members by ``climode.verification.ensemble``. Times and grids are matched by
``climode.verification.matching``, the scores shown as text by ``climode.verification.tables``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ClimodeError
from ..geo.storms import FOLLOW_KM, INTENSITY_KM, follow_storm, great_circle_km, intensity, storm_centre
from ..io.write import fields
from ..times import calendar_of, hours_after, relabel_times, stamp
from .matching import clear_of_edges, describe_grid, match_times, on_grid, reference_time
from .metrics import rmse as lat_weighted_rmse

MODEL = "vid-ode"
PERSISTENCE = "persistence"
ERRORS = {"psl_min_hpa": "psl_min_abs_hpa", "wind_max_ms": "wind_max_abs_ms"}  # intensity -> its error score
MEMBER = "realization"  # an ensemble forecast's member dim
STORM_UNITS = {
    "track_km": "km",
    "psl_min_abs_hpa": "hPa",
    "wind_max_abs_ms": "m s-1",
    "lat": "degrees_north",
    "lon": "degrees_east",
    "psl_min_hpa": "hPa",
    "wind_max_ms": "m s-1",
}


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
    members = _ensemble_of(forecast, truth, variables)
    if members is not None:  # the deterministic scores are of the ensemble mean
        forecast = forecast.mean(MEMBER, skipna=False, keep_attrs=True)
    reference = reference_time(forecast)
    truth, forecast, members, window, at = _matched(forecast, members, truth, reference, variables)
    window, covered = on_grid(window, forecast)
    truth_now = window.isel(time=at).assign_coords(time=forecast["time"])
    scores = _field_scores(forecast, window.isel(time=0, drop=True), truth_now, truth, variables, reference)
    if members is not None:
        leads = ("time", np.array(scores["lead_times"]), {"units": "hours"})
        scores["ensemble"] = _ensemble(members[variables].assign_coords(lead_time=leads), truth_now)
        units = scores["units"]["rmse"]
        scores["units"].update({"crps": units, "spread": units, "skill": units, "ratio": "1", "brier": "1"})
    if covered is not None:
        _add_coverage(scores, covered, forecast, truth)
    if "PSL" in variables:
        _add_storm(scores, forecast, window, at, covered, reference, start, radius_km)
    return scores


def _ensemble_of(forecast: xr.Dataset, truth: xr.Dataset, variables: list[str]) -> xr.Dataset | None:
    """The forecast when it is an ensemble (None otherwise), once every variable is checked to be in the
    truth and on (time, lat, lon) (with ``realization`` first in an ensemble forecast)."""
    missing = [name for name in variables if name not in truth.data_vars]
    if missing:
        raise ClimodeError(f"the truth lacks {', '.join(missing)} (it holds {', '.join(map(str, truth.data_vars))})")
    for name, ds in (("forecast", forecast), ("truth", truth)):
        allowed = {MEMBER} if name == "forecast" else set()
        wrong = [v for v in variables if set(ds[v].dims) - allowed != {"time", "lat", "lon"}]
        if wrong:
            raise ClimodeError(
                f"the {name}'s {wrong[0]} has dims ({', '.join(map(str, ds[wrong[0]].dims))}); "
                "verification takes (time, lat, lon) on a lat/lon grid"
                + (", and (realization, time, lat, lon) for an ensemble forecast" if name == "forecast" else "")
            )
    return forecast if MEMBER in forecast.dims else None


def _matched(
    forecast: xr.Dataset, members: xr.Dataset | None, truth: xr.Dataset, reference, variables: list[str]
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset | None, xr.Dataset, list[int]]:
    """The truth in the forecast's calendar (``times.relabel_times``, with a warning when they differ),
    the forecast (and its members) at the times verified (``matching.match_times``), and the truth's
    window: its fields from the reference time to the last time verified, read, and the indices of the
    times verified in it."""
    truth, calendar = relabel_times(truth, reference)
    kept, matched, ref_index = match_times(forecast, truth, reference, calendar)
    if calendar:
        warnings.warn(
            f"the truth's calendar ({calendar}) is not the forecast's ({calendar_of(reference)}): times matched "
            f"by their date stamps (year to second), {len(kept)} forecast time(s) scored",
            stacklevel=3,
        )
    members = None if members is None else members.isel(time=kept)
    window = truth[variables].isel(time=slice(ref_index, max(matched) + 1)).compute()
    return truth, forecast.isel(time=kept), members, window, [i - ref_index for i in matched]


def _field_scores(
    forecast: xr.Dataset,
    initial: xr.Dataset,
    truth_now: xr.Dataset,
    truth: xr.Dataset,
    variables: list[str],
    reference,
) -> dict:
    """The scores' times, units and RMSE per variable and lead time of the forecast and of persistence
    (the truth at the reference time, ``initial``, held) against ``truth_now``."""
    persisted = initial.broadcast_like(truth_now).transpose(*truth_now[variables[0]].dims)
    times = forecast["time"].values
    units = {name: str(forecast[name].attrs.get("units", truth[name].attrs.get("units", ""))) for name in variables}
    return {
        "reference_time": stamp(reference),
        "times": [stamp(t) for t in times],
        "lead_times": [hours_after(t, reference) for t in times],
        "units": {"lead_times": "hours", "rmse": units},
        "methods": {
            name: {"rmse": {v: _floats(lat_weighted_rmse(fc[v], truth_now[v])) for v in variables}}
            for name, fc in ((MODEL, forecast), (PERSISTENCE, persisted))
        },
    }


def _add_coverage(scores: dict, covered: np.ndarray, forecast: xr.Dataset, truth: xr.Dataset) -> None:
    """``scores["coverage"]``: the share of the forecast domain (cos-latitude weighted) the truth covers,
    with a warning."""
    weights = np.cos(np.radians(forecast["lat"].values))[:, None]
    share = float((covered * weights).sum() / (weights.sum() * covered.shape[1]))
    scores["coverage"] = {"share": share, "truth_grid": describe_grid(truth)}
    warnings.warn(
        f"the truth ({describe_grid(truth)}) covers {np.floor(share * 1000) / 10:g}% of the forecast domain "
        f"({describe_grid(forecast)}): only that part is scored",
        stacklevel=3,
    )


def _add_storm(
    scores: dict,
    forecast: xr.Dataset,
    window: xr.Dataset,
    at: list[int],
    covered: np.ndarray | None,
    reference,
    start: tuple[float, float] | None,
    radius_km: float,
) -> None:
    """The storm scores (``verify``'s docstring): the truth's storm followed from ``start`` through its
    ``window``, the forecast's from the truth's centre at the reference time, each method's track and
    intensity errors at the times verified (``at``, in the window), and the tracks."""
    if start is None:
        initial = window.isel(time=0, drop=True)
        start = storm_centre(initial["PSL"].values, initial["lat"].values, initial["lon"].values)[:2]
    truth_track = follow_storm(window["PSL"], start, radius_km)
    origin = truth_track.iloc[0]
    if not np.isfinite(origin["lat"]):
        raise ClimodeError(
            f"no storm to follow: the truth has no PSL within {radius_km:g} km of "
            f"({start[0]:g}, {start[1]:g}) at the reference time {stamp(reference)}"
        )
    model_track = follow_storm(forecast["PSL"], (origin["lat"], origin["lon"]), radius_km)
    truth_strength = intensity(window, truth_track["lat"], truth_track["lon"])
    model_strength = intensity(forecast, model_track["lat"], model_track["lon"])
    true_now, true_strength = truth_track.iloc[at], truth_strength.iloc[at]
    guesses = {
        MODEL: (model_track[["lat", "lon"]].to_numpy(), model_strength),
        PERSISTENCE: (np.array([[origin["lat"], origin["lon"]]]), truth_strength.iloc[[0] * len(at)]),
    }
    scored = np.ones(len(at), bool)
    if covered is not None:  # the storm, in the truth then and now and in the forecast, well inside the truth
        grid = covered, forecast["lat"].values, forecast["lon"].values
        then = clear_of_edges(np.array([[origin["lat"], origin["lon"]]]), *grid)[0]
        scored = then & clear_of_edges(true_now[["lat", "lon"]].to_numpy(), *grid)
        scored &= clear_of_edges(guesses[MODEL][0], *grid)
    measures = {c: e for c, e in ERRORS.items() if c in truth_strength}
    for name, (centres, strength) in guesses.items():
        method = scores["methods"][name]
        km = great_circle_km(centres[:, 0], centres[:, 1], true_now["lat"].to_numpy(), true_now["lon"].to_numpy())
        method["track_km"] = _floats(np.where(scored, km, np.nan))
        for column, error in measures.items():
            difference = np.abs(strength[column].to_numpy() - true_strength[column].to_numpy())
            method[error] = _floats(np.where(scored, difference, np.nan))
    scores["units"].update(STORM_UNITS)
    tracks = {"truth": (truth_track, truth_strength), MODEL: (model_track, model_strength)}
    scores["storm"] = {
        "start": [float(start[0]), float(start[1])],
        "radius_km": radius_km,
        "tracks": {name: _track_rows(*track, reference) for name, track in tracks.items()},
    }
    if not scored.all():
        _left_out(scores, scored)


def _left_out(scores: dict, scored: np.ndarray) -> None:
    """``scores["storm"]["left_out"]``: the lead times whose storm scores are NaN (not ``scored``), and
    why, with a warning."""
    reason = f"the storm (truth or forecast) is outside the truth's coverage or within {INTENSITY_KM:g} km of its edge"
    scores["storm"]["left_out"] = {
        "lead_times": [scores["lead_times"][k] for k in np.flatnonzero(~scored)],
        "reason": reason,
    }
    warnings.warn(
        f"storm scores (track, minimum PSL, maximum wind) left out (NaN) at {(~scored).sum()} of {len(scored)} "
        f"lead time(s): {reason}",
        stacklevel=4,
    )


def _floats(values) -> list[float | None]:
    """JSON-ready numbers: NaN as None (null)."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(values, float)]


def _track_rows(track: pd.DataFrame, strength: pd.DataFrame, reference) -> list[dict]:
    """A track (``follow_storm``) and its ``intensity`` as JSON-ready rows."""
    columns = ["lat", "lon", *strength.columns.drop("time")]
    values = np.column_stack([track["lat"], track["lon"], *(strength[c] for c in columns[2:])])
    return [
        {"time": stamp(t), "lead_time": hours_after(t, reference), **dict(zip(columns, _floats(row)))}
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
