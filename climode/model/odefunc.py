"""Convolutional ODE derivatives and the one solve that every ODE in climode goes through."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

SOLVERS = ("euler", "rk4", "dopri5")


@dataclass(frozen=True)
class SolverConfig:
    """How an ODE is integrated (times in model units, see ``ModelConfig.time_scale``).

    ``step_size`` applies to the fixed-grid solvers (euler, rk4); ``rtol``/``atol``
    to the adaptive dopri5. ``adjoint`` back-propagates with the adjoint method
    (constant memory in the number of steps, slower).
    """

    method: str = "rk4"
    step_size: float = 0.5
    rtol: float = 1e-3
    atol: float = 1e-4
    adjoint: bool = False

    def __post_init__(self):
        if self.method not in SOLVERS:
            raise ValueError(f"unknown ODE solver {self.method!r}; choose one of {', '.join(SOLVERS)}")
        if self.method != "dopri5" and not self.step_size > 0:
            raise ValueError(f"ODE step_size must be positive, got {self.step_size}")


class ConvODEFunc(nn.Module):
    """dh/dt = f(h): 3x3 convolutions with Tanh between them (time-invariant, as in the paper).

    ``widths`` lists the channels from input to output, e.g. (128, 64, 64, 64, 128).
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            if i:
                layers.append(nn.Tanh())
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.nfe = 0

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.net(h)


class FCODEFunc(nn.Module):
    """dh/dt = f(h) with fully connected layers over the flattened state (ODE-FC of the paper):
    (B, channels, h, w) -> Linear(channels*h*w, hidden) Tanh Linear(hidden, hidden) Tanh
    Linear(hidden, channels*h*w), reshaped back. The state's size is fixed at construction."""

    def __init__(self, channels: int, height: int, width: int, hidden: int = 128):
        super().__init__()
        size = channels * height * width
        self.shape = (channels, height, width)
        self.net = nn.Sequential(nn.Linear(size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, size))
        self.nfe = 0

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if tuple(h.shape[1:]) != self.shape:
            raise ValueError(f"ODE-FC was built for states of shape {self.shape} (frames of the training size), "
                             f"got {tuple(h.shape[1:])}")
        self.nfe += 1
        return self.net(h.flatten(1)).view_as(h)


def solve(func: nn.Module, h0: torch.Tensor, times: torch.Tensor, solver: SolverConfig) -> torch.Tensor:
    """Integrate ``func`` from ``h0`` at ``times[0]`` and return the states at every time.

    ``times`` (T,) must be strictly monotonic (increasing or decreasing); the result
    has shape (T, *h0.shape) and its first entry is ``h0``.
    """
    kwargs = {"method": solver.method}
    if solver.method == "dopri5":
        kwargs.update(rtol=solver.rtol, atol=solver.atol)
    else:
        kwargs["options"] = {"step_size": solver.step_size}
    integrate = odeint_adjoint if solver.adjoint else odeint
    return integrate(func, h0, times.to(h0.dtype), **kwargs)
