"""Verification metrics: per-frame scores of (B, K, C, H, W) tensors, and field and storm-track scores of xarray
fields that do not reward blur (WeatherBench-2 style, small xarray-in/xarray-out functions).

Per-frame tensor metrics (``mse``, ``psnr``, ``ssim``, collected in ``METRICS``): each returns one
value per frame, (B, K); averaging over samples gives a value per lead time. MSE is the mean over
the frame's known cells in the data's units; PSNR is computed per frame as 10 log10(data_range^2 /
MSE) and then averaged (not from the mean MSE of a whole set, as the earlier public implementation
did); SSIM is the Gaussian-window SSIM (11 px, sigma 1.5) of each channel at full precision,
averaged over channels, with unknown cells taken from the other field so they do not count as error.

Field metrics (``rmse``, ``csi``, ``fss``, ``sharpness``) take DataArrays in the toolkit convention:
dims (time, lat, lon), lat ascending (degrees_north), lon 0..360 (degrees_east), NaN where missing;
forecast and truth must share their coordinates exactly (ValueError otherwise), they reduce over
(lat, lon) and keep other dims. Events for CSI and FSS are ``wind_speed`` >= ``WIND_THRESHOLDS_MS``
or ``psl_deficit`` >= ``DEFICIT_THRESHOLDS_HPA``. Storm metrics: ``intensity_errors`` (of the
tables of ``climode.geo.storms.intensity``) and ``track_errors`` (great-circle, along- and cross-track).
Intervals over storms are ``climode.verification.intervals``.

Everywhere, a cell counts only where both forecast and target (truth) are finite.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr
from numpy.typing import ArrayLike
from torchmetrics.functional.image import structural_similarity_index_measure

from ..geo.storms import KM_PER_DEG, great_circle_km
from ..registry import Registry

SSIM_PIXELS = 128 * 64 * 64  # single-channel frame pixels per torchmetrics call (its CPU convolution
# unfolds every 11 x 11 window in double precision: ~1 kB per pixel)
FIELD_DIMS = ("lat", "lon")
WIND_THRESHOLDS_MS = (17.0, 33.0)  # 850 hPa wind speed events (gale, hurricane force) for csi / fss
DEFICIT_THRESHOLDS_HPA = (10.0, 30.0)  # PSL deficit events (psl_deficit) for csi / fss
INTENSITY = {
    "psl_min_hpa": ("psl_min_bias_hpa", "psl_min_abs_hpa", "hPa"),  # intensity -> bias, |error|, units
    "wind_max_ms": ("wind_max_bias_ms", "wind_max_abs_ms", "m s-1"),
}


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each frame over the cells finite in both -> (B, K)."""
    valid = torch.isfinite(target) & torch.isfinite(pred)
    sq = torch.where(valid, (torch.nan_to_num(pred) - torch.nan_to_num(target)) ** 2, torch.zeros((), dtype=pred.dtype))
    return sq.flatten(2).sum(2) / valid.flatten(2).sum(2).clamp(min=1)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each frame in dB -> (B, K); a perfect frame is capped at 100 dB."""
    return (10 * torch.log10(data_range**2 / mse(pred, target).clamp(min=1e-10))).clamp(max=100.0)


def known_in_both(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` and ``target`` with each one's unknown (NaN) cells taken from the other, and 0 where
    neither knows them: for metrics of whole frames, so that unknown cells count as no error."""
    target, pred = torch.where(torch.isfinite(target), target, pred), torch.where(torch.isfinite(pred), pred, target)
    return torch.nan_to_num(pred), torch.nan_to_num(target)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity of each frame -> (B, K)."""
    B, K, C, H, W = pred.shape
    dtype = pred.dtype
    pred, target = known_in_both(pred, target)
    pred, target = pred.reshape(-1, 1, H, W).double(), target.reshape(-1, 1, H, W).double()
    chunk = max(1, SSIM_PIXELS // (H * W))
    per_channel = torch.cat(
        [  # in chunks: one large call made the CPU convolution ask for tens of GB
            structural_similarity_index_measure(p, t, data_range=data_range, reduction="none")
            for p, t in zip(pred.split(chunk), target.split(chunk))
        ]
    )
    return per_channel.view(B, K, C).mean(2).to(dtype)


METRICS: Registry = Registry("metric", {"mse": mse, "psnr": psnr, "ssim": ssim})


# ------------------------------------------------------------------------------------ fields


def rmse(forecast: xr.DataArray, truth: xr.DataArray, dims: tuple[str, ...] = FIELD_DIMS) -> xr.DataArray:
    """Root mean squared error over ``dims`` weighted by cos(lat), over the cells finite in both.

    Parameters
    ----------
    forecast, truth : DataArray (time, lat, lon) or any dims including lat, on the same coordinates
        (ValueError otherwise).
    dims : the dims reduced.

    Returns
    -------
    DataArray over the other dims (e.g. time), in the variable's units; NaN where no cell is finite in both.
    """
    forecast, truth = xr.align(forecast, truth, join="exact")
    error2 = (forecast - truth) ** 2
    valid = error2.notnull()
    weight = np.cos(np.deg2rad(forecast["lat"])).where(valid, 0.0)
    total = weight.sum(list(dims))
    return np.sqrt((error2.fillna(0.0) * weight).sum(list(dims)) / total.where(total > 0))


def _events(field: xr.DataArray | np.ndarray, threshold: float, below: bool) -> xr.DataArray | np.ndarray:
    """Where ``field`` >= threshold (<= when ``below``); False where missing."""
    return field <= threshold if below else field >= threshold


def csi(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    threshold: float,
    *,
    below: bool = False,
    dims: tuple[str, ...] = FIELD_DIMS,
) -> xr.DataArray:
    """Critical success index hits / (hits + misses + false alarms) of the event ``value >= threshold``.

    Parameters
    ----------
    forecast, truth : DataArray (time, lat, lon) on the same coordinates, in the threshold's units.
    threshold : event threshold (e.g. ``WIND_THRESHOLDS_MS`` m s-1, ``DEFICIT_THRESHOLDS_HPA`` hPa).
    below : the event is ``value <= threshold`` instead.
    dims : the dims reduced; cells count only where finite in both.

    Returns
    -------
    DataArray over the other dims, in [0, 1] (1 perfect); NaN where neither field has an event.
    """
    forecast, truth = xr.align(forecast, truth, join="exact")
    valid = forecast.notnull() & truth.notnull()
    made, seen = _events(forecast, threshold, below) & valid, _events(truth, threshold, below) & valid
    hits, union = (made & seen).sum(list(dims)), (made | seen).sum(list(dims))  # union: hits + misses + false alarms
    return (hits / union.where(union > 0)).rename("csi")


def _box_sum(x: np.ndarray, half: int, axis: int, wrap: bool) -> np.ndarray:
    """Exact sum of integer ``x`` over the 2 half + 1 cells centred on each cell along ``axis``; cells
    beyond the ends count 0, or come round from the other end when ``wrap``."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half + 1, half)  # one more in front: the cumulative sum's origin
    total = np.cumsum(np.pad(x, pad, mode="wrap" if wrap else "constant"), axis=axis)
    size = x.shape[axis]
    return np.take(total, np.arange(2 * half + 1, 2 * half + 1 + size), axis) - np.take(total, np.arange(size), axis)


