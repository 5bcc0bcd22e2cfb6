"""Conv-Decoders: from ODE states to the parts a frame is composed of (``climode.model.compose``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .compute import run
from .encoder import conv_norm_relu

MASK_LOGIT = 2.0  # sigmoid(2) = 0.88: an untrained model leans on the warp, the paper's main mechanism


DECODERS = ("light", "paper")


def _upsampler(channels: int, out_channels: int, kind: str) -> nn.Sequential:
    """(B, c, h, w) -> (B, out, 4h, 4w).

    "paper": bilinear up x2, Conv3x3 c->c/2 GN ReLU, up x2, Conv3x3 c/2->c/4 GN ReLU, Conv3x3 c/4->out.
    "light": Conv3x3 c->c/2 GN ReLU, up x2, Conv3x3 c/2->c/4 GN ReLU, up x2, Conv3x3 c/4->c/8 GN ReLU,
    Conv3x3 c/8->out: each convolution one grid coarser than the paper's and the full-resolution one
    four times narrower, so 38 % of its work and activation memory (docs/performance.md)."""
    if kind == "paper":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            conv_norm_relu(channels, channels // 2, 3),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            conv_norm_relu(channels // 2, channels // 4, 3),
            nn.Conv2d(channels // 4, out_channels, 3, padding=1),
        )
    return nn.Sequential(
        conv_norm_relu(channels, channels // 2, 3),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        conv_norm_relu(channels // 2, channels // 4, 3),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        conv_norm_relu(channels // 4, max(channels // 8, 1), 3),
        nn.Conv2d(max(channels // 8, 1), out_channels, 3, padding=1),
    )


def _zero_output(net: nn.Sequential, bias: dict[int, float] | None = None) -> None:
    """Start the last layer at zero weights (and the given per-channel biases): an untrained decoder
    gives a zero flow and difference, whatever the state."""
    last = net[-1]
    nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.zero_()
        for channel, value in (bias or {}).items():
            last.bias[channel] = value


class _Decoder(nn.Module):
    """Runs ``net`` (``_upsampler``): ``checkpointing`` recomputes its full-resolution stage (from its
    last upsampling on, where most of its activations are) in the backward pass instead of keeping
    it; ``compile_mode`` is ``ModelConfig.compile`` (``compute.run``)."""

    checkpointing = False
    compile_mode = "off"

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        cut = max(i for i, layer in enumerate(self.net) if isinstance(layer, nn.Upsample))
        coarse = run(self.net[:cut], x, compile=self.compile_mode)
        return run(self.net[cut:], coarse, checkpointing=self.checkpointing, compile=self.compile_mode)


class ConvDecoder(_Decoder):
    """G(h_s, h_prev), the extrapolation decoder (``_upsampler`` of ``kind``): (B, 4w, H/4, W/4) x 2 ->
    velocity (B, 2, H, W) in pixels per model time unit, rate of change (B, c, H, W) per model time
    unit and mask M (B, 1, H, W) in (0, 1); the model multiplies the first two by
    the lead into a flow F and a difference D.

    Its output layer starts at zero velocity and rate and M = sigmoid(MASK_LOGIT); as the frame is
    M * W(F, X) + (1 - M) * (X + D), an untrained model is exactly persistence."""

    def __init__(self, channels: int, width: int, kind: str):
        super().__init__()
        self.net = _upsampler(8 * width, channels + 3, kind)
        self.channels = channels
        _zero_output(self.net, {channels + 2: MASK_LOGIT})

    def forward(self, state: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.decode(torch.cat((state, previous), 1))
        flow, diff, mask = out.split((2, self.channels, 1), 1)
        return flow, diff, torch.sigmoid(mask)


class InterpolationDecoder(_Decoder):
    """G_int(h_before(s), h_after(s), X_before(s), X_after(s)), the interpolation decoder: the states at s
    carried forward from the observation before s and backward from the one after it, (B, 4w, H/4, W/4)
    each, and the two frames carried to s along the estimated motion, (B, c, H, W) each (where they
    disagree the motion is wrong) -> velocity corrections seen from each side, ``velocity_before`` and
    ``velocity_after`` (B, 2, H, W; pixels per model time unit), a blend logit (B, 1, H, W) and a
    difference (B, c, H, W).

    Its output layer starts at zero, so an untrained model interpolates along the estimated motion
    between the two frames (``VidODE``)."""

    def __init__(self, channels: int, width: int, kind: str):
        super().__init__()
        self.frames = nn.Conv2d(2 * channels, 8 * width, 3, padding=1)
        self.net = _upsampler(8 * width, channels + 5, kind)
        self.channels = channels
        _zero_output(self.net)

    def forward(
        self, before: torch.Tensor, after: torch.Tensor, frame_before: torch.Tensor, frame_after: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        seen = self.frames(F.avg_pool2d(torch.cat((frame_before, frame_after), 1), 4))
        out = self.decode(torch.cat((before, after), 1) + seen)
        return out.split((2, 2, 1, self.channels), 1)


class StateDecoder(_Decoder):
    """A frame-sized output from one state: (B, 4w, H/4, W/4) -> (B, channels, H, W) (``_upsampler``
    of 4w channels, ``kind`` "paper" or "light"). The baselines use it to decode the change from the
    last observed frame."""

    def __init__(self, channels: int, width: int, kind: str):
        super().__init__()
        self.net = _upsampler(4 * width, channels, kind)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.decode(state)
