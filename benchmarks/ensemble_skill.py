"""Ensembles on held-out synthetic storms: the model's ensemble against its deterministic forecast and
perturbed-persistence and perturbed-advection ensembles, per lead, with 95 % intervals over storms.

Every method's perturbation (``climode.ensemble``) is first fitted (``calibrate``) on a calibration
corpus of other storms (``--calibrate-seed``), each method its own: the baselines' ensembles thus have
the spread that suits their own errors. Then on the held-out corpus (``--seed``, one case per storm:
5 inputs with whole-hour gaps of 3-48 h, leads 3-24 h) each method forecasts ``--members`` members.

    .venv/bin/python benchmarks/ensemble_skill.py --out runs/ens [--storms 40] [--seed 2026] [--members 20]
        [--native] [--checkpoint CKPT] [--calibration runs/ens/calibration.json]

Scores per case and lead: fair CRPS of U850, V850 (m s-1) and PSL (hPa) (a deterministic forecast's is
its MAE), the ensemble spread and the RMSE of the ensemble mean (their ratio, with sqrt((m + 1) / m), is
pooled over cases per lead), member wind-speed sharpness against the truth's, the Brier score of
850 hPa wind >= 17 m s-1, and whether the observed storm centre lies inside the members' 90 %
envelope (distance from the mean centre). Writes ``calibration.json``, ``cases.csv``, ``summary.csv``,
``paired.csv`` (each method less the model's ensemble on the same cases) and ``tables.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from storm_skill import _dated

import climode
from climode import ensemble
from climode.data.synthetic import make_corpus
from climode.forecasting import bundled_checkpoint, forecast
from climode.geo.storms import FOLLOW_KM, follow_storm, great_circle_km
from climode.verification import skill
from climode.verification.ensemble import crps, spread_skill
from climode.verification.intervals import bootstrap
from climode.verification.metrics import sharpness, wind_speed

METHODS = ("vid-ode", "persistence", "advection")
VARIABLES = ("U850", "V850", "PSL")
SCALE = {"U850": 1.0, "V850": 1.0, "PSL": 0.01}  # to m s-1 and hPa
WIND = 17.0
ENVELOPE = 0.9


def _corpus(storms: int, seed: int, native: bool):
    ds, tracks = make_corpus(storms, seed, small=not native, hours_per_frame=1.0 if native else 0.5)
    ds = ds[list(VARIABLES)]
    tracks = skill.track_hours(_dated(tracks), ds.time.values[0])
    design = skill.Design(off_grid=(), fractions=())
    cases = skill.draw_cases(skill.storm_periods(tracks), skill.record_hours(ds), 1, seed, design)
    return ds, tracks, cases


def _deterministic(ds, cases, models):
    """Per case: the inputs' hours, the truth and every method's deterministic forecast (Datasets)."""
    hours = np.round(skill.record_hours(ds), 6)
    at = {h: k for k, h in enumerate(hours)}
    for i, case in enumerate(cases):
        inputs = ds.isel(time=[at[round(h, 6)] for h in case.inputs]).load()
        truth = ds.isel(time=[at[round(h, 6)] for h in case.queries]).load()
        relative = np.asarray(case.queries) - case.inputs[0]
        fcs = {name: forecast(inputs, relative, checkpoint=ckpt) for name, ckpt in models.items()}
        if (i + 1) % 10 == 0:
            logging.info("%d / %d cases forecast", i + 1, len(cases))
        yield case, truth, {name: fc.assign_coords(time=truth.time) for name, fc in fcs.items()}


def _array(fields: xr.Dataset) -> np.ndarray:
    return np.stack([fields[v].values for v in VARIABLES], 1).astype(np.float32)


def _ages(case) -> np.ndarray:
    return ensemble.ages(np.asarray(case.queries), np.asarray(case.inputs))


def _members(fc: xr.Dataset, case, p: ensemble.Perturbation, members: int, seed: int) -> xr.Dataset:
    values = ensemble.perturb(_array(fc), _ages(case), fc.lat.values, fc.lon.values, p, members, seed)
    return xr.Dataset(
        {v: (("realization", "time", "lat", "lon"), values[:, :, c]) for c, v in enumerate(VARIABLES)},
        coords={"realization": np.arange(members), "time": fc.time, "lat": fc.lat, "lon": fc.lon},
    )


def _inside(ens: xr.Dataset, truth: xr.Dataset, case, track: pd.DataFrame) -> np.ndarray:
    """Per query: 1 when the observed centre lies within the members' ENVELOPE quantile of distance from
    their mean centre, 0 outside, NaN where a centre is missing."""
    start = skill.position(track, case.inputs[-1])
    if not np.isfinite(start[0][0]):
        return np.full(len(case.queries), np.nan)
    near = skill.position(track, np.asarray(case.queries))
    t_lat, t_lon = skill._centres(truth["PSL"], *near)
    paths = [
        follow_storm(ens["PSL"].isel(realization=m), (start[0][0], start[1][0]), FOLLOW_KM)
        for m in ens.realization.values
    ]
    lat = np.array([p["lat"].to_numpy() for p in paths])
    lon = np.degrees(np.unwrap(np.radians(np.array([p["lon"].to_numpy() for p in paths])), axis=0))
    mean_lat, mean_lon = np.nanmean(lat, 0), np.nanmean(lon, 0) % 360
    spread = great_circle_km(lat, lon % 360, mean_lat, mean_lon)
    radius = np.nanquantile(spread, ENVELOPE, axis=0)
    observed = great_circle_km(t_lat, t_lon, mean_lat, mean_lon)
    return np.where(np.isfinite(observed) & np.isfinite(radius), (observed <= radius).astype(float), np.nan)


def _rows(case, i, method, values: dict[str, np.ndarray]) -> list[dict]:
    return [
        {"case": i, "storm": case.storm, "lead": lead, "method": method, "metric": metric, "value": float(v)}
        for metric, row in values.items()
        for lead, v in zip(case.leads, row)
    ]


def _score(case, i, truth, fc, ens, track) -> list[dict]:
    dims = ("lat", "lon")
    det, scores = f"{ens.attrs['method']}-deterministic", {}
    ens_scores: dict[str, np.ndarray] = {}
    for v in VARIABLES:
        t = truth[v] * SCALE[v]
        scores[f"crps_{v}"] = crps(fc[v] * SCALE[v], t, dims).values
        ens_scores[f"crps_{v}"] = crps(ens[v] * SCALE[v], t, dims).values
        stats = spread_skill(ens[v] * SCALE[v], t, dims)
        ens_scores[f"spread2_{v}"] = stats["spread"].values ** 2
        ens_scores[f"skill2_{v}"] = stats["skill"].values ** 2
    wind_t = wind_speed(truth["U850"], truth["V850"])
    wind_e = wind_speed(ens["U850"], ens["V850"])
    ens_scores["sharpness_wind"] = sharpness(wind_e, wind_t.broadcast_like(wind_e)).mean("realization").values
    event = (wind_t >= WIND).astype(float)
    ens_scores["brier_wind17"] = (((wind_e >= WIND).mean("realization") - event) ** 2).mean(dims).values
    scores["brier_wind17"] = (
        (((wind_speed(fc["U850"], fc["V850"]) >= WIND).astype(float) - event) ** 2).mean(dims).values
    )
    if track is not None:
        ens_scores["track_inside90"] = _inside(ens, truth, case, track)
    return _rows(case, i, det, scores) + _rows(case, i, ens.attrs["method"], ens_scores)


def _calibrate(args, models) -> dict[str, ensemble.Perturbation]:
    if args.calibration and Path(args.calibration).exists():
        saved = json.loads(Path(args.calibration).read_text())
        return {m: ensemble.Perturbation(**saved[m]) for m in METHODS}
    ds, _, cases = _corpus(args.calibrate_storms, args.calibrate_seed, args.native)
    collected: dict[str, list] = {m: [] for m in METHODS}
    for case, truth, fcs in _deterministic(ds, cases, models):
        for m in METHODS:
            collected[m].append((_array(fcs[m]), _array(truth), _ages(case)))
    label = f"{len(cases)} cases of {args.calibrate_storms} synthetic storms (seed {args.calibrate_seed})"
    out = {}
    for m in METHODS:
        out[m], table = ensemble.calibrate(collected[m], ds.lat.values, ds.lon.values, label, seed=args.seed + 1)
        table.to_csv(args.out / f"calibration_{m}.csv", index=False)
        logging.info("%s: %s", m, out[m])
    (args.out / "calibration.json").write_text(json.dumps({m: p.to_dict() for m, p in out.items()}, indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--storms", type=int, default=40)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--calibrate-storms", type=int, default=15)
    p.add_argument("--calibrate-seed", type=int, default=7)
    p.add_argument("--calibration", help="calibration.json of an earlier run to reuse")
    p.add_argument("--checkpoint", default=str(bundled_checkpoint()))
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--native", action="store_true", help="on CAM5's 0.25-degree grid, hourly")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    everything = skill.forecasters(climode.load_model(args.checkpoint), native=args.native)
    models = {m: everything[m] for m in METHODS}
    perturbations = _calibrate(args, models)
    ds, tracks, cases = _corpus(args.storms, args.seed, args.native)
    by_storm = {s: t for s, t in tracks.groupby("storm")}
    rows: list[dict] = []
    for i, (case, truth, fcs) in enumerate(_deterministic(ds, cases, models)):
        for m in METHODS:
            ens = _members(fcs[m], case, perturbations[m], args.members, args.seed).assign_attrs(method=f"{m}-ensemble")
            rows += _score(case, i, truth, fcs[m], ens, by_storm.get(case.storm))
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "cases.csv", index=False)
    summary = bootstrap(table.dropna(subset=["value"]), "value", ["metric", "lead", "method"], n=args.bootstrap)
    summary.to_csv(args.out / "summary.csv", index=False)
    (args.out / "tables.md").write_text(_tables(table, summary, args, len(cases)))
    print(f"done in {time.perf_counter() - clock:.0f} s: {args.out / 'tables.md'}")


def _ratio(table: pd.DataFrame, members: int) -> pd.DataFrame:
    """Spread-skill ratio per (method, lead, variable), pooled over cases: sqrt((m + 1) / m) times the
    root of the mean squared spread over the root of the mean squared error of the ensemble mean."""
    out = []
    for v in VARIABLES:
        spread = table[table.metric == f"spread2_{v}"].groupby(["method", "lead"])["value"].mean()
        error = table[table.metric == f"skill2_{v}"].groupby(["method", "lead"])["value"].mean()
        ratio = np.sqrt((members + 1) / members) * np.sqrt(spread) / np.sqrt(error)
        out.append(ratio.rename(v))
    return pd.concat(out, axis=1).reset_index()


def _paired(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each method's CRPS and Brier less the model's ensemble's, per case, with intervals over storms."""
    keep = table[table.metric.str.startswith(("crps_", "brier_"))]
    wide = keep.pivot_table(index=["case", "storm", "lead", "metric"], columns="method", values="value").reset_index()
    rows = []
    for method in [c for c in wide.columns if c not in ("case", "storm", "lead", "metric", "vid-ode-ensemble")]:
        part = wide[["case", "storm", "lead", "metric"]].assign(
            method=method, value=wide[method] - wide["vid-ode-ensemble"]
        )
        rows.append(part)
    return bootstrap(pd.concat(rows).dropna(subset=["value"]), "value", ["metric", "lead", "method"], n=n)


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body])


