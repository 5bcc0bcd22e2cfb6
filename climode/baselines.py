"""Forecasts that need no training, to measure the model against."""
from __future__ import annotations

import torch

from .model.vidode import last_observed


def persistence(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Copy the last observed input frame to every query time.

    frames (B, L, C, H, W) with all-NaN frames missing -> (B, K, C, H, W).
    """
    latest = last_observed(frames)
    return latest.unsqueeze(1).expand(-1, len(query_times), *latest.shape[1:])


BASELINES = {"persistence": persistence}
