"""Samples: the unit every dataset yields and the model trains on.

A sample is a dict of
  ``frames_in``  (L, C, H, W) float32, NaN where a cell is missing (an all-NaN frame is a
                 missing observation),
  ``times_in``   (L,) float, strictly increasing, real units (frames or hours),
  ``frames_out`` (K, C, H, W) float32 targets, NaN where unknown,
  ``times_out``  (K,) float, strictly increasing.
Batches put samples on the union of their time grids: a sample lacking a time of
the union has an all-NaN frame there, and ``present_in`` / ``present_out`` (B, T) say
which grid times are the sample's own; ``own_times`` splits a batch back into groups of
samples that share their own times, so that no forecast depends on another sample's times.
"""
from __future__ import annotations

import numpy as np
import torch


def _on_grid(frames: list[torch.Tensor], times: list[torch.Tensor]):
    grid = torch.unique(torch.cat(times))
    shape = frames[0].shape[1:]
    out = torch.full((len(frames), len(grid), *shape), float("nan"), dtype=frames[0].dtype)
    present = torch.zeros(len(frames), len(grid), dtype=torch.bool)
    for b, (f, t) in enumerate(zip(frames, times, strict=True)):
        index = torch.searchsorted(grid, t)
        out[b, index] = f
        present[b, index] = True
    return out, grid, present


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch on the union of their input and output times."""
    batch = {}
    for kind in ("in", "out"):
        frames = [torch.as_tensor(s[f"frames_{kind}"]) for s in samples]
        times = [torch.as_tensor(s[f"times_{kind}"], dtype=torch.float64) for s in samples]
        batch[f"frames_{kind}"], batch[f"times_{kind}"], batch[f"present_{kind}"] = _on_grid(frames, times)
    return batch


def drop_frames(frames: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mark about ``fraction`` of the input frames missing (NaN), never the last one."""
    if fraction <= 0:
        return frames
    frames = frames.copy()
    dropped = rng.random(len(frames) - 1) < fraction
    frames[:-1][dropped] = np.nan
    return frames


def own_times(present_in: torch.Tensor, present_out: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Groups of a batch's samples that have the same own times: ``(rows, inputs, queries)``, the
    sample indices and the union-grid indices of their input and query times (see ``collate``).
    Groups without a query time are left out."""
    groups: dict[tuple, list[int]] = {}
    for b, key in enumerate(zip(map(tuple, present_in.tolist()), map(tuple, present_out.tolist()))):
        groups.setdefault(key, []).append(b)
    return [(torch.tensor(rows), torch.tensor(mask_in).nonzero().flatten(), torch.tensor(mask_out).nonzero().flatten())
            for (mask_in, mask_out), rows in groups.items() if any(mask_out)]


def sub_batch(batch: dict, rows: torch.Tensor, inputs: torch.Tensor, queries: torch.Tensor) -> dict:
    """The part of a union-grid batch that ``own_times`` groups: those samples on their own times."""
    pick = lambda x, index: x[rows][:, index]
    return {"frames_in": pick(batch["frames_in"], inputs), "times_in": batch["times_in"][inputs],
            "frames_out": pick(batch["frames_out"], queries), "times_out": batch["times_out"][queries]}
