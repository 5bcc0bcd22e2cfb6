"""Storms found in fields and tracks compared: the built-in detector (TempestExtremes recipe:
local PSL minima with a closed contour, wind near the centre, stitched into tracks) and ``match``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ClimodeError
from ..io.tracks import COLUMNS
from ..times import elapsed_hours
from .grid import periodic
from .storms import KM_PER_DEG, _destination, great_circle_km, quadratic_minima

MERGE_DEG = 2.0  # candidates closer than this (great circle, deg) are merged, the deeper one kept
N_BEARINGS = 32  # rays of the closed-contour test
REFINE_DEG = 0.5  # half-width of the window of the quadratic centre fit


# ------------------------------------------------------------------------------------ verification


def match(truth: pd.DataFrame, found: pd.DataFrame, max_km: float = 300.0) -> dict[str, float]:
    """Point-by-point verification of detected tracks against true ones.

    A true point is hit when a detected point at the same time (equal time objects: same type
    and calendar) lies within ``max_km``; its error is the distance to the nearest such point.
    Returns hit_rate (fraction of true points hit), mean_error_km and median_error_km (over
    hits) and false_alarm_rate (fraction of detected points with no true point within max_km).
    """
    true = truth[["time", "lat", "lon"]].reset_index(drop=True).rename_axis("true_row").reset_index()
    det = found[["time", "lat", "lon"]].reset_index(drop=True).rename_axis("found_row").reset_index()
    pairs = true.merge(det, on="time", suffixes=("_true", "_found"))
    km = great_circle_km(pairs["lat_true"], pairs["lon_true"], pairs["lat_found"], pairs["lon_found"])
    close = pairs[km <= max_km].assign(km=km[km <= max_km])
    errors = close.groupby("true_row")["km"].min().to_numpy()
    return {
        "hit_rate": len(errors) / len(true) if len(true) else float("nan"),
        "mean_error_km": float(np.mean(errors)) if len(errors) else float("nan"),
        "median_error_km": float(np.median(errors)) if len(errors) else float("nan"),
        "false_alarm_rate": 1.0 - close["found_row"].nunique() / len(det) if len(det) else float("nan"),
    }


# ---------------------------------------------------------------------------------------- detector


@dataclass(frozen=True)
class _Grid:
    """A regular-in-longitude lat/lon grid, lat ascending, lon in 0..360 ascending."""

    lat: np.ndarray
    lon: np.ndarray

    @property
    def dlon(self) -> float:
        return float(self.lon[1] - self.lon[0])

    @property
    def periodic(self) -> bool:
        """Whether the grid goes round the globe in longitude."""
        return periodic(self.lon)

    @property
    def spacing(self) -> float:
        """The finest grid spacing in degrees."""
        return float(min(np.diff(self.lat).min(), self.dlon))


def detect(
    ds: xr.Dataset,
    *,
    psl: str = "PSL",
    u: str = "U850",
    v: str = "V850",
    closed_contour_pa: float = 200.0,
    contour_radius_deg: float = 5.5,
    min_wind: float = 10.0,
    wind_radius_deg: float = 2.0,
    max_lat: float = 50.0,
    stitch_deg: float = 8.0,
    min_duration_h: float = 54.0,
    min_wind_steps: int = 10,
    max_gap_steps: int = 1,
) -> pd.DataFrame:
    """Detect tropical cyclones in (time, lat, lon) fields of PSL (Pa) and 850 hPa winds (m/s).

    Per time step (computed one at a time, so dask-backed inputs stay lazy): candidates are the
    cells holding the PSL minimum of the +-MERGE_DEG box around them, |lat| <= max_lat; one is kept
    when, along each of N_BEARINGS great-circle rays out to ``contour_radius_deg``, PSL rises
    somewhere by >= ``closed_contour_pa`` above the minimum (a ray approximation of the
    closed-contour flood fill); survivors closer than MERGE_DEG keep the deeper one. Centres
    are refined by a least-squares quadratic fit of PSL over +-REFINE_DEG (at least 3 x 3
    cells) around the minimum; psl_min is the fitted minimum (Pa) and vmax the largest wind
    speed within ``wind_radius_deg`` of the refined centre (m/s).
    Nodes are stitched to the nearest node of the next step within ``stitch_deg`` (great
    circle, deg), allowing ``max_gap_steps`` missing steps; tracks lasting >= ``min_duration_h``
    hours with >= ``min_wind_steps`` nodes of vmax >= ``min_wind`` are returned, named DET0001...
    """
    fields, grid = _prepare(ds, [psl, u, v])
    times = fields["time"].values
    hours = elapsed_hours(times)
    nodes = []
    for step in range(len(times)):
        now = fields.isel(time=step).compute()
        pressure = np.asarray(now[psl].values, float)
        speed = np.hypot(np.asarray(now[u].values, float), np.asarray(now[v].values, float))
        nodes.append(
            _step_nodes(pressure, speed, grid, closed_contour_pa, contour_radius_deg, wind_radius_deg, max_lat)
        )
    tracks = _stitch(nodes, stitch_deg, max_gap_steps)
    kept = [
        track
        for track in tracks
        if hours[track[-1][0]] - hours[track[0][0]] >= min_duration_h
        and sum(nodes[t]["vmax"][k] >= min_wind for t, k in track) >= min_wind_steps
    ]
    return _track_table(kept, nodes, times)


def _prepare(ds: xr.Dataset, names: list[str]) -> tuple[xr.Dataset, _Grid]:
    """The named variables on a lat-ascending, lon 0..360 ascending grid, and that grid."""
    missing = [name for name in names if name not in ds]
    if missing:
        raise ClimodeError(f"dataset has no variable {', '.join(missing)}; has {', '.join(map(str, ds.data_vars))}")
    for name in names:
        if ds[name].dims != ("time", "lat", "lon"):
            raise ClimodeError(f"{name} has dims {ds[name].dims}; expected (time, lat, lon)")
    fields = ds[names].assign_coords(lon=ds["lon"].values % 360.0)
    if not (np.all(np.diff(fields["lat"].values) > 0) and np.all(np.diff(fields["lon"].values) > 0)):
        fields = fields.sortby(["lat", "lon"])
    grid = _Grid(np.asarray(fields["lat"].values, float), np.asarray(fields["lon"].values, float))
    if min(grid.lat.size, grid.lon.size) < 3 or not np.allclose(np.diff(grid.lon), grid.dlon):
        raise ClimodeError("detect needs at least 3 x 3 cells and a regular longitude spacing")
    return fields, grid


def _step_nodes(
    pressure: np.ndarray,
    speed: np.ndarray,
    grid: _Grid,
    closed_contour_pa: float,
    contour_radius_deg: float,
    wind_radius_deg: float,
    max_lat: float,
) -> dict[str, np.ndarray]:
    """Storm centres of one time step: refined lat, lon, psl_min (Pa) and vmax (m/s) arrays."""
    ilat, ilon = _local_minima(pressure, grid, max_lat)
    closed = _closed_contour(pressure, grid, ilat, ilon, closed_contour_pa, contour_radius_deg)
    ilat, ilon = ilat[closed], ilon[closed]
    keep = _merge(grid.lat[ilat], grid.lon[ilon], pressure[ilat, ilon], MERGE_DEG)
    lat, lon, depth = _refine(pressure, grid, ilat[keep], ilon[keep])
    return {"lat": lat, "lon": lon, "psl_min": depth, "vmax": _max_within(speed, grid, lat, lon, wind_radius_deg)}


def _window_min(field: np.ndarray, half: int, axis: int, periodic: bool) -> np.ndarray:
    """Running minimum over 2 * half + 1 cells along ``axis`` (wrapping or +inf-padded)."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(field, pad, mode="wrap") if periodic else np.pad(field, pad, constant_values=np.inf)
    return sliding_window_view(padded, 2 * half + 1, axis=axis).min(axis=-1)


