"""Regular lat/lon grids: the step of a coordinate, whether longitudes go round the globe, and
regridding between a fine grid and a coarser one (a box mean, then bilinear, down; bilinear up)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def grid_step(coord) -> float:
    """The typical spacing of a 1-D coordinate (array or DataArray): the median step, 1.0 for a single cell."""
    steps = np.diff(np.asarray(coord))
    return float(np.median(steps)) if len(steps) else 1.0


def periodic(lon: np.ndarray) -> bool:
    """Whether a regular longitude axis goes round the globe."""
    step = np.diff(lon)
    return lon.size > 2 and np.allclose(step, step[0]) and abs(lon.size * step[0] - 360.0) < 0.5 * step[0]


def upsample(values: np.ndarray, coarse: xr.Dataset, native: xr.Dataset) -> np.ndarray:
    """(..., h, w) fields on the model's grid -> (..., H, W) on the native grid, bilinearly; border
    cells beyond the model grid's outer centres take the edge values."""
    lat, lon = coarse.lat.values, coarse.lon.values
    dims = [f"d{i}" for i in range(values.ndim - 2)] + ["lat", "lon"]
    da = (
        xr.DataArray(values, dims=dims)
        .pad(lat=1, lon=1, mode="edge")
        .assign_coords(
            lat=np.r_[lat[0] - grid_step(lat), lat, lat[-1] + grid_step(lat)],
            lon=np.r_[lon[0] - grid_step(lon), lon, lon[-1] + grid_step(lon)],
        )
    )
    return da.interp(lat=native.lat.values, lon=native.lon.values).values.astype(np.float32)


def box_mean(ds, factor: float):
    """``ds`` (Dataset or DataArray with lat, lon) averaged over a centred box of about ``factor`` cells
    a side (odd width, so unbiased; NaN-aware): what a coarser grid ``factor`` times the step can hold,
    before it is sampled there (no aliasing)."""
    width = int(np.ceil(factor)) // 2 * 2 + 1
    return ds.rolling(lat=width, lon=width, center=True, min_periods=1).mean()


def downsample(values: np.ndarray, native: xr.Dataset, coarse: xr.Dataset) -> np.ndarray:
    """(..., H, W) fields on ``native``'s grid -> (..., h, w) on the coarser ``coarse`` grid, as inputs
    are put on a model's grid (``climode.geo.tiles.extract``): a box mean over about one coarse cell,
    then bilinear at the coarse centres."""
    dims = [f"d{i}" for i in range(values.ndim - 2)] + ["lat", "lon"]
    da = xr.DataArray(values, dims=dims, coords={"lat": native.lat.values, "lon": native.lon.values})
    factor = grid_step(coarse.lat.values) / grid_step(native.lat.values)
    smooth = box_mean(da, factor) if factor > 1.5 else da
    return smooth.interp(lat=coarse.lat.values, lon=coarse.lon.values).values.astype(np.float32)


def regular_axes(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A regular lat/lon grid inside a curvilinear one (2-D ``lat``, ``lon`` in degrees): its step is
    the source's median spacing in degrees (the finer of its two directions, two significant digits),
    from the source's southernmost latitude and westernmost longitude (a regular source keeps its points)."""
    steps = [np.hypot(np.diff(lat, axis=a), np.diff(lon, axis=a)) for a in (0, 1)]
    step = float(f"{min(float(np.median(s)) for s in steps):.2g}")

    def axis(values: np.ndarray) -> np.ndarray:
        start, span = float(values.min()), float(np.ptp(values))
        return np.round(start + step * np.arange(int(np.floor(span / step + 1e-6)) + 1), 6)

    return axis(lat), axis(lon)


def triangulated(
    lat: np.ndarray, lon: np.ndarray, lat_out: np.ndarray, lon_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from scattered points (``lat``, ``lon``, any shape, degrees) to the
    regular grid (``lat_out`` (H,), ``lon_out`` (W,)): for each of the H*W targets, the 3 source
    points (flat indices) of the Delaunay triangle around it and their barycentric weights, NaN
    weights outside the points' hull. Apply with ``apply_triangulated``."""
    from scipy.spatial import Delaunay

    points = np.column_stack([np.ravel(lon), np.ravel(lat)])
    grid = np.stack(np.meshgrid(lon_out, lat_out), -1).reshape(-1, 2)
    tri = Delaunay(points)
    simplex = tri.find_simplex(grid)
    inside = simplex >= 0
    transform = tri.transform[simplex]
    partial = np.einsum("pij,pj->pi", transform[:, :2], grid - transform[:, 2])
    weights = np.column_stack([partial, 1.0 - partial.sum(1)])
    weights[~inside] = np.nan
    return tri.simplices[simplex], weights


def apply_triangulated(
    values: np.ndarray, index: np.ndarray, weights: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """(..., ny, nx) source values -> (..., H, W) with ``triangulated``'s ``index`` and ``weights``."""
    flat = values.reshape(*values.shape[:-2], -1)
    out = (flat[..., index] * weights).sum(-1)
    return out.reshape(*values.shape[:-2], *shape).astype(values.dtype)


def onto(da: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    """``da`` (..., lat, lon) bilinearly at the cell centres ``lat``, ``lon`` of another regular grid;
    centres up to one source cell beyond its outer ones take the linear extrapolation (a grid shifted
    by half a cell loses no edge row); a NaN source cell makes the targets next to it NaN."""
    extend = {"fill_value": "extrapolate"}
    return da.interp(lat=lat, kwargs=extend).interp(lon=lon, kwargs=extend)
