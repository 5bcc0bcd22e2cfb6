"""The forecast path, stage by stage: the demo storm (241 x 640 at 0.25 degree, U850, V850, PSL,
inputs at 0, 9, 21, 42, 57 h) forecast at 60, 63 and 66 h by the bundled model on the CPU.

Each stage is timed in CPU-seconds of this process (``time.process_time``: what the work costs,
whatever else the machine runs) and in wall seconds, as the median of ``--repeats`` warm calls (one
warm-up call first; the input is in memory, file reading is not timed):

- regrid in: the input on the model's 1-degree grid (``geo.tiles.model_grids``: box mean, bilinear);
- network: the bundled Vid-ODE on the 61 x 161 model grid (``prediction.predict``);
- regrid back: the model's forecast carried onto the input's grid (``prediction.compose_native``);
- write: the forecast as CF NetCDF (``climode.write``);
- forecast(): the whole call (all of the above but writing, plus checks and the Dataset).

    .venv/bin/python benchmarks/forecast_latency.py [--repeats 5] [--threads 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import climode
from climode.data.cases import first_case
from climode.data.synthetic import make_corpus
from climode.forecasting import forecast_model
from climode.geo.tiles import model_grids
from climode.prediction import compose_native, predict

INPUTS = (0, 9, 21, 42, 57)
QUERIES = (60.0, 63.0, 66.0)


def demo_storm():
    """The storm ``make demo`` forecasts (climode.data.cases: corpus of 1 storm, seed 3, until 72 h)."""
    ds, tracks = make_corpus(1, 3)
    return first_case(ds, tracks, INPUTS, 72).inputs.load()


def _timed(fn, repeats: int) -> dict:
    fn()  # warm-up: first-call allocations stay out of the numbers
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall), "cpu_s_min": min(cpu)}


def stages(threads: int, repeats: int) -> dict:
    """The forecast path's stages at ``threads`` torch threads: {stage: {cpu_s, wall_s, cpu_s_min}}."""
    torch.set_num_threads(threads)
    ds = demo_storm()
    ckpt = forecast_model(None)
    variables, resolution = ckpt.variables, ckpt.card.grid["resolution"]
    tile = tuple(ckpt.card.grid["tile_shape"])
    frames = lambda fields: np.stack([fields[v].values for v in variables], 1).astype(np.float32)
    model_ds, native, _ = model_grids(ds[variables], resolution)
    observed, query = np.asarray(INPUTS, float), np.asarray(QUERIES)
    parts = predict(ckpt.predictor, frames(model_ds), observed, query, tile)
    out = climode.forecast(ds, list(QUERIES), checkpoint=ckpt)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "forecast.nc"
        rows = {
            "regrid in": lambda: model_grids(ds[variables], resolution)[0][variables[0]].values,
            "network": lambda: predict(ckpt.predictor, frames(model_ds), observed, query, tile),
            "regrid back": lambda: compose_native(ckpt.predictor, parts, frames(native), model_ds, native),
            "write": lambda: climode.write(out, target, overwrite=True),
            "forecast()": lambda: climode.forecast(ds, list(QUERIES), checkpoint=ckpt),
        }
        return {name: _timed(fn, repeats) for name, fn in rows.items()}


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads, one run each")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args()
    machine = f"{cpu_name()}, torch {torch.__version__}"
    results = {threads: stages(threads, args.repeats) for threads in args.threads}
    print(f"machine: {machine}; median of {args.repeats} warm calls")
    print("| stage | " + " | ".join(f"CPU-s, {t} thread(s) | wall s, {t} thread(s)" for t in results) + " |")
    print("|---|" + "---|---|" * len(results))
    for stage in next(iter(results.values())):
        cells = " | ".join(f"{r[stage]['cpu_s']:.3f} | {r[stage]['wall_s']:.3f}" for r in results.values())
        print(f"| {stage} | {cells} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "repeats": args.repeats, "threads": results}))


if __name__ == "__main__":
    main()
