"""The perturbation of an ensemble's members (``members.Perturbation``) fitted to cases: a grid search
for the least fair CRPS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .members import Perturbation, perturb

SPEEDS_KMH = (0.0, 3.0, 6.0, 10.0, 15.0)
GROWTHS_PER_H = (0.0, 0.01, 0.02, 0.04, 0.07)
POWERS = (0.5, 1.0)
EXTEND = 4  # times the grid is extended past its edge


def calibrate(
    cases: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    lat: np.ndarray,
    lon: np.ndarray,
    label: str,
    members: int = 10,
    length_km: float = 1000.0,
    seed: int = 0,
    speeds: Sequence[float] = SPEEDS_KMH,
    growths: Sequence[float] = GROWTHS_PER_H,
    powers: Sequence[float] = POWERS,
) -> tuple[Perturbation, pd.DataFrame]:
    """The perturbation of least fair CRPS on ``cases``: a grid search over ``speeds`` (km h-1),
    ``growths`` (h-1) and ``powers``, extended outward (up to EXTEND times) while the best lies on the
    grid's largest speed or growth.

    Parameters
    ----------
    cases : per case ``(forecast, truth, age)``: (K, C, H, W) the deterministic forecast and the truth
        on the (``lat``, ``lon``) grid, and (K,) the queries' ages in hours (``ages``).
    label : where the cases come from, recorded in the result's ``calibrated_on``.
    members, seed : the ensemble drawn for each candidate.

    Returns
    -------
    (Perturbation, pandas.DataFrame)
        the best and every candidate's score: the fair CRPS summed over cases and times over the
        forecast's MAE summed alike, per variable, averaged over variables (below 1: the ensemble beats
        its own central forecast). A ratio of sums, not a mean of ratios, which would favour too little
        spread by weighting the cases with small errors most.
    """
    from ..verification.ensemble import crps

    dims = ("lat", "lon")
    as_da = lambda x, *lead: xr.DataArray(x, dims=(*lead, "time", "var", *dims))
    error = sum(np.nansum(np.nanmean(np.abs(f - t), axis=(-2, -1)), 0) for f, t, _ in cases)

    def score(p: Perturbation) -> float:
        total = 0.0
        for n, (forecast, truth, age) in enumerate(cases):
            ens = perturb(forecast, age, lat, lon, p, members, seed + n)
            total = total + np.nansum(crps(as_da(ens, "realization"), as_da(truth), dims).values, 0)
        return float(np.mean(total / np.maximum(error, 1e-12)))

    rows: dict[tuple, float] = {}
    speeds, growths = list(speeds), list(growths)
    for _ in range(EXTEND):
        for speed in speeds:
            for growth in growths:
                for power in powers if speed or growth else powers[-1:]:
                    if (speed, growth, power) not in rows:
                        rows[speed, growth, power] = score(Perturbation(speed, growth, power, length_km))
        speed, growth, _ = min(rows, key=rows.get)
        out_speed, out_growth = 0 < speed == speeds[-1], 0 < growth == growths[-1]
        if not (out_speed or out_growth):
            break
        # the best lies on the grid's edge: search further out, where it may be better still
        speeds += [speeds[-1] * 1.5, speeds[-1] * 2] if out_speed else []
        growths += [growths[-1] * 1.5, growths[-1] * 2] if out_growth else []
    rows = [{"speed_kmh": k[0], "growth_per_h": k[1], "power": k[2], "crps_over_mae": v} for k, v in rows.items()]
    table = pd.DataFrame(rows).sort_values("crps_over_mae", ignore_index=True)
    best = table.iloc[0]
    chosen = Perturbation(
        float(best.speed_kmh),
        float(best.growth_per_h),
        float(best.power),
        length_km,
        f"calibrated on {label}: least fair CRPS ({best.crps_over_mae:.3f} of the forecast's MAE) over "
        f"{len(table)} candidates, {members} members",
    )
    return chosen, table
