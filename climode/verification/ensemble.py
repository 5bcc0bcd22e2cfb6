"""Verification of ensemble forecasts, WeatherBench-2 style: small xarray-in, xarray-out functions.

An ensemble forecast has fields with dims (realization, time, lat, lon): the coordinate ``realization``
numbers the members 0..m-1; a deterministic forecast is the same without ``realization`` and is scored
as a one-member ensemble. The truth holds the same fields, dims (time, lat, lon), on the same
coordinates (ValueError otherwise). Fields follow the toolkit convention (U850/V850 m s-1, PSL Pa,
NaN where missing); a status flag (``filled``, or any variable the truth lacks) is not scored.

A cell counts only where the truth and every member are finite. Means over cells are weighted by
cos(lat), as ``climode.verification.metrics.rmse``, and reduce ``dims`` (default (lat, lon)), keeping the
other dims (time). Counts (``rank_histogram``, ``reliability``) are unweighted.

Scores, and what the ``scores`` package (Bureau of Meteorology) computes:

- ``crps``: the fair CRPS of each cell (Ferro 2014: unbiased for the CRPS of the distribution the
  members are drawn from), mean |x_i - y| - sum_ij |x_i - x_j| / (2 m (m - 1)), computed here from the
  sorted members (sum_ij |x_i - x_j| = 2 sum_i (2 i - m + 1) x_(i)): the same numbers as
  ``scores.probability.crps_for_ensemble(method="fair")`` (a test holds them equal) in a tenth of the
  time, which the calibration of members (``climode.ensemble.calibrate``, hundreds of ensembles) needs;
  a one-member forecast scores its absolute error (the fair estimate would divide by m - 1 = 0).
- ``brier``: the Brier score of each cell is ``scores.probability.brier_score`` (with its checks of
  the probabilities and events).
- The means over cells are computed here, not by ``scores``: its ``weights`` changed meaning between
  the versions allowed (2.1 and 2.2 multiply by them without normalising, 2.3 on take xarray's
  weighted mean), and the cell rule above is climode's.
- ``spread_skill``: not in ``scores``; computed here, with the sqrt((m + 1) / m) factor of Fortin
  et al. (2014) that makes a calibrated finite ensemble score 1.
- ``rank_histogram``: ``scores.probability.rank_histogram`` is only in scores >= 2.5, returns
  relative frequencies and shares a tied observation among its ranks; here the ranks are counted,
  ties broken at random (Hamill 2001) with a seeded generator, so that each cell adds one whole count
  and a chi-square test applies.
- ``reliability``: the binned reliability diagram is not in ``scores`` (its ``isotonic_fit`` is the
  CORP one); computed here.
- ``ensemble_scores``: all of them per lead time as a tidy table, what ``climode.verify`` and
  ``climode evaluate`` show; the Brier scores are of the members' share of 850 hPa wind speed above
  each threshold (the plain Brier score of that probability, not the fair one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
import scores.probability
import xarray as xr

from ..io.write import fields
from ..times import hours_after
from .metrics import FIELD_DIMS, WIND_THRESHOLDS_MS, wind_speed

MEMBER = "realization"  # the ensemble member dim (CF standard_name realization)
XArray = TypeVar("XArray", xr.DataArray, xr.Dataset)


def _members(forecast: XArray) -> XArray:
    """``forecast`` with a ``realization`` dim: a deterministic one as a one-member ensemble."""
    return forecast if MEMBER in forecast.dims else forecast.expand_dims({MEMBER: [0]})


def _paired(forecast: XArray, truth: XArray) -> tuple[XArray, XArray, XArray]:
    """Forecast (with ``realization``) and truth on the same coordinates, and where a cell counts: the
    truth and every member finite. Datasets: the forecast fields the truth holds (no status flags)."""
    if isinstance(forecast, xr.Dataset):
        names = [name for name in fields(forecast) if name in truth.data_vars]
        if not names:
            raise ValueError(
                f"no forecast field ({', '.join(fields(forecast))}) is in the truth "
                f"({', '.join(map(str, truth.data_vars))})"
            )
        forecast, truth = forecast[names], truth[names]
    forecast, truth = xr.align(_members(forecast), truth, join="exact")
    return forecast, truth, truth.notnull() & forecast.notnull().all(MEMBER)


def _mean(values: XArray, valid: XArray, dims: Sequence[str]) -> XArray:
    """Mean over ``dims`` of ``values`` at the ``valid`` cells, weighted by cos(lat); NaN where none is valid."""
    weight = valid * (np.cos(np.deg2rad(valid["lat"])) if "lat" in valid.coords else 1.0)
    total = weight.sum(list(dims))
    return (values.where(valid, 0.0) * weight).sum(list(dims)) / total.where(total > 0)


def _fair_crps(members: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Fair CRPS per cell of ``members`` (..., m) against ``truth`` (...); the absolute error when m is 1."""
    m = members.shape[-1]
    error = np.abs(members - truth[..., None]).mean(-1)
    if m == 1:
        return error
    rank = 2.0 * np.arange(m) - m + 1
    return error - (np.sort(members, -1) * rank).sum(-1) / (m * (m - 1))


