"""Latency of one forecast: a 240 x 640 tile at 0.25 degrees (U850, V850, PSL), 5 irregular inputs
(0, 9, 21, 42, 57 h), 3 query times (60, 63, 66 h), with the bundled model on the CPU.

Times ``climode.forecast`` (regrid to the model's 1-degree grid, Vid-ODE, regrid back, CF
attributes) after one warm-up call, and separately the model alone and loading the checkpoint.
Medians of ``--repeats`` calls; the input is in memory (file reading is not timed).

    .venv/bin/python benchmarks/forecast_latency.py [--repeats 10] [--threads N] [--checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

import climode
from climode.data.cases import first_case
from climode.data.synthetic import make_corpus
from climode.forecasting import bundled_checkpoint
from climode.prediction import predict

INPUTS = (0, 9, 21, 42, 57)
QUERIES = [60.0, 63.0, 66.0]


def _median_s(fn, repeats: int) -> tuple[float, float, float]:
    fn()  # warm-up: first-call allocations stay out of the numbers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--checkpoint", default=str(bundled_checkpoint()))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds, tracks = make_corpus(1, 3)
    inputs = first_case(ds, tracks, INPUTS, 66).inputs.isel(lat=slice(0, 240)).load()
    assert inputs.PSL.shape == (5, 240, 640), inputs.PSL.shape

    load_s = _median_s(lambda: climode.load_model(args.checkpoint), args.repeats)
    ckpt = climode.load_model(args.checkpoint)
    full = _median_s(lambda: climode.forecast(inputs, QUERIES, checkpoint=ckpt), args.repeats)

    model_grid = inputs.coarsen(lat=4, lon=4).mean()  # the 60 x 160 grid the model sees
    frames = np.stack([model_grid[v].values for v in ckpt.variables], 1).astype(np.float32)
    model = _median_s(
        lambda: predict(
            ckpt.predictor, frames, torch.tensor(INPUTS, dtype=torch.float64).numpy(), torch.tensor(QUERIES).numpy()
        )["frames"],
        args.repeats,
    )

    print(f"machine: {_cpu()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"checkpoint: {args.checkpoint}")
    print("| step | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for name, (med, lo, hi) in (
        ("load checkpoint", load_s),
        ("forecast(): regrid + model + regrid back", full),
        ("model only (60 x 160, 5 inputs, 3 queries)", model),
    ):
        print(f"| {name} | {med:.3f} | {lo:.3f} | {hi:.3f} |")


if __name__ == "__main__":
    main()
