"""Forecasts that need no training, to measure the model against.

Each takes the model's arguments, frames (B, L, C, H, W) with all-NaN frames missing, input
times (L,) and query times (K,) in the data's units, and returns (B, K, C, H, W); each sample uses
its own observed frames only:

- ``persistence``: the last observed frame, unchanged;
- ``blend``: an interpolator: a query between two observed frames gets their linear blend in time
  (exactly the frame at an observed time), one outside the observed span the nearest observed frame
  (after the last: persistence);
- ``linear``: each cell along the line through its last two observed values;
- ``advection``: the last observed frame carried along a motion field estimated from the last
  two observed frames (``climode.model.motion``: coarse-to-fine Lucas-Kanade), semi-Lagrangian
  with constant velocity;
- ``advection-multi``: the same with the motion of the last ``MULTI_FRAMES`` observed frames: the
  velocity of each consecutive pair (its displacement over its own time gap), averaged with weights
  rising with recency (pySTEPS's Lucas-Kanade pools the vectors of all pairs alike);
- ``pysteps`` (only where ``import pysteps`` works; else in ``BASELINES.unavailable``): pySTEPS's
  Lucas-Kanade motion of the same pairs, combined the same way, and its semi-Lagrangian extrapolation.

``linear``, ``advection`` and ``advection-multi`` are extrapolators: they fit a constant rate or
velocity to the last observed frames and evaluate it at every query, so a query before the last
observed frame runs the same model backward in time (``linear`` gives the line's value: between the
last two frames their linear interpolation, at the earlier one that frame; ``advection`` carries
the last frame back along the motion). ``pysteps`` extrapolates forward only: it gives the last
frame to a query at or before it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..registry import Registry
from .base import last_observed
from .motion import motion
from .warp import warp

try:
    import pysteps.extrapolation
    import pysteps.motion
except Exception as exc:  # not installed, or broken: the baseline is left out, with the reason
    pysteps = None
    _PYSTEPS_MISSING = f"{type(exc).__name__}: {exc}"

MULTI_FRAMES = 3  # observed frames whose motion advection-multi and pysteps combine
Forecast = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def persistence(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Copy the last observed input frame to every query time."""
    latest = last_observed(frames)
    return latest.unsqueeze(1).expand(-1, len(query_times), *latest.shape[1:])