def crps(forecast: XArray, truth: XArray, dims: Sequence[str] = FIELD_DIMS) -> XArray:
    """Fair continuous ranked probability score, mean over the cells of ``dims``.

    Parameters
    ----------
    forecast : DataArray or Dataset, dims (realization, time, lat, lon), or (time, lat, lon) for a
        deterministic forecast (its CRPS is its mean absolute error).
    truth : the same (a Dataset: the forecast fields it holds are scored), dims (time, lat, lon).
    dims : the dims reduced.

    Returns
    -------
    DataArray (named ``crps``) or Dataset over the other dims (time), in the fields' units (0
    perfect); NaN where no cell counts.
    """
    forecast, truth, valid = _paired(forecast, truth)
    cell = xr.apply_ufunc(
        _fair_crps,
        forecast.where(valid),
        truth.where(valid),
        input_core_dims=[[MEMBER], []],
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    score = _mean(cell, valid, dims)
    return score.rename("crps") if isinstance(score, xr.DataArray) else score


def spread_skill(forecast: xr.DataArray, truth: xr.DataArray, dims: Sequence[str] = FIELD_DIMS) -> xr.Dataset:
    """Ensemble spread, the error of the ensemble mean and their ratio, over the cells of ``dims``.

    Parameters
    ----------
    forecast : DataArray (realization, time, lat, lon) of m members.
    truth : DataArray (time, lat, lon) on the same coordinates.
    dims : the dims reduced.

    Returns
    -------
    Dataset over the other dims (time): ``spread`` = sqrt(mean over cells of the members' variance
    (ddof=1)) and ``skill`` = RMSE of the ensemble mean, in the field's units; ``ratio`` =
    sqrt((m + 1) / m) spread / skill, 1 for a calibrated ensemble, < 1 under-dispersive. Spread and
    ratio are NaN for one member.
    """
    forecast, truth, valid = _paired(forecast, truth)
    m = forecast.sizes[MEMBER]
    skill = np.sqrt(_mean((forecast.mean(MEMBER) - truth) ** 2, valid, dims))
    spread = np.sqrt(_mean(forecast.var(MEMBER, ddof=1), valid, dims)) if m > 1 else xr.full_like(skill, np.nan)
    ratio = np.sqrt((m + 1) / m) * spread / skill.where(skill > 0)
    units = {"units": forecast.attrs["units"]} if "units" in forecast.attrs else {}
    return xr.Dataset(
        {
            "spread": spread.assign_attrs(units),
            "skill": skill.assign_attrs(units),
            "ratio": ratio.assign_attrs(units="1"),
        }
    )


def rank_histogram(
    forecast: XArray,
    truth: XArray,
    dims: Sequence[str] = FIELD_DIMS,
    *,
    pooled: bool = False,
    seed: int | np.random.Generator = 0,
) -> XArray:
    """Counts of the truth's rank among the members (Talagrand diagram), over the cells of ``dims``.

    The rank of the truth in a cell is the number of members below it, 0..m; where members equal it
    the rank is drawn at random among the tied ones (uniformly, from ``seed``), so a calibrated
    ensemble gives a flat histogram in expectation; U-shaped: under-dispersive; a hump: over-dispersive.

    Parameters
    ----------
    forecast : DataArray or Dataset (realization, time, lat, lon) of m members.
    truth : the same, dims (time, lat, lon).
    dims : the dims reduced.
    pooled : count over every dim (one histogram), not per time.
    seed : seed or generator for breaking ties.

    Returns
    -------
    DataArray (named ``rank_histogram``) or Dataset of int counts with dims (time, rank) or (rank,)
    when ``pooled``; ``rank`` 0..m. Cells that do not count are left out.
    """
    forecast, truth, valid = _paired(forecast, truth)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def ranks(members: np.ndarray, observed: np.ndarray) -> np.ndarray:
        below = (members < observed[..., None]).sum(-1)
        ties = (members == observed[..., None]).sum(-1)
        return below + np.floor(rng.random(below.shape) * (ties + 1)).astype(np.int64)

    rank = xr.apply_ufunc(ranks, forecast, truth, input_core_dims=[[MEMBER], []], dask="allowed")
    bins = xr.DataArray(np.arange(forecast.sizes[MEMBER] + 1), dims="rank")
    reduced = list(valid.dims) if pooled else list(dims)
    counts = ((rank == bins) & valid).sum(reduced).assign_coords(rank=bins)
    return counts.rename("rank_histogram") if isinstance(counts, xr.DataArray) else counts


def _probability_event(probability: xr.DataArray, event: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Probability and event (as floats) on the same coordinates, NaN where either is missing."""
    probability, event = xr.align(probability, event, join="exact")
    valid = probability.notnull() & event.notnull()
    return probability.where(valid), event.astype(float).where(valid)


def brier(probability: xr.DataArray, event: xr.DataArray, dims: Sequence[str] = FIELD_DIMS) -> xr.DataArray:
    """Brier score mean((probability - event)^2) over the cells of ``dims``.

    Parameters
    ----------
    probability : DataArray (time, lat, lon), forecast probability of the event, in [0, 1]
        (ValueError otherwise), e.g. the share of members above a threshold.
    event : DataArray (time, lat, lon) on the same coordinates, 1 where the event happened, 0 where
        not (bool or numbers; ValueError for other values). Cells count where both are finite.
    dims : the dims reduced.

    Returns
    -------
    DataArray (named ``brier``) over the other dims (time), in [0, 1] (0 perfect); NaN where no cell counts.
    """
    probability, event = _probability_event(probability, event)
    cell = scores.probability.brier_score(probability, event, preserve_dims="all")
    return _mean(cell, probability.notnull(), dims).rename("brier")


def reliability(
    probability: xr.DataArray, event: xr.DataArray, bins: int = 10, dims: Sequence[str] | None = None
) -> xr.Dataset:
    """Reliability diagram: how often the event happened where it was forecast with each probability.

    Parameters
    ----------
    probability, event : as ``brier``.
    bins : equal bins of probability over [0, 1] (a probability of 1 is in the last).
    dims : the dims pooled (default: all).

    Returns
    -------
    Dataset with dim ``probability`` (the bins' centres) and the other dims: ``observed_frequency``
    (share of the bin's cells with the event; on the diagonal, observed = probability, when
    reliable), ``mean_probability`` (the forecasts' mean in the bin) and ``count`` (cells, unweighted);
    the frequencies are NaN in an empty bin.
    """
    probability, event = _probability_event(probability, event)
    reduced = list(probability.dims) if dims is None else list(dims)
    index = np.clip(np.floor(probability * bins), 0, bins - 1)  # NaN stays NaN: in no bin
    centres = (np.arange(bins) + 0.5) / bins
    members = index == xr.DataArray(np.arange(bins), dims="probability")
    count = members.sum(reduced)
    known = count.where(count > 0)
    return xr.Dataset(
        {
            "observed_frequency": event.where(members, 0.0).sum(reduced) / known,
            "mean_probability": probability.where(members, 0.0).sum(reduced) / known,
            "count": count,
        }
    ).assign_coords(probability=("probability", centres, {"long_name": "forecast probability, bin centre"}))


def _exceedance(forecast: xr.DataArray, threshold: float, below: bool = False) -> xr.DataArray:
    """Share of the members >= ``threshold`` (<= when ``below``) per cell, dims (time, lat, lon); NaN
    where a member is missing."""
    forecast = _members(forecast)
    events = forecast <= threshold if below else forecast >= threshold
    return events.mean(MEMBER).where(forecast.notnull().all(MEMBER))


def _event(truth: xr.DataArray, threshold: float, below: bool = False) -> xr.DataArray:
    """1.0 where ``truth`` >= ``threshold`` (<= when ``below``), 0.0 where not, NaN where missing."""
    return (truth <= threshold if below else truth >= threshold).astype(float).where(truth.notnull())


def _leads(forecast: xr.Dataset) -> np.ndarray:
    """Hours of each forecast time after the reference: ``lead_time`` (hours or timedelta), else from the
    scalar ``forecast_reference_time``."""
    if "lead_time" in forecast.coords and forecast["lead_time"].dims == ("time",):
        lead = forecast["lead_time"].values
        return lead / np.timedelta64(1, "h") if lead.dtype.kind == "m" else lead.astype(float)
    if "forecast_reference_time" in forecast.coords and not forecast["forecast_reference_time"].ndim:
        reference = forecast["forecast_reference_time"].values[()]
        return np.array([hours_after(t, reference) for t in forecast["time"].values])
    raise ValueError("the forecast has neither a lead_time coordinate (time; hours) nor a forecast_reference_time")


def ensemble_scores(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    thresholds: Sequence[float] = WIND_THRESHOLDS_MS,
    dims: Sequence[str] = FIELD_DIMS,
) -> pd.DataFrame:
    """CRPS, spread, skill and spread-skill ratio of each field and Brier scores of 850 hPa wind speed
    events, per lead time, as one tidy table.

    Parameters
    ----------
    forecast : Dataset, fields (realization, time, lat, lon) (or (time, lat, lon): one member), with a
        ``lead_time`` coordinate (time; hours) or a scalar ``forecast_reference_time``.
    truth : Dataset, the same fields (time, lat, lon) on the same coordinates; the forecast fields it
        lacks, and status flags, are not scored.
    thresholds : 850 hPa wind speeds, m s-1: the events ``wind_speed(U850, V850) >= threshold``
        (Brier scores of the members' share, when both winds are scored).
    dims : the dims reduced (every dim but time and realization).

    Returns
    -------
    pandas.DataFrame with columns ``lead`` (hours), ``variable`` (a field, or ``wind_speed>=17`` for an
    event), ``metric`` (``crps``, ``spread``, ``skill`` in the field's units, ``ratio``; ``brier``, 0..1)
    and ``value`` (NaN where no cell counts); rows by variable and metric, in time order.
    """
    forecast, truth, _ = _paired(forecast, truth)
    leads = _leads(forecast)
    results: list[tuple[str, str, xr.DataArray]] = []
    for name in map(str, forecast.data_vars):
        results.append((name, "crps", crps(forecast[name], truth[name], dims)))
        spread = spread_skill(forecast[name], truth[name], dims)
        results += [(name, metric, spread[metric]) for metric in ("spread", "skill", "ratio")]
    if {"U850", "V850"} <= set(forecast.data_vars):
        speed = wind_speed(forecast["U850"], forecast["V850"])
        observed = wind_speed(truth["U850"], truth["V850"])
        for threshold in thresholds:
            score = brier(_exceedance(speed, threshold), _event(observed, threshold), dims)
            results.append((f"wind_speed>={threshold:g}", "brier", score))
    frames = []
    for variable, metric, values in results:
        if values.dims != ("time",):
            raise ValueError(f"ensemble_scores reduces every dim but time; {metric} of {variable} has {values.dims}")
        frames.append(pd.DataFrame({"lead": leads, "variable": variable, "metric": metric, "value": values.values}))
    return pd.concat(frames, ignore_index=True)
