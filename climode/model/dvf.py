"""``DVF`` ("dvf"): Deep Voxel Flow (Liu, Yeh, Tang, Liu & Agarwala, ICCV 2017), a video baseline of
the Vid-ODE paper (Park et al., AAAI 2021, Tables 2 and 3) for both interpolation and extrapolation.

A fully convolutional encoder-decoder (``VoxelFlowNet``) looks at two frames X0, X1 and the query's
fraction tau (a constant channel) and gives, per pixel, a voxel flow: a spatial flow F (pixels, the
motion carrying X0 onto X1 over their gap) and a temporal blend weight w. The frame at tau is the
trilinear sample of the (x, y, t) volume the two frames span, composed by ``compose.compose``:

    frame = w * X0(p - tau F) + (1 - w) * X1(p + (1 - tau) F)

- interpolation (a query between two observed frames): X0, X1 are the observed frames around it and
  tau in (0, 1) its fraction of their gap;
- extrapolation (after the last observed frame): X0, X1 are the last two observed frames and tau > 1
  (tau = 2: one gap past the last), both frames sampled back along the motion (DVF's extrapolation
  mode); with a single observed frame, that frame (persistence);
- at an observed time, and before the first observed frame, the observed frame (the first).

Times are per sample ((B, L) and (B, K) accepted, ``per_sample_times``); missing cells are filled
(``compose.fill_missing``) and the output dict is Vid-ODE's (``base.finish``, without a difference
image): ``frames`` (B, K, C, H, W), the composition parts ``sources``, ``flows`` and ``weight``,
``valid`` and ``kind``. In training mode ``losses`` holds DVF's total variation terms,
0.01 |grad F| + 0.005 |grad w| (F in DVF's units, [-1, 1] across the frame).

Architecture (DVF, Sec. 3): convolutions 5x5, 5x5, 3x3 each followed by batch norm, ReLU and a 2x2 max
pool; a 3x3 bottleneck; three bilinear-upsampling stages with 3x3, 5x5, 5x5 convolutions, each fed the
encoder's features of its resolution (skip connections); a 5x5 convolution to 3 channels through tanh.
Widths w, 2w, 4w | 4w | 4w, 2w, w with w = ``config.width`` (the paper's w is 64).

Deviations from the paper:

- one network for both tasks and for any tau (DVF trains one per task at a fixed tau: 1/2 between two
  frames, 2 after them): tau is an input channel and the flow is scaled by it;
- between frames the blend weight is DVF's mask m = (1 + tanh) / 2 centred on the linear blend
  (``voxel_parts``), w = (1 - tau) m / ((1 - tau) m + tau (1 - m)): exactly DVF's at tau = 1/2, and
  X0 or X1 as tau reaches 0 or 1; after the last frame w = m, as DVF's;
- the spatial flow is F = tanh * (size - 1) pixels, the whole frame's span (DVF's +-1 in [-1, 1]
  coordinates, each frame moved by half of it at tau = 1/2);
- the output convolution starts at zero, so the untrained model blends the two frames linearly (the
  ``blend`` baseline between frames, the mean of the last two after them);
- several queries after the last frame are each made from the last two observed frames (DVF feeds
  its predictions back for multi-step extrapolation);
- max pooling and upsampling work on any frame size (ceil mode, upsampling to the skip's size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    EXTRAPOLATED,
    INTERPOLATED,
    ModelConfig,
    empty_parts,
    finish,
    last_index,
    placed_queries,
)

TV_FLOW, TV_MASK = 0.01, 0.005  # DVF's total variation weights (lambda_1, lambda_2)


def _conv(cin: int, cout: int, kernel: int) -> nn.Sequential:
    """DVF's layer: convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class VoxelFlowNet(nn.Module):
    """DVF's encoder-decoder: (N, cin, H, W) -> (N, 3, H, W) in [-1, 1] (tanh): flow x, flow y, mask."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        w = width
        self.down = nn.ModuleList([_conv(cin, w, 5), _conv(w, 2 * w, 5), _conv(2 * w, 4 * w, 3)])
        self.bottleneck = _conv(4 * w, 4 * w, 3)
        self.up = nn.ModuleList([_conv(8 * w, 4 * w, 3), _conv(6 * w, 2 * w, 5), _conv(3 * w, w, 5)])
        self.out = nn.Conv2d(w, 3, 5, padding=2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=True)
        x = self.bottleneck(x)
        for layer, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = layer(torch.cat((x, skip), 1))
        return torch.tanh(self.out(x))


def voxel_parts(voxel: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The motion and blend weight of the network's output ``voxel`` (N, 3, H, W; tanh): the flow
    F (N, 2, H, W), pixels carrying the earlier frame onto the later over their gap (x then y; +-1 is
    the frame's span, size - 1), and the weight (N, 1, H, W) on the earlier frame: DVF's mask
    m = (1 + tanh) / 2 centred on ``prior`` (N,) in (0, 1), logit w = logit(prior) + logit(m), so that
    a prior of 1/2 leaves the mask as it is."""
    H, W = voxel.shape[-2:]
    flow = voxel[:, :2] * voxel.new_tensor([max(W - 1, 1), max(H - 1, 1)]).view(1, 2, 1, 1)
    mask, p = (1 + voxel[:, 2:]) / 2, prior.view(-1, 1, 1, 1)
    return flow, p * mask / (p * mask + (1 - p) * (1 - mask))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between horizontal neighbours plus between vertical ones of (N, C, H, W)."""
    tv = lambda d: d.abs().sum() / max(d.numel(), 1)
    return tv(x.diff(dim=-1)) + tv(x.diff(dim=-2))


class DVF(nn.Module):
    """Deep Voxel Flow (module docstring)."""

    per_sample_times = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = VoxelFlowNet(2 * config.channels + 1, config.width)

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, L, C, H, W), NaN missing; times (L,) or (B, L), query_times (K,) or (B, K), real
        units (NaN: a slot a sample does not use) -> the dict of ``base.finish`` less ``diff``, plus
        ``losses`` in training mode."""
        H, W = frames.shape[-2:]
        observed, filled, valid, t, s, where = placed_queries(self.config, frames, times, query_times)
        kind, asked = where["kind"], torch.isfinite(s)
        last = last_index(observed)
        slots = torch.arange(observed.shape[1], device=frames.device)
        previous = torch.where(observed & (slots < last.view(-1, 1)), slots, -1).max(1).values  # (B,), -1: none
        extrapolated = (kind == EXTRAPOLATED) & (previous >= 0).view(-1, 1)
        first = torch.where(extrapolated, previous.view(-1, 1), where["before"])
        sources = torch.stack((first, where["after"]), -1)  # (B, K, 2): the last two after the last frame
        parts = empty_parts(filled, s.shape[1])
        b, k = (asked & ((kind == INTERPOLATED) | extrapolated)).nonzero(as_tuple=True)
        voxel = filled.new_zeros(0, 3, *filled.shape[-2:])
        if len(b):
            i, j = sources[b, k, 0], sources[b, k, 1]
            tau = (s[b, k] - t[b, i]) / (t[b, j] - t[b, i])
            voxel = self._voxel_flow(filled[b, i], filled[b, j], tau)
            flow, weight = voxel_parts(voxel, torch.where(kind[b, k] == INTERPOLATED, 1 - tau, 0.5))
            parts["flows"][b, k, 0] = -tau.view(-1, 1, 1, 1) * flow
            parts["flows"][b, k, 1] = (1 - tau.view(-1, 1, 1, 1)) * flow
            parts["weight"][b, k] = weight
        out = finish(parts, sources, kind, filled, valid, asked, (H, W))
        del out["diff"]  # no difference image: the trainer's L_diff would have nothing to train
        if self.training:
            out["losses"] = {
                "tv_flow": TV_FLOW * total_variation(voxel[:, :2]),
                "tv_mask": TV_MASK * total_variation(voxel[:, 2:]) / 2,  # of the mask (1 + tanh) / 2
            }
        return out

    def _voxel_flow(self, x0: torch.Tensor, x1: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The network's output (N, 3, H, W) for frames x0, x1 (N, C, H, W) and fractions tau (N,)."""
        return self.net(torch.cat((x0, x1, tau.view(-1, 1, 1, 1).expand(-1, 1, *x0.shape[-2:])), 1))


MODELS = {"dvf": DVF}