def _tables(table: pd.DataFrame, summary: pd.DataFrame, args, n_cases: int) -> str:
    grid = "0.25-degree grid, hourly" if args.native else "1-degree grid, every 30 min"
    lines = [
        f"# Ensembles on {n_cases} cases of {table.storm.nunique()} held-out storms (seed {args.seed}, {grid})",
        "",
        f"{args.members} members; model {args.checkpoint}; means with 95 % bootstrap intervals over storms.",
        "",
    ]
    cell = lambda r: f"{r['mean']:.3g} [{r['lo']:.3g}, {r['hi']:.3g}]"
    for metric in sorted(summary.metric.unique()):
        if metric.startswith(("spread2_", "skill2_")):
            continue
        part = summary[summary.metric == metric]
        wide = part.assign(text=part.apply(cell, axis=1)).pivot(index="lead", columns="method", values="text")
        lines += [f"## {metric}", "", _markdown(wide.reset_index()), ""]
    ratio = _ratio(table, args.members)
    lines += ["## spread-skill ratio (pooled over cases)", "", _markdown(ratio.round(3)), ""]
    paired = _paired(table, args.bootstrap)
    paired.to_csv(args.out / "paired.csv", index=False)
    lines += ["## paired: method less vid-ode-ensemble (above 0: the model's ensemble is better)", ""]
    for metric in sorted(paired.metric.unique()):
        part = paired[paired.metric == metric]
        wide = part.assign(text=part.apply(cell, axis=1)).pivot(index="lead", columns="method", values="text")
        lines += [f"### {metric}", "", _markdown(wide.reset_index()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
