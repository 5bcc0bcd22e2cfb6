"""``RCG`` ("rcg"), Kwon and Park, CVPR 2019, "Predicting Future Frames using Retrospective Cycle GAN", a
video extrapolation baseline of the Vid-ODE paper (Table 2).

One generator G predicts the next frame from the ``CONTEXT`` frames before it, stacked along channels,
and, given them in reverse order, the frame before them. It is trained in both directions with the
retrospective cycle, on each sample's last ``CONTEXT`` + 1 steps up to its last observed frame x_s:

- forward: x_hat_{s+1} = G(x_{s-k+1..s}), the first forecast, scored by the trainer's L1 (its target);
- backward: x_hat_{s-k} = G(x_s, ..., x_{s-k+1}), L1 against the input x_{s-k} (own term ``backward``);
- retrospective cycle: x_{s-k+1} again from (x_hat_{s+1}, x_s, ..., x_{s-k+2}) and x_s again from
  (x_hat_{s-k}, x_{s-k+1}, ..., x_{s-1}), L1 against those inputs (own term ``cycle``, the two summed);

each weighted 1 as its paper's image terms, and returned in training mode only (``losses``). Terms whose
target step has no observed frame (too few inputs, a gap) are left out. Its frame discriminator and
sequence discriminator are the trainer's two LSGAN PatchGAN discriminators (``train.adversarial``), with
the trainer's weights lambda_img and lambda_seq (0.003 each, as RCG's public re-implementation). Several
frames ahead the model's own predictions are fed back in place of frames.

Times, gaps and queries as ``climode.model.stochastic`` (one step per frame of ``time_scale`` real
units from each sample's first observed input; a frame missing in a gap is generated as after the
inputs; a query off the grid gets the frame at its nearest step, one at an observed step that frame).

Deviations from the paper: RCG's Laplacian-of-Gaussian image loss is left out (on the forecasts it would
need the targets, which only the trainer holds); the discriminators see only the forecasts (and the
trainer's sequences of inputs and forecasts), not the backward and cycle frames; the term tying the first
prediction to its cycle twin (x' to x'', in RCG's public re-implementation) is not used. The generator is
the encoder / residual blocks / decoder layout of Johnson et al. and CycleGAN that RCG's public
re-implementation uses (not checked against the paper's text, which was not at hand), at
``ModelConfig.width`` w: Conv7x7 w, Conv3x3/2 2w, Conv3x3/2 4w, ``RES_BLOCKS`` residual blocks of 4w
(CycleGAN's count for images of 128 pixels or less), transposed Conv3x3/2 2w and w, Conv7x7 to the frame
(CycleGAN's w = 64); GroupNorm for instance norm, replicate for reflection padding; each frame's validity is
a channel beside it (2C per frame); the output is the newest input frame plus the decoded change, the last
layer starting at zero (an untrained RCG is persistence, as every climode model), not a tanh image;
``CONTEXT`` 4 frames (the re-implementation's); steps before the first input repeat the first frame; frames
of any size (padded to multiples of 8).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelConfig, last_index
from .encoder import group_norm
from .prednet import FrameSteps

CONTEXT = 4  # frames G predicts from
RES_BLOCKS = 6  # CycleGAN's residual blocks for images of 128 pixels or less


def norm_relu(layer: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(layer, group_norm(channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + [Conv3x3 GroupNorm ReLU Conv3x3 GroupNorm](x), ``channels`` wide."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            norm_relu(nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate"), channels),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate"),
            group_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Generator(nn.Module):
    """RCG's G (module docstring): (N, cin, H, W), H and W multiples of 4 -> (N, cout, H, W), the change
    from the newest frame, zero before training."""

    def __init__(self, cin: int, cout: int, width: int, blocks: int = RES_BLOCKS):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            norm_relu(nn.Conv2d(cin, w, 7, padding=3, padding_mode="replicate"), w),
            norm_relu(nn.Conv2d(w, 2 * w, 3, 2, 1), 2 * w),
            norm_relu(nn.Conv2d(2 * w, 4 * w, 3, 2, 1), 4 * w),
            *(ResidualBlock(4 * w) for _ in range(blocks)),
            norm_relu(nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), 2 * w),
            norm_relu(nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), w),
            nn.Conv2d(w, cout, 7, padding=3, padding_mode="replicate"),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean |pred - frame| over the cells ``target`` (N, 2C, H, W: frame and validity) marks valid, of the
    samples ``keep`` (N,) marks; 0 (with a gradient) where there are none."""
    C = pred.shape[1]
    valid = (target[:, C:] > 0.5) & keep.view(-1, 1, 1, 1)
    return torch.where(valid, (pred - target[:, :C]).abs(), 0.0).sum() / valid.sum().clamp(min=1)


