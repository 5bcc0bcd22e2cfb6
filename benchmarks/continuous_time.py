"""Forecasts at any time: interpolation against the linear blend, extrapolation on and off the solver's grid.

Vid-ODE is trained at the protocols' cpu-small budget (300 updates, width 16, batch 4; decoder rk4 with
a step of one model time unit, encoder rk4 for balls and Euler for storms, as the bundled model, whose
3-48 h gaps take many steps) with random query sets (random leads, and in-between input frames hidden and
asked for), then scored on data it never saw:

- ``storms``: synthetic storms written every hour (40 storms, seed 7; 2-degree tiles of 30 x 80 cells;
  5 inputs with gaps of 3-48 h, targets every hour for 15 h); scored on a fresh corpus (seed 2026)
  written every quarter hour, so the truth exists at any query;
- ``balls``: bouncing balls (10 inputs, 10 frames ahead, targets at random real times); scored on the
  held-out split rendered at any real time.

Interpolation: between two observed frames t_i < t_j (storms: the last two inputs; balls: frames 4 and
9, with 5-8 not given), at fractions tau = 1/8 ... 7/8 of the gap, against the linear blend
(1 - tau) X_i + tau X_j and motion-compensated interpolation (both frames warped along the
Lucas-Kanade motion between them, blended linearly: what an untrained model does). Extrapolation:
at leads on the model's step grid (storms: 3, 6, ... 15 h;
balls: 1 ... 5 frames) and off it (storms: 1, 1.5, 4.5, 7, 10.25, 13.25 h; balls: 0.5, 1.5, 2.25,
3.7, 4.5 frames), against persistence and optical-flow advection. Every number is the mean MSE
(x1e-3, min-max normalised fields) over cases with a 95 % interval (t over cases), per training seed.

    .venv/bin/python benchmarks/continuous_time.py --data storms|balls --out runs/continuous [--seeds 0,1]
        [--steps 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from climode import load_model
from climode.config import DataConfig
from climode.data import open_dataset
from climode.data.plan import plan_samples
from climode.data.prepare import write_shards
from climode.data.sampling import SamplingConfig, draw
from climode.data.synthetic import make_corpus, write_corpus
from climode.geo.tiles import extract, parse_tiles
from climode.io.fields import open_fields
from climode.io.tracks import read_tracks
from climode.model.baselines import advection, persistence
from climode.model.motion import motion
from climode.model.warp import warp
from climode.times import stamp
from climode.training import train as train_model

VARIABLES = ["U850", "V850", "PSL"]
TAUS = np.arange(1, 8) / 8
GRID = {"storms": [3.0, 6.0, 9.0, 12.0, 15.0], "balls": [1.0, 2.0, 3.0, 4.0, 5.0]}
OFF_GRID = {"storms": [1.0, 1.5, 4.5, 7.0, 10.25, 13.25], "balls": [0.5, 1.5, 2.25, 3.7, 4.5]}
TILE = parse_tiles("east-pacific-atlantic")[0]
RESOLUTION = 2.0


def storm_store(out: Path) -> Path:
    """Hourly training storms -> 2-degree tiles -> shards: 5 inputs (gaps 3-48 h), a target inside each
    gap and 15 hourly targets after the last input."""
    store = out / "shards.zarr"
    if store.exists():
        return store
    corpus = out / "corpus"
    if not (corpus / "tracks.csv").is_file():
        write_corpus(corpus, 40, 7, small=True, overwrite=True, hours_per_frame=1.0)
    ds = open_fields(sorted(str(p) for p in corpus.glob("*.nc")), VARIABLES)
    sampling = SamplingConfig(
        n_in=5, n_out=15, step_h=1.0, min_gap_h=3.0, max_gap_h=48.0, lead_step_h=1.0, between=True
    )
    tracks = read_tracks(corpus / "tracks.csv", calendar=ds.time.values[0].calendar)
    plan = plan_samples(ds, [TILE], tracks, sampling, 8, 7)
    write_shards(
        store, ds, [TILE], plan, VARIABLES, RESOLUTION, "minmax", tracks, sampling, {"source_files": str(corpus)}
    )
    return store


def config(data: str, store: Path | None, steps: int, seed: int, hide: float = 0.5) -> dict:
    solver = {"method": "rk4", "step_size": 1.0}
    encoder = {"method": "euler", "step_size": 1.0} if data == "storms" else solver  # as the bundled model
    if data == "storms":
        section = {"name": "cam5", "path": str(store)}
    else:
        section = {
            "name": "bouncing-ball",
            "n_in": 10,
            "n_out": 10,
            "train_size": 400,
            "val_size": 16,
            "test_size": 50,
            "continuous": True,
        }
    return {
        "model": {
            "width": 16,
            "time_scale": 3.0 if data == "storms" else 1.0,
            "encoder_solver": encoder,
            "decoder_solver": solver,
        },
        "data": {**section, "queries": "random", "hide": hide, "seed": seed},
        "train": {
            "batch_size": 4,
            "adversarial": False,
            "max_steps": steps,
            "max_epochs": 100_000,
            "checkpoint_every": steps,
            "val_every": 1000,
            "seed": seed,
        },
    }


def train(data: str, out: Path, store: Path | None, steps: int, seed: int, hide: float) -> Path:
    run = out / f"run-seed{seed}"
    model = run / "model.safetensors"
    text = yaml.safe_dump(config(data, store, steps, seed, hide), sort_keys=False)
    if (
        model.is_file()
        and (run / "benchmark-config.yaml").is_file()
        and (run / "benchmark-config.yaml").read_text() == text
    ):
        return model
    started = time.perf_counter()
    train_model(yaml.safe_load(text), run, overwrite=True)
    (run / "benchmark-config.yaml").write_text(text)
    print(f"trained seed {seed} in {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)
    return model


def storm_cases(resolution: float = RESOLUTION, n_storms: int = 12, per_storm: int = 3, seed: int = 2026):
    """(frames (L, C, H, W) physical, times (L,), truth(query hours) -> frames) per held-out case, on the
    tile at ``resolution`` degrees."""
    ds, tracks = make_corpus(n_storms, seed, small=True, hours_per_frame=0.25)
    fields = extract(ds[VARIABLES], TILE, resolution).to_array("variable").transpose("time", "variable", ...)
    values = fields.values.astype(np.float32)
    hours = np.arange(len(values)) * 0.25
    stamps = [stamp(t) for t in ds.time.values]
    rng = np.random.default_rng(seed)
    sampling = SamplingConfig(n_in=5, n_out=60, step_h=0.25, min_gap_h=3.0, max_gap_h=48.0, lead_step_h=0.25)
    for _, track in tracks.groupby("storm", sort=True):
        first, last = stamps.index(track.time.iloc[0]), stamps.index(track.time.iloc[-1])
        for _ in range(per_storm):
            sample = draw(last - first + 1, sampling, rng)
            if sample is not None:
                inputs = first + sample[0]
                yield values[inputs], hours[inputs], lambda q: values[np.rint(np.asarray(q) / 0.25).astype(int)]


def ball_cases(size: int = 50):
    data = open_dataset(DataConfig(n_in=10, n_out=10, test_size=size), "test")
    inputs = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 9.0])
    for i in range(size):
        yield data.render(i, inputs), inputs, lambda q, i=i: data.render(i, np.asarray(q))


def score(data: str, checkpoint: Path, resolution: float = RESOLUTION) -> dict:
    ckpt = load_model(checkpoint)
    model = ckpt.model
    scale = ckpt.predictor.scale_inputs
    leads = sorted(GRID[data] + OFF_GRID[data])
    errors: dict[str, dict] = {
        "interpolation": {"model": [], "linear blend": [], "motion-compensated": []},
        "extrapolation": {"model": [], "persistence": [], "advection": []},
    }
    cases = storm_cases(resolution) if data == "storms" else ball_cases()
    for frames, times, truth in cases:
        x = torch.as_tensor(scale(frames))[None]
        t = torch.as_tensor(times, dtype=torch.float32)
        t_i, t_j = times[-2], times[-1]
        between = t_i + TAUS * (t_j - t_i)
        after = t_j + np.asarray(leads)
        query = torch.as_tensor(np.concatenate((between, after)), dtype=torch.float32)
        with torch.no_grad():
            pred = model(x, t, query)["frames"][0].numpy()
        target = scale(truth(np.concatenate((between, after))))
        mse = lambda a, b: ((a - b) ** 2).mean(axis=(1, 2, 3))
        n = len(TAUS)
        blend = (1 - TAUS)[:, None, None, None] * x[0, -2].numpy() + TAUS[:, None, None, None] * x[0, -1].numpy()
        errors["interpolation"]["model"].append(mse(pred[:n], target[:n]))
        errors["interpolation"]["linear blend"].append(mse(blend, target[:n]))
        a, b = x[:, -2], x[:, -1]
        moved = motion(a, b)  # Lucas-Kanade: b(x) ~ a(x - moved)
        along = torch.cat([(1 - tau) * warp(a, -tau * moved) + tau * warp(b, (1 - tau) * moved) for tau in TAUS])
        errors["interpolation"]["motion-compensated"].append(mse(along.numpy(), target[:n]))
        lead_q = torch.as_tensor(after, dtype=torch.float32)
        errors["extrapolation"]["model"].append(mse(pred[n:], target[n:]))
        errors["extrapolation"]["persistence"].append(mse(persistence(x, t, lead_q)[0].numpy(), target[n:]))
        errors["extrapolation"]["advection"].append(mse(advection(x, t, lead_q)[0].numpy(), target[n:]))
    summary = {
        "cases": len(errors["interpolation"]["model"]),
        "taus": TAUS.tolist(),
        "leads": leads,
        "grid_leads": GRID[data],
    }
    for kind, methods in errors.items():
        summary[kind] = {}
        for method, rows in methods.items():
            values = 1e3 * np.stack(rows)
            half = 1.96 * values.std(0, ddof=1) / np.sqrt(len(values))
            summary[kind][method] = {"mean": values.mean(0).tolist(), "ci95": half.tolist()}
        summary[kind]["model_better"] = (
            (
                np.stack(methods["model"])
                < np.stack(methods["linear blend" if kind == "interpolation" else "persistence"])
            )
            .mean(0)
            .tolist()
        )
        summary[kind]["paired"] = {}  # model minus each baseline, case by case: mean and 95 % interval
        for method in methods:
            if method != "model":
                diff = 1e3 * (np.stack(methods["model"]) - np.stack(methods[method]))
                summary[kind]["paired"][method] = {
                    "mean": diff.mean(0).tolist(),
                    "ci95": (1.96 * diff.std(0, ddof=1) / np.sqrt(len(diff))).tolist(),
                }
    return summary


def table(summary: dict, data: str) -> str:
    unit = "h" if data == "storms" else "frames"
    paired = lambda part, m, k: f"{part['paired'][m]['mean'][k]:+.3f} ± {part['paired'][m]['ci95'][k]:.3f}"
    lines = [
        "| tau | model | linear blend | motion-compensated | model - blend (paired) | model - motion-comp. (paired) "
        "| model better than the blend in |",
        "|---|---|---|---|---|---|---|",
    ]
    inter = summary["interpolation"]
    for k, tau in enumerate(summary["taus"]):
        cells = [
            f"{inter[m]['mean'][k]:.3f} ± {inter[m]['ci95'][k]:.3f}"
            for m in ("model", "linear blend", "motion-compensated")
        ]
        cells += [paired(inter, "linear blend", k), paired(inter, "motion-compensated", k)]
        lines.append(f"| {tau:.3f} | " + " | ".join(cells) + f" | {100 * inter['model_better'][k]:.0f} % |")
    lines += [
        "",
        f"| lead ({unit}) | on grid | model | persistence | advection | model - persistence (paired) "
        "| model - advection (paired) |",
        "|---|---|---|---|---|---|---|",
    ]
    ext = summary["extrapolation"]
    for k, lead in enumerate(summary["leads"]):
        cells = [f"{ext[m]['mean'][k]:.3f} ± {ext[m]['ci95'][k]:.3f}" for m in ("model", "persistence", "advection")]
        cells += [paired(ext, "persistence", k), paired(ext, "advection", k)]
        lines.append(f"| {lead:g} | {'yes' if lead in summary['grid_leads'] else 'no'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("storms", "balls"), required=True)
    p.add_argument("--out", type=Path, default=Path("runs/continuous"))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--hide", type=float, default=0.5, help="chance that a training sample hides in-between inputs")
    p.add_argument("--checkpoint", type=Path, help="score this model instead of training")
    p.add_argument(
        "--resolution",
        type=float,
        default=RESOLUTION,
        help="storms: the tile grid the model is scored on, degrees (default 2; the bundled model's is 1)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    out = args.out / args.data
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.checkpoint:
        results["given"] = score(args.data, args.checkpoint, args.resolution)
    else:
        store = storm_store(out) if args.data == "storms" else None
        for seed in (int(s) for s in args.seeds.split(",")):
            results[f"seed {seed}"] = score(args.data, train(args.data, out, store, args.steps, seed, args.hide))
    for name, summary in results.items():
        print(f"\n## {args.data}, {name}: {summary['cases']} held-out cases, MSE x1e-3 (95 % interval)\n")
        print(table(summary, args.data), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
