"""How frames are composed: the parts, the difference path, missing cells."""

import numpy as np
import pytest
import torch

from climode.checkpoint import Card
from climode.config import Config, TrainConfig
from climode.model import ModelConfig, SolverConfig, VidODE
from climode.model.compose import compose, fill_missing, shifted_fill
from climode.training.task import ForecastTask

EULER = SolverConfig("euler", 1.0)


def test_compose_warps_blends_and_adds_and_follows_recursive_sources():
    inputs = torch.arange(2.0).view(1, 2, 1, 1, 1).expand(1, 2, 1, 3, 3).clone()  # frames 0 and 1
    flows = torch.zeros(1, 3, 2, 2, 3, 3)
    weight = torch.tensor([0.25, 1.0, 0.5]).view(1, 3, 1, 1, 1).expand(1, 3, 1, 3, 3)
    residual = torch.tensor([0.0, 10.0, 0.0]).view(1, 3, 1, 1, 1).expand(1, 3, 1, 3, 3)
    sources = torch.tensor([[[0, 1], [1, 1], [-2, 0]]])  # a blend; input 1 + 10; query 1 blended with input 0
    out = compose(inputs, sources, flows, weight, residual)[0, :, 0, 1, 1]
    assert out.tolist() == pytest.approx([0.75, 11.0, 5.5])
    flows[0, 1, 0, 0] = 1.0  # one pixel to the right: column j samples j + 1
    ramp = torch.arange(3.0).view(1, 1, 1, 1, 3).expand(1, 2, 1, 3, 3)
    moved = compose(ramp, sources[:, :2], flows[:, :2], weight[:, :2])
    assert moved[0, 1, 0, 0].tolist() == pytest.approx([1.0, 2.0, 2.0])  # the border value beyond the edge


def test_fill_missing_keeps_valid_cells_and_never_leaves_the_valid_range():
    rng = np.random.default_rng(0)
    frames = torch.as_tensor(rng.uniform(0.3, 0.7, (2, 3, 2, 12, 14)), dtype=torch.float32)
    frames[:, :, :, 2:6, 3:9] = float("nan")  # never valid
    frames[0, 2, :, 8:, 8:] = float("nan")  # missing in the last frame only
    observed = torch.ones(2, 3, dtype=torch.bool)
    filled, valid = fill_missing(frames, observed)
    assert torch.isfinite(filled).all()
    assert torch.equal(filled[valid], frames[valid])
    assert torch.equal(filled[0, 2, :, 8:, 8:], frames[0, 1, :, 8:, 8:])  # the cell's last valid value
    assert filled.min() >= 0.3 and filled.max() <= 0.7
    with shifted_fill(0.25):  # the probe of dependence on filled cells: filled cells only, and only inside
        shifted, _ = fill_missing(frames, observed)
    assert torch.equal(shifted[valid], frames[valid]) and torch.allclose(shifted[~valid], filled[~valid] + 0.25)
    assert torch.equal(fill_missing(frames, observed)[0], filled)


def _deepening_blobs(n: int, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A Gaussian blob at a random place that deepens by ``rate`` every time unit: inputs at 0..3, targets at 4, 5."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    frames = np.zeros((n, 6, 1, size, size), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(4, size - 4, 2)
        start, rate = rng.uniform(0.05, 0.15), rng.uniform(0.08, 0.12)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 2.0**2))
        frames[i, :, 0] = (start + rate * np.arange(6))[:, None, None] * blob
    frames = torch.as_tensor(frames)
    return {
        "frames_in": frames[:, :4],
        "times_in": torch.arange(4.0).expand(n, 4),
        "frames_out": frames[:, 4:],
        "times_out": torch.tensor([4.0, 5.0]).expand(n, 2),
    }


def _best_warp_mse(batch: dict) -> torch.Tensor:
    """A lower bound of the MSE of any warp of the last frame: bilinear sampling stays within the
    frame's range, so each cell errs at least by its target's distance to [min, max] of that frame."""
    last = batch["frames_in"][:, -1]
    low, high = last.amin((1, 2, 3)).view(-1, 1, 1, 1, 1), last.amax((1, 2, 3)).view(-1, 1, 1, 1, 1)
    target = batch["frames_out"]
    return ((target - high).clamp(min=0) + (low - target).clamp(min=0)).pow(2).mean()


@pytest.mark.slow
def test_the_difference_path_deepens_a_blob_that_no_warp_can():
    """Trained with the trainer's own losses (L1 + the difference loss), the forecast of a deepening blob
    beats the best any warp of the last frame could do: the difference branch is alive and used."""
    torch.manual_seed(0)
    config = Config(
        model=ModelConfig(channels=1, width=8, encoder_solver=EULER, decoder_solver=EULER),
        train=TrainConfig(adversarial=False, ema=0.0),
    )
    task = ForecastTask(config, Card())
    model: VidODE = task.model
    train, test = _deepening_blobs(256), _deepening_blobs(64, seed=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        pick = torch.randint(0, 256, (16,))
        part = {k: v[pick] for k, v in train.items()}
        out = model(part["frames_in"], part["times_in"], part["times_out"])
        loss = task.generator_loss(task.generator_losses(part, out))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        out = model(test["frames_in"], test["times_in"], test["times_out"])
    mse = (out["frames"] - test["frames_out"]).pow(2).mean()
    bound = _best_warp_mse(test)
    assert mse < 0.5 * bound, (float(mse), float(bound))
    assert out["diff"].abs().amax() > 0.05  # the change comes from D, not from a warp
