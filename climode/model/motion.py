"""Motion between two frames: coarse-to-fine Lucas-Kanade optical flow.

The advection baseline extrapolates along it; Vid-ODE's interpolation starts from it (an untrained
model interpolates along the motion between the two frames around a query).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import warp

LK_SIGMA = 3.0  # pixels: the Gaussian window of the Lucas-Kanade least squares
LK_LEVELS = 3  # pyramid levels (each halves the grid), so that displacements of several pixels are found
LK_ITERATIONS = 3  # refinements per level
LK_EPS = 1e-6  # Tikhonov term: a flat window gives zero motion, not a division by zero


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
            flow = F.interpolate(flow, size=old.shape[-2:], mode="bilinear", align_corners=True) * scale.view(
                1, 2, 1, 1
            )
        for _ in range(LK_ITERATIONS):
            flow = _lucas_kanade(new, old, flow)  # new(x) ~ old(x + flow): flow = -displacement
    return -flow
