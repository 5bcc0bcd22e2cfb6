"""Conv-Decoder G: from two successive states to optical flow, image difference and mask."""
from __future__ import annotations

import torch
from torch import nn

from .encoder import conv_bn_relu

MASK_LOGIT = 4.0  # sigmoid(4) = 0.982


def _upsampler(channels: int, out_channels: int) -> nn.Sequential:
    """(B, c, h, w) -> (B, out, 4h, 4w): bilinear up x2, Conv3x3 c->c/2 BN ReLU, up x2,
    Conv3x3 c/2->c/4 BN ReLU, Conv3x3 c/4->out."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        conv_bn_relu(channels, channels // 2, 3),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        conv_bn_relu(channels // 2, channels // 4, 3),
        nn.Conv2d(channels // 4, out_channels, 3, padding=1),
    )


class ConvDecoder(nn.Module):
    """G(h_s, h_prev): (B, 4w, H/4, W/4) x 2 -> flow (B, 2, H, W) in pixels,
    difference (B, c, H, W) and mask (B, 1, H, W) in (0, 1).

    Its output layer starts at zero flow, zero difference and a mask of sigmoid(MASK_LOGIT), so
    an untrained model composes nearly all of the previous frame: it starts near persistence,
    as the recurrent baselines do, instead of at half the frame's amplitude."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = _upsampler(8 * width, channels + 3)
        self.channels = channels
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.zero_()
            last.bias[-1] = MASK_LOGIT

    def forward(self, state: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat((state, previous), 1))
        flow, diff, mask = out.split((2, self.channels, 1), 1)
        return flow, diff, torch.sigmoid(mask)


class StateDecoder(nn.Module):
    """A frame-sized output from one state: (B, 4w, H/4, W/4) -> (B, channels, H, W), through
    bilinear up x2, Conv3x3 4w->2w BN ReLU, up x2, Conv3x3 2w->w BN ReLU, Conv3x3 w->channels.
    The baselines use it to decode the change from the last observed frame."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = _upsampler(4 * width, channels)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state)
