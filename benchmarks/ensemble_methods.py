"""Which way of making members: the measurement behind docs/design.md's "Ensembles".

On cases of synthetic storms that no model trained on (the calibration corpus of
``ensemble_skill.py``, 1-degree grid), the bundled model's members are made two ways, each at its best
setting on these cases:

- ``displacement``: ``climode.ensemble.perturb`` (the forecast moved and rescaled per member),
  calibrated by ``climode.ensemble.calibrate``;
- ``latent``: noise in the decoder ODE's initial state, h_L + sigma z_m with z_m a fixed standard normal
  field per member (one network run per member), sigma the best of ``--sigmas`` (in units of the
  state's own standard deviation).

    .venv/bin/python benchmarks/ensemble_methods.py --out runs/ens-methods [--storms 10] [--members 10]

Prints and writes ``methods.md``: fair CRPS over the deterministic MAE per variable, spread-skill ratio
and member wind sharpness, pooled over cases and leads 3-24 h.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from ensemble_skill import VARIABLES, _ages, _array, _corpus

import climode
from climode import ensemble
from climode.forecasting import bundled_checkpoint, forecast
from climode.verification import skill
from climode.verification.ensemble import crps
from climode.verification.metrics import sharpness


def _latent(model, sigma: float, member: int):
    """Patch ``model._encode`` so that the decoder's initial state carries member ``member``'s noise."""
    encode = type(model)._encode

    def noisy(self, x, t, observed, backward):
        forward, back, h_last = encode(self, x, t, observed, backward)
        g = torch.Generator().manual_seed(1000 + member)
        z = torch.randn(h_last.shape[1:], generator=g).to(h_last)
        return forward, back, h_last + sigma * h_last.std() * z

    model._encode = noisy.__get__(model)


def _scores(members: np.ndarray, det: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    as_da = lambda x, *lead: xr.DataArray(x, dims=(*lead, "time", "var", "lat", "lon"))
    c = crps(as_da(members, "realization"), as_da(truth), ("lat", "lon")).values.sum(0)
    mae = np.abs(det - truth).mean((-2, -1)).sum(0)
    spread = members.var(0, ddof=1).mean((-2, -1)).sum(0)
    error = ((members.mean(0) - truth) ** 2).mean((-2, -1)).sum(0)
    wind = lambda a: xr.DataArray(
        np.hypot(a[..., 0, :, :], a[..., 1, :, :]), dims=(*(["m"] * (a.ndim == 5)), "time", "lat", "lon")
    )
    sharp = float(sharpness(wind(members), wind(truth).broadcast_like(wind(members))).mean())
    return {"crps": c, "mae": mae, "spread": spread, "error": error, "sharp": sharp}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--storms", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--sigmas", default="0.1,0.3,1.0,3.0")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    clock = time.perf_counter()
    ckpt = climode.load_model(bundled_checkpoint())
    ds, _, cases = _corpus(args.storms, args.seed, native=False)
    hours = np.round(skill.record_hours(ds), 6)
    at = {h: k for k, h in enumerate(hours)}
    runs = []
    for case in cases:
        inputs = ds.isel(time=[at[round(h, 6)] for h in case.inputs]).load()
        truth = _array(ds.isel(time=[at[round(h, 6)] for h in case.queries]).load())
        relative = np.asarray(case.queries) - case.inputs[0]
        runs.append((inputs, relative, truth, case, _array(forecast(inputs, relative, checkpoint=ckpt))))
    lat, lon = ds.lat.values, ds.lon.values
    chosen, _ = ensemble.calibrate(
        [(d, t, _ages(c)) for _, _, t, c, d in runs], lat, lon, "these cases", members=args.members
    )
    results = {}
    for label, make in [("displacement", None)] + [(f"latent {s}", float(s)) for s in args.sigmas.split(",")]:
        totals: dict[str, list] = {}
        for n, (inputs, relative, truth, case, det) in enumerate(runs):
            if make is None:
                members = ensemble.perturb(det, _ages(case), lat, lon, chosen, args.members, n)
            else:
                members = []
                for m in range(args.members):
                    model = climode.load_model(bundled_checkpoint())
                    _latent(model.model, make, m)
                    members.append(_array(forecast(inputs, relative, checkpoint=model)))
                members = np.stack(members)
            for key, value in _scores(members, det, truth).items():
                totals.setdefault(key, []).append(value)
        s = {k: np.sum(v, 0) for k, v in totals.items()}
        results[label] = {
            **{f"crps/mae {v}": float(s["crps"][c] / s["mae"][c]) for c, v in enumerate(VARIABLES)},
            **{
                f"spread/skill {v}": float(np.sqrt((args.members + 1) / args.members * s["spread"][c] / s["error"][c]))
                for c, v in enumerate(VARIABLES)
            },
            "member wind sharpness": float(np.mean(totals["sharp"])),
        }
        print(label, results[label], flush=True)
    head = list(next(iter(results.values())))
    lines = [
        f"# Ways of making members: {len(cases)} cases of {args.storms} storms (seed {args.seed}, 1 degree), "
        f"{args.members} members",
        "",
        f"displacement: {chosen}",
        "",
        "| method | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
        *[f"| {k} | " + " | ".join(f"{v[h]:.3f}" for h in head) + " |" for k, v in results.items()],
        "",
        f"{time.perf_counter() - clock:.0f} s",
    ]
    (args.out / "methods.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
