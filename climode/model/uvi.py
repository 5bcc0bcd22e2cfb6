"""``UVI`` ("uvi"): Unsupervised Video Interpolation using cycle consistency (Reda, Sun, Dundar, Shoeybi,
Liu, Shih, Tao, Kautz & Catanzaro, ICCV 2019), the interpolation baseline of the Vid-ODE paper (Park et
al., AAAI 2021, Table 3).

The interpolator is UVI's, Super SloMo's (Jiang et al., CVPR 2018) two U-Nets (``SloMoUNet``):

1. the flow U-Net looks at the frames I0, I1 around the query and gives the bidirectional flows
   F01, F10 (pixels, the warps carrying I1 onto I0 and I0 onto I1: ``warp(I1, F01) ~ I0``);
2. the flows at the query's fraction t of their gap by the linear approximation,
   Ft0 = -(1 - t) t F01 + t^2 F10 and Ft1 = (1 - t)^2 F01 - (1 - t) t F10;
3. the interpolation U-Net looks at I0, I1, their warps W(I0, Ft0), W(I1, Ft1) and those flows (and,
   at its bottleneck, the flow U-Net's) and gives corrections to Ft0, Ft1 and a visibility map V;
4. the frame is ((1 - t) V W(I0, Ft0) + t (1 - V) W(I1, Ft1)) / ((1 - t) V + t (1 - V)).

Training (in training mode, ``losses``): UVI's cycle consistency. For every three consecutive observed
frames I0, I1, I2 of a sample (at t0 < t1 < t2), I_a = the frame halfway between I0 and I1 and I_b the
frame halfway between I1 and I2 are synthesised, then I1_hat = the frame at t1 between I_a and I_b
(fraction (t1 - t0) / (t2 - t0), 1/2 for even gaps), and ``cycle`` = 0.8 |I1_hat - I1| (L1 over I1's
observed cells). UVI's other terms come with it, with its weights: ``warp`` = 0.4 x the L1 of each
call's flows warping one of its frames onto the other, and of the raw warps of the cycle call onto
I1; ``smooth`` = the mean absolute gradient of every call's F01, F10 (pixels) / 255.

Queries outside the observed span get the nearest observed frame, as the ``blend`` baseline (after the
last: persistence; before the first: the first): UVI only interpolates. A query at an observed time
gets that frame. Times are per sample ((B, L) and (B, K), ``per_sample_times``); missing cells are
filled (``compose.fill_missing``); the output dict is Vid-ODE's (``base.finish``, without a
difference image).

Architecture (Super SloMo, Sec. 3.3, as UVI's code): each U-Net has five levels of two convolutions
with leaky ReLU (slope 0.1), 7x7 at the first level, 5x5 at the second, 3x3 below, 2x2 average pooling
after each, a bottleneck of two 3x3 convolutions, and five levels of bilinear upsampling and two 3x3
convolutions fed the encoder's features of their resolution; widths w, 2w, 4w, 8w, 16w | 16w with
w = ``config.width`` (the paper's w is 32); a 3x3 convolution and 1x1 convolutions to the outputs.

Deviations from the paper:

- UVI's perceptual (VGG-16) term is left out (no pretrained VGG here), and so is its pseudo-supervised
  term (it needs a pretrained interpolator; UVI's code drops it too when it has none);
- the project's trainer adds its L1 against the target frames (``climode.train``), so UVI here learns
  from the cycle and from supervision; the paper's UVI is trained from the cycle alone;
- the weights are UVI's on frames in [0, 255] expressed for frames in [0, 1] (the L1 terms as they are,
  the smoothness term, in pixels, divided by 255);
- the output convolutions start at zero, so the untrained model blends the two frames linearly (the
  ``blend`` baseline);
- the flows are estimated at the frames' resolution (UVI's code can estimate them at a coarser one);
- pooling and upsampling work on any frame size (ceil mode, upsampling to the skip's size);
- any fraction t of the gap, per sample (Super SloMo's: any t; UVI trains at fixed ones).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import INTERPOLATED, ModelConfig, empty_parts, finish, placed_queries
from .dvf import total_variation
from .warp import warp

# UVI's loss weights (pixel, warping and smoothness terms; its code's pix_alpha, warp_alpha, smooth_alpha),
# the smoothness one for frames in [0, 1] instead of [0, 255]
CYCLE, WARP, SMOOTH = 0.8, 0.4, 1.0 / 255
KERNELS = (7, 5, 3, 3, 3)


def _level(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """Super SloMo's level: two convolutions, each followed by a leaky ReLU (slope 0.1)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2),
        nn.LeakyReLU(0.1),
        nn.Conv2d(cout, cout, kernel, padding=kernel // 2),
        nn.LeakyReLU(0.1),
    )


