"""Forecasters scored on a dataset's samples, per lead time.

Every sample is forecast on its own times (``on_own_times``) and only its known target
frames are scored. Scores, each the mean over samples at one lead time (NaN left out):

- ``mse`` (normalised units; x1e3 in the protocols' tables: the paper's MSE x1e-3 on fields
  min-max scaled to [0, 1]), ``psnr`` (dB, mean of per-frame PSNR, data range 1) and ``ssim``
  (Gaussian 11 px, data range 1), from ``climode.verification.metrics``;
- ``lpips``: with the user's weights (``lpips``, a ``climode.verification.lpips.LPIPS``) the
  perceptual distance; else NaN (reported as n/a): its backbone weights cannot be had here, and
  no stand-in number is made up;
- with ``storms`` (storm tiles of a shard store, U850/V850/PSL): ``rmse_<VAR>`` in the variable's
  physical units (cos-latitude weighted), ``track_km``, ``psl_min_abs_hpa``, ``wind_max_abs_ms``
  from ``climode.verify``, the storm followed from its stored track position at the last input.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch.utils.data import DataLoader

from ..checkpoint import Checkpoint
from ..data import collate
from ..data.samples import by_times
from ..errors import ClimodeError
from ..model.base import last_observed
from ..model.baselines import BASELINES
from ..times import from_hours
from .metrics import METRICS, known_in_both
from .truth import MODEL, lat_weighted_rmse, verify

Forecaster = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
STORM_SCORES = ("track_km", "psl_min_abs_hpa", "wind_max_abs_ms")


def on_own_times(forecast: Forecaster, batch: dict) -> torch.Tensor:
    """Run ``forecast`` on a batch (``collate``) so that every sample is forecast on its own input and
    query times only: all at once when ``forecast.per_sample_times`` is true (it takes (B, L) and (B, K)
    times), else one group of samples sharing their times at a time. Returns (B, K, C, H, W), NaN
    where a sample asks for no frame."""
    out = batch["frames_out"].new_full(batch["frames_out"].shape, float("nan"))
    for rows, columns, part in by_times(batch, not getattr(forecast, "per_sample_times", False)):
        out[rows[:, None], columns[None]] = forecast(part["frames_in"], part["times_in"], part["times_out"])
    return out


class ModelForecaster:
    """A model as a ``Forecaster``: its ``frames``; takes each sample's own times if the model does."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.per_sample_times = getattr(model, "per_sample_times", False)

    def __call__(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
        return self.model(frames, times, query_times)["frames"]


def _fields(
    frames: np.ndarray,
    hours: np.ndarray,
    variables: list[str],
    lat: np.ndarray,
    lon: np.ndarray,
    reference: float | None = None,
) -> xr.Dataset:
    """Physical frames (T, C, y, x) at ``hours`` as a (time, lat, lon) Dataset for ``climode.verify``."""
    times = from_hours(hours)
    ds = xr.Dataset(
        {v: (("time", "lat", "lon"), frames[:, c]) for c, v in enumerate(variables)},
        coords={"time": times, "lat": lat, "lon": lon},
    )
    if reference is not None:
        ds = ds.assign_coords(forecast_reference_time=from_hours([reference])[0])
    return ds


def storm_scores(
    pred: np.ndarray,
    truth: np.ndarray,
    leads: np.ndarray,
    last_input: np.ndarray,
    variables: list[str],
    lat: np.ndarray,
    lon: np.ndarray,
    centre: tuple[float, float] | None,
) -> dict[str, np.ndarray]:
    """Physical-unit scores of one sample's forecast: pred and truth (K, C, y, x) at ``leads`` (K,)
    hours after its last input frame ``last_input`` (C, y, x). Returns ``rmse_<VAR>`` and the storm
    scores, each (K,), NaN where undefined."""
    forecast = _fields(pred, leads, variables, lat, lon, reference=0.0)
    truth_ds = _fields(np.concatenate((last_input[None], truth)), np.concatenate(([0.0], leads)), variables, lat, lon)
    out = {f"rmse_{v}": lat_weighted_rmse(forecast[v], truth_ds[v].isel(time=slice(1, None))).values for v in variables}
    if "PSL" in variables:
        try:
            scores = verify(forecast, truth_ds, centre)["methods"][MODEL]
        except ClimodeError:  # no storm near the track position in this tile: no storm scores
            scores = {}
        out.update({name: np.array(scores[name], float) for name in STORM_SCORES if name in scores})
    return out


class _Means:
    """Running means per (method, score, lead) that leave NaN values out; with ``keep``, also every
    finite value as a row (method, sample, lead, score, value)."""

    def __init__(self, keep: bool = False):
        self.sums: dict = defaultdict(float)
        self.counts: dict = defaultdict(int)
        self.rows: list[tuple] | None = [] if keep else None

    def add(self, method: str, score: str, lead: float, value: float, sample: int) -> None:
        if np.isfinite(value):
            self.sums[(method, score, lead)] += value
            self.counts[(method, score, lead)] += 1
            if self.rows is not None:
                self.rows.append((method, sample, lead, score, value))

    def table(self, methods: list[str], scores: list[str], leads: list[float]) -> dict:
        mean = lambda key: self.sums[key] / self.counts[key] if self.counts[key] else float("nan")
        return {m: {s: [mean((m, s, lead)) for lead in leads] for s in scores} for m in methods}


@torch.no_grad()
def score(
    forecasters: dict[str, Forecaster],
    dataset,
    batch_size: int = 16,
    storms: bool = False,
    cases: bool = False,
    lpips: Callable | None = None,
) -> dict:
    """Mean of each score per lead time for each forecaster (``fn(frames, times, query_times) ->
    frames``, normalised units) on ``dataset``'s samples.

    Returns ``{"lead_times": [...], "samples": [per lead], "methods": {name: {score: [per lead]}}}``,
    lead times in the data's units after each sample's own last input; scores as in the module
    docstring (NaN where undefined). With ``cases``, also ``"cases"``: a DataFrame of every finite
    score of every sample (columns method, sample, storm, lead, score, value; ``storm`` the sample's
    storm where the dataset knows it, else the sample's index as text), for intervals over storms."""
    means, samples = _Means(keep=cases), defaultdict(int)
    metrics = dict(METRICS.items()) | ({"lpips": _per_frame(lpips)} if lpips is not None else {})
    names = list(forecasters)
    physical = storms and dataset.info.normalisation is not None
    start = 0
    for batch in DataLoader(dataset, batch_size, collate_fn=collate):
        frames, times, query, target = (batch[k] for k in ("frames_in", "times_in", "times_out", "frames_out"))
        observed = torch.isfinite(frames).flatten(2).any(2)
        last_input = torch.where(observed, times, -torch.inf).max(1).values
        leads = (query - last_input[:, None]).tolist()
        known = (torch.isfinite(target).flatten(2).any(2) & torch.isfinite(query)).tolist()
        cells = [(b, k) for b in range(len(known)) for k in range(len(known[b])) if known[b][k]]
        for b, k in cells:
            samples[leads[b][k]] += 1
        if not cells:
            start += len(frames)
            continue
        rows, cols = (torch.tensor(index) for index in zip(*cells))
        for name in names:
            pred = on_own_times(forecasters[name], batch)
            for metric, fn in metrics.items():
                values = fn(pred[rows, cols].unsqueeze(1), target[rows, cols].unsqueeze(1))[:, 0].tolist()
                for (b, k), value in zip(cells, values):
                    means.add(name, metric, leads[b][k], value, start + b)
            if physical:
                _add_storm_scores(means, name, dataset, start, pred, batch, leads, known)
        start += len(frames)
    lead_times = sorted(samples)
    scored = ["mse", "psnr", "ssim", "lpips"]
    if physical:
        scored += [f"rmse_{v}" for v in dataset.info.variables] + [
            s for s in STORM_SCORES if any(k[1] == s for k in means.counts)
        ]
    out = {
        "lead_times": lead_times,
        "samples": [samples[lead] for lead in lead_times],
        "methods": means.table(names, scored, lead_times),
    }
    if cases:
        out["cases"] = _cases(means.rows, dataset)
    return out


def _per_frame(distance: Callable) -> Callable:
    """A distance of frames (N, C, H, W) -> (N,) as a per-frame metric (B, K, C, H, W) -> (B, K), cells
    unknown to either side counting as no difference (``known_in_both``, as SSIM)."""

    def metric(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = known_in_both(pred, target)
        return distance(pred.flatten(0, 1), target.flatten(0, 1)).view(pred.shape[:2])

    return metric


def _cases(rows: list[tuple], dataset) -> pd.DataFrame:
    """The kept rows as a DataFrame, with each sample's storm (its index as text where unknown)."""
    frame = pd.DataFrame(rows, columns=["method", "sample", "lead", "score", "value"])
    place = dataset.place if dataset.info.places else None
    storm = {i: (place(i)["storm"] if place else None) or str(i) for i in frame["sample"].unique()}
    return frame.assign(storm=frame["sample"].map(storm))[["method", "sample", "storm", "lead", "score", "value"]]


def _add_storm_scores(
    means: _Means,
    name: str,
    dataset,
    start: int,
    pred: torch.Tensor,
    batch: dict,
    leads: list[list[float]],
    known: list[list[bool]],
) -> None:
    """Add the physical-unit scores of one method's batch forecast ``pred`` (B, K, C, H, W)."""
    stats, variables = dataset.info.normalisation, dataset.info.variables
    physical = lambda x: stats.denormalise(x.double().numpy(), variables)
    last_inputs = last_observed(batch["frames_in"])
    for b in range(len(pred)):
        ks = [k for k, ok in enumerate(known[b]) if ok]
        if not ks:
            continue
        place = dataset.place(start + b)
        if place["lat"] is None:
            return
        last = physical(last_inputs[b])
        scores = storm_scores(
            physical(pred[b, ks]),
            physical(batch["frames_out"][b, ks]),
            np.array([leads[b][k] for k in ks]),
            last,
            variables,
            place["lat"],
            place["lon"],
            place["centre"],
        )
        for score_name, values in scores.items():
            for k, value in zip(ks, values):
                means.add(name, score_name, leads[b][k], float(value), start + b)


def score_checkpoint(ckpt: Checkpoint, dataset, batch_size: int = 16, lpips: Callable | None = None) -> dict:
    """``score`` of the checkpoint's model next to the baselines (``climode.model.baselines``);
    storm scores too when the dataset places its samples (``DatasetInfo.places``: a shard store's tiles)."""
    name = ckpt.model.config.architecture
    forecasters = {name: ModelForecaster(ckpt.model), **{k: v for k, v in BASELINES.items() if k != name}}
    return score(forecasters, dataset, batch_size, storms=dataset.info.places, lpips=lpips)


def format_dataset_scores(scores: dict, time_units: str) -> str:
    """``score``'s result as a text table: a row per lead time (and the mean), a column per metric and method."""
    methods = list(scores["methods"])
    header = [f"lead ({time_units})"] + [f"{m.upper()} {name}" for m in METRICS for name in methods]
    rows = [header]
    for i, lead in enumerate(scores["lead_times"]):
        rows.append(
            [f"{lead:g}"]
            + [
                f"{scores['methods'][n][m][i]:.5f}" if m == "mse" else f"{scores['methods'][n][m][i]:.3f}"
                for m in METRICS
                for n in methods
            ]
        )
    mean = lambda xs: sum(xs) / len(xs)
    rows.append(
        ["mean"]
        + [
            f"{mean(scores['methods'][n][m]):.5f}" if m == "mse" else f"{mean(scores['methods'][n][m]):.3f}"
            for m in METRICS
            for n in methods
        ]
    )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows)
