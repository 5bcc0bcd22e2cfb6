"""Ensemble members at any time. A member is the deterministic forecast ``f(s)`` displaced and
rescaled by a perturbation of its own, fixed for the whole trajectory (docs/design.md, "Ensembles",
has the measurement that chose it):

    x_m(s) = W(a(s) u_m, S f(s) + exp(a(s) g xi_m) (f(s) - S f(s)))

``u_m`` is a smooth random steering velocity (2, H, W; km h-1, standard deviation ``speed_kmh``,
correlation length ``length_km``), ``xi_m`` a standard normal intensity factor, ``g`` the intensity
growth per hour, ``S`` a Gaussian smoothing of ``length_km`` (so ``f - S f`` is the storm-scale anomaly,
scaled by a log-normal factor: a member's storm deepens or fills, never turns into a high) and
``W(d, x)`` moves ``x`` by ``d`` km. ``a(s)`` is how far ``s`` lies from what was observed: the lead
after the last input, ``(s - t_i)(t_j - s) / (t_j - t_i)`` between inputs ``t_i < s < t_j`` and 0 at
an input (``ages``). So each member is one continuous trajectory that passes through the inputs, its
spread grows with lead, it is as sharp as the forecast it moves (a displaced core stays a core), and
it depends only on the seed, its index and ``f(s)``: member m at 63 h is the same whether 63 h was
asked alone or with other times, and the first members of 20 are those of 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter, zoom

from ..geo.grid import grid_step, periodic
from ..model.warp import warp

KM_PER_DEGREE = 111.2
HORIZON_H = 24.0  # hours: where the growth's power pivots
REALIZATION = {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}


@dataclass(frozen=True)
class Perturbation:
    """How members differ (module docstring): steering ``speed_kmh`` (km h-1, standard deviation of
    each velocity component), intensity ``growth_per_h`` (h-1, standard deviation of the log of the
    anomaly's scale per hour of age), both smooth over ``length_km``; both grow with the age ``a``
    as ``24 h (a / 24 h) ** power`` (1: linearly, as a steering error displaces a storm; 0.5: as a
    random walk); ``calibrated_on`` says where they were fitted (``calibrate``)."""

    speed_kmh: float = 6.0
    growth_per_h: float = 0.01
    power: float = 1.0
    length_km: float = 1000.0
    calibrated_on: str = "not calibrated (climode's defaults)"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, card) -> Perturbation:
        """The perturbation a checkpoint's card records (``Card.ensemble``), else the defaults."""
        return cls(**(card.ensemble or {}))


def ages(query: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(K,) hours: how far each query time lies from what was observed (``query`` and ``observed``
    in hours, ``observed`` increasing): the lead after the last input, the bridge ``(s - t_i)(t_j - s)
    / (t_j - t_i)`` between two inputs, 0 at an input."""
    query, observed = np.asarray(query, float), np.asarray(observed, float)
    after = np.clip(np.searchsorted(observed, query, side="right"), 1, len(observed))
    before = observed[after - 1]
    inside = after < len(observed)
    following = observed[np.minimum(after, len(observed) - 1)]
    bridge = (query - before) * (following - query) / np.where(inside, following - before, 1.0)
    return np.maximum(np.where(inside, bridge, query - observed[-1]), 0.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """(H, W) Gaussian noise of unit standard deviation, correlated over ``cells`` cells: drawn on a
    grid about 4 cells per correlation length with a margin of the filter's reach, smoothed there and
    interpolated up (cheap on any grid)."""
    factor = max(cells / 4.0, 1.0)
    sigma = cells / factor
    margin = int(np.ceil(4 * sigma))
    inner = tuple(int(np.ceil(n / factor)) + 2 for n in shape)
    noise = gaussian_filter(rng.standard_normal(tuple(n + 2 * margin for n in inner)), sigma, mode="wrap")
    noise = noise[margin:-margin, margin:-margin] * (2.0 * np.sqrt(np.pi) * sigma)  # unit variance
    up = zoom(noise, factor, order=1, mode="nearest", grid_mode=False)
    return up[: shape[0], : shape[1]]


def _draws(seed: int, member: int, shape: tuple[int, int], cells: float) -> tuple[np.ndarray, float]:
    """Member ``member``'s steering velocity (2, H, W; unit standard deviation) and intensity factor:
    from a generator of (seed, member) alone, so a member does not depend on how many are drawn."""
    rng = np.random.default_rng([int(seed), int(member)])
    xi = float(rng.standard_normal())
    return np.stack([_smooth_noise(rng, shape, cells) for _ in range(2)]), xi


def perturb(
    frames: np.ndarray,
    age_h: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    perturbation: Perturbation,
    members: int | Sequence[int],
    seed: int = 0,
) -> np.ndarray:
    """Members of a forecast on a (lat, lon) grid (module docstring).

    Parameters
    ----------
    frames : (K, C, H, W) the forecast, any units, NaN missing.
    age_h : (K,) hours from what was observed (``ages``).
    lat, lon : (H,), (W,) degrees, increasing or decreasing.
    perturbation : how members differ.
    members : how many, or which (indices).
    seed : the ensemble's seed.

    Returns
    -------
    numpy.ndarray
        (M, K, C, H, W) float32.
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    dy = grid_step(lat) * KM_PER_DEGREE if lat.size > 1 else KM_PER_DEGREE
    dx = (grid_step(lon) if lon.size > 1 else 1.0) * KM_PER_DEGREE * np.maximum(np.cos(np.radians(lat)), 0.05)[:, None]
    return perturb_cells(frames, age_h, dy, dx, perturbation, members, seed, wrap=periodic(lon))


def perturb_cells(
    frames: np.ndarray,
    age: np.ndarray,
    dy: float,
    dx: float | np.ndarray,
    perturbation: Perturbation,
    members: int | Sequence[int],
    seed: int = 0,
    wrap: bool = False,
) -> np.ndarray:
    """``perturb`` on any grid: rows ``dy`` and columns ``dx`` (a number, or (H, 1) per row) apart,
    both in the units of ``perturbation.length_km`` (km on the Earth; pixels for video, where
    ``speed_kmh`` is then pixels per time unit of ``age``). Rows and columns increase northward and
    eastward for a positive ``dy`` / ``dx``; negative spacings flip them. ``wrap``: the columns are
    periodic (a global longitude)."""
    index = range(members) if isinstance(members, int) else members
    K, C, H, W = frames.shape
    dx = np.broadcast_to(np.asarray(dx, float), (H, 1)) if np.ndim(dx) else np.full((H, 1), float(dx))
    step_y, step_x = abs(float(dy)), float(np.abs(dx).max())  # the nominal spacing (a latitude grid's equatorward)
    cells = perturbation.length_km / min(step_y, step_x)
    sigma = (perturbation.length_km / step_y, perturbation.length_km / step_x)
    x = np.nan_to_num(np.asarray(frames, np.float32))
    edges = ("nearest", "nearest", "nearest", "wrap" if wrap else "nearest")
    anomaly = x - gaussian_filter(x, (0, 0, *sigma), mode=edges)
    age = (HORIZON_H * (np.asarray(age, float) / HORIZON_H) ** perturbation.power).astype(np.float32)
    age = age.reshape(K, 1, 1, 1)
    out = np.empty((len(index), K, C, H, W), np.float32)
    for n, m in enumerate(index):
        velocity, xi = _draws(seed, m, (H, W), cells)
        scaled = x + np.expm1(age * perturbation.growth_per_h * xi) * anomaly
        moved = age[:, :, 0, 0, None, None] * perturbation.speed_kmh * velocity[None]  # (K, 2, H, W): east, north
        flow = np.stack([-moved[:, 0] / dx, -moved[:, 1] / dy], 1)  # cells, backward warp
        out[n] = warp(torch.from_numpy(scaled), torch.from_numpy(flow.astype(np.float32))).numpy()
    return np.where(np.isnan(np.asarray(frames))[None], np.nan, out)


def summary(ens: xr.Dataset) -> xr.Dataset:
    """The ensemble mean and spread (standard deviation over members, ddof 1) of every variable with a
    ``realization`` dim, as ``{name}_mean`` and ``{name}_spread`` with CF cell_methods."""
    out = {}
    for name, da in ens.data_vars.items():
        if "realization" not in da.dims:
            continue
        attrs = {k: v for k, v in da.attrs.items() if k in ("standard_name", "long_name", "units")}
        out[f"{name}_mean"] = da.mean("realization").assign_attrs(attrs, cell_methods="realization: mean")
        spread = (
            da.std("realization", ddof=1) if ens.sizes["realization"] > 1 else xr.zeros_like(da.isel(realization=0))
        )
        out[f"{name}_spread"] = spread.assign_attrs(attrs, cell_methods="realization: standard_deviation")
    return xr.Dataset(out).drop_vars("realization", errors="ignore")
