"""Score forecasts against the baselines (persistence, linear extrapolation, advection), per lead time.

``python -m climode.evaluate --checkpoint CKPT --dataset NAME [--json FILE]`` scores a trained model
on a dataset; ``python -m climode.evaluate --protocol NAME --preset cpu-small|paper --out DIR`` runs one
of the paper's protocols end to end (see ``climode.protocols``);
``python -m climode.evaluate --forecast F.nc --truth T.nc [--json FILE] [--storm LAT,LON]`` verifies
a forecast (what ``python -m climode.forecast`` writes) against the truth, each a NetCDF file or a
zarr store: RMSE per variable, storm track and intensity errors (see ``climode.verify``); for an
ensemble forecast (a ``realization`` dim) those of the ensemble mean, and CRPS, spread-skill ratio and
Brier scores of wind events per lead time (``climode.verification.ensemble``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ClimodeError, cli
from .options import add_input_options

if TYPE_CHECKING:  # the stack loads after the options are read (``--help`` stays light)
    from ..checkpoint import Checkpoint

MODE_ONLY = {
    "checkpoint": ("dataset", "data"),
    "forecast": ("truth", "storm", "vars", "time_in_hours", "reference_time"),
    "protocol": ("preset", "out", "overwrite", "seeds", "root", "task", "drop"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m climode.evaluate", description=__doc__)
    p.add_argument("--checkpoint", help="model.safetensors or a training .ckpt")
    p.add_argument("--forecast", help="forecast NetCDF file or zarr store to verify (instead of --checkpoint)")
    p.add_argument("--truth", help="with --forecast: NetCDF file or zarr store with the true fields")
    p.add_argument(
        "--storm",
        help="with --forecast: LAT,LON near the storm at the forecast reference time "
        "(default: the deepest PSL minimum of the truth then)",
    )
    add_input_options(p, whose="the truth file", role="with --forecast: ", calendar=False)
    p.add_argument(
        "--dataset", help="dataset, a name of climode.data.DATASETS (default: the one the model was trained on)"
    )
    p.add_argument("--data", help="data file for file-backed datasets")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", help="also write the scores to this JSON file")
    p.add_argument(
        "--lpips-weights",
        help="with --checkpoint or --protocol on frames: score LPIPS (AlexNet, v0.1) with these weights: torchvision's "
        "AlexNet file and the lpips package's weights/v0.1/alex.pth, comma-separated, or one file with both; "
        "without them LPIPS is n/a",
    )
    p.add_argument(
        "--protocol",
        help="run one of the paper's protocols end to end (data, training, scores): "
        "cam5-irregular, sampling-rate, ablation, bouncing-ball, or on your copy of a video dataset "
        "(--root): kth, mgif, penn, folder",
    )
    p.add_argument("--preset", help="with --protocol: cpu-small (2 CPU cores, under an hour) or paper")
    p.add_argument(
        "--out", help="with --protocol: directory for data, runs and results (scores.csv, results.md, plots)"
    )
    p.add_argument("--overwrite", action="store_true", help="with --protocol: run into an --out that holds other files")
    p.add_argument(
        "--seeds", help="with --protocol: training seeds, one run of every learned model each (default 0,1,2)"
    )
    p.add_argument("--root", help="with a video --protocol: the dataset's root folder in its published layout")
    p.add_argument("--task", help="with a video --protocol: extrapolation (5 in, 5 out; default) or interpolation")
    p.add_argument("--drop", type=float, help="with a video --protocol: chance each inner input frame is missing")
    return p


def _check_channels(ckpt: Checkpoint, dataset, name: str) -> None:
    channels = dataset[0]["frames_in"].shape[1]
    expected = ckpt.variables
    if channels != len(expected):
        raise ClimodeError(
            f"checkpoint {ckpt.path} was trained on {len(expected)} channel(s) ({', '.join(expected)}) "
            f"but dataset {name} has {channels} ({', '.join(dataset.info.variables)})"
        )


def _check_mode(args: argparse.Namespace) -> str:
    """The mode, "checkpoint", "forecast" or "protocol": exactly one of the three options, with only its
    own options."""
    given = [mode for mode in MODE_ONLY if getattr(args, mode) is not None]
    if len(given) != 1:
        raise ClimodeError(
            "give exactly one of --checkpoint (score a model on a dataset), --forecast "
            "(verify a forecast file against --truth) or --protocol (run a paper protocol)"
        )
    mode = given[0]
    for other in MODE_ONLY:
        stray = [
            f"--{n.replace('_', '-')}"
            for n in MODE_ONLY[other]
            if other != mode and getattr(args, n) not in (None, False)
        ]
        if stray:
            raise ClimodeError(f"{', '.join(stray)} only go(es) with --{other}, not --{mode}")
    if mode == "forecast" and args.lpips_weights:
        raise ClimodeError("--lpips-weights goes with --checkpoint or --protocol (frames scored), not --forecast")
    if mode == "forecast" and args.truth is None:
        raise ClimodeError("--forecast needs --truth FILE (the true fields to verify against)")
    if mode == "protocol" and not (args.preset and args.out):
        raise ClimodeError("--protocol needs --preset (cpu-small or paper) and --out DIR")
    return mode


def _storm(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` (degrees) -> (lat, lon)."""
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise ClimodeError(f"--storm {text!r} is not LAT,LON in degrees, e.g. 15.5,300") from None
    if not (-90.0 <= lat <= 90.0 and math.isfinite(lon)):
        raise ClimodeError(f"--storm {text!r}: latitude must be in -90..90 and longitude finite")
    return lat, lon % 360.0


