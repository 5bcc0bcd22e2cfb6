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
