import math

import pytest
import torch

from climode.baselines import advection, linear, motion, persistence
from climode.data.samples import collate
from climode.losses import diff_targets, masked_l1, masked_mse, sequence
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


def test_diff_targets_are_the_true_change_from_each_extrapolation_source():
    frames_in = torch.arange(3.0).view(1, 3, 1, 1, 1) * 10  # inputs 0, 10, 20
    frames_out = torch.tensor([25.0, 31.0, 44.0]).view(1, 3, 1, 1, 1)
    out = {"sources": torch.tensor([[[1, 2], [2, 2], [-2, -2]]]),  # between inputs 1 and 2; from input 2; from query 1
           "kind": torch.tensor([[1, 2, 2]])}
    target = diff_targets({"frames_in": frames_in, "frames_out": frames_out}, out)
    assert torch.isnan(target[0, 0]).all()  # interpolation: no difference target
    assert target[0, 1:, 0, 0, 0].tolist() == [31.0 - 20.0, 44.0 - 31.0]


def test_sequence_orders_each_samples_observed_inputs_and_queries_and_pads():
    samples = [{"frames_in": torch.tensor([10.0 * b, 10.0 * b + 1]).view(2, 1, 1, 1),
                "times_in": torch.tensor([0.0, 1.0 + b]),
                "frames_out": torch.tensor([10.0 * b + 2, 10.0 * b + 3][: 2 - b]).view(-1, 1, 1, 1),
                "times_out": torch.tensor([5.0, 0.5][: 2 - b])} for b in (0, 1)]
    samples[0]["frames_out"], samples[0]["times_out"] = samples[0]["frames_out"].flip(0), torch.tensor([0.5, 5.0])
    batch = collate(samples)
    assert batch["times_in"].tolist() == [[0.0, 1.0], [0.0, 2.0]]
    assert batch["times_out"][1, 1].isnan() and batch["frames_out"][1, 1].isnan().all()  # padded
    batch["frames_in"][1, 0] = float("nan")  # a missing input frame is left out
    seq = sequence(batch["frames_in"], batch["times_in"], batch["frames_out"], batch["times_out"], 5)
    assert seq[:, :, 0, 0].tolist() == [[0.0, 3.0, 1.0, 2.0, 0.0], [11.0, 12.0, 0.0, 0.0, 0.0]]


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
    """A forecaster that takes only shared times sees each group of samples with the same times, never its
    batch mates' input or query times; one that takes each sample's own times sees the batch once."""
    from climode.scoring import on_own_times

    seen = []

    def record(frames, times, query):
        seen.append((len(frames), times.tolist(), query.tolist()))
        return persistence(frames, times, query)

    nan = float("nan")
    frames = torch.rand(3, 2, 1, 2, 2)
    batch = {"frames_in": frames, "times_in": torch.tensor([[0.0, 2.0], [1.0, 3.0], [0.0, 2.0]]),
             "frames_out": torch.rand(3, 2, 1, 2, 2), "times_out": torch.tensor([[5.0, nan], [6.0, 7.0], [5.0, nan]])}
    out = on_own_times(record, batch)
    assert sorted(seen) == [(1, [1.0, 3.0], [6.0, 7.0]), (2, [0.0, 2.0], [5.0])]
    assert torch.equal(out[1, 1], frames[1, 1]) and torch.isnan(out[0, 1]).all()

    def whole(frames, times, query):
        seen.append((len(frames), tuple(times.shape), tuple(query.shape)))
        return frames[:, -1:].expand(-1, query.shape[1], -1, -1, -1)

    seen.clear()
    whole.per_sample_times = True
    on_own_times(whole, batch)
    assert seen == [(3, (3, 2), (3, 2))]
