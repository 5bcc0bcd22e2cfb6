"""Storms on the sphere: great-circle distances, destinations and boxes; the one sub-grid fit of a
pressure minimum (used by the detector and by verification); a storm's centre, path and intensity
in PSL/U850/V850 fields (Pa, m s-1; dims time, lat, lon, degrees)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .grid import periodic

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = np.pi * EARTH_RADIUS_KM / 180.0
Box = tuple[float, float]  # (low, high) degrees
FOLLOW_KM = 400.0  # how far a storm centre may move between consecutive frames
INTENSITY_KM = 300.0  # radius around the centre searched for minimum PSL and maximum wind


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle (haversine) distance in km between points given in degrees; broadcasts."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dlam = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    h = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _destination(lat, lon, bearing, distance_deg) -> tuple[np.ndarray, np.ndarray]:
    """Point reached from (lat, lon) along ``bearing`` (rad, from north) after ``distance_deg`` of arc."""
    phi, lam, delta = np.radians(lat), np.radians(lon), np.radians(distance_deg)
    phi2 = np.arcsin(np.sin(phi) * np.cos(delta) + np.cos(phi) * np.sin(delta) * np.cos(bearing))
    lam2 = lam + np.arctan2(np.sin(bearing) * np.sin(delta) * np.cos(phi), np.cos(delta) - np.sin(phi) * np.sin(phi2))
    return np.degrees(phi2), np.degrees(lam2) % 360.0


def _lon_inside(lon: np.ndarray, lon_range: Box) -> np.ndarray:
    west, east = lon_range
    lon = np.asarray(lon) % 360.0
    return (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)


def in_box(tracks: pd.DataFrame, lat_range: Box, lon_range: Box) -> pd.DataFrame:
    """Rows inside a lat/lon box (deg, bounds included); lon bounds in 0..360, (300, 60) wraps 0E."""
    return tracks[_inside(tracks, lat_range, lon_range)]


def _inside(tracks: pd.DataFrame, lat_range: Box, lon_range: Box) -> np.ndarray:
    lat = tracks["lat"].to_numpy()
    return (lat >= lat_range[0]) & (lat <= lat_range[1]) & _lon_inside(tracks["lon"].to_numpy(), lon_range)


def storm_periods(tracks: pd.DataFrame, lat_range: Box, lon_range: Box) -> pd.DataFrame:
    """Columns storm, start, end: one row per contiguous stay of a storm inside the box."""
    ordered = tracks.sort_values(["storm", "time"], kind="stable")
    inside = _inside(ordered, lat_range, lon_range)
    storm = ordered["storm"].to_numpy()
    continues = np.r_[False, inside[:-1] & (storm[1:] == storm[:-1])]
    stay = np.cumsum(inside & ~continues)
    stays = ordered[inside].assign(stay=stay[inside]).groupby("stay", sort=True)
    return stays.agg(storm=("storm", "first"), start=("time", "first"), end=("time", "last")).reset_index(drop=True)


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


def storm_centre(
    psl: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    near: tuple[float, float] | None = None,
    radius_km: float = FOLLOW_KM,
    half: int = 1,
) -> tuple[float, float, float]:
    """The PSL minimum of a (lat, lon) field (Pa), within radius_km of ``near`` (lat, lon) when given.

    The grid cell of lowest PSL is refined to sub-grid by a least-squares quadratic fitted to its
    (2 half + 1)^2 neighbourhood (3x3 by default) when the fit is a minimum inside that window;
    NaN cells are left out of the fit. Returns (lat degrees_north, lon degrees_east 0..360,
    psl_min Pa, never above the cell's value); all NaN when no finite cell is in reach.
    """
    psl = np.asarray(psl, float)
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    reach = np.isfinite(psl)
    if near is not None:
        reach &= great_circle_km(lat[:, None], lon[None, :], near[0], near[1]) <= radius_km
    if not reach.any():
        return float("nan"), float("nan"), float("nan")
    i, j = np.unravel_index(np.argmin(np.where(reach, psl, np.inf)), psl.shape)
    (di,), (dj,), (value,) = quadratic_minima(psl, i, j, half, periodic(lon))
    centre_lat = np.interp(i + di, np.arange(lat.size), lat)
    spacing = np.gradient(lon)[j] if lon.size > 1 else 0.0
    return float(centre_lat), float((lon[j] + dj * spacing) % 360.0), float(value)


def follow_storm(psl: xr.DataArray, start: tuple[float, float], radius_km: float = FOLLOW_KM) -> pd.DataFrame:
    """Track a low through PSL (time, lat, lon) in Pa: at each time, the ``storm_centre`` within
    radius_km of the previous centre (the first: of ``start``, (lat, lon) in degrees).

    Returns columns time, lat, lon (degrees) and psl_min (Pa), one row per time; a time with no
    finite PSL in reach gives NaN and the search goes on from the last centre found.
    """
    values = np.asarray(psl.transpose("time", "lat", "lon").values, float)
    lat, lon = psl["lat"].values, psl["lon"].values
    rows, near = [], (float(start[0]), float(start[1]))
    for field in values:
        centre = storm_centre(field, lat, lon, near=near, radius_km=radius_km)
        rows.append(centre)
        if np.isfinite(centre[0]):
            near = centre[:2]
    table = pd.DataFrame(rows, columns=["lat", "lon", "psl_min"])
    table.insert(0, "time", psl["time"].values)
    return table


def intensity(
    ds: xr.Dataset,
    centre_lat: float | Sequence[float],
    centre_lon: float | Sequence[float],
    radius_km: float = INTENSITY_KM,
    psl: str = "PSL",
    u: str = "U850",
    v: str = "V850",
) -> pd.DataFrame:
    """Storm intensity per time of ``ds`` (time, lat, lon) around centres (degrees; one per time, or one for all).

    Returns columns time, psl_min_hpa (lowest PSL, hPa) and, when ``ds`` holds both winds,
    wind_max_ms (highest sqrt(u^2 + v^2), m s-1), each over the grid cells within radius_km of
    the centre; NaN where the centre is NaN or no finite cell is in reach.
    """
    times = ds["time"].values
    clat = np.broadcast_to(np.asarray(centre_lat, float), times.shape)
    clon = np.broadcast_to(np.asarray(centre_lon, float), times.shape)
    near = (
        great_circle_km(
            ds["lat"].values[None, :, None], ds["lon"].values[None, None, :], clat[:, None, None], clon[:, None, None]
        )
        <= radius_km
    )

    def extreme(field: np.ndarray, lowest: bool) -> np.ndarray:
        fill = np.inf if lowest else -np.inf
        masked = np.where(near & np.isfinite(field), field, fill)
        found = masked.min((1, 2)) if lowest else masked.max((1, 2))
        return np.where(np.isfinite(found), found, np.nan)

    table = pd.DataFrame({"time": times})
    table["psl_min_hpa"] = extreme(np.asarray(ds[psl].transpose("time", "lat", "lon").values, float), True) / 100.0
    if u in ds and v in ds:
        speed = np.hypot(*(np.asarray(ds[name].transpose("time", "lat", "lon").values, float) for name in (u, v)))
        table["wind_max_ms"] = extreme(speed, False)
    return table
