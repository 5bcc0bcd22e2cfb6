"""Skill of forecasters on storms whose truth is known at any time, per task and lead, with
confidence intervals over storms.

A case is one storm seen at irregular input times; each forecaster answers it at three kinds of
query time, from one call (a forecast does not depend on the other times asked):

- ``extrapolation``: every 3 h from 3 to 24 h after the last input (on the 3-hour grid);
- ``off-grid``: leads between those (1.5, 4.5, 7.5, 10.5, 13.5, 19.5 h);
- ``interpolation``: inside the last input gap, at a quarter, half and three quarters of it
  (the "lead" of an interpolation row is that fraction).

Every forecaster goes through ``climode.forecast`` with the same checkpoint metadata (grid,
tiles, normalisation), so the baselines see exactly the inputs the model sees. The scores are
``climode.verification.metrics``'s: RMSE in physical units, CSI and FSS at wind 17/33 m/s and PSL deficits of
10/30 hPa, sharpness, minimum-PSL and maximum-wind bias and error around the storm's centre, and
track error with along/cross-track parts and hit rate. CLIPER (``climode.verification.cliper``) adds a track
forecast from the storm's past positions. ``summarise`` gives means with bootstrap intervals that
resample storms, not cases.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..checkpoint import Checkpoint
from ..geo.storms import FOLLOW_KM, follow_storm, intensity, storm_centre
from ..model import build
from ..times import hours_between
from .intervals import bootstrap
from .metrics import csi, fss, intensity_errors, psl_deficit, rmse, sharpness, track_errors, wind_speed

log = logging.getLogger(__name__)

LEADS = (3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0)  # hours after the last input
OFF_GRID = (1.5, 4.5, 7.5, 10.5, 13.5, 19.5)
FRACTIONS = (0.25, 0.5, 0.75)  # of the last input gap
WIND = (17.0, 33.0)  # m s-1
DEFICIT = (10.0, 30.0)  # hPa
FSS_WINDOW = 5  # cells
HIT_KM = 300.0
TRIES = 20  # draws per case before a period is given up (inputs before the record's start, ...)
BASELINES = ("persistence", "blend", "linear", "advection", "advection-multi")
TASKS = ("extrapolation", "off-grid", "interpolation")


@dataclass(frozen=True)
class Case:
    """One storm seen at ``inputs`` (hours since the corpus's first frame), asked at ``queries``
    (hours, same origin, increasing) of each of ``tasks``; ``leads`` the value each query is reported
    under (hours after the last input, or the fraction of the last gap)."""

    storm: str
    inputs: tuple[float, ...]
    queries: tuple[float, ...]
    tasks: tuple[str, ...]
    leads: tuple[float, ...]


def track_hours(tracks: pd.DataFrame, origin) -> pd.DataFrame:
    """``tracks`` (storm, time (cftime), lat, lon, ...) with ``hours`` since ``origin`` (cftime) added
    and lon unwrapped along each storm, sorted by storm and time."""
    out = tracks.copy()
    out["hours"] = hours_between(out["time"], origin, origin.calendar)
    out["lon"] = out.groupby("storm")["lon"].transform(lambda x: np.degrees(np.unwrap(np.radians(x))))
    return out.sort_values(["storm", "hours"], ignore_index=True)


def record_hours(ds: xr.Dataset) -> np.ndarray:
    """Hours of ``ds``'s frames (cftime) since its first."""
    first = ds.time.values[0]
    return hours_between(ds.time.values, first, first.calendar)


def position(track: pd.DataFrame, hours: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A storm's (lat, lon 0..360) at ``hours``, linear between its track points; NaN outside them."""
    h = np.atleast_1d(np.asarray(hours, float))
    inside = (h >= track["hours"].iloc[0]) & (h <= track["hours"].iloc[-1])
    lat = np.where(inside, np.interp(h, track["hours"], track["lat"]), np.nan)
    lon = np.where(inside, np.interp(h, track["hours"], track["lon"]) % 360.0, np.nan)
    return lat, lon


@dataclass(frozen=True)
class Design:
    """What a case asks: ``leads`` and ``off_grid`` hours after the last input, ``fractions`` of the last
    input gap, inputs ``n_in`` with gaps uniform in ``gaps_h`` on multiples of ``step_h`` hours."""

    leads: tuple[float, ...] = LEADS
    off_grid: tuple[float, ...] = OFF_GRID
    fractions: tuple[float, ...] = FRACTIONS
    n_in: int = 5
    gaps_h: tuple[float, float] = (3.0, 48.0)
    step_h: float = 1.0


def draw_cases(
    periods: pd.DataFrame, frame_hours: np.ndarray, per_period: int, seed: int, design: Design = Design()
) -> list[Case]:
    """``per_period`` cases per row of ``periods`` (columns storm, first, last: hours; e.g. a storm's
    tracked life, ``storm_periods``): a last input on the ``design.step_h`` grid in [first, last -
    the longest lead], earlier inputs with gaps uniform in ``design.gaps_h``, and the queries of every
    task. Inputs and leads must be frames of the record (``frame_hours``, hours; draws that fall
    outside are redrawn, up to ``TRIES`` per case); interpolation queries that are not are left out.
    Seeded: the same arguments give the same cases."""
    rng = np.random.default_rng(seed)
    have = set(np.round(frame_hours, 6))
    step, top = design.step_h, max(design.leads)
    tasks = ["off-grid"] * len(design.off_grid) + ["extrapolation"] * len(design.leads)
    cases = []
    for period in periods.sort_values("storm").itertuples():
        first, last = np.ceil(period.first / step), np.floor((period.last - top) / step)
        if last < first:
            continue
        for _ in range(per_period * TRIES):
            if sum(c.storm == str(period.storm) for c in cases[-per_period:]) == per_period:
                break
            end = step * float(rng.integers(first, last + 1))
            gaps = step * rng.integers(
                np.ceil(design.gaps_h[0] / step), design.gaps_h[1] // step + 1, design.n_in - 1
            ).astype(float)
            inputs = end - np.r_[np.cumsum(gaps[::-1])[::-1], 0.0]
            ahead = [end + h for h in (*design.off_grid, *design.leads)]
            if not all(round(q, 6) in have for q in [*inputs, *ahead]):
                continue
            gap = inputs[-1] - inputs[-2]
            inside = [(f, inputs[-2] + round(f * gap * 2) / 2) for f in design.fractions]
            inside = [(f, q) for f, q in inside if inputs[-2] < q < end and round(q, 6) in have]
            asked = sorted(
                zip(
                    [q for _, q in inside] + ahead,
                    ["interpolation"] * len(inside) + tasks,
                    [f for f, _ in inside] + [*design.off_grid, *design.leads],
                )
            )
            cases.append(Case(str(period.storm), tuple(inputs), *(tuple(x) for x in zip(*asked))))
    return cases


def storm_periods(tracks: pd.DataFrame) -> pd.DataFrame:
    """Each storm's tracked life (storm, first, last; hours) from tracks with ``hours``."""
    return tracks.groupby("storm")["hours"].agg(first="min", last="max").reset_index()


def forecasters(model: Checkpoint, baselines: Iterable[str] = BASELINES, native: bool = False) -> dict[str, Checkpoint]:
    """The model and the parameter-free baselines behind one checkpoint's metadata (grid, tiles,
    normalisation), so that all see the same inputs; with ``native`` the baselines run on the input's
    own grid instead of the model's (persistence at 0.25 degree is then the input itself, not its
    1-degree copy brought back)."""
    out = {"vid-ode": model}
    card = dataclasses.replace(model.card, grid={"resolution": None}) if native else model.card
    for name in baselines:
        config = dataclasses.replace(model.model.config, architecture=name)
        out[name] = Checkpoint(build(config).eval(), card, model.path)
    return out


def _field_rows(fc: xr.Dataset, truth: xr.Dataset) -> dict[str, np.ndarray]:
    """Per query time: RMSE of every variable (PSL in hPa) and its sharpness; with U850 and V850, CSI and
    FSS of the wind speed at ``WIND``; with PSL, CSI and FSS of the deficit at ``DEFICIT``."""
    out = {}
    for name in fc.data_vars:
        if name in truth.data_vars and fc[name].dims == truth[name].dims and "time" in fc[name].dims:
            scale = 0.01 if name == "PSL" else 1.0
            out[f"rmse_{name}"] = rmse(fc[name], truth[name]).values * scale
            out[f"sharpness_{name}"] = sharpness(fc[name], truth[name]).values
    if {"U850", "V850"} <= set(fc.data_vars):
        speed_f, speed_t = wind_speed(fc["U850"], fc["V850"]), wind_speed(truth["U850"], truth["V850"])
        out["sharpness_wind"] = sharpness(speed_f, speed_t).values
        for threshold in WIND:
            out[f"csi_wind{threshold:g}"] = csi(speed_f, speed_t, threshold).values
            out[f"fss_wind{threshold:g}"] = fss(speed_f, speed_t, threshold, FSS_WINDOW).values
    if "PSL" in fc.data_vars:
        reference = truth["PSL"].median(("lat", "lon"))
        deficit_f, deficit_t = psl_deficit(fc["PSL"], reference), psl_deficit(truth["PSL"], reference)
        for threshold in DEFICIT:
            out[f"csi_deficit{threshold:g}"] = csi(deficit_f, deficit_t, threshold).values
            out[f"fss_deficit{threshold:g}"] = fss(deficit_f, deficit_t, threshold, FSS_WINDOW).values
    return out


def _centres(psl: xr.DataArray, near_lat: np.ndarray, near_lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PSL minimum within FOLLOW_KM of each (near_lat, near_lon), per time of ``psl``."""
    lat, lon = psl["lat"].values, psl["lon"].values
    found = [
        storm_centre(field, lat, lon, near=(a, b)) if np.isfinite(a) else (np.nan, np.nan, np.nan)
        for field, a, b in zip(psl.transpose("time", "lat", "lon").values, near_lat, near_lon)
    ]
    return np.array([f[0] for f in found]), np.array([f[1] for f in found])


def _track_scores(f_lat, f_lon, t_lat, t_lon, p_lat, p_lon) -> dict[str, np.ndarray]:
    """``track_errors`` as float arrays; ``hit`` NaN (not a miss) where the truth has no centre."""
    errors = track_errors(f_lat, f_lon, t_lat, t_lon, p_lat, p_lon, hit_km=HIT_KM)
    out = {k: np.asarray(errors[k].values, float) for k in ("track_km", "along_km", "cross_km", "hit")}
    out["hit"][~np.isfinite(np.asarray(t_lat, float))] = np.nan
    return out


def _storm_rows(fc: xr.Dataset, truth: xr.Dataset, case: Case, track: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per query time: track errors and intensity errors around the centres. The truth's centre is the
    PSL minimum near its true track position; the forecast's is followed (``follow_storm``) from the
    storm's true position at the last input, forward through the leads and backward through the
    interpolation times."""
    q = np.asarray(case.queries)
    t_lat, t_lon = _centres(truth["PSL"], *position(track, q))
    p_lat, p_lon = position(track, q - 3.0)
    start = position(track, case.inputs[-1])
    f_lat, f_lon = np.full(q.size, np.nan), np.full(q.size, np.nan)
    ahead = q > case.inputs[-1]
    if np.isfinite(start[0][0]):
        path = follow_storm(fc["PSL"].isel(time=np.flatnonzero(ahead)), (start[0][0], start[1][0]), FOLLOW_KM)
        f_lat[ahead], f_lon[ahead] = path["lat"].to_numpy(), path["lon"].to_numpy()
    inside = np.flatnonzero(~ahead)[::-1]  # followed backward from the last input
    if inside.size and np.isfinite(start[0][0]):
        path = follow_storm(fc["PSL"].isel(time=inside), (start[0][0], start[1][0]), FOLLOW_KM)
        f_lat[inside], f_lon[inside] = path["lat"].to_numpy(), path["lon"].to_numpy()
    out = _track_scores(f_lat, f_lon, t_lat, t_lon, p_lat, p_lon)
    strength = intensity_errors(intensity(fc, f_lat, f_lon), intensity(truth, t_lat, t_lon))
    for name in ("psl_min_bias_hpa", "psl_min_abs_hpa", "wind_max_bias_ms", "wind_max_abs_ms"):
        out[name] = np.asarray(strength[name], float)
    return out


def score_case(
    case: Case, forecasts: dict[str, xr.Dataset], truth: xr.Dataset, track: pd.DataFrame | None, index: int
) -> list[dict]:
    """Long rows (case, storm, task, lead, method, metric, value) of every forecaster on one case; the
    storm's track and intensity scores when its ``track`` is given."""
    rows = []
    for method, fc in forecasts.items():
        if len(fc["time"]) != len(truth["time"]):
            raise ValueError(f"{method}: {len(fc['time'])} forecast times for {len(truth['time'])} queries")
        fc = fc.assign_coords(time=truth["time"])
        scores = _field_rows(fc, truth)
        if track is not None:
            scores.update(_storm_rows(fc, truth, case, track))
        for metric, values in scores.items():
            for task, lead, value in zip(case.tasks, case.leads, values):
                rows.append(
                    {
                        "case": index,
                        "storm": case.storm,
                        "task": task,
                        "lead": lead,
                        "method": method,
                        "metric": metric,
                        "value": float(value),
                    }
                )
    return rows


def cliper_rows(case: Case, track: pd.DataFrame, predict: Callable, index: int) -> list[dict]:
    """Track rows of a CLIPER forecast (``predict(history, leads_h)``, ``climode.verification.cliper.Cliper.predict``)
    made at the last input from the storm's true positions 0, 12 and 24 h before it."""
    end = case.inputs[-1]
    ahead = [k for k, task in enumerate(case.tasks) if task != "interpolation"]
    leads = [case.queries[k] - end for k in ahead]
    times = np.array([end - 24.0, end - 12.0, end])
    lat, lon = position(track, times)
    history = pd.DataFrame({"time_h": times, "lat": lat, "lon": lon}).dropna()
    if history.empty:
        return []
    guess = predict(history, leads)
    q = np.asarray([case.queries[k] for k in ahead])
    t_lat, t_lon = position(track, q)
    p_lat, p_lon = position(track, q - 3.0)
    scores = _track_scores(guess["lat"].to_numpy(), guess["lon"].to_numpy() % 360.0, t_lat, t_lon, p_lat, p_lon)
    rows = []
    for metric, values in scores.items():
        for k, value in zip(ahead, values):
            rows.append(
                {
                    "case": index,
                    "storm": case.storm,
                    "task": case.tasks[k],
                    "lead": case.leads[k],
                    "method": "cliper",
                    "metric": metric,
                    "value": float(value),
                }
            )
    return rows


def score_cases(
    ds: xr.Dataset,
    cases: Sequence[Case],
    models: dict[str, Checkpoint],
    tracks: pd.DataFrame | None = None,
    cliper: Callable | None = None,
    progress: int = 20,
) -> pd.DataFrame:
    """Score every forecaster of ``models`` (``forecasters``) on ``cases`` of the record ``ds``
    (time, lat, lon; frames at least at every input and query), with the storms' true ``tracks``
    (``track_hours``) when there are storms. Returns the long table of ``score_case`` (and
    ``cliper_rows`` when ``cliper`` is given)."""
    from ..forecasting import forecast

    hours = np.round(record_hours(ds), 6)
    at = {h: k for k, h in enumerate(hours)}
    by_storm = {} if tracks is None else {s: t for s, t in tracks.groupby("storm")}
    rows: list[dict] = []
    for i, case in enumerate(cases):
        inputs = ds.isel(time=[at[round(h, 6)] for h in case.inputs]).load()
        truth = ds.isel(time=[at[round(h, 6)] for h in case.queries]).load()
        relative = np.asarray(case.queries) - case.inputs[0]
        forecasts = {name: forecast(inputs, relative, checkpoint=ckpt) for name, ckpt in models.items()}
        rows += score_case(case, forecasts, truth, by_storm.get(case.storm), i)
        if cliper is not None and case.storm in by_storm:
            rows += cliper_rows(case, by_storm[case.storm], cliper, i)
        if progress and (i + 1) % progress == 0:
            log.info("%d / %d cases scored", i + 1, len(cases))
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean of every (task, lead, method, metric) with a 95 % bootstrap interval over storms."""
    return bootstrap(
        table.dropna(subset=["value"]), "value", ["task", "metric", "lead", "method"], cluster="storm", n=n, seed=seed
    )


def paired(table: pd.DataFrame, model: str = "vid-ode", n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired differences, every other method less ``model`` on the same case, task, lead and metric:
    mean and 95 % bootstrap interval over storms (``summarise``'s columns). Where lower is better
    (RMSE, errors) an interval above zero is a significant win of ``model``, where higher is better
    (CSI, FSS) one below zero."""
    keys = ["case", "storm", "task", "lead", "metric"]
    own = table[table["method"] == model].set_index(keys)["value"].rename("_own")
    others = table[table["method"] != model].join(own, on=keys)
    others = others.assign(value=others["value"] - others["_own"]).drop(columns="_own")
    return summarise(others, n=n, seed=seed)


LOWER = ("rmse_", "track_km", "_abs_")  # metrics where lower is better; CSI, FSS and hit: higher
HIGHER = ("csi_", "fss_", "hit")


def _better(metric: str) -> int:
    """+1 when higher is better, -1 when lower, 0 when neither (bias, sharpness, along/cross-track)."""
    if any(metric.startswith(p) or p in metric for p in HIGHER):
        return 1
    return -1 if any(metric.startswith(p) or p in metric for p in LOWER) else 0


def tables(summary: pd.DataFrame, header: str = "", bold: bool = True) -> str:
    """Markdown: per task and metric, a table of leads x methods with ``mean [lo, hi]``; with ``bold``, a
    method is bold where its interval lies entirely on the better side of every other method's (runs of
    one model, "vid-ode seed 0", "vid-ode seed 1", ..., are not compared with each other)."""
    parts = [header] if header else []
    order = {m: k for k, m in enumerate(("vid-ode", *BASELINES, "cliper"))}
    methods = sorted(set(summary["method"]), key=lambda m: (order.get(m.split(" ")[0], len(order)), m))
    for task in [t for t in TASKS if t in set(summary["task"])]:
        parts.append(f"\n## {task}\n")
        of_task = summary[summary["task"] == task]
        for metric in sorted(set(of_task["metric"])):
            rows = of_task[of_task["metric"] == metric]
            shown = [m for m in methods if m in set(rows["method"])]
            lead = "fraction of the gap" if task == "interpolation" else "lead (h)"
            parts.append(f"\n{metric}\n\n| {lead} | " + " | ".join(shown) + " |\n|---|" + "---|" * len(shown))
            sign = _better(metric)
            for value, at in rows.groupby("lead"):
                cells = at.set_index("method")
                out = []
                for m in shown:
                    if m not in cells.index:
                        out.append("")
                        continue
                    r = cells.loc[m]
                    text = f"{r['mean']:.3g} [{r['lo']:.3g}, {r['hi']:.3g}]"
                    others = cells[[o.split(" ")[0] != m.split(" ")[0] for o in cells.index]]
                    if (
                        bold
                        and sign
                        and len(others)
                        and (
                            (sign > 0 and (r["lo"] > others["hi"]).all())
                            or (sign < 0 and (r["hi"] < others["lo"]).all())
                        )
                    ):
                        text = f"**{text}**"
                    out.append(text)
                parts.append(f"| {value:g} | " + " | ".join(out) + " |")
    return "\n".join(parts) + "\n"
