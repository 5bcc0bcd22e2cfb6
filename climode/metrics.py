"""Per-frame verification metrics on (B, K, C, H, W) forecasts against targets with NaN for unknown cells.

Each returns one value per frame, (B, K); averaging over samples gives a value per lead
time. Conventions: MSE is the mean over the frame's known cells in the data's units;
PSNR is computed per frame as 10 log10(data_range^2 / MSE) and then averaged (not from
the mean MSE of a whole set, as the earlier public implementation did); SSIM is the
Gaussian-window SSIM (11 px, sigma 1.5) of each channel at full precision, averaged over
channels, with unknown cells taken from the other field so they do not count as error.
A cell counts only where both forecast and target are finite.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

SSIM_CHUNK = 128  # frames per torchmetrics call


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each frame over the cells finite in both -> (B, K)."""
    valid = torch.isfinite(target) & torch.isfinite(pred)
    sq = torch.where(valid, (torch.nan_to_num(pred) - torch.nan_to_num(target)) ** 2, torch.zeros((), dtype=pred.dtype))
    return sq.flatten(2).sum(2) / valid.flatten(2).sum(2).clamp(min=1)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each frame in dB -> (B, K); a perfect frame is capped at 100 dB."""
    return (10 * torch.log10(data_range**2 / mse(pred, target).clamp(min=1e-10))).clamp(max=100.0)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity of each frame -> (B, K)."""
    B, K, C, H, W = pred.shape
    dtype = pred.dtype
    target, pred = torch.where(torch.isfinite(target), target, pred), torch.where(torch.isfinite(pred), pred, target)
    target, pred = torch.nan_to_num(target), torch.nan_to_num(pred)
    pred, target = pred.reshape(-1, 1, H, W).double(), target.reshape(-1, 1, H, W).double()
    per_channel = torch.cat([  # in chunks: one large call made the CPU convolution ask for tens of GB
        structural_similarity_index_measure(p, t, data_range=data_range, reduction="none")
        for p, t in zip(pred.split(SSIM_CHUNK), target.split(SSIM_CHUNK))])
    return per_channel.view(B, K, C).mean(2).to(dtype)


METRICS = {"mse": mse, "psnr": psnr, "ssim": ssim}