class SloMoUNet(nn.Module):
    """Super SloMo's U-Net (module docstring): (N, cin, H, W) and, if ``extra`` > 0, another U-Net's
    bottleneck (N, extra, h, w) -> features (N, w, H, W) and its own bottleneck (N, 16w, h, w)."""

    def __init__(self, cin: int, width: int, extra: int = 0):
        super().__init__()
        widths = [width * 2**n for n in range(5)]
        self.down = nn.ModuleList(_level(a, b, k) for a, b, k in zip([cin, *widths[:-1]], widths, KERNELS))
        self.bottleneck = _level(widths[-1], widths[-1])
        ins = [widths[-1] + extra, *(2 * n for n in widths[:0:-1])]  # upsampled input, then input + skip
        self.up = nn.ModuleList(_level(a, b) for a, b in zip(ins, widths[::-1]))
        self.refine = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for level in self.down:
            x = level(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2, ceil_mode=True)
        bottom = x = self.bottleneck(x)
        if extra is not None:
            x = torch.cat((extra, x), 1)
        for level, skip in zip(self.up, reversed(skips)):
            x = level(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = torch.cat((skip, x), 1)
        return self.refine(x), bottom


def _zero(layer: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _synthesise(x0: torch.Tensor, x1: torch.Tensor, step: dict[str, torch.Tensor]) -> torch.Tensor:
    """The frame (N, C, H, W) that ``UVI.interpolate``'s ``step`` composes from x0, x1 (N, C, H, W)."""
    return step["weight"] * warp(x0, step["ft0"]) + (1 - step["weight"]) * warp(x1, step["ft1"])


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


class UVI(nn.Module):
    """UVI's interpolator and cycle-consistency training (module docstring)."""

    per_sample_times = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        self.flow_net = SloMoUNet(2 * c, w)
        self.flow_out = _zero(nn.Conv2d(w, 4, 1))  # F01, F10
        self.interp_net = SloMoUNet(4 * c + 4, w, extra=16 * w)
        self.interp_out = _zero(nn.Conv2d(w, 5, 1))  # corrections to Ft0, Ft1; visibility logit

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, tau: torch.Tensor) -> dict[str, torch.Tensor]:
        """Super SloMo between frames x0, x1 (N, C, H, W) at fractions tau (N,) of their gap: the flows
        ``ft0``, ``ft1`` (N, 2, H, W; pixels) from the query to each frame, the ``weight`` (N, 1, H, W) of
        x0's warp, the flows ``f01``, ``f10`` between the frames and the raw warps ``raw0``, ``raw1``."""
        t = tau.view(-1, 1, 1, 1)
        features, bottom = self.flow_net(torch.cat((x0, x1), 1))
        f01, f10 = self.flow_out(features).chunk(2, 1)
        ft0 = -(1 - t) * t * f01 + t * t * f10
        ft1 = (1 - t) * (1 - t) * f01 - (1 - t) * t * f10
        raw0, raw1 = warp(x0, ft0), warp(x1, ft1)
        features, _ = self.interp_net(torch.cat((x0, x1, raw0, ft0, raw1, ft1), 1), bottom)
        d0, d1, visible = self.interp_out(features).split((2, 2, 1), 1)
        visible = torch.sigmoid(visible)
        a0, a1 = (1 - t) * visible, t * (1 - visible)
        return {
            "ft0": ft0 + d0,
            "ft1": ft1 + d1,
            "weight": a0 / (a0 + a1).clamp(min=1e-12),
            "f01": f01,
            "f10": f10,
            "raw0": raw0,
            "raw1": raw1,
        }

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, L, C, H, W), NaN missing; times (L,) or (B, L), query_times (K,) or (B, K), real
        units (NaN: a slot a sample does not use) -> the dict of ``base.finish`` less ``diff``, plus
        ``losses`` in training mode."""
        H, W = frames.shape[-2:]
        observed, filled, valid, t, s, where = placed_queries(self.config, frames, times, query_times)
        kind, asked = where["kind"], torch.isfinite(s)
        sources = torch.stack((where["before"], where["after"]), -1)  # outside the span: the nearest twice
        parts = empty_parts(filled, s.shape[1])
        b, k = (asked & (kind == INTERPOLATED)).nonzero(as_tuple=True)
        if len(b):
            i, j = sources[b, k, 0], sources[b, k, 1]
            step = self.interpolate(filled[b, i], filled[b, j], (s[b, k] - t[b, i]) / (t[b, j] - t[b, i]))
            parts["flows"][b, k, 0], parts["flows"][b, k, 1] = step["ft0"], step["ft1"]
            parts["weight"][b, k] = step["weight"]
        out = finish(parts, sources, kind, filled, valid, asked, (H, W))
        del out["diff"]  # no difference image: the trainer's L_diff would have nothing to train
        if self.training:
            out["losses"] = self.cycle_losses(filled, valid, t, observed)
        return out

    def cycle_losses(
        self, filled: torch.Tensor, valid: torch.Tensor, t: torch.Tensor, observed: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """UVI's weighted ``cycle``, ``warp`` and ``smooth`` terms (module docstring) over every three
        consecutive observed frames of each sample: filled frames and validity (B, L, C, H, W), times
        (B, L) and ``observed`` (B, L). Zero where no sample has three observed frames."""
        B, L = observed.shape
        order = torch.argsort((~observed).int(), dim=1, stable=True)  # the observed slots first, in order
        n = torch.arange(max(L - 2, 0), device=t.device)
        rows, n = (n.view(1, -1) + 2 < observed.sum(1, keepdim=True)).nonzero(as_tuple=True)
        if not len(rows):
            return dict.fromkeys(("cycle", "warp", "smooth"), filled.new_zeros(()))
        slots = [order[rows, n + m] for m in range(3)]
        x0, x1, x2 = (filled[rows, slot] for slot in slots)
        t0, t1, t2 = (t[rows, slot] for slot in slots)
        pairs = (torch.cat((x0, x1)), torch.cat((x1, x2)))  # both first-stage calls at once
        first = self.interpolate(*pairs, torch.full_like(torch.cat((t0, t1)), 0.5))
        halves = _synthesise(*pairs, first).chunk(2)
        back = self.interpolate(*halves, (t1 - t0) / (t2 - t0))
        seen = valid[rows, slots[1]]
        cycle = ((_synthesise(*halves, back) - x1).abs() * seen).sum() / seen.sum().clamp(min=1)
        warps = 2 * (_l1(warp(pairs[0], first["f10"]), pairs[1]) + _l1(warp(pairs[1], first["f01"]), pairs[0]))
        warps = warps + _l1(warp(halves[0], back["f10"]), halves[1]) + _l1(warp(halves[1], back["f01"]), halves[0])
        warps = warps + _l1(back["raw0"], x1) + _l1(back["raw1"], x1)
        smooth = 2 * (total_variation(first["f01"]) + total_variation(first["f10"]))
        smooth = smooth + total_variation(back["f01"]) + total_variation(back["f10"])
        return {"cycle": CYCLE * cycle, "warp": WARP * warps, "smooth": SMOOTH * smooth}


MODELS = {"uvi": UVI}
