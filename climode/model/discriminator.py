"""LSGAN discriminators: D_img on single frames, D_seq on frames stacked along channels."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """4x4 convolutions w, 2w, 4w (stride 2), 8w (stride 1), then 1 (stride 1), LeakyReLU 0.2, no
    normalisation (as the paper's; a BatchNorm here would score each frame by its batch's statistics).

    (B, cin, H, W) -> patch scores (B, 1, h, w); the paper uses w = 64. H and W must be at least
    MIN_SIZE: three halvings leave 3 cells, which the two last 4x4 convolutions (padding 1) need.
    """

    MIN_SIZE = 24

    def __init__(self, cin: int, width: int = 64):
        super().__init__()
        chans = (cin, width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            layers.append(nn.Conv2d(a, b, 4, 2 if i < 3 else 1, 1))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(chans[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
