"""Conv-Encoder E and the ODE-ConvGRU that turns irregular observations into a state at t_L."""

from __future__ import annotations

import math

import torch
from torch import nn

from .compute import run
from .odefunc import ConvODEFunc, SolverConfig, advance


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm of up to 8 groups: statistics per sample, so a batch of one, or samples with missing
    frames beside it, normalise as any batch does (the paper's BatchNorm did not)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


def conv_norm_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    pad = (kernel - 1) // 2 if stride == 1 else (kernel - stride) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad), group_norm(cout), nn.ReLU(inplace=True))


class ConvEncoder(nn.Module):
    """E: (B, cin, H, W) -> (B, 4w, H/4, W/4). Conv3x3 cin->w, Conv4x4/2 w->2w, Conv4x4/2 2w->4w,
    each followed by GroupNorm and ReLU."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            conv_norm_relu(cin, width, 3),
            conv_norm_relu(width, 2 * width, 4, 2),
            conv_norm_relu(2 * width, 4 * width, 4, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvGRUCell(nn.Module):
    """Convolutional GRU: h' = (1 - z) * h + z * tanh(W [x, r * h])."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 2 * channels, kernel, padding=kernel // 2)
        self.candidate = nn.Conv2d(2 * channels, channels, kernel, padding=kernel // 2)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        reset, update = torch.sigmoid(self.gates(torch.cat((x, h), 1))).chunk(2, 1)
        candidate = torch.tanh(self.candidate(torch.cat((x, reset * h), 1)))
        return (1 - update) * h + update * candidate


class ODEConvGRU(nn.Module):
    """Encoder of irregular sequences: between observations the state follows dh/dt = f(h); at each
    observation a ConvGRU cell takes in the encoded frame. Each sample has its own times.

    The state starts at zero at each sample's first observed time. ``reverse`` runs from the last
    observation to the first (time running backward, dh/d(-t) = f(h)), so the state at a frame
    summarises that frame and the ones after it.
    """

    compile_mode = "off"  # ``ModelConfig.compile``

    def __init__(self, channels: int, ode_widths: tuple[int, ...], solver: SolverConfig, reverse: bool = False):
        super().__init__()
        self.func = ConvODEFunc(ode_widths)
        self.cell = ConvGRUCell(channels)
        self.solver = solver
        self.reverse = reverse

    def forward(self, features: torch.Tensor, times: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """features (B, L, F, h, w); times (B, L) model units, increasing over each sample's observed
        frames (others ignored); observed (B, L) bool -> states (B, L, F, h, w): after the update at
        each observed frame, or carried unchanged over a missing one (a missing frame is no frame)."""
        B, L = observed.shape
        order = range(L - 1, -1, -1) if self.reverse else range(L)
        first = observed.int().argmax(1) if not self.reverse else L - 1 - observed.flip(1).int().argmax(1)
        t_prev = times.gather(1, first.view(-1, 1)).squeeze(1)
        state = torch.zeros_like(features[:, 0])
        states: list[torch.Tensor] = [state] * L
        for i in order:
            seen = observed[:, i]
            t_i = torch.where(seen, times[:, i], t_prev)
            gap = (t_prev - t_i) if self.reverse else (t_i - t_prev)
            state = advance(self.func, state, gap, self.solver)
            updated = run(self.cell, state, features[:, i], compile=self.compile_mode)
            state = torch.where(seen.view(-1, 1, 1, 1), updated, state)
            t_prev = t_i
            states[i] = state
        return torch.stack(states, 1)
