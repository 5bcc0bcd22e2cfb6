"""Score forecasts against the baselines (persistence, linear extrapolation, advection), per lead time.

``python -m climode.evaluate --checkpoint CKPT --dataset NAME [--json FILE]`` scores a trained model
on a dataset; ``python -m climode.evaluate --forecast F.nc --truth T.nc [--json FILE] [--storm LAT,LON]``
verifies a forecast file (what ``python -m climode.forecast`` writes) against a truth file: RMSE per
variable, storm track and intensity errors (see ``climode.verify``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader

from .baselines import BASELINES
from .checkpoint import Checkpoint, load_model
from .config import config_from_dict, replace
from .data import DATASETS, collate, open_dataset
from .data.fields import open_fields
from .errors import ClimodeError, cli
from .files import replacing
from .metrics import METRICS
from .verify import format_table as format_verification
from .verify import verify

MODE_ONLY = {"checkpoint": ("dataset", "data"),
             "forecast": ("truth", "storm", "vars", "time_in_hours", "reference_time")}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m climode.evaluate", description=__doc__)
    p.add_argument("--checkpoint", help="model.safetensors or a training .ckpt")
    p.add_argument("--forecast", help="forecast NetCDF to verify (instead of --checkpoint)")
    p.add_argument("--truth", help="with --forecast: NetCDF file with the true fields")
    p.add_argument("--storm", help="with --forecast: LAT,LON near the storm at the forecast reference time "
                                   "(default: the deepest PSL minimum of the truth then)")
    p.add_argument("--vars", help="with --forecast: names in the truth file, e.g. U850=u,V850=v,PSL=msl")
    p.add_argument("--time-in-hours", action="store_true", help="the truth's time axis without units holds hours")
    p.add_argument("--reference-time", help="origin of such hours, e.g. '1996-01-05 00:00:00'")
    p.add_argument("--dataset", choices=DATASETS, help="dataset (default: the one the model was trained on)")
    p.add_argument("--data", help="data file for file-backed datasets")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", help="also write the scores to this JSON file")
    return p


def _check_channels(ckpt: Checkpoint, dataset, name: str) -> None:
    channels = dataset[0]["frames_in"].shape[1]
    expected = ckpt.variables
    if channels != len(expected):
        raise ClimodeError(f"checkpoint {ckpt.path} was trained on {len(expected)} channel(s) ({', '.join(expected)}) "
                           f"but dataset {name} has {channels} ({', '.join(dataset.variables)})")


def on_own_times(forecast, frames: torch.Tensor, times: torch.Tensor, query: torch.Tensor,
                 present_in: torch.Tensor, present_out: torch.Tensor) -> torch.Tensor:
    """Run ``forecast`` for each sample of a batch collated on a union time grid with only that
    sample's own input and query times, so that no sample's forecast depends on the others' times
    (recursive decoding composes each query from the previous one). Samples sharing their times are
    run together. Returns (B, K, C, H, W) on the union query grid, NaN at others' query times."""
    B, K = present_out.shape
    out = frames.new_full((B, K, *frames.shape[2:]), float("nan"))
    groups: dict = defaultdict(list)
    for b in range(B):
        groups[(tuple(present_in[b].tolist()), tuple(present_out[b].tolist()))].append(b)
    for (mask_in, mask_out), rows in groups.items():
        i, k = torch.tensor(mask_in), torch.tensor(mask_out)
        if k.any():
            rows_t = torch.tensor(rows)
            out[rows_t[:, None], k.nonzero().flatten()[None]] = forecast(frames[rows_t][:, i], times[i], query[k])
    return out


@torch.no_grad()
def score(ckpt: Checkpoint, dataset, batch_size: int = 16) -> dict:
    """Mean of each metric per lead time for the model and the baselines (``climode.baselines``).

    Returns ``{"lead_times": [...], "methods": {name: {metric: [value per lead time]}}}``,
    lead times in the data's time units after each sample's own last input time. Every forecast
    sees only its own sample's times (``on_own_times``).
    """
    forecasters = {"vid-ode": lambda f, t, s: ckpt.model(f, t, s)["frames"], **BASELINES}
    sums: dict = defaultdict(lambda: defaultdict(float))
    counts: dict = defaultdict(int)
    for batch in DataLoader(dataset, batch_size, collate_fn=collate):
        frames, times, query, target = (batch[k] for k in ("frames_in", "times_in", "times_out", "frames_out"))
        last_input = torch.where(batch["present_in"], times, -torch.inf).max(1).values  # each sample's own
        leads = (query[None] - last_input[:, None]).tolist()  # (B, K)
        known = (torch.isfinite(target).flatten(2).any(2) & batch["present_out"]).tolist()
        cells = [(b, k) for b in range(len(known)) for k in range(len(known[b])) if known[b][k]]
        rows, cols = (torch.tensor(index) for index in zip(*cells)) if cells else (torch.zeros(0, dtype=torch.long),) * 2
        for name, forecast in forecasters.items():
            pred = on_own_times(forecast, frames, times, query, batch["present_in"], batch["present_out"])
            for metric, fn in METRICS.items():  # only each sample's own known frames are scored
                values = fn(pred[rows, cols].unsqueeze(1), target[rows, cols].unsqueeze(1))[:, 0].tolist()
                for (b, k), value in zip(cells, values):
                    sums[(name, metric)][leads[b][k]] += value
        for b, k in cells:
            counts[leads[b][k]] += 1
    lead_times = sorted(counts)
    return {"lead_times": lead_times,
            "methods": {name: {metric: [sums[(name, metric)][lead] / counts[lead] for lead in lead_times]
                               for metric in METRICS} for name in forecasters}}


