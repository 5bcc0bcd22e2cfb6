"""Backward warping of frames by a dense optical flow.

The flow is in pixels: ``flow[:, 0]`` is the x (column) displacement and
``flow[:, 1]`` the y (row) displacement, so ``warp(x, flow)[..., i, j]`` samples
``x`` at row ``i + flow[:, 1, i, j]``, column ``j + flow[:, 0, i, j]``.
Sampling uses ``align_corners=True`` with the grid normalised by ``size - 1``,
so a zero flow returns the frame unchanged (the earlier public implementation
mixed conventions and blurred every frame; see docs/design.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Pixel coordinates ``(2, H, W)``: channel 0 is the column, channel 1 the row."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy))


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``frames`` (B, C, H, W) by ``flow`` (B, 2, H, W) in pixels.

    Out-of-frame samples take the nearest border value.
    """
    if frames.shape[0] != flow.shape[0] or frames.shape[-2:] != flow.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(
            f"warp expects frames (B, C, H, W) and flow (B, 2, H, W); got {tuple(frames.shape)} and {tuple(flow.shape)}"
        )
    height, width = frames.shape[-2:]
    coords = pixel_grid(height, width, frames.device, flow.dtype) + flow
    scale = torch.tensor([max(width - 1, 1), max(height - 1, 1)], device=flow.device, dtype=flow.dtype)
    grid = (2.0 * coords / scale.view(1, 2, 1, 1) - 1.0).permute(0, 2, 3, 1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)