def _local_minima(pressure: np.ndarray, grid: _Grid, max_lat: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of cells that are the PSL minimum of the box of +-MERGE_DEG around them, |lat| <= max_lat."""
    half_lat = max(1, int(np.ceil(MERGE_DEG / np.diff(grid.lat).min())))
    half_lon = max(1, int(np.ceil(MERGE_DEG / grid.dlon)))
    field = np.where(np.isfinite(pressure), pressure, np.inf)
    lowest = _window_min(_window_min(field, half_lat, 0, False), half_lon, 1, grid.periodic)
    minima = (field <= lowest) & np.isfinite(field) & (np.abs(grid.lat)[:, None] <= max_lat)
    return np.nonzero(minima)


def _sample(field: np.ndarray, grid: _Grid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``field`` at points (deg); NaN outside the grid."""
    nlat, nlon = field.shape
    fi = np.interp(lat, grid.lat, np.arange(nlat), left=np.nan, right=np.nan)
    offset = (lon - grid.lon[0]) % 360.0 / grid.dlon
    fj = offset if grid.periodic else np.where(offset <= nlon - 1, offset, np.nan)
    valid = np.isfinite(fi) & np.isfinite(fj)
    fi, fj = np.where(valid, fi, 0.0), np.where(valid, fj, 0.0)
    i0 = np.minimum(np.floor(fi).astype(int), nlat - 2)
    j0 = np.floor(fj).astype(int) if grid.periodic else np.minimum(np.floor(fj).astype(int), nlon - 2)
    wi, wj = fi - i0, fj - j0
    j0 %= nlon
    j1 = (j0 + 1) % nlon
    value = (1 - wi) * ((1 - wj) * field[i0, j0] + wj * field[i0, j1]) + wi * (
        (1 - wj) * field[i0 + 1, j0] + wj * field[i0 + 1, j1]
    )
    return np.where(valid, value, np.nan)


def _closed_contour(
    pressure: np.ndarray, grid: _Grid, ilat: np.ndarray, ilon: np.ndarray, rise_pa: float, radius_deg: float
) -> np.ndarray:
    """Whether PSL rises by >= rise_pa above each minimum somewhere along every ray out to radius_deg.

    Rays follow N_BEARINGS great circles sampled every half grid cell; points off the grid
    count as no rise, so a minimum whose contour is not closed inside the domain fails.
    """
    steps = max(1, int(np.ceil(radius_deg / (0.5 * grid.spacing))))
    distance = np.linspace(radius_deg / steps, radius_deg, steps)
    bearing = np.linspace(0.0, 2 * np.pi, N_BEARINGS, endpoint=False)
    lat, lon = _destination(
        grid.lat[ilat, None, None], grid.lon[ilon, None, None], bearing[None, :, None], distance[None, None, :]
    )
    ray = _sample(pressure, grid, lat, lon)
    highest = np.where(np.isfinite(ray), ray, -np.inf).max(axis=2)
    return np.all(highest - pressure[ilat, ilon][:, None] >= rise_pa, axis=1)


def _merge(lat: np.ndarray, lon: np.ndarray, depth: np.ndarray, min_deg: float) -> np.ndarray:
    """Indices of points kept when, of points closer than min_deg, only the deepest is kept."""
    order = np.argsort(depth, kind="stable")
    distance = great_circle_km(lat[order, None], lon[order, None], lat[None, order], lon[None, order])
    apart = distance >= min_deg * KM_PER_DEG
    keep = np.ones(order.size, bool)
    for k in range(order.size):
        if keep[k]:
            keep[k + 1 :] &= apart[k, k + 1 :]
    return order[keep]


def _refine(
    pressure: np.ndarray, grid: _Grid, ilat: np.ndarray, ilon: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-grid centres (lat, lon) and minimum PSL of the minima at (ilat, ilon): ``quadratic_minima``
    over +-REFINE_DEG (at least one cell each side)."""
    half = max(1, round(REFINE_DEG / grid.spacing))
    di, dj, depth = quadratic_minima(pressure, ilat, ilon, half, grid.periodic)
    lat = np.interp(ilat + di, np.arange(len(grid.lat)), grid.lat)
    lon = (grid.lon[0] + (ilon + dj) * grid.dlon) % 360.0
    return lat, lon, depth


def _max_within(field: np.ndarray, grid: _Grid, lat: np.ndarray, lon: np.ndarray, radius_deg: float) -> np.ndarray:
    """Largest value of ``field`` over the grid cells within radius_deg (great circle) of each point."""
    result = np.full(lat.size, np.nan)
    for k, (centre_lat, centre_lon) in enumerate(zip(lat, lon, strict=True)):
        rows = np.flatnonzero(np.abs(grid.lat - centre_lat) <= radius_deg)
        distance = great_circle_km(grid.lat[rows, None], grid.lon[None, :], centre_lat, centre_lon)
        near = distance <= radius_deg * KM_PER_DEG
        values = field[rows][near & np.isfinite(field[rows])]
        if values.size:
            result[k] = values.max()
    return result


def _stitch(nodes: list[dict[str, np.ndarray]], max_deg: float, max_gap: int) -> list[list[tuple[int, int]]]:
    """Chain nodes into tracks of (step, node index): each node continues the nearest open track.

    A track stays open for max_gap missing steps; pairs are taken greedily, nearest first,
    each track and node at most once, only within max_deg of great-circle arc.
    """
    tracks: list[list[tuple[int, int]]] = []
    for step, now in enumerate(nodes):
        open_ = [track for track in tracks if track[-1][0] >= step - 1 - max_gap]
        last_lat = np.array([nodes[t]["lat"][k] for t, k in (track[-1] for track in open_)])
        last_lon = np.array([nodes[t]["lon"][k] for t, k in (track[-1] for track in open_)])
        distance = great_circle_km(last_lat[:, None], last_lon[:, None], now["lat"][None, :], now["lon"][None, :])
        joined = np.zeros(now["lat"].size, bool)
        continued = np.zeros(len(open_), bool)
        for flat in np.argsort(distance, axis=None, kind="stable"):
            row, col = np.unravel_index(flat, distance.shape)
            if distance[row, col] > max_deg * KM_PER_DEG:
                break
            if not (continued[row] or joined[col]):
                open_[row].append((step, int(col)))
                continued[row] = joined[col] = True
        tracks += [[(step, int(col))] for col in np.flatnonzero(~joined)]
    return tracks


def _track_table(
    tracks: list[list[tuple[int, int]]], nodes: list[dict[str, np.ndarray]], times: np.ndarray
) -> pd.DataFrame:
    """The track table of stitched tracks, storms named DET0001... in order of first appearance."""
    tracks = sorted(tracks, key=lambda track: track[0])
    rows = [
        {
            "storm": f"DET{number:04d}",
            "time": times[t],
            **{name: float(nodes[t][name][k]) for name in ("lat", "lon", "psl_min", "vmax")},
        }
        for number, track in enumerate(tracks, 1)
        for t, k in track
    ]
    return pd.DataFrame(rows, columns=COLUMNS)
