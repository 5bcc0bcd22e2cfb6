import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from climode.data.samples import collate
from climode.errors import ClimodeError
from climode.model import LEARNED, MODELS, ModelConfig, baselines, build
from climode.model.baselines import BASELINES, advection, advection_multi, blend, linear, motion, persistence
from climode.model.warp import warp
from climode.training.losses import diff_targets, masked_l1, masked_mse, sequence
from climode.verification.metrics import mse, psnr, ssim


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
    out = {
        "sources": torch.tensor([[[1, 2], [2, 2], [-2, -2]]]),  # between inputs 1 and 2; from input 2; from query 1
        "kind": torch.tensor([[1, 2, 2]]),
    }
    target = diff_targets({"frames_in": frames_in, "frames_out": frames_out}, out)
    assert torch.isnan(target[0, 0]).all()  # interpolation: no difference target
    assert target[0, 1:, 0, 0, 0].tolist() == [31.0 - 20.0, 44.0 - 31.0]


def test_sequence_orders_each_samples_observed_inputs_and_queries_and_pads():
    samples = [
        {
            "frames_in": torch.tensor([10.0 * b, 10.0 * b + 1]).view(2, 1, 1, 1),
            "times_in": torch.tensor([0.0, 1.0 + b]),
            "frames_out": torch.tensor([10.0 * b + 2, 10.0 * b + 3][: 2 - b]).view(-1, 1, 1, 1),
            "times_out": torch.tensor([5.0, 0.5][: 2 - b]),
        }
        for b in (0, 1)
    ]
    samples[0]["frames_out"], samples[0]["times_out"] = samples[0]["frames_out"].flip(0), torch.tensor([0.5, 5.0])
    batch = collate(samples)
    assert batch["times_in"].tolist() == [[0.0, 1.0], [0.0, 2.0]]
    assert batch["times_out"][1, 1].isnan() and batch["frames_out"][1, 1].isnan().all()  # padded
    batch["frames_in"][1, 0] = float("nan")  # a missing input frame is left out
    seq = sequence(batch["frames_in"], batch["times_in"], batch["frames_out"], batch["times_out"], 5)
    assert seq[:, :, 0, 0].tolist() == [[0.0, 3.0, 1.0, 2.0, 0.0], [11.0, 12.0, 0.0, 0.0, 0.0]]


def _translating(times, velocity=(1.2, -0.7), size=64):
    """A smooth periodic field moving ``velocity`` (x, y) pixels per time unit: (1, L, 1, size, size)."""
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij"
    )
    frames = [
        torch.sin(2 * math.pi * (x - velocity[0] * t) / 32) + torch.cos(2 * math.pi * (y - velocity[1] * t) / 24)
        for t in times
    ]
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
    torch.testing.assert_close(
        motion(frames[:, 1], frames[:, 2])[0, :, 20:-20, 20:-20].mean((1, 2)),
        torch.tensor([1.2, -0.7], dtype=torch.float64),
        atol=0.01,
        rtol=0,
    )


def test_blend_interpolates_between_observed_frames_and_holds_the_nearest_outside():
    times = torch.tensor([0.0, 1.0, 2.0, 4.0])
    frames = torch.rand(2, 4, 2, 3, 5)
    frames[1, 2] = float("nan")  # sample 1 has no frame at t = 2: its queries blend t = 1 and t = 4
    frames[0, 3, 0, 1, 1] = float("nan")  # a missing cell takes the other frame's value
    out = blend(frames, times, torch.tensor([-1.0, 1.0, 2.5, 4.0, 6.0]))
    torch.testing.assert_close(out[:, 0], frames[:, 0])  # before the first: the first
    torch.testing.assert_close(out[:, 1], frames[:, 1])  # at an observed time: that frame
    expected = 0.75 * frames[0, 2] + 0.25 * frames[0, 3]
    expected[0, 1, 1] = frames[0, 2, 0, 1, 1]
    torch.testing.assert_close(out[0, 2], expected)
    torch.testing.assert_close(out[1, 2], 0.5 * frames[1, 1] + 0.5 * frames[1, 3])
    torch.testing.assert_close(out[:, 4], persistence(frames, times, torch.tensor([6.0]))[:, 0], equal_nan=True)
    torch.testing.assert_close(out[:, 3], out[:, 4], equal_nan=True)  # at the last time: the last frame


