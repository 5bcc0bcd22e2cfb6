"""Skill of a model on held-out synthetic storms, per lead time, next to persistence.

A fresh corpus (a seed the bundled model never saw) is cut into forecast cases as the paper's
CAM5 protocol: 5 inputs with gaps of 3-48 h inside a storm's tracked life, then every 3 h for
15 h after the last input. Each case goes through ``climode.forecast`` and ``climode.verify``
exactly as a user's file would (regridding included when the corpus is on another grid); the
storm is followed from its true position at the last input. Means over cases per lead time.

    .venv/bin/python benchmarks/forecast_skill.py [--storms 30] [--seed 2026] [--cases 4]
        [--native] [--checkpoint CKPT] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict

import numpy as np
import pandas as pd

import climode
from climode.data.sampling import SamplingConfig, draw
from climode.data.synthetic import make_corpus
from climode.forecasting import bundled_checkpoint
from climode.verify.truth import MODEL, PERSISTENCE, verify

SCORES = ("U850", "V850", "PSL", "track_km", "psl_min_abs_hpa", "wind_max_abs_ms")


def cases(storms: int, seed: int, per_storm: int, small: bool):
    """(inputs, truth, query hours, start) for each case; truth runs from the last input on."""
    ds, tracks = make_corpus(storms, seed, small)
    stamps = pd.Index([t.strftime("%Y-%m-%d %H:%M:%S") for t in ds.time.values])
    rng = np.random.default_rng(seed)
    for _, track in tracks.groupby("storm", sort=True):
        first = stamps.get_loc(track.time.iloc[0])
        for _ in range(per_storm):
            sample = draw(len(track), SamplingConfig(), rng)
            if sample is None:
                continue
            inputs, _, targets = sample
            last = track.iloc[inputs[-1]]
            yield (
                ds.isel(time=first + inputs),
                ds.isel(time=slice(first + inputs[-1], first + targets[-1] + 1)),
                3.0 * (targets - inputs[0]),
                (float(last.lat), float(last.lon)),
            )


def _row(scores: dict, method: str) -> dict[str, list]:
    m = scores["methods"][method]
    return {**m["rmse"], **{k: m[k] for k in SCORES[3:]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storms", type=int, default=30)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--cases", type=int, default=4, help="cases per storm")
    p.add_argument("--native", action="store_true", help="0.25-degree corpus (regridded to the model's grid and back)")
    p.add_argument("--checkpoint", default=str(bundled_checkpoint()))
    p.add_argument("--json", help="write the per-lead means here")
    args = p.parse_args()
    ckpt = climode.load_model(args.checkpoint)
    sums = {m: defaultdict(lambda: defaultdict(list)) for m in (MODEL, PERSISTENCE)}
    start_clock, n = time.perf_counter(), 0
    for inputs, truth, hours, start in cases(args.storms, args.seed, args.cases, not args.native):
        forecast = climode.forecast(inputs.load(), hours, checkpoint=ckpt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = verify(forecast, truth.load(), start=start)
        for method in sums:
            for name, values in _row(scores, method).items():
                for lead, value in zip(scores["lead_times"], values):
                    if value is not None:
                        sums[method][name][lead].append(value)
        n += 1
        if n % 20 == 0:
            print(f"{n} cases, {time.perf_counter() - start_clock:.0f} s", flush=True)
    leads = sorted(sums[MODEL]["PSL"])
    means = {m: {k: [float(np.mean(v[lead])) for lead in leads] for k, v in sums[m].items()} for m in sums}
    print(
        f"{n} cases from {args.storms} held-out storms (seed {args.seed}, "
        f"{'0.25' if args.native else '1'}-degree grid); model {args.checkpoint}"
    )
    units = {
        "U850": "m/s",
        "V850": "m/s",
        "PSL": "hPa",
        "track_km": "km",
        "psl_min_abs_hpa": "hPa",
        "wind_max_abs_ms": "m/s",
    }
    scale = {"PSL": 0.01}
    header = ["lead (h)"] + [f"{k} ({units[k]}) {who}" for k in SCORES for who in ("model", "persist.")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for i, lead in enumerate(leads):
        cells = [f"{means[m][k][i] * scale.get(k, 1):.2f}" for k in SCORES for m in (MODEL, PERSISTENCE)]
        print(f"| {lead:g} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "lead_times": leads,
                    "cases": n,
                    "storms": args.storms,
                    "seed": args.seed,
                    "grid": "0.25" if args.native else "1",
                    "means": means,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