def _fss(
    forecast: np.ndarray, truth: np.ndarray, threshold: float, window: int, below: bool, wrap_lon: bool
) -> np.ndarray:
    """FSS of (..., lat, lon) arrays over their last two axes -> (...)."""
    valid = np.isfinite(forecast) & np.isfinite(truth)

    def window_sum(x: np.ndarray) -> np.ndarray:
        return _box_sum(_box_sum(x.astype(np.int64), window // 2, -2, False), window // 2, -1, wrap_lon)

    count = np.maximum(window_sum(valid), 1)
    fractions = [
        np.where(valid, window_sum(_events(field, threshold, below) & valid) / count, 0.0)
        for field in (forecast, truth)
    ]
    error = ((fractions[0] - fractions[1]) ** 2).sum((-2, -1))
    reference = (fractions[0] ** 2 + fractions[1] ** 2).sum((-2, -1))
    return np.where(reference > 0, 1.0 - error / np.where(reference > 0, reference, 1.0), np.nan)


def fss(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    threshold: float,
    window: int,
    *,
    below: bool = False,
    wrap_lon: bool = False,
) -> xr.DataArray:
    """Fractions skill score (Roberts & Lean 2008) of the event ``value >= threshold`` in square windows.

    At each cell finite in both fields, the event fraction of each field is taken over the cells of
    the ``window`` x ``window`` box centred on it that are on the grid and finite in both (cells
    beyond the grid's edges or missing are left out, not counted as "no event"); longitude wraps
    round when ``wrap_lon`` (a global grid). FSS = 1 - MSE(Pf, Po) / (mean(Pf^2) + mean(Po^2)),
    means over the cells finite in both; window 1 gives 1 - (misses + false alarms) /
    (forecast events + observed events).

    Parameters
    ----------
    forecast, truth : DataArray (time, lat, lon) on the same coordinates, in the threshold's units.
    threshold : event threshold; ``below``: the event is ``value <= threshold`` instead.
    window : odd number of cells on a side of the box (ValueError otherwise).

    Returns
    -------
    DataArray over the dims other than (lat, lon), in [0, 1] (1 perfect); NaN where neither field has an event.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the FSS window must be an odd number of cells >= 1, not {window}")
    forecast, truth = xr.align(forecast, truth, join="exact")
    return xr.apply_ufunc(
        _fss,
        forecast,
        truth,
        input_core_dims=[list(FIELD_DIMS)] * 2,
        kwargs={"threshold": threshold, "window": window, "below": below, "wrap_lon": wrap_lon},
    ).rename("fss")


def wind_speed(u: xr.DataArray, v: xr.DataArray) -> xr.DataArray:
    """Wind speed sqrt(u^2 + v^2) in m s-1 of winds (time, lat, lon) in m s-1 on the same coordinates."""
    u, v = xr.align(u, v, join="exact")
    return np.hypot(u, v).rename("wind_speed").assign_attrs(units="m s-1")


def psl_deficit(psl: xr.DataArray, reference: float | xr.DataArray | None = None) -> xr.DataArray:
    """Sea-level pressure deficit: environmental pressure minus PSL, in hPa (positive in a low).

    Parameters
    ----------
    psl : DataArray (time, lat, lon), Pa.
    reference : environmental pressure, Pa: a number or a DataArray over time. None takes the median
        of ``psl`` over (lat, lon) per time (missing cells left out). To score a forecast on the
        truth's environment, pass the truth's: ``reference=truth_psl.median(("lat", "lon"))``.

    Returns
    -------
    DataArray (time, lat, lon), hPa.
    """
    if reference is None:
        reference = psl.median(list(FIELD_DIMS))
    return ((reference - psl) / 100.0).transpose(*psl.dims, ...).rename("psl_deficit").assign_attrs(units="hPa")


def _gradient_sum(field: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Sum over the last two axes of |centred gradient| (cell units) of ``field`` at the interior cells
    where the gradients of both arrays are finite."""

    def magnitude(x: np.ndarray) -> np.ndarray:
        return np.hypot((x[..., 2:, 1:-1] - x[..., :-2, 1:-1]) / 2, (x[..., 1:-1, 2:] - x[..., 1:-1, :-2]) / 2)

    mine, theirs = magnitude(field), magnitude(other)
    return np.where(np.isfinite(mine) & np.isfinite(theirs), mine, 0.0).sum((-2, -1))


def _sharpness(forecast: np.ndarray, truth: np.ndarray) -> np.ndarray:
    total = _gradient_sum(truth, forecast)
    return np.where(total > 0, _gradient_sum(forecast, truth) / np.where(total > 0, total, 1.0), np.nan)


def sharpness(forecast: xr.DataArray, truth: xr.DataArray, dims: tuple[str, ...] = FIELD_DIMS) -> xr.DataArray:
    """Ratio of the mean gradient magnitude of the forecast to that of the truth.

    The gradient is by centred differences in cell units, (x[i+1] - x[i-1]) / 2 along each of the
    two ``dims``, at the interior cells where it is finite in both fields (so edges and cells next
    to missing ones are left out); unweighted mean.

    Parameters
    ----------
    forecast, truth : DataArray (time, lat, lon) on the same coordinates.
    dims : the two dims of the gradient.

    Returns
    -------
    DataArray over the other dims, dimensionless: 1 as sharp as the truth, < 1 blurrier, > 1 noisier
    or sharper; NaN where the truth is flat or no cell counts.
    """
    forecast, truth = xr.align(forecast, truth, join="exact")
    return xr.apply_ufunc(_sharpness, forecast, truth, input_core_dims=[list(dims)] * 2).rename("sharpness")


# ------------------------------------------------------------------------------------ storms


def intensity_errors(
    forecast: pd.DataFrame | xr.Dataset, truth: pd.DataFrame | xr.Dataset
) -> pd.DataFrame | xr.Dataset:
    """Errors of storm intensity: bias (forecast - truth) and absolute error, per time.

    Parameters
    ----------
    forecast, truth : tables as ``climode.geo.storms.intensity`` returns (columns time, psl_min_hpa
        [, wind_max_ms]), matched on ``time`` when both have that column, else on the index; or
        Datasets with those variables on the same coordinates. Times must agree (ValueError otherwise).

    Returns
    -------
    The same kind as the input: psl_min_bias_hpa, psl_min_abs_hpa (hPa) and, when both hold
    wind_max_ms, wind_max_bias_ms, wind_max_abs_ms (m s-1); DataFrame with a time column when matched on it.
    """
    measures = [name for name in INTENSITY if name in forecast and name in truth]
    if not measures:
        raise ValueError(f"intensity_errors needs {' or '.join(INTENSITY)} in both the forecast and the truth")
    if isinstance(forecast, xr.Dataset) and isinstance(truth, xr.Dataset):
        forecast, truth = xr.align(forecast, truth, join="exact")
        out = xr.Dataset()
        for name in measures:
            bias, absolute, units = INTENSITY[name]
            error = forecast[name] - truth[name]
            out[bias], out[absolute] = error.assign_attrs(units=units), abs(error).assign_attrs(units=units)
        return out
    if not (isinstance(forecast, pd.DataFrame) and isinstance(truth, pd.DataFrame)):
        raise TypeError("intensity_errors takes two DataFrames or two Datasets")
    keyed = "time" in forecast and "time" in truth
    if keyed:
        forecast, truth = forecast.set_index("time"), truth.set_index("time")
    if not forecast.index.equals(truth.index):
        raise ValueError("the forecast and truth intensities are not at the same times")
    out = pd.DataFrame(index=forecast.index)
    for name in measures:
        bias, absolute, _ = INTENSITY[name]
        out[bias] = forecast[name].to_numpy(float) - truth[name].to_numpy(float)
        out[absolute] = out[bias].abs()
    return out.reset_index() if keyed else out


def _as_array(values: ArrayLike | xr.DataArray, dim: str) -> xr.DataArray:
    """A DataArray as it is; a number or a 1-D sequence as a DataArray (over ``dim``)."""
    if isinstance(values, xr.DataArray):
        return values.astype(float)
    array = np.asarray(values, float)
    if array.ndim > 1:
        raise ValueError(f"track_errors takes numbers, 1-D arrays or DataArrays, not a {array.ndim}-D array")
    return xr.DataArray(array, dims=(dim,) * array.ndim)


def _wrap_degrees(difference: np.ndarray) -> np.ndarray:
    """A longitude difference in degrees brought into [-180, 180)."""
    return (difference + 180.0) % 360.0 - 180.0


def track_errors(
    forecast_lat: ArrayLike | xr.DataArray,
    forecast_lon: ArrayLike | xr.DataArray,
    truth_lat: ArrayLike | xr.DataArray,
    truth_lon: ArrayLike | xr.DataArray,
    truth_prev_lat: ArrayLike | xr.DataArray,
    truth_prev_lon: ArrayLike | xr.DataArray,
    *,
    hit_km: float = 300.0,
    dim: str = "case",
) -> xr.Dataset:
    """Storm-centre position errors: great-circle, along- and cross-track, and hits.

    Parameters
    ----------
    forecast_lat, forecast_lon : forecast centres (degrees_north, degrees_east; any longitude range),
        NaN where the forecast has none.
    truth_lat, truth_lon : true centres at the same times.
    truth_prev_lat, truth_prev_lon : true centres at the previous time; the motion from there to the
        truth centre gives the along-track direction.
    hit_km : the largest error of a hit, km.
    dim : the dim of 1-D non-DataArray inputs; DataArrays keep theirs. All are broadcast together
        (their coordinates must agree exactly).

    Returns
    -------
    Dataset over the broadcast dims with ``track_km`` (great-circle distance, km), ``along_km`` (km,
    positive: the forecast is ahead of the truth along its motion), ``cross_km`` (km, positive: to
    the right of the motion) and ``hit`` (bool: both centres exist and track_km <= hit_km). The
    components are in a local equirectangular projection about the truth centre (east km = dlon
    cos(truth lat) x 111.2, north km = dlat x 111.2; dlon wrapped across 0/360), good for errors of a
    few hundred km away from the poles; NaN where a centre is missing or the truth did not move.
    """
    arrays = xr.broadcast(
        *xr.align(
            *(
                _as_array(x, dim)
                for x in (forecast_lat, forecast_lon, truth_lat, truth_lon, truth_prev_lat, truth_prev_lon)
            ),
            join="exact",
        )
    )
    flat, flon, tlat, tlon, plat, plon = (a.values for a in arrays)
    distance = great_circle_km(flat, flon, tlat, tlon)
    east_km = KM_PER_DEG * np.cos(np.deg2rad(tlat))
    east, north = _wrap_degrees(flon - tlon) * east_km, (flat - tlat) * KM_PER_DEG
    move_east, move_north = _wrap_degrees(tlon - plon) * east_km, (tlat - plat) * KM_PER_DEG
    step = np.hypot(move_east, move_north)
    step = np.where(step > 0, step, np.nan)
    ahead, left = move_east / step, move_north / step  # unit vector of the motion (east, north)
    hit = distance <= hit_km  # False where a centre is missing (NaN distance)
    dims, coords = arrays[0].dims, arrays[0].coords
    return xr.Dataset(
        {
            "track_km": (dims, distance, {"units": "km"}),
            "along_km": (dims, east * ahead + north * left, {"units": "km"}),
            "cross_km": (dims, east * left - north * ahead, {"units": "km"}),
            "hit": (dims, hit),
        },
        coords=coords,
    )
