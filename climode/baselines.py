"""Forecasts that need no training, to measure the model against.

Each takes the model's arguments, frames (B, L, C, H, W) with all-NaN frames missing, input
times (L,) and query times (K,) in the data's units, and returns (B, K, C, H, W):

- ``persistence``: the last observed frame, unchanged;
- ``linear``: each cell extrapolated in time along the line through its last two observed values;
- ``advection``: the last observed frame carried along a motion field estimated from the last
  two observed frames (``climode.model.motion``: coarse-to-fine Lucas-Kanade), semi-Lagrangian
  with constant velocity.
"""
from __future__ import annotations

import torch
from torch import nn

from .model.motion import motion
from .model.vidode import last_observed
from .model.warp import warp


def persistence(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Copy the last observed input frame to every query time."""
    latest = last_observed(frames)
    return latest.unsqueeze(1).expand(-1, len(query_times), *latest.shape[1:])


def _last_two(frames: torch.Tensor, times: torch.Tensor):
    """Per sample: the last observed frame and its time, and the one before (equal to the last
    when only one frame is observed)."""
    B, L = frames.shape[:2]
    observed = torch.isfinite(frames).flatten(2).any(2)
    index = torch.arange(L, device=frames.device).expand(B, L)
    last = torch.where(observed, index, -1).max(1).values
    prev = torch.where(observed & (index < last[:, None]), index, -1).max(1).values
    prev = torch.where(prev < 0, last, prev)
    rows = torch.arange(B, device=frames.device)
    times = times.to(device=frames.device, dtype=frames.dtype)
    return frames[rows, last], times[last], frames[rows, prev], times[prev]


def linear(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Extrapolate every cell along the line through its last two observed values (persistence
    where there is only one observed frame, or the earlier value is missing)."""
    x1, t1, x0, t0 = _last_two(frames, times)
    gap = (t1 - t0).view(-1, 1, 1, 1)
    rate = torch.where((gap > 0) & torch.isfinite(x0), (x1 - x0) / gap.clamp(min=1e-12), torch.zeros_like(x1))
    lead = (query_times.to(t1).view(1, -1) - t1.view(-1, 1)).view(*t1.shape, -1, 1, 1, 1)
    return x1.unsqueeze(1) + rate.unsqueeze(1) * lead


def advection(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """The last observed frame advected by the motion between the last two observed frames, at
    constant velocity: value at x and lead s is the last frame's at x - v s (semi-Lagrangian)."""
    x1, t1, x0, t0 = _last_two(frames, times)
    gap = (t1 - t0).clamp(min=1e-12).view(-1, 1, 1, 1)
    velocity = torch.where(t1.view(-1, 1, 1, 1) > t0.view(-1, 1, 1, 1), motion(x0, x1) / gap, torch.zeros(()))
    leads = query_times.to(t1).view(1, -1) - t1.view(-1, 1)  # (B, K)
    out = [warp(torch.nan_to_num(x1), -velocity * leads[:, k].view(-1, 1, 1, 1)) for k in range(leads.shape[1])]
    return torch.stack(out, 1)


BASELINES = {"persistence": persistence, "linear": linear, "advection": advection}


class Baseline(nn.Module):
    """A forecast of ``BASELINES`` behind the model interface (``forward`` returns ``{"frames": ...}``),
    so that it is trained (a no-op: it has no parameters), saved and evaluated like any model."""

    def __init__(self, config):
        super().__init__()
        if config.architecture not in BASELINES:
            raise ValueError(f"no baseline named {config.architecture!r}; choose one of {', '.join(BASELINES)}")
        self.config = config
        self.forecast = BASELINES[config.architecture]

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"frames": self.forecast(frames, times, query_times)}
