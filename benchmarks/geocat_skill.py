"""Real data: the geocat 500 hPa storm record (../shared/data/geocat_storm_500hPa; 64 six-hourly
frames of U, V, T over 20-60 N, 140-52.5 W, a fifth of the cells missing). Vid-ODE is trained on the
first 80 % of the record (one run per seed) and forecasts the rest from irregular inputs, against
persistence, the linear blend, linear extrapolation and two- and multi-frame advection
(``climode.verification.skill``); intervals resample forecast start times (the record holds one storm, so cases
are not independent storms, and neighbouring start times share targets: the intervals are optimistic).

    .venv/bin/python benchmarks/geocat_skill.py --out runs/geocat-skill [--seeds 0,1,2] [--steps 400]

Writes ``cases.csv``, ``summary.csv`` and ``tables.md`` to ``--out`` (one training run per seed in
``--out/run-SEED``, reused when its model exists).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import xarray as xr
import yaml

import climode
from climode.data.gridded import prepare
from climode.io.fields import open_fields
from climode.verification import skill

GEOCAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "geocat_storm_500hPa"
VARS = {"U500": "u", "V500": "v", "T500": "t"}
TRAIN_FRACTION = 0.8
MAX_GAP_H = 24.0
DESIGN = skill.Design(leads=(6.0, 12.0, 18.0, 24.0), off_grid=(), fractions=(0.5,), gaps_h=(6.0, MAX_GAP_H), step_h=6.0)
CONFIG = {  # climode/configs/gridded-small.yaml; 6-hourly data, so a model time unit of 6 h
    "model": {
        "width": 16,
        "time_scale": 6.0,
        "encoder_solver": {"method": "rk4", "step_size": 1.0},
        "decoder_solver": {"method": "rk4", "step_size": 1.0},
    },
    "data": {"name": "gridded", "n_in": 5, "n_out": 4, "queries": "random", "hide": 0.5, "missing": 0.3},
    "train": {"batch_size": 4, "disc_width": 16, "adversarial": False, "max_epochs": 500, "checkpoint_every": 100},
}


def record() -> xr.Dataset:
    return open_fields(
        sorted(str(p) for p in GEOCAT.glob("*storm.cdf")),
        list(VARS),
        mapping=VARS,
        time_in_hours=True,
        reference_time="1996-01-05 00:00:00",
    )


def train(ds: xr.Dataset, cut: int, out: Path, seed: int, steps: int) -> Path:
    """A model trained on every window of the first ``cut`` frames (all of them training samples)."""
    model = out / f"run-{seed}" / "model.safetensors"
    if model.is_file():
        return model
    out.mkdir(parents=True, exist_ok=True)
    store = out / "train.zarr"
    if not store.exists():
        source = out / "train.nc"
        ds.isel(time=slice(0, cut)).to_netcdf(source)
        prepare(
            source,
            store,
            ",".join(VARS),
            CONFIG["data"]["n_in"],
            CONFIG["data"]["n_out"],
            max_gap_h=MAX_GAP_H,
            fractions=(1.0, 0.0, 0.0),
        )
    config = out / f"config-{seed}.yaml"
    settings = {**CONFIG, "data": {**CONFIG["data"], "seed": seed}, "train": {**CONFIG["train"], "seed": seed}}
    config.write_text(yaml.safe_dump(settings))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "climode.train",
            "--config",
            str(config),
            "--dataset",
            "gridded",
            "--data",
            str(store),
            "--out",
            str(model.parent),
            "--max-steps",
            str(steps),
            "--overwrite",
        ],
        check=True,
    )
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=400, help="updates per training run")
    p.add_argument("--cases", type=int, default=6, help="input sets per forecast start time")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ds = record().load()
    hours = skill.record_hours(ds)
    cut = int(round(TRAIN_FRACTION * len(hours)))
    # last inputs from the last training frame on, so every target lies in the held-out 20 %
    starts = hours[(hours >= hours[cut - 1]) & (hours <= hours[-1] - max(DESIGN.leads))]
    periods = pd.DataFrame({"storm": [f"{h:g} h" for h in starts], "first": starts, "last": starts + max(DESIGN.leads)})
    cases = skill.draw_cases(periods, hours, args.cases, 0, DESIGN)
    print(
        f"{len(hours)} frames, training on the first {cut} ({hours[cut - 1]:g} h); {len(cases)} cases over "
        f"{len(periods)} forecast start times",
        flush=True,
    )
    tables = []
    for seed in (int(s) for s in args.seeds.split(",")):
        ckpt = climode.load_model(train(ds, cut, args.out, seed, args.steps))
        models = skill.forecasters(ckpt) if not tables else {"vid-ode": ckpt}
        table = skill.score_cases(ds, cases, models)
        table.loc[table.method == "vid-ode", "method"] = f"vid-ode seed {seed}"
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    runs = table[table.method.str.startswith("vid-ode seed")]
    table = pd.concat([table, runs.assign(method=f"vid-ode all {len(tables)} seeds")], ignore_index=True)
    table.to_csv(args.out / "cases.csv", index=False)
    summary = skill.summarise(table)
    summary.to_csv(args.out / "summary.csv", index=False)
    header = (
        f"geocat 500 hPa, trained on the first {cut} of {len(hours)} six-hourly frames ({args.steps} updates "
        f"per seed); {len(cases)} cases over {len(periods)} start times; 95 % intervals over start times"
    )
    (args.out / "tables.md").write_text(skill.tables(summary, header))
    print(args.out / "tables.md")


if __name__ == "__main__":
    main()
