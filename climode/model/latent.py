"""Variational latent-ODE baselines of the Vid-ODE paper, with convolutional encoders and decoders.

- ``LatentODE`` (Rubanova et al. 2019): an ODE-RNN run backward in time over the observed frames
  gives q(z0) at the first input time; z follows dz/dt = f(z).
- ``ODE2VAE`` (Yildiz et al. 2019): a second-order latent ODE, ds/dt = v, dv/dt = f(s, v), with
  q(s0) from the first observed frame and q(v0) from the backward ODE-RNN over all observed frames.

Both have a Gaussian posterior q(z0) at the first input time, with a KL to N(0, I); they sample
it (reparameterised) when training and take its mean in eval mode, integrate the latent over the
sorted union of the input and query times, and decode every latent (position) state as the change
from the last observed frame: ``frame = anchor + StateDecoder(z)``, at the queries (the forecast)
and at the input times (the reconstructions of the ELBO). The anchor is the last observed frame of
each sample (a missing last frame: the one before), its missing cells filled; the decoder's output
layer starts at zero, so an untrained model is persistence, like every other learned model.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelConfig, anchor_frame, check_inputs, model_times, prepare_inputs
from .decoder import StateDecoder
from .encoder import ConvEncoder, ODEConvGRU
from .odefunc import ConvODEFunc, SolverConfig, solve
from .stochastic import gaussian_kl


def _trajectory(func: nn.Module, h0: torch.Tensor, t0: torch.Tensor, times: torch.Tensor, solver: SolverConfig):
    """States at ``times`` (monotonic away from t0, the first may equal t0) from h0 at t0."""
    states: list[torch.Tensor] = []
    if times.numel() and times[0] == t0:
        states.append(h0)
        times = times[1:]
    if times.numel():
        states.extend(solve(func, h0, torch.cat((t0.view(1), times)), solver)[1:].unbind(0))
    return states


def latent_path(
    func: nn.Module, z0: torch.Tensor, t0: torch.Tensor, times: torch.Tensor, solver: SolverConfig
) -> torch.Tensor:
    """States (T, *z0.shape) at ``times`` (T,) increasing, from z0 at t0: integrated forward
    from t0 for the times at or after it and backward from t0 for those before."""
    before = _trajectory(func, z0, t0, times[times < t0].flip(0), solver)
    after = _trajectory(func, z0, t0, times[times >= t0], solver)
    return torch.stack(before[::-1] + after)


class SecondOrder(nn.Module):
    """d(s, v)/dt = (v, f(s, v)) for a state (B, 2C, h, w) holding position s and velocity v
    along channels; f is a conv net from concat(s, v) (2C) to an acceleration (C)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.acceleration = ConvODEFunc((2 * channels, hidden, hidden, hidden, channels))

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        velocity = state.chunk(2, 1)[1]
        return torch.cat((velocity, self.acceleration(t, state)), 1)


