"""Regular lat/lon grids: the step of a coordinate, whether longitudes go round the globe, and
bilinear regridding from a coarser grid to a finer one."""

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