def test_extrapolators_run_their_fit_backward_for_queries_before_the_last_input():
    """``linear`` gives the line's value (between the last two frames their interpolation, at the earlier
    one that frame); ``advection`` carries the last frame back along the motion."""
    times = torch.tensor([0.0, 2.0, 4.0])
    frames = torch.rand(1, 3, 1, 4, 4)
    out = linear(frames, times, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(out[0, 0], frames[0, 1])
    torch.testing.assert_close(out[0, 1], 0.5 * (frames[0, 1] + frames[0, 2]))
    times = torch.tensor([0.0, 1.5, 2.5])
    back = advection(_translating(times.tolist()), times, torch.tensor([1.0]))[0, 0]
    error = (back - _translating([1.0])[0, 0])[..., 12:-12, 12:-12].abs()
    assert error.max() < 0.05 and error.mean() < 0.01


def test_multi_frame_advection_is_exact_for_a_translating_field_on_each_samples_own_times():
    times = torch.tensor([0.0, 1.0, 2.5, 3.0, 4.0])
    frames = _translating(times.tolist()).expand(2, -1, -1, -1, -1).clone()
    frames[1, 3] = float("nan")  # sample 1 uses its frames at 1, 2.5 and 4
    query = torch.tensor([5.0, 7.0])
    truth = _translating(query.tolist())[0]
    out = advection_multi(frames, times, query)
    inner = (..., slice(12, -12), slice(12, -12))
    for b in range(2):
        error = (out[b] - truth)[inner].abs()
        assert error.max() < 0.05 and error.mean() < 0.01, b


def test_multi_frame_advection_with_two_observed_frames_is_two_frame_advection():
    times = torch.tensor([0.0, 1.0, 2.5])
    frames = _translating(times.tolist()).clone()
    frames[:, 0] = float("nan")
    query = torch.tensor([3.0, 4.5])
    torch.testing.assert_close(advection_multi(frames, times, query), advection(frames, times, query))
    only = frames[:, 2:]  # one observed frame: persistence
    torch.testing.assert_close(advection_multi(only, times[2:], query), persistence(only, times[2:], query))


def test_multi_frame_motion_is_steadier_under_noise():
    """Each pair's motion is estimated from noisy frames: averaging three frames' pairs errs less."""
    times = torch.tensor([0.0, 1.0, 2.5, 3.0, 4.0])
    clean = _translating(times.tolist())
    true = torch.tensor([1.2, -0.7], dtype=torch.float64).view(1, 2, 1, 1)
    errors = {2: 0.0, 3: 0.0}
    for _ in range(3):
        frames = clean + 0.1 * torch.randn_like(clean)
        for n in errors:
            velocity = baselines._combined_velocity(frames, times, n, motion)
            errors[n] += (velocity - true)[..., 12:-12, 12:-12].norm(dim=1).mean().item()
    assert errors[3] < 0.85 * errors[2], errors


def test_every_baseline_is_a_parameter_free_model():
    assert {"persistence", "blend", "linear", "advection", "advection-multi"} <= set(BASELINES)
    frames, times, query = torch.rand(2, 3, 1, 8, 8), torch.arange(3.0), torch.tensor([1.5, 4.0])
    for name in BASELINES:
        assert name in MODELS and name not in LEARNED
        model = build(ModelConfig(architecture=name, channels=1))
        assert sum(p.numel() for p in model.parameters()) == 0
        assert model(frames, times, query)["frames"].shape == (2, 2, 1, 8, 8)


@pytest.mark.skipif("pysteps" in BASELINES, reason="pysteps is installed here")
def test_pysteps_baseline_is_refused_in_one_line_where_pysteps_is_missing():
    assert "pysteps" in BASELINES.unavailable and "pysteps" not in MODELS
    with pytest.raises(ClimodeError, match="needs the pysteps package"):
        build(ModelConfig(architecture="pysteps", channels=1))


def test_pysteps_baseline_plumbing_with_a_stand_in_package(monkeypatch):
    """pysteps cannot be installed here: a stand-in with climode's own Lucas-Kanade and warp behind pySTEPS's
    interface checks the rest (pairs, time gaps, leads, channels): it must then equal advection-multi."""

    def lucas_kanade(pair: np.ndarray) -> np.ndarray:
        before, after = (torch.from_numpy(x)[None, None] for x in pair)
        return motion(before, after)[0].numpy()

    def semilagrangian(field, velocity, timesteps, allow_nonfinite_values=False):
        assert timesteps == sorted(timesteps) and min(timesteps) > 0
        field, velocity = torch.from_numpy(field)[None, None], torch.from_numpy(velocity)[None]
        return np.stack([warp(field, -velocity * s)[0, 0].numpy() for s in timesteps])

    fake = SimpleNamespace(
        motion=SimpleNamespace(get_method={"LK": lucas_kanade}.__getitem__),
        extrapolation=SimpleNamespace(get_method={"semilagrangian": semilagrangian}.__getitem__),
    )
    monkeypatch.setattr(baselines, "pysteps", fake)
    times = torch.tensor([0.0, 1.0, 2.5, 3.0])
    frames = torch.cat((_translating(times.tolist()), -_translating(times.tolist())), 2)  # two channels
    query = torch.tensor([2.0, 3.0, 4.5, 6.0])
    out = baselines.pysteps_advection(frames, times, query)
    torch.testing.assert_close(out[:, :2], frames[:, [-1, -1]])  # leads <= 0: the last frame
    # per-channel flows averaged, where climode's Lucas-Kanade pools the channels: close, not equal
    torch.testing.assert_close(out[:, 2:], advection_multi(frames, times, query)[:, 2:], atol=1e-3, rtol=0)


def test_ssim_of_many_frames_equals_frame_by_frame():
    """SSIM is computed in chunks (one call over hundreds of 60 x 160 frames asked for 29 GB)."""
    pred, target = torch.rand(2, 70, 2, 16, 16), torch.rand(2, 70, 2, 16, 16)  # 280 frames: three chunks
    whole = ssim(pred, target)
    one = ssim(pred[1:, 69:], target[1:, 69:])
    assert whole.shape == (2, 70) and whole[1, 69].item() == pytest.approx(one.item(), abs=1e-6)


def test_each_sample_is_forecast_on_its_own_times():
    """A forecaster that takes only shared times sees each group of samples with the same times, never its
    batch mates' input or query times; one that takes each sample's own times sees the batch once."""
    from climode.verification.scoring import on_own_times

    seen = []

    def record(frames, times, query):
        seen.append((len(frames), times.tolist(), query.tolist()))
        return persistence(frames, times, query)

    nan = float("nan")
    frames = torch.rand(3, 2, 1, 2, 2)
    batch = {
        "frames_in": frames,
        "times_in": torch.tensor([[0.0, 2.0], [1.0, 3.0], [0.0, 2.0]]),
        "frames_out": torch.rand(3, 2, 1, 2, 2),
        "times_out": torch.tensor([[5.0, nan], [6.0, 7.0], [5.0, nan]]),
    }
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
