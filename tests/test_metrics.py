import math

import pytest
import torch

from climode.baselines import advection, linear, motion, persistence
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


def _translating(times, velocity=(1.2, -0.7), size=64):
    """A smooth periodic field moving ``velocity`` (x, y) pixels per time unit: (1, L, 1, size, size)."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    frames = [torch.sin(2 * math.pi * (x - velocity[0] * t) / 32) + torch.cos(2 * math.pi * (y - velocity[1] * t) / 24)
              for t in times]
    return torch.stack(frames)[None, :, None]


def test_linear_extrapolation_is_exact_for_a_linear_trend_and_skips_missing_frames():
    times = torch.tensor([0.0, 1.0, 3.0])
    slope = torch.rand(1, 1, 1, 4, 4)
    frames = (2.0 + slope * times.view(1, -1, 1, 1, 1)).clone()
    frames[0, 2] = float("nan")  # the last frame missing: the line goes through t = 0 and 1
    out = linear(frames, times, torch.tensor([4.0, 6.5]))
    torch.testing.assert_close(out[0, 1], 2.0 + slope[0, 0] * 6.5)


def test_advection_is_exact_for_a_uniformly_translating_field():
    times = torch.tensor([0.0, 1.5, 2.5])
    frames = _translating(times.tolist())
    truth = _translating([4.0, 5.5])[0]
    out = advection(frames, times, torch.tensor([4.0, 5.5]))[0]
    inner = (..., slice(12, -12), slice(12, -12))  # away from the border, where the motion has no source
    error = (out - truth)[inner].abs()  # the field spans -2..2; bilinear resampling alone errs by ~0.008
    assert error.max() < 0.05 and error.mean() < 0.01
    still = persistence(frames, times, torch.tensor([4.0, 5.5]))[0]
    assert (still - truth)[inner].abs().max() > 0.3  # the field does move
    torch.testing.assert_close(motion(frames[:, 1], frames[:, 2])[0, :, 20:-20, 20:-20].mean((1, 2)),
                               torch.tensor([1.2, -0.7], dtype=torch.float64), atol=0.01, rtol=0)


def test_ssim_of_many_frames_equals_frame_by_frame():
    """SSIM is computed in chunks (one call over hundreds of 60 x 160 frames asked for 29 GB)."""
    pred, target = torch.rand(2, 70, 2, 16, 16), torch.rand(2, 70, 2, 16, 16)  # 280 frames: three chunks
    whole = ssim(pred, target)
    one = ssim(pred[1:, 69:], target[1:, 69:])
    assert whole.shape == (2, 70) and whole[1, 69].item() == pytest.approx(one.item(), abs=1e-6)


def test_each_sample_is_forecast_on_its_own_times():
    """On a union time grid a sample's forecast must not see its batch mates' input or query times."""
    from climode.scoring import on_own_times

    seen = []

    def record(frames, times, query):
        seen.append((len(frames), times.tolist(), query.tolist()))
        return persistence(frames, times, query)

    frames = torch.rand(3, 4, 1, 2, 2)
    present_in = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1], [1, 0, 1, 0]], dtype=torch.bool)
    present_out = torch.tensor([[1, 0], [0, 1], [1, 0]], dtype=torch.bool)
    batch = {"frames_in": frames, "times_in": torch.arange(4.0), "frames_out": torch.rand(3, 2, 1, 2, 2),
             "times_out": torch.tensor([5.0, 6.0]), "present_in": present_in, "present_out": present_out}
    out = on_own_times(record, batch)
    assert sorted(seen) == [(1, [1.0, 2.0, 3.0], [6.0]), (2, [0.0, 2.0], [5.0])]
    assert torch.equal(out[1, 1], frames[1, 3]) and torch.isnan(out[1, 0]).all()