class _VariationalODE(nn.Module):
    """What both models share: the frame encoder E (w-2w-4w, to H/4, W/4), a backward ODE-ConvGRU
    over its features, the latent ODE ``func`` and the StateDecoder of the position (the first 4w
    latent channels), its output layer at zero (persistence). Subclasses give the posterior's mean and
    log-variance at the first input time."""

    def __init__(self, config: ModelConfig, func: nn.Module):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        self.frame_encoder = ConvEncoder(2 * c, w)
        self.sequence_encoder = ODEConvGRU(
            4 * w, (4 * w, 2 * w, 2 * w, 2 * w, 4 * w), config.encoder_solver, reverse=True
        )
        self.func = func
        self.decoder = StateDecoder(c, w, config.decoder)
        nn.init.zeros_(self.decoder.net[-1].weight)
        nn.init.zeros_(self.decoder.net[-1].bias)

    def posterior(
        self, features: torch.Tensor, summary: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z0), each (B, latent channels, H/4, W/4), from the frame
        features (B, L, 4w, H/4, W/4), the backward ODE-RNN's state at the first input time
        (B, 4w, H/4, W/4) and which frames were observed (B, L)."""
        raise NotImplementedError

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, L, C, H, W), NaN marks missing cells, an all-NaN frame a missing observation;
        times (L,) and query_times (K,) strictly increasing, real units (queries anywhere).
        Returns ``frames`` (B, K, C, H, W) the forecast at the queries, ``inputs`` (B, L, C, H, W)
        the reconstructions at the input times and ``kl`` the scalar KL(q(z0) || N(0, I)) per
        latent element and sample."""
        cfg = self.config
        B, L, H, W = *frames.shape[:2], *frames.shape[-2:]
        if times.ndim != 1 or query_times.ndim != 1:
            raise ValueError(f"{cfg.architecture} takes input and query times shared by the batch, (L,) and (K,)")
        check_inputs(cfg, frames, times, query_times)
        x, observed, filled, _ = prepare_inputs(frames)
        anchor = anchor_frame(filled, observed)
        t, s = model_times(times, query_times, frames, cfg.time_scale)

        features = self.frame_encoder(x.flatten(0, 1)).unflatten(0, (B, L))
        # backward in time, from t_L to the first observed frame (dh/d(-t) = f(h); f is learned, its sign free)
        states = self.sequence_encoder(features, t.expand(B, L), observed)
        summary = states[torch.arange(B, device=frames.device), observed.int().argmax(1)]
        mean, logvar = self.posterior(features, summary, observed)
        z0 = mean + (0.5 * logvar).exp() * torch.randn_like(mean) if self.training else mean

        grid = torch.unique(torch.cat((t, s)))  # sorted
        states = latent_path(self.func, z0, t[0], grid, cfg.decoder_solver)
        position = states[:, :, : 4 * cfg.width].flatten(0, 1)
        decoded = (anchor + self.decoder(position).unflatten(0, (len(grid), B)))[..., :H, :W].transpose(0, 1)
        return {
            "frames": decoded[:, torch.searchsorted(grid, s)],
            "inputs": decoded[:, torch.searchsorted(grid, t)],
            "kl": gaussian_kl(mean, logvar).mean(),  # to the standard normal, over every element
        }


class LatentODE(_VariationalODE):
    """Latent ODE with an ODE-RNN encoder: q(z0) (4w channels at H/4, W/4) from a 3x3 conv on the
    backward ODE-ConvGRU's state at the first input time; dz/dt = f(z), f a 4w-2w-2w-2w-4w conv net."""

    def __init__(self, config: ModelConfig):
        w = config.width
        super().__init__(config, ConvODEFunc((4 * w, 2 * w, 2 * w, 2 * w, 4 * w)))
        self.posterior_head = nn.Conv2d(4 * w, 8 * w, 3, padding=1)

    def posterior(
        self, features: torch.Tensor, summary: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.posterior_head(summary).chunk(2, 1)


class ODE2VAE(_VariationalODE):
    """Second-order latent ODE: position s and velocity v (each 4w channels at H/4, W/4),
    ds/dt = v, dv/dt = f(s, v), f an 8w-2w-2w-2w-4w conv net; s(t) is decoded.

    q(s0) comes from a 3x3 conv on the features of each sequence's first observed frame, q(v0)
    from a 3x3 conv on the backward ODE-ConvGRU's state at the first input time, which has seen
    every observed frame at its real time (the paper stacks the first few frames, which cannot
    take irregular gaps or missing frames). The paper's Bayesian f is a deterministic conv net here.
    """

    def __init__(self, config: ModelConfig):
        w = config.width
        super().__init__(config, SecondOrder(4 * w, 2 * w))
        self.position_head = nn.Conv2d(4 * w, 8 * w, 3, padding=1)
        self.velocity_head = nn.Conv2d(4 * w, 8 * w, 3, padding=1)

    def posterior(
        self, features: torch.Tensor, summary: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        first = features[torch.arange(len(features), device=features.device), observed.int().argmax(1)]
        s_mean, s_logvar = self.position_head(first).chunk(2, 1)
        v_mean, v_logvar = self.velocity_head(summary).chunk(2, 1)
        return torch.cat((s_mean, v_mean), 1), torch.cat((s_logvar, v_logvar), 1)


MODELS = {"latent-ode": LatentODE, "ode2vae": ODE2VAE}
