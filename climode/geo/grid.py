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


def _linear(source: np.ndarray, target: np.ndarray, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation along one ascending axis: for each ``target`` the index ``i`` of the source
    cell below it and the weight of cell ``i + 1`` (``i`` reads with weight 1 minus it). Targets
    outside the source are NaN, or with ``clamp`` take the edge value up to one step beyond it."""
    i = np.clip(np.searchsorted(source, target, side="right") - 1, 0, max(len(source) - 2, 0))
    if len(source) < 2:
        return i, np.where(target == source[0], 0.0, np.nan)
    lo, hi = source[i], source[i + 1]
    weight = (target - lo) / (hi - lo)
    step = grid_step(source)
    if clamp:
        beyond = (target < source[0] - step) | (target > source[-1] + step)
        weight = np.where(beyond, np.nan, np.clip(weight, 0.0, 1.0))
    else:
        weight = np.where((target < source[0]) | (target > source[-1]), np.nan, weight)
    return i, weight


def bilinear(
    values: np.ndarray,
    source: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    clamp: bool = False,
) -> np.ndarray:
    """(..., H, W) on the ascending (lat, lon) axes ``source`` -> (..., h, w) at ``target``'s, bilinearly
    in ``values``' float type (float32 at least): one axis, then the other, two source cells each. A NaN
    source cell makes the targets it touches NaN; outside the source, see ``_linear``."""
    out = np.asarray(values)
    dtype = np.result_type(out.dtype, np.float32)
    for axis, (src, dst) in zip((-2, -1), zip(source, target)):
        i, w = _linear(np.asarray(src, np.float64), np.asarray(dst, np.float64), clamp)
        shape = [1] * out.ndim
        shape[axis] = len(w)
        w = w.reshape(shape).astype(dtype)
        low = np.take(out, i, axis=axis)
        high = np.take(out, np.minimum(i + 1, out.shape[axis] - 1), axis=axis)
        high -= low
        high *= w
        out = np.add(low, high, out=low)
    return out.astype(dtype, copy=False)


def upsample(values: np.ndarray, coarse: xr.Dataset, native: xr.Dataset) -> np.ndarray:
    """(..., h, w) fields on the model's grid -> (..., H, W) on the native grid, bilinearly; border
    cells beyond the model grid's outer centres, up to one of its cells, take the edge values."""
    source, target = (coarse.lat.values, coarse.lon.values), (native.lat.values, native.lon.values)
    return bilinear(values, source, target, clamp=True).astype(np.float32)


def box_width(factor: float) -> int:
    """The odd number of cells a side of ``box_mean_at``'s box for a grid ``factor`` times coarser."""
    return int(np.ceil(factor)) // 2 * 2 + 1


def _window_sums(a: np.ndarray, axis: int, keep: np.ndarray, half: int) -> np.ndarray:
    """Sums of ``a`` over the centred windows of ``2 half + 1`` cells along ``axis`` (truncated at the
    edges: zeros beyond them) at the indices ``keep``: one running sum along the axis (scipy's, in
    double precision), whatever the width."""
    from scipy.ndimage import uniform_filter1d

    width = 2 * half + 1
    means = uniform_filter1d(a, width, axis=axis, mode="constant")
    return np.take(means, keep, axis=axis).astype(np.float64) * width


def _box_means(values: np.ndarray, width: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(..., H, W) -> (..., len(rows), len(cols)): the NaN-aware mean over the centred ``width`` x
    ``width`` box (truncated at the edges) at those rows and columns, from running sums (float64) of
    the valid values and of their count, one pass over the grid per axis whatever the width."""
    half = width // 2
    valid = ~np.isnan(values)
    whole = bool(valid.all())
    total = values if whole else np.where(valid, values, 0)
    count = np.ones(values.shape[-2:]) if whole else valid.astype(np.float32)  # whole: the box's size
    for axis, keep in ((-2, rows), (-1, cols)):
        total, count = (_window_sums(x, axis, keep, half) for x in (total, count))
    count = np.rint(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.result_type(values.dtype, np.float32))


def _bracketing(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Indices of the ascending ``source`` cells on either side of each ``target`` (what bilinear
    interpolation at ``target`` reads)."""
    i = np.clip(np.searchsorted(source, target), 1, len(source) - 1)
    return np.unique(np.concatenate([i - 1, i]))


def box_mean_at(obj, factor: float, lat: np.ndarray, lon: np.ndarray):
    """``obj`` (Dataset or DataArray on an ascending lat, lon grid) averaged over a centred box of about
    ``factor`` cells a side (odd width ``box_width``, so unbiased; NaN-aware, truncated at the edges),
    then bilinearly at the cell centres ``lat``, ``lon`` of a grid ``factor`` times coarser: what that
    grid can hold, sampled without aliasing (NaN outside the source grid). The mean is computed only
    where the interpolation reads it; a ``factor`` of 1.5 or less: bilinear alone."""
    source_lat, source_lon = obj.lat.values, obj.lon.values
    lat, lon = np.asarray(lat), np.asarray(lon)
    rows, cols = _bracketing(source_lat, lat), _bracketing(source_lon, lon)
    width = box_width(factor) if factor > 1.5 else 1

    def regrid(values: np.ndarray) -> np.ndarray:
        near = _box_means(values, width, rows, cols)
        return bilinear(near, (source_lat[rows], source_lon[cols]), (lat, lon))

    def one(da: xr.DataArray) -> xr.DataArray:
        if not {"lat", "lon"} <= set(da.dims):
            return da
        return xr.apply_ufunc(
            regrid,
            da,
            input_core_dims=[["lat", "lon"]],
            output_core_dims=[["lat", "lon"]],
            exclude_dims={"lat", "lon"},
            keep_attrs=True,
            dask="parallelized",  # lazy fields (the prepare pipeline) stay lazy, a chunk of times at a time
            output_dtypes=[np.result_type(da.dtype, np.float32)],
            dask_gufunc_kwargs={"output_sizes": {"lat": len(lat), "lon": len(lon)}, "allow_rechunk": True},
        ).transpose(*da.dims)

    out = obj.map(one, keep_attrs=True) if isinstance(obj, xr.Dataset) else one(obj)
    return out.assign_coords(lat=lat, lon=lon)


def downsample(values: np.ndarray, native: xr.Dataset, coarse: xr.Dataset) -> np.ndarray:
    """(..., H, W) fields on ``native``'s grid -> (..., h, w) on the coarser ``coarse`` grid, as inputs
    are put on a model's grid (``climode.geo.tiles.extract``): a box mean over about one coarse cell,
    then bilinear at the coarse centres."""
    dims = [f"d{i}" for i in range(values.ndim - 2)] + ["lat", "lon"]
    da = xr.DataArray(values, dims=dims, coords={"lat": native.lat.values, "lon": native.lon.values})
    factor = grid_step(coarse.lat.values) / grid_step(native.lat.values)
    return box_mean_at(da, factor, coarse.lat.values, coarse.lon.values).values.astype(np.float32)


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
