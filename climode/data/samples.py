"""Samples: the unit every dataset yields and the model trains on.

A sample is a dict of
  ``frames_in``  (L, C, H, W) float32, NaN where a cell is missing (an all-NaN frame is a
                 missing observation),
  ``times_in``   (L,) float, strictly increasing, real units (frames or hours),
  ``frames_out`` (K, C, H, W) float32 targets, NaN where unknown,
  ``times_out``  (K,) float, strictly increasing.
Batches put samples on the union of their time grids: a sample lacking a time of
the union has an all-NaN frame there, and ``present_in`` / ``present_out`` (B, T) say
which grid times are the sample's own.
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
