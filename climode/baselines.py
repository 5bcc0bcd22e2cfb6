"""Forecasts that need no training, to measure the model against.

Each takes the model's arguments, frames (B, L, C, H, W) with all-NaN frames missing, input
times (L,) and query times (K,) in the data's units, and returns (B, K, C, H, W):

- ``persistence``: the last observed frame, unchanged;
- ``linear``: each cell extrapolated in time along the line through its last two observed values;
- ``advection``: the last observed frame carried along a motion field estimated from the last
  two observed frames (coarse-to-fine Lucas-Kanade), semi-Lagrangian with constant velocity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model.vidode import last_observed
from .model.warp import warp

LK_SIGMA = 3.0  # pixels: the Gaussian window of the Lucas-Kanade least squares
LK_LEVELS = 3  # pyramid levels (each halves the grid), so that displacements of several pixels are found
LK_ITERATIONS = 3  # refinements per level
LK_EPS = 1e-6  # Tikhonov term: a flat window gives zero motion, not a division by zero


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


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of (N, C, H, W), replicate padding."""
    radius = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).expand(x.shape[1], 1, 1, -1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k, groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.transpose(2, 3), groups=x.shape[1])


def _lucas_kanade(a: torch.Tensor, b: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Refine ``flow`` (N, 2, H, W; pixels, warp's convention) so that warping ``b`` by it matches
    ``a`` (both (N, C, H, W)): one least-squares step over Gaussian windows, channels pooled."""
    warped = warp(b, flow)
    gx = (torch.roll(warped, -1, 3) - torch.roll(warped, 1, 3)) / 2
    gy = (torch.roll(warped, -1, 2) - torch.roll(warped, 1, 2)) / 2
    gx[..., :, [0, -1]] = 0
    gy[..., [0, -1], :] = 0
    dt = warped - a
    s = lambda t: _gaussian(t.sum(1, keepdim=True), LK_SIGMA)
    sxx, sxy, syy, sxt, syt = s(gx * gx), s(gx * gy), s(gy * gy), s(gx * dt), s(gy * dt)
    sxx, syy = sxx + LK_EPS, syy + LK_EPS
    det = sxx * syy - sxy**2
    du = -(syy * sxt - sxy * syt) / det
    dv = -(sxx * syt - sxy * sxt) / det
    return flow + torch.cat((du, dv), 1)


def motion(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Displacement (N, 2, H, W) in pixels (x = columns, y = rows) that carries ``before`` onto
    ``after`` (N, C, H, W; NaN treated as 0): coarse-to-fine Lucas-Kanade over ``LK_LEVELS``."""
    before, after = torch.nan_to_num(before), torch.nan_to_num(after)
    pyramid = [(before, after)]
    for _ in range(LK_LEVELS - 1):
        if min(pyramid[-1][0].shape[-2:]) < 16:
            break
        pyramid.append(tuple(F.avg_pool2d(x, 2, ceil_mode=True) for x in pyramid[-1]))
    flow = None
    for old, new in reversed(pyramid):
        if flow is None:
            flow = torch.zeros(old.shape[0], 2, *old.shape[-2:], dtype=old.dtype, device=old.device)
        else:
            scale = torch.tensor([old.shape[-1] / flow.shape[-1], old.shape[-2] / flow.shape[-2]], dtype=old.dtype)
            flow = F.interpolate(flow, size=old.shape[-2:], mode="bilinear", align_corners=True) * scale.view(1, 2, 1, 1)
        for _ in range(LK_ITERATIONS):
            flow = _lucas_kanade(new, old, flow)  # new(x) ~ old(x + flow): flow = -displacement
    return -flow


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
