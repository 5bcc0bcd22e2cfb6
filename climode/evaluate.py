"""Score a trained model against persistence, per lead time:
``python -m climode.evaluate --checkpoint CKPT --dataset NAME [--json FILE]``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .baselines import persistence
from .checkpoint import Checkpoint, load_model
from .config import config_from_dict, replace
from .data import DATASETS, collate, open_dataset
from .errors import ClimodeError, cli
from .files import replacing
from .metrics import METRICS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m climode.evaluate", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="model.safetensors or a training .ckpt")
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


@torch.no_grad()
def score(ckpt: Checkpoint, dataset, batch_size: int = 16) -> dict:
    """Mean of each metric per lead time for the model and persistence.

    Returns ``{"lead_times": [...], "methods": {name: {metric: [value per lead time]}}}``,
    lead times in the data's time units after each sample's own last input time.
    """
    forecasters = {"vid-ode": lambda f, t, s: ckpt.model(f, t, s)["frames"], "persistence": persistence}
    sums: dict = defaultdict(lambda: defaultdict(float))
    counts: dict = defaultdict(int)
    for batch in DataLoader(dataset, batch_size, collate_fn=collate):
        frames, times, query, target = (batch[k] for k in ("frames_in", "times_in", "times_out", "frames_out"))
        last_input = torch.where(batch["present_in"], times, -torch.inf).max(1).values  # each sample's own
        leads = (query[None] - last_input[:, None]).tolist()  # (B, K)
        known = (torch.isfinite(target).flatten(2).any(2) & batch["present_out"]).tolist()
        cells = [(b, k) for b in range(len(known)) for k in range(len(known[b])) if known[b][k]]
        for name, forecast in forecasters.items():
            pred = forecast(frames, times, query)
            for metric, fn in METRICS.items():
                values = fn(pred, target).tolist()
                for b, k in cells:
                    sums[(name, metric)][leads[b][k]] += values[b][k]
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


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.json and not os.access(Path(args.json).resolve().parent, os.W_OK):
        raise ClimodeError(f"cannot write {args.json}: its directory does not exist or is not writable")
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
        try:
            with replacing(args.json) as tmp:
                tmp.write_text(json.dumps(scores, indent=2))
        except OSError as exc:
            raise ClimodeError(f"cannot write {args.json}: {exc.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