def format_table(scores: dict, time_units: str) -> str:
    methods = list(scores["methods"])
    header = [f"lead ({time_units})"] + [f"{m.upper()} {name}" for m in METRICS for name in methods]
    rows = [header]
    for i, lead in enumerate(scores["lead_times"]):
        rows.append([f"{lead:g}"] + [f"{scores['methods'][n][m][i]:.5f}" if m == "mse" else
                                     f"{scores['methods'][n][m][i]:.3f}" for m in METRICS for n in methods])
    mean = lambda xs: sum(xs) / len(xs)
    rows.append(["mean"] + [f"{mean(scores['methods'][n][m]):.5f}" if m == "mse" else
                            f"{mean(scores['methods'][n][m]):.3f}" for m in METRICS for n in methods])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows)


def _check_mode(args: argparse.Namespace) -> str:
    """The mode, "checkpoint" or "forecast": exactly one of the two options, with only its own options."""
    if (args.checkpoint is None) == (args.forecast is None):
        raise ClimodeError("give exactly one of --checkpoint (score a model on a dataset) or --forecast "
                           "(verify a forecast file against --truth)")
    mode, other = ("forecast", "checkpoint") if args.forecast else ("checkpoint", "forecast")
    stray = [f"--{name.replace('_', '-')}" for name in MODE_ONLY[other] if getattr(args, name) not in (None, False)]
    if stray:
        raise ClimodeError(f"{', '.join(stray)} only go(es) with --{other}, not --{mode}")
    if mode == "forecast" and args.truth is None:
        raise ClimodeError("--forecast needs --truth FILE (the true fields to verify against)")
    return mode


def _storm(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` (degrees) -> (lat, lon)."""
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise ClimodeError(f"--storm {text!r} is not LAT,LON in degrees, e.g. 15.5,300") from None
    if not (-90.0 <= lat <= 90.0 and np.isfinite(lon)):
        raise ClimodeError(f"--storm {text!r}: latitude must be in -90..90 and longitude finite")
    return lat, lon % 360.0


def _open_forecast(path: str) -> xr.Dataset:
    """The forecast file, loaded: its (time, lat, lon) variables and coordinates."""
    if not Path(path).is_file():
        raise ClimodeError(f"forecast file {path} not found")
    try:
        ds = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True), decode_timedelta=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClimodeError(f"cannot open forecast {path}: {exc}") from None
    fields = [name for name, da in ds.data_vars.items() if set(da.dims) == {"time", "lat", "lon"}]
    if not fields:
        raise ClimodeError(f"forecast {path} has no (time, lat, lon) variable "
                           f"(it holds {', '.join(map(str, ds.data_vars)) or 'none'})")
    with ds:
        return ds[fields].load()


def _write_json(path: str, scores: dict) -> None:
    try:
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(scores, indent=2))
    except OSError as exc:
        raise ClimodeError(f"cannot write {path}: {exc.strerror}") from None


def _verify_files(args: argparse.Namespace) -> None:
    """The --forecast mode: score the forecast file against the truth file, print a table, write --json."""
    start = _storm(args.storm) if args.storm else None
    forecast = _open_forecast(args.forecast)
    reference = forecast.coords.get("forecast_reference_time")
    calendar = getattr(reference.values[()], "calendar", None) if reference is not None else None
    truth = open_fields([args.truth], variables=list(forecast.data_vars), mapping=args.vars,
                        time_in_hours=args.time_in_hours, reference_time=args.reference_time, calendar=calendar)
    try:
        scores = verify(forecast, truth, start)
    except ClimodeError as exc:
        raise ClimodeError(f"{args.forecast} vs {args.truth}: {exc}") from None
    scores["files"] = {"forecast": str(args.forecast), "truth": str(args.truth)}
    storm = scores.get("storm")
    where = ("no PSL, no storm scores" if storm is None else
             f"storm followed from {storm['start'][0]:.2f}N {storm['start'][1]:.2f}E"
             + (" (--storm)" if start else " (deepest PSL minimum of the truth at the reference time)"))
    print(f"forecast {args.forecast} vs truth {args.truth}: reference time {scores['reference_time']}, "
          f"{len(scores['lead_times'])} lead time(s); {where}")
    print(format_verification(scores))
    if args.json:
        _write_json(args.json, scores)


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    mode = _check_mode(args)
    if args.json and not os.access(Path(args.json).resolve().parent, os.W_OK):
        raise ClimodeError(f"cannot write {args.json}: its directory does not exist or is not writable")
    if mode == "forecast":
        _verify_files(args)
        return
    ckpt = load_model(args.checkpoint)
    config = config_from_dict(ckpt.metadata["config"], f"{args.checkpoint} config")
    config = replace(config, "data", name=args.dataset, path=args.data)
    dataset = open_dataset(config.data, args.split)
    _check_channels(ckpt, dataset, config.data.path or config.data.name)
    try:
        scores = score(ckpt, dataset, args.batch_size)
    except ValueError as exc:
        raise ClimodeError(f"dataset {config.data.path or config.data.name}: {exc}") from None
    scores["conventions"] = {"mse": "mean over known cells, data units", "psnr": "mean of per-frame PSNR, data range 1",
                             "ssim": "Gaussian 11x11 SSIM per channel, data range 1"}
    units = ckpt.metadata.get("time_units", "time")
    print(f"{len(dataset)} {args.split} sequences of {config.data.path or config.data.name}; "
          f"model {args.checkpoint}")
    print(format_table(scores, units))
    if args.json:
        _write_json(args.json, scores)


if __name__ == "__main__":
    sys.exit(main())
