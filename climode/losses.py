"""Loss pieces of Vid-ODE; NaN in a target marks a cell that does not count."""
from __future__ import annotations

import torch


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


def lsgan_discriminator(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss: (D(real) - 1)^2 + D(fake)^2."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def lsgan_generator(fake: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: (D(fake) - 1)^2."""
    return ((fake - 1) ** 2).mean()


def previous_truth(targets: torch.Tensor, anchor: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """The true frame each forecast was composed from: targets (B, K, ...) at ``previous``
    (K,), or ``anchor`` (B, ...) where ``previous`` is -1."""
    padded = torch.cat((anchor.unsqueeze(1), targets), 1)
    return padded[:, previous + 1]


def sequence(frames_in: torch.Tensor, times_in: torch.Tensor, frames_out: torch.Tensor, times_out: torch.Tensor,
             present_in: torch.Tensor, present_out: torch.Tensor) -> torch.Tensor:
    """Each sample's own inputs and outputs in time order, stacked along channels.

    frames (B, L|K, C, H, W) on the batch's time grids, ``present_*`` (B, L|K) marking the
    grid times that belong to each sample -> (B, N*C, H, W), N frames per sample, NaN as 0.
    """
    order = torch.argsort(torch.cat((times_in, times_out)))
    frames = torch.cat((frames_in, frames_out), 1)[:, order]
    present = torch.cat((present_in, present_out), 1)[:, order]
    counts = present.sum(1)
    if not (counts == counts[0]).all():
        raise ValueError(f"the sequence discriminator needs the same number of frames in every sample, "
                         f"got {sorted(set(counts.tolist()))}")
    keep = torch.argsort((~present).int(), dim=1, stable=True)[:, : int(counts[0])]  # own times, in order
    picked = frames.gather(1, keep.view(*keep.shape, 1, 1, 1).expand(-1, -1, *frames.shape[2:]))
    return torch.nan_to_num(picked).flatten(1, 2)
