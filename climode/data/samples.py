"""Samples: the unit every dataset yields and the model trains on (``climode.data.contract.Sample``:
``frames_in`` (L, C, H, W), ``times_in`` (L,), ``frames_out`` (K, C, H, W), ``times_out`` (K,)).

A batch (``collate``) keeps each sample's own times: ``times_in`` (B, L) and ``times_out``
(B, K), K the most targets of any sample, shorter ones padded with NaN times and frames.
Models that take only times shared by the batch are run on ``by_times`` groups.
``QuerySampler`` draws random query sets for training (random leads, hidden in-between frames).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .contract import DatasetInfo, Sample


def _padded(arrays: list[torch.Tensor], length: int) -> torch.Tensor:
    out = torch.full((len(arrays), length, *arrays[0].shape[1:]), float("nan"), dtype=arrays[0].dtype)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
    return out


def collate(samples: list[Sample]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch, each on its own times; targets padded with NaN to the longest."""
    get = lambda key, dtype=None: [torch.as_tensor(s[key], dtype=dtype) for s in samples]
    lengths = {len(s["times_in"]) for s in samples}
    if len(lengths) > 1:
        raise ValueError(f"samples of one batch need the same number of input slots, got {sorted(lengths)}")
    K = max(len(s["times_out"]) for s in samples)
    return {
        "frames_in": torch.stack(get("frames_in")),
        "times_in": torch.stack(get("times_in", torch.float64)),
        "frames_out": _padded(get("frames_out"), K),
        "times_out": _padded(get("times_out", torch.float64), K),
    }


def drop_frames(frames: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mark about ``fraction`` of the input frames missing (NaN), never the last one."""
    if fraction <= 0:
        return frames
    frames = frames.copy()
    dropped = rng.random(len(frames) - 1) < fraction
    frames[:-1][dropped] = np.nan
    return frames


def by_times(batch: dict, shared: bool) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
    """The batch as ``(rows, columns, part)``: one part holding it all for a model that takes each sample's
    own times, else parts of the samples (``rows``) that share their input and query times, each with
    times (L,) and (K,) and its targets' ``columns`` in the batch. Rows without a query are left out."""
    asked = torch.isfinite(batch["times_out"])
    if not shared:
        rows = torch.nonzero(asked.any(1)).flatten()
        return [(rows, torch.arange(asked.shape[1]), {k: v[rows] for k, v in batch.items()})] if len(rows) else []
    groups: dict[tuple, list[int]] = {}
    for b in range(len(asked)):
        if asked[b].any():
            key = (tuple(batch["times_in"][b].tolist()), tuple(batch["times_out"][b][asked[b]].tolist()))
            groups.setdefault(key, []).append(b)
    parts = []
    for rows in groups.values():
        rows_t = torch.tensor(rows)
        columns = torch.nonzero(asked[rows[0]]).flatten()
        parts.append(
            (
                rows_t,
                columns,
                {
                    "frames_in": batch["frames_in"][rows_t],
                    "times_in": batch["times_in"][rows[0]],
                    "frames_out": batch["frames_out"][rows_t][:, columns],
                    "times_out": batch["times_out"][rows[0], columns],
                },
            )
        )
    return parts


class QuerySampler(Dataset):
    """Training samples with random query sets, drawn afresh each time an item is read.

    Of each sample of ``dataset``: a random number (1 to all) of its targets, at random, so the
    leads asked vary in number and position (at the data's own times: for leads off the solver's
    grid the data must hold them, e.g. hourly storms or ``BouncingBall(continuous=True)``); and,
    with probability ``hide``, 1 to L - 2 of its observed input frames between the first and the
    last observed hidden (NaN) and asked for, so interpolation is trained too; and, with probability
    ``missing``, a random rectangle of cells (a tenth to a half of each side: up to a quarter of the
    frame, as large as the missing regions a forecast must keep local) missing (NaN) from the
    last observed input, or from every input, so the model learns what its validity channels mean
    (the targets keep those cells). Seeded per item and by how often it was read, so a run is
    reproducible.
    """

    def __init__(self, dataset: Dataset, hide: float = 0.5, seed: int = 0, missing: float = 0.0):
        self.dataset, self.hide, self.seed, self.missing = dataset, hide, seed, missing
        self.draws = np.zeros(len(dataset), dtype=np.int64)
        self.info: DatasetInfo = dataset.info

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[index]
        rng = np.random.default_rng((self.seed, index, int(self.draws[index])))
        self.draws[index] += 1
        frames_in = np.array(sample["frames_in"], copy=True)
        times_out, frames_out = np.asarray(sample["times_out"]), np.asarray(sample["frames_out"])
        known = np.isfinite(frames_out).reshape(len(frames_out), -1).any(1)
        choice = np.flatnonzero(known) if known.any() else np.arange(len(times_out))
        keep = np.sort(rng.choice(choice, size=int(rng.integers(1, len(choice) + 1)), replace=False))
        times, frames = [times_out[keep]], [frames_out[keep]]
        observed = np.flatnonzero(np.isfinite(frames_in).reshape(len(frames_in), -1).any(1))
        inner = observed[1:-1]
        if len(inner) and rng.random() < self.hide:
            hidden = np.sort(rng.choice(inner, size=int(rng.integers(1, len(inner) + 1)), replace=False))
            times.insert(0, np.asarray(sample["times_in"])[hidden])
            frames.insert(0, frames_in[hidden].copy())
            frames_in[hidden] = np.nan
        if rng.random() < self.missing:
            H, W = frames_in.shape[-2:]
            h, w = (int(rng.integers(max(1, n // 10), max(1, n // 2) + 1)) for n in (H, W))
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            which = observed if rng.random() < 0.5 else observed[-1:]
            frames_in[which, :, y : y + h, x : x + w] = np.nan
        times_q, frames_q = np.concatenate(times), np.concatenate(frames)
        order = np.argsort(times_q, kind="stable")
        return {
            "frames_in": frames_in,
            "times_in": sample["times_in"],
            "frames_out": frames_q[order],
            "times_out": times_q[order],
        }
