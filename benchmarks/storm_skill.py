"""Skill on held-out synthetic storms: a model against every baseline, per task and lead, with 95 %
intervals over storms (``climode.verification.skill``).

A fresh corpus (a seed no model trained on) is written every half hour on the model's 1-degree grid,
so the truth exists at every query; each storm gives ``--cases`` cases of 5 inputs with whole-hour
gaps of 3-48 h, asked for extrapolation (3-24 h), off-grid leads and interpolation inside the last
gap. CLIPER is fitted on the tracks of ``--cliper-tracks`` (the training corpus's tracks.csv).
With ``--native`` the corpus is CAM5's 0.25-degree grid (0-60 N, 200-360 E), written every hour (no
off-grid leads): the model forecasts it as a user's file (regridded to its own grid and composed back
at 0.25 degree) and the baselines run on the 0.25-degree fields themselves.

    .venv/bin/python benchmarks/storm_skill.py --out runs/skill [--storms 40] [--seed 2026] [--cases 3]
        [--native] [--checkpoint CKPT] [--also LABEL=CKPT ...] [--cliper-tracks runs/world2/corpus/tracks.csv]

Writes ``cases.csv`` (every score of every case), ``summary.csv`` (means and intervals), ``paired.csv``
(each method less the model on the same cases, with intervals over storms) and ``tables.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cftime
import pandas as pd

import climode
from climode.data.synthetic import make_corpus
from climode.forecasting import bundled_checkpoint
from climode.io.tracks import read_tracks
from climode.verification import skill
from climode.verification.cliper import Cliper


def _dated(tracks: pd.DataFrame) -> pd.DataFrame:
    """make_corpus's tracks (time as noleap text) with cftime times."""
    parse = lambda s: cftime.DatetimeNoLeap(int(s[:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]))
    return tracks.assign(time=[parse(s) for s in tracks["time"]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--storms", type=int, default=40)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--cases", type=int, default=3, help="cases per storm")
    p.add_argument("--checkpoint", default=str(bundled_checkpoint()))
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=CKPT",
        help="another model to score beside the checkpoint (repeatable), e.g. convgru=runs/p/convgru.safetensors",
    )
    p.add_argument("--cliper-tracks", help="training tracks (CSV) to fit CLIPER on; without it no CLIPER")
    p.add_argument(
        "--with-cases",
        type=Path,
        help="cases.csv of an earlier run on the same cases (same --storms, "
        "--seed, --cases): its models not scored here are added to the tables",
    )
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--native", action="store_true", help="score on a 0.25-degree corpus (CAM5's grid), hourly")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    ds, tracks = make_corpus(args.storms, args.seed, small=not args.native, hours_per_frame=1.0 if args.native else 0.5)
    ds = ds[["U850", "V850", "PSL"]]
    tracks = skill.track_hours(_dated(tracks), ds.time.values[0])
    design = skill.Design(off_grid=()) if args.native else skill.Design()
    cases = skill.draw_cases(skill.storm_periods(tracks), skill.record_hours(ds), args.cases, args.seed, design)
    print(
        f"{len(cases)} cases from {tracks.storm.nunique()} storms (seed {args.seed}); corpus in "
        f"{time.perf_counter() - clock:.0f} s",
        flush=True,
    )
    cliper = None
    if args.cliper_tracks:
        history = read_tracks(args.cliper_tracks, calendar="noleap")
        leads = sorted(set(skill.LEADS) | set(skill.OFF_GRID))
        cliper = Cliper.fit(history, leads, 3.0).predict
    models = skill.forecasters(climode.load_model(args.checkpoint), native=args.native)
    for item in args.also:
        label, _, path = item.partition("=")
        models[label] = climode.load_model(path)
    table = skill.score_cases(ds, cases, models, tracks, cliper)
    if args.with_cases:
        earlier = pd.read_csv(args.with_cases)
        keys = ["case", "storm", "task", "lead"]
        if not earlier[keys].drop_duplicates().merge(table[keys].drop_duplicates()).shape[0] == len(
            table[keys].drop_duplicates()
        ):
            raise SystemExit(f"{args.with_cases} was not scored on these cases")
        table = pd.concat([table, earlier[~earlier.method.isin(set(table.method))]], ignore_index=True)
    table.to_csv(args.out / "cases.csv", index=False)
    summary = skill.summarise(table, n=args.bootstrap)
    summary.to_csv(args.out / "summary.csv", index=False)
    paired = skill.paired(table, n=args.bootstrap)
    paired.to_csv(args.out / "paired.csv", index=False)
    grid = "0.25-degree grid, frames every hour" if args.native else "1-degree grid, frames every 30 min"
    header = (
        f"{len(cases)} cases from {table.storm.nunique()} held-out storms (seed {args.seed}, {grid}); "
        f"model {args.checkpoint}; means with 95 % bootstrap intervals over storms ({args.bootstrap} resamples)"
    )
    paired_header = (
        "\n# Paired differences: each method less vid-ode on the same cases\n\nAn interval above 0 in an error "
        "metric (RMSE, track, |error|) is a significant win of vid-ode, below 0 a significant loss; in CSI and "
        "FSS the other way round."
    )
    (args.out / "tables.md").write_text(skill.tables(summary, header) + skill.tables(paired, paired_header, bold=False))
    print(f"done in {time.perf_counter() - clock:.0f} s: {args.out / 'tables.md'}")


if __name__ == "__main__":
    main()
