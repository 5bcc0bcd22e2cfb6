"""Conv-Encoder E and the ODE-ConvGRU that turns irregular observations into a state at t_L."""
from __future__ import annotations

import torch
from torch import nn

from .odefunc import ConvODEFunc, SolverConfig, solve


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    pad = (kernel - 1) // 2 if stride == 1 else (kernel - stride) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvEncoder(nn.Module):
    """E: (B, cin, H, W) -> (B, 4w, H/4, W/4). Conv3x3 cin->w, Conv4x4/2 w->2w, Conv4x4/2 2w->4w."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            conv_bn_relu(cin, width, 3),
            conv_bn_relu(width, 2 * width, 4, 2),
            conv_bn_relu(2 * width, 4 * width, 4, 2),
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
    """Encoder of irregular sequences: between observations the state follows dh/dt = f(h),
    solved with torchdiffeq; at each observation a ConvGRU cell takes in the encoded frame.

    The state starts at zero at the first time and is returned at the last time t_L,
    integrated through any trailing unobserved times.
    """

    def __init__(self, channels: int, ode_widths: tuple[int, ...], solver: SolverConfig):
        super().__init__()
        self.func = ConvODEFunc(ode_widths)
        self.cell = ConvGRUCell(channels)
        self.solver = solver

    def forward(self, features: torch.Tensor, times: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """features (B, L, F, h, w); times (L,) increasing; observed (B, L) bool -> state (B, F, h, w) at times[-1]."""
        state = torch.zeros_like(features[:, 0])
        for i in range(features.shape[1]):
            if i:
                state = solve(self.func, state, times[i - 1 : i + 1], self.solver)[-1]
            updated = self.cell(state, features[:, i])
            state = torch.where(observed[:, i].view(-1, 1, 1, 1), updated, state)
        return state
