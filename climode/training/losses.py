"""Loss pieces of Vid-ODE; NaN in a target marks a cell that does not count."""

from __future__ import annotations

import torch

from ..model.base import EXTRAPOLATED


def _masked_mean(errors: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(target)
    zero = torch.zeros((), dtype=errors.dtype, device=errors.device)
    return torch.where(valid, errors, zero).sum() / valid.sum().clamp(min=1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the cells where ``target`` is finite (0 if there are none)."""
    return _masked_mean((pred - torch.nan_to_num(target)).abs(), target)


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the cells where ``target`` is finite (0 if there are none)."""
    return _masked_mean((pred - torch.nan_to_num(target)) ** 2, target)


ANOMALY_CAP = 10.0  # standard deviations: a cell never weighs more than this


def anomaly_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 over (..., C, H, W) where each cell counts by how far ``target`` lies from its frame's mean,
    in the frame's standard deviations (per channel, capped at ANOMALY_CAP), normalised by the total
    weight: the few cells of a storm's core, a front or a rain cell weigh as much as the rest of the
    frame, which a plain L1 lets a model smooth away. NaN in ``target`` does not count."""
    valid = torch.isfinite(target)
    t = torch.nan_to_num(target)
    n = valid.sum((-2, -1), keepdim=True).clamp(min=1)
    mean = (t * valid).sum((-2, -1), keepdim=True) / n
    std = (((t - mean) * valid) ** 2).sum((-2, -1), keepdim=True).div(n).sqrt().clamp(min=1e-6)
    weight = torch.where(valid, ((t - mean).abs() / std).clamp(max=ANOMALY_CAP), 0.0).detach()
    errors = torch.where(valid, (pred - t).abs(), 0.0)  # a forecast not asked for (NaN) does not count
    return (weight * errors).sum() / weight.sum().clamp(min=1e-12)


def lsgan_discriminator(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss: (D(real) - 1)^2 + D(fake)^2."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def lsgan_generator(fake: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: (D(fake) - 1)^2."""
    return ((fake - 1) ** 2).mean()


def diff_targets(batch: dict, out: dict) -> torch.Tensor:
    """What the difference image D of each extrapolated query is trained towards (B, K, C, H, W): the true
    frame minus the true frame it was composed from (``out["sources"][..., 0]``: an input slot, or
    -1 - k for the forecast at query k), NaN (not counted) at the other queries."""
    truth = torch.cat((batch["frames_in"], batch["frames_out"]), 1)
    source = out["sources"][..., 0]
    slot = torch.where(source < 0, batch["frames_in"].shape[1] - 1 - source, source)
    before = truth.gather(1, slot.view(*slot.shape, 1, 1, 1).expand(-1, -1, *truth.shape[2:]))
    change = batch["frames_out"] - before
    extrapolated = (out["kind"] == EXTRAPOLATED).view(*slot.shape, 1, 1, 1)
    return torch.where(extrapolated, change, float("nan"))


def sequence(
    frames_in: torch.Tensor, times_in: torch.Tensor, frames_out: torch.Tensor, times_out: torch.Tensor, length: int
) -> torch.Tensor:
    """Each sample's observed inputs and asked queries in time order, stacked along channels.

    frames_in (B, L, C, H, W) at times_in (B, L) (an all-NaN frame is not observed), frames_out
    (B, K, C, H, W) at times_out (B, K) (NaN: not asked) -> (B, length * C, H, W), NaN as 0, each
    sequence padded with zero frames after its last (the sequence discriminator's fixed width)."""
    frames = torch.cat((frames_in, frames_out), 1)
    seen = torch.cat((torch.isfinite(frames_in).flatten(2).any(2), torch.isfinite(times_out)), 1)
    times = torch.where(seen, torch.cat((times_in.to(times_out), times_out), 1), torch.inf)
    order = torch.argsort(times, dim=1, stable=True)
    count = int(seen.sum(1).max())
    if count > length:
        raise ValueError(f"the sequence discriminator takes {length} frames, a sample has {count}")
    picked = frames.gather(1, order.view(*order.shape, 1, 1, 1).expand(-1, -1, *frames.shape[2:]))
    picked = torch.where(seen.gather(1, order).view(*order.shape, 1, 1, 1), torch.nan_to_num(picked), 0.0)
    padded = torch.cat((picked, picked.new_zeros(len(picked), max(0, length - picked.shape[1]), *picked.shape[2:])), 1)
    return padded[:, :length].flatten(1, 2)
