"""The one sub-grid centre fit of a pressure minimum, used by the detector and by verification:
a least-squares quadratic over the (2 half + 1)^2 window of grid cells around each minimum."""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _design(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell offsets (n, 2) of a window, its design matrix (n, 6) for a + b_i i + b_j j + c_ii i^2 +
    c_ij i j + c_jj j^2 and the least-squares map (6, n) from a full window's values to the coefficients."""
    offsets = np.array([(di, dj) for di in range(-half, half + 1) for dj in range(-half, half + 1)])
    i, j = offsets.T.astype(float)
    design = np.column_stack([np.ones_like(i), i, j, i**2, i * j, j**2])
    return offsets, design, np.linalg.pinv(design)


def quadratic_minima(
    field: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int, periodic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-grid minima of ``field`` (lat, lon) around the cells (``rows``, ``cols``) (N,).

    Each window's finite cells (at least 6) are fitted; the fit is used where it is a proper minimum
    (positive definite) inside the window and the window is not cut by the grid's edge (in longitude
    only when the grid is not ``periodic``). Returns di, dj (N,) the offsets in cells (0 where the
    fit is not used) and the value (N,) at the minimum, never above the cell's own.
    """
    rows, cols = np.atleast_1d(rows).astype(int), np.atleast_1d(cols).astype(int)
    nlat, nlon = field.shape
    offsets, design, fit = _design(half)
    r, c = rows[:, None] + offsets[:, 0], cols[:, None] + offsets[:, 1]
    c = c % nlon if periodic else c
    inside = ((r >= 0) & (r < nlat) & (c >= 0) & (c < nlon)).all(1)
    values = field[np.clip(r, 0, nlat - 1), np.clip(c, 0, nlon - 1)]
    finite = np.isfinite(values)
    coef = np.full((len(rows), 6), np.nan)
    full = inside & finite.all(1)
    coef[full] = values[full] @ fit.T
    for k in np.flatnonzero(inside & ~finite.all(1) & (finite.sum(1) >= 6)):  # a few NaN cells: fit the rest
        coef[k] = np.linalg.lstsq(design[finite[k]], values[k, finite[k]], rcond=None)[0]
    a, bi, bj, cii, cij, cjj = coef.T
    det = 4 * cii * cjj - cij**2
    with np.errstate(divide="ignore", invalid="ignore"):
        di = (cij * bj - 2 * cjj * bi) / det
        dj = (cij * bi - 2 * cii * bj) / det
    ok = (cii > 0) & (det > 0) & (np.abs(di) <= half) & (np.abs(dj) <= half)
    di, dj = np.where(ok, di, 0.0), np.where(ok, dj, 0.0)
    cell = field[rows, cols]
    fitted = a + bi * di + bj * dj + cii * di**2 + cij * di * dj + cjj * dj**2
    return di, dj, np.where(ok, np.minimum(fitted, cell), cell)