class RCG(FrameSteps):
    """RCG (module docstring): one ``Generator`` over ``CONTEXT`` frames and their validity."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.generator = Generator(CONTEXT * 2 * config.channels, config.channels, config.width)

    def predict(self, window: torch.Tensor) -> torch.Tensor:
        """The frame after ``window`` (N, CONTEXT, 2C, H, W), oldest first (frames and validity): (N, C, H, W)."""
        return window[:, -1, : self.config.channels] + self.generator(window.flatten(1, 2))

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict:
        """frames (B, L, C, H, W), NaN missing; times (L,) or (B, L), query_times (K,) or (B, K) in real
        units -> ``frames`` (B, K, C, H, W), NaN where not asked; in training also ``losses``
        (``backward`` and ``cycle``, module docstring)."""
        grid = self._grid(frames, times, query_times)
        x, present, rows = grid["x"], grid["present"], grid["rows"]
        slot = grid["slot"].clamp(min=0)
        steps = [x[rows, slot[:, 0]]]  # each step's frame and validity, observed or generated
        for n in range(1, present.shape[1]):
            step = x[rows, slot[:, n]]
            seen = present[:, n]
            if not bool(seen.all()):
                made = self.predict(torch.stack([steps[max(m, 0)] for m in range(n - CONTEXT, n)], 1))
                made = torch.cat((made, torch.ones_like(made)), 1)
                step = torch.where(seen.view(-1, 1, 1, 1), step, made)
            steps.append(step)
        bank = torch.stack(steps, 1)
        C = self.config.channels
        out = {"frames": self._finish(grid, bank[rows.view(-1, 1), grid["query"], :C], grid["filled"])["frames"]}
        if self.training:
            out["losses"] = self.retrospective(bank, present, grid["size"])
        return out

    def retrospective(self, bank: torch.Tensor, present: torch.Tensor, size: tuple[int, int]) -> dict:
        """RCG's ``backward`` and ``cycle`` terms (module docstring) from the steps ``bank`` (B, T, 2C, H, W),
        ``present`` (B, T) and the frames' ``size`` (H, W) (the padding is not scored)."""
        B = len(bank)
        last = last_index(present)
        span = last.view(-1, 1) + torch.arange(-CONTEXT, 1, device=bank.device)  # (B, k + 1): s - k .. s
        real = present.gather(1, span.clamp(min=0)) & (span >= 0)
        sequence = bank[torch.arange(B, device=bank.device).view(-1, 1), span.clamp(min=0)]
        window = sequence[:, 1:]  # x_{s-k+1..s}
        forward, backward = self.predict(torch.cat((window, window.flip(1)))).split(B)
        made = lambda f: torch.cat((f, torch.ones_like(f)), 1)[:, None]
        again = self.predict(
            torch.cat(
                (
                    torch.cat((made(forward), window[:, 1:].flip(1)), 1),  # -> x_{s-k+1}
                    torch.cat((made(backward), window[:, :-1]), 1),  # -> x_s
                )
            )
        )
        H, W = size
        crop = lambda v: v[..., :H, :W]
        to_first, to_last = crop(again).split(B)
        return {
            "backward": masked_l1(crop(backward), crop(sequence[:, 0]), real[:, 0]),
            "cycle": masked_l1(to_first, crop(window[:, 0]), real[:, 1])
            + masked_l1(to_last, crop(window[:, -1]), real[:, -1]),
        }


MODELS = {"rcg": RCG}
