"""pySTEPS's STEPS ensemble against climode's perturbed-advection ensemble on synthetic rain.

Each case is a scene of Gaussian rain cells (``RainScene``) on a ``--size`` x ``--size`` grid of 1 km
cells: each cell is carried by a steady smooth random flow (a mean wind of 15-45 km h-1 plus a stream
function of three Fourier modes, about 10 km h-1), grows and decays (its peak rain rate follows a
Gaussian life cycle in time, its radius, 3-8 km at the peak, with it), and some enter from upstream,
so the truth is known at every time. ``--inputs`` frames every 5 min up to the reference time (3 by
default; STEPS takes the last three, climode's advection the last two) are forecast at leads 5..60 min
by

- ``steps``: ``climode.model.baselines.Steps`` (pySTEPS's STEPS with its defaults, on the ``pysteps``
  baseline's Lucas-Kanade motion; rain dB-transformed with a 0.1 mm h-1 threshold), ``--members``
  members seeded per case;
- ``steps-control``: its deterministic control, pySTEPS's semi-Lagrangian extrapolation;
- ``advection-ensemble``: climode's ``advection`` baseline moved and rescaled per member by
  ``climode.ensemble.perturb_cells`` (1 km cells, ages in hours), clipped at 0 as rain; its
  perturbation is first fitted by ``climode.ensemble.calibrate`` (fair CRPS) on ``--calibration-cases``
  other scenes over a grid of rain-scale speeds and growths (climode's defaults are for 1000 km storms),
  while STEPS runs with pySTEPS's defaults, which were fitted on radar;
- ``advection``: climode's deterministic ``advection`` baseline.

Scores per case and lead over the whole grid (mm h-1): the fair CRPS (a deterministic forecast's is
its MAE), means over ``--cases`` independent scenes with 95 % bootstrap intervals over cases
(``climode.verification.intervals.bootstrap``), the paired difference of the two ensembles, and the
spread-skill ratio (``climode.verification.ensemble.spread_skill``'s, pooled over cases).

    .venv/bin/python benchmarks/steps_ensemble.py --out runs/steps-ensemble [--cases 20] [--members 20]

Needs pySTEPS and OpenCV (``pip install 'climode[steps]'``). Writes ``cases.csv``, ``calibration.csv``
and ``tables.md`` to ``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from ensemble_skill import _markdown

from climode import ensemble
from climode.model.baselines import BASELINES
from climode.verification.ensemble import crps, spread_skill
from climode.verification.intervals import bootstrap

KM = 1.0  # km per grid cell
STEP_MIN = 5.0  # minutes between inputs
LEADS_MIN = np.arange(5.0, 61.0, 5.0)
THRESHOLD = 0.1  # mm h-1: the smallest rain STEPS counts
SPEEDS_KMH = (0.0, 5.0, 10.0, 20.0, 30.0)  # the calibration grid of climode's perturbation
GROWTHS_PER_H = (0.0, 0.5, 1.0, 2.0)
POWERS = (0.5, 1.0)


@dataclass
class RainScene:
    """Gaussian rain cells in a steady smooth flow; ``field(t)`` is the rain rate (mm h-1) at ``t`` hours."""

    size: int
    wind: np.ndarray  # (2,) mean flow, km h-1, east and north
    modes: np.ndarray  # (3, 4): wavenumber x, y (rad km-1), amplitude (km2 h-1), phase
    start: np.ndarray  # (N, 2) cell centres at t = 0, km
    peak: np.ndarray  # (N,) peak rain rate, mm h-1
    peak_h: np.ndarray  # (N,) time of the peak, h
    life_h: np.ndarray  # (N,) the life cycle's e-folding time, h
    radius: np.ndarray  # (N,) radius at the peak, km

    @classmethod
    def draw(cls, seed: int, size: int) -> RainScene:
        rng = np.random.default_rng(seed)
        speed, angle = rng.uniform(15.0, 45.0), rng.uniform(0.0, 2 * np.pi)
        wind = speed * np.array([np.cos(angle), np.sin(angle)])
        wavelength = rng.uniform(40.0, 120.0, 3)
        direction = rng.uniform(0.0, 2 * np.pi, 3)
        k = 2 * np.pi / wavelength
        modes = np.stack(
            [k * np.cos(direction), k * np.sin(direction), 10.0 / k / np.sqrt(3), rng.uniform(0, 2 * np.pi, 3)], 1
        )
        n = int(rng.integers(6, 11))
        # centres over the grid and the hour upstream of it, so that cells keep coming in
        span = size * KM
        upstream = -wind * 1.0
        start = rng.uniform(0.0, span, (n, 2)) + rng.uniform(0.0, 1.0, (n, 1)) * upstream
        peak = np.exp(rng.normal(np.log(10.0), 0.6, n))
        return cls(size, wind, modes, start, peak, rng.uniform(-0.5, 1.5, n), rng.uniform(0.3, 1.0, n),
                   rng.uniform(3.0, 8.0, n))  # fmt: skip

    def velocity(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) the flow (km h-1) at positions (N, 2) km: the mean wind plus the stream function's curl."""
        kx, ky, amp, phase = self.modes.T
        cos = np.cos(xy[:, :1] * kx + xy[:, 1:] * ky + phase) * amp  # (N, 3)
        return self.wind + np.stack([(cos * ky).sum(1), -(cos * kx).sum(1)], 1)

    def centres(self, t_h: float) -> np.ndarray:
        """(N, 2) the cells' centres at ``t_h`` hours: RK4 along the flow from t = 0 in steps of at most 1 min."""
        steps = max(int(np.ceil(abs(t_h) * 60)), 1)
        dt, xy = t_h / steps, self.start.copy()
        for _ in range(steps):
            k1 = self.velocity(xy)
            k2 = self.velocity(xy + 0.5 * dt * k1)
            k3 = self.velocity(xy + 0.5 * dt * k2)
            k4 = self.velocity(xy + dt * k3)
            xy = xy + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return xy

    def field(self, t_h: float) -> np.ndarray:
        """(size, size) rain rate, mm h-1, rows northward, at ``t_h`` hours."""
        life = np.exp(-(((t_h - self.peak_h) / self.life_h) ** 2))
        radius = self.radius * (0.5 + 0.5 * life)
        axis = (np.arange(self.size) + 0.5) * KM
        xy = self.centres(t_h)
        dx = axis[None, None, :] - xy[:, 0, None, None]
        dy = axis[None, :, None] - xy[:, 1, None, None]
        cells = (
            self.peak[:, None, None] * life[:, None, None] * np.exp(-(dx**2 + dy**2) / (2 * radius[:, None, None] ** 2))
        )
        return cells.sum(0)