def _recent(frames: torch.Tensor, times: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, its last ``n`` observed frames, newest first: frames (B, n, C, H, W), times (B, n)
    and whether each exists (B, n); a slot past the first observed frame repeats the oldest one."""
    B, L = frames.shape[:2]
    observed = torch.isfinite(frames).flatten(2).any(2)
    later = observed.flip(1).cumsum(1).flip(1) - observed.long()  # observed frames after each slot
    slots = torch.arange(L, device=frames.device).expand(B, L)
    chosen = [torch.where(observed & (later == k), slots, -1).max(1).values for k in range(n)]
    present = torch.stack(chosen, 1) >= 0
    index = torch.stack(chosen, 1)
    oldest = torch.where(present, index, L).min(1, keepdim=True).values.clamp(max=L - 1)
    index = torch.where(present, index, oldest)
    rows = torch.arange(B, device=frames.device)[:, None]
    return frames[rows, index], times.to(device=frames.device, dtype=frames.dtype)[index], present


def _leads(t_last: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Query times (K,) minus each sample's last observed time (B,): (B, K)."""
    return query_times.to(t_last).view(1, -1) - t_last.view(-1, 1)


def blend(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """The linear blend in time of the two observed frames around each query (a cell missing in one of
    them: the other's value); the nearest observed frame before the first or after the last."""
    B, L = frames.shape[:2]
    observed = torch.isfinite(frames).flatten(2).any(2)
    t = times.to(device=frames.device, dtype=frames.dtype)
    s = query_times.to(t)
    slots = torch.arange(L, device=frames.device)
    seen = observed[:, None, :]  # (B, 1, L) against queries (1, K, 1)
    before = torch.where(seen & (t.view(1, 1, L) <= s.view(1, -1, 1)), slots, -1).max(-1).values  # (B, K)
    after = torch.where(seen & (t.view(1, 1, L) > s.view(1, -1, 1)), slots, L).min(-1).values
    before = torch.where(before < 0, after, before)  # before the first: the first
    after = torch.where(after == L, before, after)  # after the last: the last
    t0, t1 = t[before], t[after]
    w1 = torch.where(t1 > t0, (s.view(1, -1) - t0) / (t1 - t0).clamp(min=1e-12), torch.zeros_like(t0))
    rows = torch.arange(B, device=frames.device)[:, None]
    x0, x1 = frames[rows, before], frames[rows, after]  # (B, K, C, H, W)
    a = (1 - w1).view(B, -1, 1, 1, 1) * torch.isfinite(x0)
    b = w1.view(B, -1, 1, 1, 1) * torch.isfinite(x1)
    total = a + b
    mixed = (a * torch.nan_to_num(x0) + b * torch.nan_to_num(x1)) / total.clamp(min=1e-12)
    return torch.where(total > 0, mixed, float("nan"))


def linear(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Every cell along the line through its last two observed values (persistence where there is
    only one observed frame, or the earlier value is missing), at any query time."""
    x, t, _ = _recent(frames, times, 2)
    x1, x0, t1, t0 = x[:, 0], x[:, 1], t[:, 0], t[:, 1]
    gap = (t1 - t0).view(-1, 1, 1, 1)
    rate = torch.where((gap > 0) & torch.isfinite(x0), (x1 - x0) / gap.clamp(min=1e-12), torch.zeros_like(x1))
    return x1.unsqueeze(1) + rate.unsqueeze(1) * _leads(t1, query_times).view(*t1.shape, -1, 1, 1, 1)


def _advect(last: torch.Tensor, velocity: torch.Tensor, leads: torch.Tensor) -> torch.Tensor:
    """``last`` (B, C, H, W; NaN as 0) at each lead (B, K) under a constant ``velocity`` (B, 2, H, W;
    pixels per time unit): value at x and lead s is the frame's at x - v s (semi-Lagrangian)."""
    last = torch.nan_to_num(last)
    return torch.stack([warp(last, -velocity * leads[:, k].view(-1, 1, 1, 1)) for k in range(leads.shape[1])], 1)


def _combined_velocity(
    frames: torch.Tensor, times: torch.Tensor, n: int, pair_motion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Velocity (B, 2, H, W; pixels per time unit) from the last ``n`` observed frames: each consecutive
    pair's ``pair_motion(before, after)`` (pixels) over its own time gap, averaged with weights
    n - 1 (newest pair) down to 1 (oldest); zero with fewer than two observed frames."""
    x, t, present = _recent(frames, times, n)
    total = torch.zeros(len(x), 2, *x.shape[-2:], dtype=x.dtype, device=x.device)
    weights = torch.zeros(len(x), 1, 1, 1, dtype=x.dtype, device=x.device)
    for k in range(n - 1):  # pair (k + 1, k): older, newer
        gap = t[:, k] - t[:, k + 1]
        weight = ((n - 1 - k) * (present[:, k + 1] & (gap > 0))).to(x.dtype).view(-1, 1, 1, 1)
        if weight.any():
            total = total + weight * pair_motion(x[:, k + 1], x[:, k]) / gap.clamp(min=1e-12).view(-1, 1, 1, 1)
            weights = weights + weight
    return total / weights.clamp(min=1e-12)


def advection(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """The last observed frame advected by the motion between the last two observed frames, at
    constant velocity (``_advect``)."""
    x, t, _ = _recent(frames, times, 1)
    return _advect(x[:, 0], _combined_velocity(frames, times, 2, motion), _leads(t[:, 0], query_times))


def advection_multi(
    frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor, n: int = MULTI_FRAMES
) -> torch.Tensor:
    """The last observed frame advected at constant velocity by the recency-weighted mean velocity of
    the last ``n`` observed frames' consecutive pairs (``_combined_velocity``); with only two observed
    frames, ``advection``."""
    x, t, _ = _recent(frames, times, 1)
    return _advect(x[:, 0], _combined_velocity(frames, times, n, motion), _leads(t[:, 0], query_times))


def _pysteps_motion(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """pySTEPS's dense Lucas-Kanade displacement (B, 2, H, W; pixels, x then y) from ``before`` to
    ``after`` (B, C, H, W; NaN cells masked): per sample and channel, averaged over the channels."""
    lucas_kanade = pysteps.motion.get_method("LK")
    pairs = torch.stack((before, after), 1).double().cpu().numpy()  # (B, 2, C, H, W)
    flows = [
        np.mean([np.asarray(lucas_kanade(pair[:, c]), dtype=np.float64) for c in range(pair.shape[1])], 0)
        for pair in pairs
    ]
    return torch.from_numpy(np.stack(flows)).to(before)


def pysteps_advection(
    frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor, n: int = MULTI_FRAMES
) -> torch.Tensor:
    """The last observed frame extrapolated by pySTEPS's semi-Lagrangian scheme along the recency-weighted
    mean of pySTEPS's Lucas-Kanade velocities of the last ``n`` observed frames' pairs, each channel on
    its own; the last frame at leads <= 0 and where the motion draws from outside the grid."""
    extrapolate = pysteps.extrapolation.get_method("semilagrangian")
    x, t, _ = _recent(frames, times, 1)
    last = x[:, 0]
    velocity = _combined_velocity(frames, times, n, _pysteps_motion).double().cpu().numpy()
    leads = _leads(t[:, 0], query_times)
    out = last.unsqueeze(1).repeat(1, leads.shape[1], 1, 1, 1)
    for b in range(len(last)):
        ahead = torch.nonzero(leads[b] > 0).flatten()
        if not len(ahead):
            continue
        for c in range(last.shape[1]):
            field = last[b, c].double().cpu().numpy()
            moved = extrapolate(field, velocity[b], leads[b, ahead].tolist(), allow_nonfinite_values=True)
            moved = torch.from_numpy(np.asarray(moved)).to(out)
            out[b, ahead, c] = torch.where(torch.isfinite(moved), moved, last[b, c])
    return out


BASELINES: Registry[Forecast] = Registry(
    "baseline",
    {"persistence": persistence, "blend": blend, "linear": linear, "advection": advection,
     "advection-multi": advection_multi},
)  # fmt: skip
if pysteps is None:  # named, with the reason, so that asking for it says why it cannot be had
    BASELINES.unavailable["pysteps"] = (
        f"the pysteps baseline needs the pysteps package, which cannot be imported here "
        f"({_PYSTEPS_MISSING}); install it (pip install pysteps) or choose another model"
    )
else:
    BASELINES["pysteps"] = pysteps_advection


class Baseline(nn.Module):
    """A forecast of ``BASELINES`` behind the model interface (``forward`` returns ``{"frames": ...}``),
    so that it is trained (a no-op: it has no parameters), saved and evaluated like any model."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.forecast = BASELINES.get_method(config.architecture)

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"frames": self.forecast(frames, times, query_times)}