def _json_ready(value):
    """NaN (an undefined score, e.g. LPIPS) as null: strict JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def _write_json(path: str, scores: dict) -> None:
    from ..io.atomic import replacing

    try:
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(_json_ready(scores), indent=2, allow_nan=False))
    except OSError as exc:
        raise ClimodeError(f"cannot write {path}: {exc.strerror}") from None


def _verify_files(args: argparse.Namespace) -> None:
    """The --forecast mode: score the forecast file against the truth file, print a table, write --json."""
    from ..io.fields import open_fields
    from ..io.forecasts import open_forecast
    from ..verification.tables import format_table
    from ..verification.truth import verify

    start = _storm(args.storm) if args.storm else None
    with warnings.catch_warnings():  # a store without consolidated metadata (climode.forecast --zarr) reads fine
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata")
        forecast = open_forecast(args.forecast)
        reference = forecast.coords.get("forecast_reference_time")
        calendar = getattr(reference.values[()], "calendar", None) if reference is not None else None
        truth = open_fields(
            [args.truth],
            variables=list(forecast.data_vars),
            mapping=args.vars,
            time_in_hours=bool(args.time_in_hours),
            reference_time=args.reference_time,
            calendar=calendar,
        )
    try:
        scores = verify(forecast, truth, start)
    except ClimodeError as exc:
        raise ClimodeError(f"{args.forecast} vs {args.truth}: {exc}") from None
    scores["files"] = {"forecast": str(args.forecast), "truth": str(args.truth)}
    storm = scores.get("storm")
    where = (
        "no PSL, no storm scores"
        if storm is None
        else f"storm followed from {storm['start'][0]:.2f}N {storm['start'][1]:.2f}E"
        + (" (--storm)" if start else " (deepest PSL minimum of the truth at the reference time)")
    )
    members = f"; an ensemble of {scores['ensemble']['members']} members" if "ensemble" in scores else ""
    print(
        f"forecast {args.forecast} vs truth {args.truth}: reference time {scores['reference_time']}, "
        f"{len(scores['lead_times'])} lead time(s); {where}{members}"
    )
    print(format_table(scores))
    if args.json:
        _write_json(args.json, scores)


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ClimodeError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {text!r}") from None


def _lpips(text: str | None):
    """The LPIPS metric from ``--lpips-weights`` (comma-separated files), or None."""
    if not text:
        return None
    from ..verification.lpips import LPIPS

    return LPIPS.from_files(*[part.strip() for part in text.split(",") if part.strip()])


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    mode = _check_mode(args)
    if args.json and not os.access(Path(args.json).resolve().parent, os.W_OK):
        raise ClimodeError(f"cannot write {args.json}: its directory does not exist or is not writable")
    if mode == "forecast":
        _verify_files(args)
        return
    if mode == "protocol":
        from ..protocols import run  # trains models: loaded only for this mode

        video = {"root": args.root, "task": args.task or "extrapolation", "drop": args.drop or 0.0}
        seeds, lpips = _parse_seeds(args.seeds), _lpips(args.lpips_weights)
        for path in run(args.protocol, args.preset, args.out, args.overwrite, seeds, lpips=lpips, **video):
            print(path)
        return
    from ..checkpoint import load_model
    from ..config import config_from_dict, replace
    from ..data import open_dataset
    from ..verification import scoring

    lpips = _lpips(args.lpips_weights)
    ckpt = load_model(args.checkpoint)
    config = config_from_dict(ckpt.card.config or {}, f"{args.checkpoint} config")
    config = replace(config, "data", name=args.dataset, path=args.data)
    dataset = open_dataset(config.data, args.split, ckpt.card.normalisation)  # the model's own scaling
    _check_channels(ckpt, dataset, config.data.path or config.data.name)
    try:
        scores = scoring.score_checkpoint(ckpt, dataset, args.batch_size, lpips=lpips)
    except ValueError as exc:
        raise ClimodeError(f"dataset {config.data.path or config.data.name}: {exc}") from None
    scores["conventions"] = {
        "mse": "mean over known cells, data units",
        "psnr": "mean of per-frame PSNR, data range 1",
        "ssim": "Gaussian 11x11 SSIM per channel, data range 1",
    }
    units = ckpt.card.time_units
    print(f"{len(dataset)} {args.split} sequences of {config.data.path or config.data.name}; model {args.checkpoint}")
    print(scoring.format_dataset_scores(scores, units))
    if args.json:
        _write_json(args.json, scores)