def _case(seed: int, size: int, inputs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """One scene's inputs (1, L, 1, H, W), their times and the queries (hours), and the truth (K, 1, H, W)."""
    scene = RainScene.draw(seed, size)
    times = -STEP_MIN * np.arange(inputs - 1, -1, -1.0) / 60
    query = LEADS_MIN / 60
    frames = torch.from_numpy(np.stack([scene.field(t) for t in times])[None, :, None]).float()
    truth = np.stack([scene.field(t) for t in query])[:, None].astype(np.float32)
    return frames, torch.from_numpy(times).float(), torch.from_numpy(query).float(), truth


def _as_da(x: np.ndarray, member: bool) -> xr.DataArray:
    return xr.DataArray(x, dims=(*(["realization"] * member), "time", "var", "lat", "lon"))


def _calibrate(args) -> tuple[ensemble.Perturbation, pd.DataFrame]:
    """climode's perturbation of least fair CRPS for the advection forecast on other scenes (1 km cells
    as a lat/lon grid at the equator, where ``perturb`` is ``perturb_cells`` with 1 km spacings)."""
    cases = []
    for n in range(args.calibration_cases):
        frames, times, query, truth = _case(args.seed + 100_000 + n, args.size, args.inputs)
        forecast = BASELINES["advection"](frames, times, query)[0].numpy()
        cases.append((forecast, truth, ensemble.ages(query.numpy(), times.numpy())))
    axis = (np.arange(args.size) + 0.5) * KM / ensemble.KM_PER_DEGREE
    return ensemble.calibrate(
        cases, axis, axis, f"{args.calibration_cases} synthetic rain scenes", members=10, length_km=args.length_km,
        seed=args.seed, speeds=SPEEDS_KMH, growths=GROWTHS_PER_H, powers=POWERS,
    )  # fmt: skip


def _scores(method: str, case: int, forecast: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Rows (method, case, lead, metric, value): the fair CRPS, and for members the squared spread and
    error of the ensemble mean (for the pooled spread-skill ratio)."""
    member = forecast.ndim == 5
    dims = ("lat", "lon")
    values = {"crps": crps(_as_da(forecast, member), _as_da(truth, False), dims).values[:, 0]}
    if member:
        ss = spread_skill(_as_da(forecast, True), _as_da(truth, False), dims)
        values |= {"spread2": ss["spread"].values[:, 0] ** 2, "skill2": ss["skill"].values[:, 0] ** 2}
    return [
        {"method": method, "case": case, "lead": lead, "metric": metric, "value": float(v[k])}
        for metric, v in values.items()
        for k, lead in enumerate(LEADS_MIN)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/steps-ensemble"))
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--inputs", type=int, default=3, choices=(3, 4, 5))
    p.add_argument("--size", type=int, default=96, help="grid cells a side (1 km each)")
    p.add_argument("--calibration-cases", type=int, default=10)
    p.add_argument("--length-km", type=float, default=20.0, help="correlation length of climode's perturbation")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--bootstrap", type=int, default=2000)
    args = p.parse_args()
    if "steps" not in BASELINES:
        raise SystemExit(BASELINES.unavailable["steps"])
    from climode.model.baselines import Steps

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", "Singular matrix during outlier detection")  # pySTEPS's LK, on few cells
    args.out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    perturbation, calibration = _calibrate(args)
    calibration.to_csv(args.out / "calibration.csv", index=False)
    print(f"calibrated in {time.perf_counter() - clock:.0f} s: {perturbation}")

    steps = Steps(km_per_pixel=KM, minutes_per_unit=60.0, threshold=THRESHOLD)
    rows, seconds = [], {"steps": 0.0, "advection-ensemble": 0.0}
    for n in range(args.cases):
        frames, times, query, truth = _case(args.seed + n, args.size, args.inputs)
        tick = time.perf_counter()
        members = steps.sample(frames, times, query, args.members, torch.Generator().manual_seed(args.seed + n))
        seconds["steps"] += time.perf_counter() - tick
        tick = time.perf_counter()
        central = BASELINES["advection"](frames, times, query)[0].numpy()
        age = ensemble.ages(query.numpy(), times.numpy())
        perturbed = ensemble.perturb_cells(central, age, KM, KM, perturbation, args.members, seed=args.seed + n)
        seconds["advection-ensemble"] += time.perf_counter() - tick
        forecasts = {
            "steps": members[:, 0].numpy(),
            "steps-control": steps(frames, times, query)[0].numpy(),
            "advection-ensemble": np.maximum(perturbed, 0.0),
            "advection": central,
        }
        for method, forecast in forecasts.items():
            rows += _scores(method, n, forecast, truth)
        print(f"case {n}: {time.perf_counter() - clock:.0f} s")
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "cases.csv", index=False)

    cell = lambda r: f"{r['mean']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]"
    methods = list(forecasts)
    score = bootstrap(table[table.metric == "crps"], "value", ["method", "lead"], cluster="case", n=args.bootstrap)
    crps_wide = score.assign(text=score.apply(cell, axis=1)).pivot(index="lead", columns="method", values="text")
    wide = table[table.metric == "crps"].pivot_table(index=["case", "lead"], columns="method", values="value")
    paired = (wide["steps"] - wide["advection-ensemble"]).rename("value").reset_index()
    paired = bootstrap(
        paired.assign(method="steps - advection-ensemble"), "value", ["method", "lead"], "case", n=args.bootstrap
    )
    pooled = (
        table[table.metric.isin(["spread2", "skill2"])].groupby(["method", "lead", "metric"])["value"].mean().unstack()
    )
    factor = np.sqrt((args.members + 1) / args.members)
    ratio = (factor * np.sqrt(pooled["spread2"] / pooled["skill2"])).rename("ratio").reset_index()
    ratio = ratio.pivot(index="lead", columns="method", values="ratio").round(3)
    lines = [
        f"# STEPS against climode's perturbed advection: {args.cases} synthetic rain scenes (seed {args.seed})",
        "",
        f"{args.size} x {args.size} km grid (1 km cells), {args.inputs} inputs every {STEP_MIN:g} min, leads in "
        f"minutes, {args.members} members; climode's perturbation calibrated on {args.calibration_cases} other scenes: "
        f"{perturbation.speed_kmh:g} km h-1, growth {perturbation.growth_per_h:g} h-1, power {perturbation.power:g}, "
        f"length {perturbation.length_km:g} km. Wall time: STEPS {seconds['steps']:.0f} s, perturbed advection "
        f"{seconds['advection-ensemble']:.1f} s.",
        "",
        "## fair CRPS, mm h-1 (controls: MAE), mean over cases [95 % bootstrap interval]",
        "",
        _markdown(crps_wide[methods].reset_index()),
        "",
        "## paired: STEPS less climode's ensemble, fair CRPS (below 0: STEPS better)",
        "",
        _markdown(
            paired.assign(text=paired.apply(cell, axis=1))[["lead", "text"]].rename(columns={"text": "difference"})
        ),
        "",
        "## spread-skill ratio (pooled over cases; 1 calibrated, < 1 under-dispersive)",
        "",
        _markdown(ratio.reset_index()),
        "",
    ]
    (args.out / "tables.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"done in {time.perf_counter() - clock:.0f} s: {args.out / 'tables.md'}")


if __name__ == "__main__":
    main()
