import math

import pytest
import torch

from climode.baselines import persistence
from climode.data.samples import collate
from climode.losses import masked_l1, masked_mse, previous_truth, sequence
from climode.metrics import mse, psnr, ssim


def test_masked_losses_ignore_nan_cells():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([2.0, float("nan"), 1.0, 4.0])
    assert masked_l1(pred, target).item() == pytest.approx((1 + 2 + 0) / 3)
    assert masked_mse(pred, target).item() == pytest.approx((1 + 4 + 0) / 3)


def test_frame_mse_and_psnr_by_hand():
    pred = torch.zeros(1, 2, 1, 2, 2)
    target = torch.zeros(1, 2, 1, 2, 2)
    target[0, 0] = torch.tensor([[0.1, 0.2], [0.3, float("nan")]])
    target[0, 1] = 0.5
    expected0 = (0.01 + 0.04 + 0.09) / 3
    assert mse(pred, target)[0].tolist() == pytest.approx([expected0, 0.25])
    assert psnr(pred, target)[0].tolist() == pytest.approx([10 * math.log10(1 / expected0), 10 * math.log10(4)])


def test_ssim_identical_is_one_and_degrades_with_noise():
    frames = torch.rand(2, 3, 2, 32, 32)
    assert ssim(frames, frames).min().item() == pytest.approx(1.0, abs=1e-6)
    noisy = (frames + 0.3 * torch.randn_like(frames)).clamp(0, 1)
    assert ssim(noisy, frames).max().item() < 0.9


def test_ssim_of_constant_shift_by_hand():
    """For constant frames x=a, y=b SSIM = (2ab + C1) / (a^2 + b^2 + C1) (variances are 0)."""
    a, b, c1 = 0.2, 0.6, 0.01**2
    pred = torch.full((1, 1, 1, 16, 16), a)
    target = torch.full((1, 1, 1, 16, 16), b)
    assert ssim(pred, target).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


def test_persistence_copies_last_observed_frame():
    frames = torch.rand(2, 3, 1, 4, 4)
    frames[1, 2] = float("nan")
    out = persistence(frames, torch.arange(3.0), torch.tensor([3.0, 4.0]))
    assert torch.equal(out[0, 1], frames[0, 2])
    assert torch.equal(out[1, 0], frames[1, 1])


def test_previous_truth_and_sequence_order():
    targets = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(2, 3, 1, 1, 1)
    anchor = torch.full((2, 1, 1, 1), -1.0)
    prev = previous_truth(targets, anchor, torch.tensor([-1, 0, -1]))
    assert prev[0, :, 0, 0, 0].tolist() == [-1.0, 0.0, -1.0]
    seq = sequence(torch.zeros(1, 2, 1, 1, 1), torch.tensor([0.0, 2.0]), torch.ones(1, 1, 1, 1, 1),
                   torch.tensor([1.0]), torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 1, dtype=torch.bool))
    assert seq[0, :, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_sequence_takes_each_samples_own_times_from_a_union_grid():
    samples = [{"frames_in": torch.tensor([10.0 * b, 10.0 * b + 1]).view(2, 1, 1, 1),
                "times_in": torch.tensor([0.0, 1.0 + b]),
                "frames_out": torch.tensor([10.0 * b + 2]).view(1, 1, 1, 1),
                "times_out": torch.tensor([5.0])} for b in (0, 1)]
    batch = collate(samples)
    assert batch["times_in"].tolist() == [0.0, 1.0, 2.0]
    assert batch["present_in"].tolist() == [[True, True, False], [True, False, True]]
    seq = sequence(*(batch[k] for k in ("frames_in", "times_in", "frames_out", "times_out", "present_in",
                                         "present_out")))
    assert seq[:, :, 0, 0].tolist() == [[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]]
