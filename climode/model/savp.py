"""``SAVP`` ("savp"), Lee et al. 2018, "Stochastic Adversarial Video Prediction", a stochastic video baseline
of the Vid-ODE paper's supplement (Table 9): the VAE-GAN hybrid.

A convolutional recurrent generator makes each frame from the previous one (observed, else its own) and a
latent z_t (``Z_DIM``) tiled over the grid and concatenated to the input of every encoder and decoder
stage: an encoder of three Conv4x4/2 stages, each followed by a ConvLSTM (w, 2w, 4w), and a decoder of
upsampling stages with skip connections from the encoder (ConvLSTMs of 2w and w, then a w-wide
convolution at full resolution). The frame is composited as SAVP's: ``KERNELS`` CDNA transformations of
the previous frame (normalised ``KERNEL_SIZE`` x ``KERNEL_SIZE`` kernels from the bottleneck), the
previous frame itself and a synthesised frame, blended by softmax masks. The posterior
q(z_t | x_{t-1}, x_t) is a Gaussian from the two frames' encodings (over the observed steps), the prior
N(0, I) after the inputs (in eval mode every z is its mean, ``sample`` draws them). The model returns
``kl`` (the trainer then uses MSE reconstruction plus lambda_kl x kl) and its GAN part is the trainer's
frame and sequence LSGAN discriminators (``train.adversarial``), which see the forecasts, drawn from the
prior as SAVP's GAN samples are.

Times, outputs (``frames``, ``inputs``, ``kl``), randomness (``forward`` and ``sample``) and the choices
shared with SVG and SRVP: ``climode.model.stochastic``.

Deviations from the paper: widths follow ``ModelConfig.width`` w (SAVP's generator: 32, 64, 128 at its
three levels, i.e. w = 32); GroupNorm for its layer/instance norm; the posterior takes the two frames'
vectors from the shared ``FrameEncoder`` (one frame at a time, late fusion) where SAVP's encoder convolves
the stacked pair; the reconstruction loss is the trainer's MSE (SAVP: L1) and the KL weight is
``train.lambda_kl``; the discriminators are the trainer's PatchGAN pair on frames and stacked sequences
(SAVP: 3D-convolutional video discriminators, one for prior samples and one for posterior samples); the
first frame is not a compositing source (only the previous one and the synthesised frame); the
synthesised frame is the previous frame plus a change (fields are not in [0, 1], no sigmoid) whose layer,
the mask layer and the kernel layer start at zero with the kernels at the identity, so an untrained SAVP
is persistence, as every climode model; CDNA pads by replication.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelConfig
from .encoder import group_norm
from .prednet import ConvLSTMCell
from .stochastic import StochasticVideo, gaussian_kl

Z_DIM = 8  # SAVP's nz
KERNELS = 4  # CDNA transformations of the previous frame
KERNEL_SIZE = 5
RELU_SHIFT = 1e-12  # SAVP's kernel normalisation: relu(x - shift) + shift, divided by the sum


def tile(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """x (N, c, h, w) with z (N, Z) tiled over the grid behind it: (N, c + Z, h, w)."""
    return torch.cat((x, z[:, :, None, None].expand(-1, -1, *x.shape[-2:])), 1)


def cdna(frame: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """frame (N, C, H, W) and normalised kernels (N, K, k, k) -> (N, K, C, H, W): the frame filtered with
    each kernel of its sample (replicate padding)."""
    N, C, H, W = frame.shape
    k = kernels.shape[-1]
    patches = F.unfold(F.pad(frame, (k // 2,) * 4, mode="replicate"), k).view(N, C, k * k, H * W)
    return torch.einsum("ncpx,nkp->nkcx", patches, kernels.flatten(2)).view(N, -1, C, H, W)


class SAVPCell(nn.Module):
    """One step of SAVP's generator (module docstring): the previous frame and its validity (N, 2C, H, W),
    H and W multiples of 8, and z (N, Z) -> the frame (N, C, H, W) and the five ConvLSTMs' new states."""

    def __init__(self, channels: int, width: int, z_dim: int = Z_DIM):
        super().__init__()
        c, w, z = channels, width, z_dim
        down = (2 * c, w, 2 * w, 4 * w)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a + z, b, 4, 2, 1), group_norm(b), nn.LeakyReLU(0.2, inplace=True))
            for a, b in zip(down[:-1], down[1:])
        )
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a + z, b, 3, padding=1), group_norm(b), nn.ReLU(inplace=True))
            for a, b in ((6 * w, 2 * w), (3 * w, w), (w + 2 * c, w))
        )
        self.lstms = nn.ModuleList(ConvLSTMCell(n, n) for n in (w, 2 * w, 4 * w, 2 * w, w))
        self.kernels = nn.Linear(4 * w, KERNELS * KERNEL_SIZE**2)
        self.masks = nn.Conv2d(w, KERNELS + 2, 3, padding=1)
        self.change = nn.Conv2d(w, c, 3, padding=1)
        for layer in (self.kernels, self.masks, self.change):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():  # every kernel the identity
            self.kernels.bias.view(KERNELS, KERNEL_SIZE**2)[:, KERNEL_SIZE**2 // 2] = 1.0

    def initial(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The ConvLSTMs' zero states for inputs ``x`` (N, 2C, H, W)."""
        scales = (2, 4, 8, 4, 2)
        return [cell.initial(x[..., ::s, ::s]) for cell, s in zip(self.lstms, scales)]

    def forward(self, previous: torch.Tensor, z: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        new, skips, h = [], [], previous
        for conv, cell, hc in zip(self.down, self.lstms[:3], state[:3]):
            h, hc = cell(conv(tile(h, z)), hc)
            new.append(hc)
            skips.append(h)
        raw = self.kernels(h.mean((2, 3))).view(-1, KERNELS, KERNEL_SIZE, KERNEL_SIZE)
        kernels = F.relu(raw - RELU_SHIFT) + RELU_SHIFT
        kernels = kernels / kernels.sum((2, 3), keepdim=True)
        for j, conv in enumerate(self.up):
            skip = skips[1 - j] if j < 2 else previous
            up = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = conv(tile(torch.cat((up, skip), 1), z))
            if j < 2:
                h, hc = self.lstms[3 + j](h, state[3 + j])
                new.append(hc)
        frame = previous[:, : self.change.out_channels]
        sources = torch.cat((cdna(frame, kernels), frame[:, None], (frame + self.change(h))[:, None]), 1)
        masks = torch.softmax(self.masks(h), 1)
        return (masks[:, :, None] * sources).sum(1), new


class SAVP(StochasticVideo):
    """SAVP (module docstring): z of ``Z_DIM`` per step, generator widths w, 2w, 4w."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.cell = SAVPCell(config.channels, config.width)
        self.posterior = nn.Linear(2 * self.dim, 2 * Z_DIM)

    def _run(self, grid: dict, mode: str, generator: torch.Generator | None) -> dict:
        x, filled, present, rows = (grid[k] for k in ("x", "filled", "present", "rows"))
        B, L = grid["observed"].shape
        h_in = self.encoder(x.flatten(0, 1))[0].unflatten(0, (B, L))
        slot = grid["slot"].clamp(min=0)
        previous = x[rows, slot[:, 0]]
        first = filled[rows, slot[:, 0]]
        outputs, predictions = [first], [first]
        state = self.cell.initial(previous)
        kl, count = h_in.new_zeros(()), 0
        for n in range(1, present.shape[1]):
            zero = h_in.new_zeros(B, Z_DIM)
            z = self._draw(zero, zero, mode, generator)
            seen = present[:, n]
            if bool(seen.any()):
                h_prev = h_in[rows, slot[:, n - 1]]
                made = (seen & ~present[:, n - 1]).nonzero(as_tuple=True)[0]
                if len(made):  # the previous frame was generated: its encoding
                    h_prev = h_prev.index_put((made,), self.encoder(previous[made])[0])
                q = self.posterior(torch.cat((h_prev, h_in[rows, slot[:, n]]), 1))
                mu, logvar = q.chunk(2, 1)
                z = torch.where(seen.view(-1, 1), self._draw(mu, logvar, mode, generator), z)
                kl = kl + (gaussian_kl(mu, logvar).sum(1) * seen).sum()
                count += int(seen.sum())
            frame, state = self.cell(previous, z, state)
            seen = seen.view(-1, 1, 1, 1)
            predictions.append(frame)
            outputs.append(torch.where(seen, filled[rows, slot[:, n]], frame))
            previous = torch.where(seen, x[rows, slot[:, n]], torch.cat((frame, torch.ones_like(frame)), 1))
        outputs, predictions = torch.stack(outputs, 1), torch.stack(predictions, 1)
        out = self._finish(
            grid, outputs[rows.view(-1, 1), grid["query"]], predictions[rows.view(-1, 1), grid["step"].clamp(min=0)]
        )
        return {**out, "kl": kl / max(count, 1)}


MODELS = {"savp": SAVP}
