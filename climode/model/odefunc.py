"""Convolutional ODE derivatives and the one solve that every ODE in climode goes through."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..errors import check_choice
from .compute import run

SOLVERS = ("euler", "midpoint", "rk4", "dopri5")


@dataclass(frozen=True)
class SolverConfig:
    """How an ODE is integrated (times in model units, see ``ModelConfig.time_scale``).

    ``step_size`` applies to the fixed-grid solvers (euler, midpoint, rk4: 1, 2 and 4 evaluations of
    the derivative per step); the default, one model time unit,
    is one step per storage interval of the data (``ModelConfig.time_scale``), so the grid falls on
    the observation times. ``rtol``/``atol`` apply to the adaptive dopri5. ``adjoint``
    back-propagates with the adjoint method (constant memory in the number of steps, slower).
    """

    method: str = "rk4"
    step_size: float = 1.0
    rtol: float = 1e-3
    atol: float = 1e-4
    adjoint: bool = False

    def __post_init__(self):
        check_choice("ODE solver", self.method, SOLVERS)
        if self.method != "dopri5" and not self.step_size > 0:
            raise ValueError(f"ODE step_size must be positive, got {self.step_size}")


class ConvODEFunc(nn.Module):
    """dh/dt = f(h): 3x3 convolutions with Tanh between them (time-invariant, as in the paper).

    ``widths`` lists the channels from input to output, e.g. (128, 64, 64, 64, 128). The derivative
    has the state's dtype (its convolutions may run lower under autocast).
    """

    compile_mode = "off"  # ``ModelConfig.compile``

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
        return run(self.net, h, compile=self.compile_mode).to(h.dtype)


class FCODEFunc(nn.Module):
    """dh/dt = f(h) with fully connected layers over the flattened state (ODE-FC of the paper):
    (B, channels, h, w) -> Linear(channels*h*w, hidden) Tanh Linear(hidden, hidden) Tanh
    Linear(hidden, channels*h*w), reshaped back. The state's size is fixed at construction."""

    def __init__(self, channels: int, height: int, width: int, hidden: int = 128):
        super().__init__()
        size = channels * height * width
        self.shape = (channels, height, width)
        self.net = nn.Sequential(
            nn.Linear(size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, size)
        )
        self.nfe = 0

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if tuple(h.shape[1:]) != self.shape:
            raise ValueError(
                f"ODE-FC was built for states of shape {self.shape} (frames of the training size), "
                f"got {tuple(h.shape[1:])}"
            )
        self.nfe += 1
        return self.net(h.flatten(1)).view_as(h)


def solve(func: nn.Module, h0: torch.Tensor, times: torch.Tensor, solver: SolverConfig) -> torch.Tensor:
    """Integrate ``func`` from ``h0`` at ``times[0]`` and return the states at every time (torchdiffeq's
    own grid: off-grid times of the fixed-step solvers are interpolated, so a state depends on the other
    times asked for; the variational baselines use it, Vid-ODE uses ``advance`` and ``trajectory``).

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


class _Rescaled(nn.Module):
    """dh/dtau = dt * f(h) for tau in [0, 1]: one solve over a duration ``dt`` (N,) of each sample's own."""

    def __init__(self, func: nn.Module, dt: torch.Tensor):
        super().__init__()
        self.func = func
        self.dt = dt

    def forward(self, tau: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.dt.view(-1, *[1] * (h.ndim - 1)) * self.func(tau, h)


_UNIT = torch.tensor([0.0, 1.0])


def _step(
    func: nn.Module, h: torch.Tensor, dt: torch.Tensor, solver: SolverConfig, maybe_zero: bool = True
) -> torch.Tensor:
    """One step of ``solver``'s method (or, for dopri5, one adaptive solve) of size dt (N,) per sample.
    A sample with dt = 0 is returned exactly as it is. ``maybe_zero``: dt may be zero for every sample,
    which skips the step at the cost of a look at dt (on a GPU a synchronisation); a grid step that
    some sample takes says False."""
    if maybe_zero and not bool((dt != 0).any()):
        return h
    integrate = odeint_adjoint if solver.adjoint else odeint
    unit = _UNIT.to(device=h.device, dtype=h.dtype)
    scaled = _Rescaled(func, dt.to(h.dtype))
    if solver.method == "dopri5":
        return integrate(scaled, h, unit, method="dopri5", rtol=solver.rtol, atol=solver.atol)[-1]
    return integrate(scaled, h, unit, method=solver.method, options={"step_size": 1.0})[-1]


def _split(dt: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole steps (N,) long and the signed remainder (N,) of durations ``dt``."""
    whole = torch.floor(dt.abs() / step).long()
    return whole, dt - torch.sign(dt) * whole.to(dt.dtype) * step


def advance(func: nn.Module, h: torch.Tensor, dt: torch.Tensor, solver: SolverConfig) -> torch.Tensor:
    """The state of dh/dt = f(h) after a duration ``dt`` (N,) of each sample's own (model units; negative
    runs backward, 0 leaves the sample unchanged), from ``h`` (N, ...).

    Fixed-step solvers take whole steps of ``step_size`` and one last step of the remainder, so a
    sample's result depends only on its own duration, never on the others' (samples of different
    times share one batch). dopri5 solves dh/dtau = dt * f(h) over tau in [0, 1]."""
    if solver.method == "dopri5":
        return _step(func, h, dt, solver)
    whole, rest = _split(dt, solver.step_size)
    for j in range(int(whole.max()) if whole.numel() else 0):
        step = torch.where(whole > j, torch.sign(dt) * solver.step_size, torch.zeros_like(dt))
        h = _step(func, h, step, solver, maybe_zero=False)  # j < whole.max(): some sample steps
    return _step(func, h, rest, solver)


def trajectory(func: nn.Module, h0: torch.Tensor, leads: torch.Tensor, solver: SolverConfig) -> torch.Tensor:
    """States (B, K, ...) at ``leads`` (B, K) >= 0 (model units) after each sample's ``h0`` (B, ...).

    A state depends on its own lead only, never on which other leads were asked for: fixed-step
    solvers run whole steps of ``step_size`` from lead 0 (a grid that no query moves) and reach
    each lead with one step of the remainder from the grid point before it; dopri5's adaptive
    steps do not depend on where its dense output is read."""
    B, K = leads.shape
    if solver.method == "dopri5":
        grid, index = torch.unique(torch.cat((leads.new_zeros(1), leads.flatten())), return_inverse=True)
        integrate = odeint_adjoint if solver.adjoint else odeint
        if len(grid) == 1:
            states = h0.unsqueeze(0)
        else:
            states = integrate(func, h0, grid.to(h0.dtype), method="dopri5", rtol=solver.rtol, atol=solver.atol)
        rows = torch.arange(B, device=h0.device).repeat_interleave(K)
        return states[index[1:], rows].unflatten(0, (B, K))
    whole, rest = _split(leads, solver.step_size)
    needed = whole.max(1).values  # (B,) grid steps each sample needs
    grid = [h0]
    for j in range(int(needed.max()) if needed.numel() else 0):
        step = torch.where(needed > j, solver.step_size, 0.0).to(leads)
        grid.append(_step(func, grid[-1], step, solver, maybe_zero=False))
    grid = torch.stack(grid)  # (J + 1, B, ...)
    rows = torch.arange(B, device=h0.device).view(-1, 1).expand(B, K)
    start = grid[whole, rows].flatten(0, 1)  # (B*K, ...)
    return _step(func, start, rest.flatten(), solver).unflatten(0, (B, K))
