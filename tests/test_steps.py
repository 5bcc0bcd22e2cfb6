"""pySTEPS's STEPS ensemble as a baseline (``climode.model.baselines.Steps``): registered with the
``pysteps`` baseline only where pySTEPS and OpenCV both import, else named with the reason; where they
do, its members of a moving rain blob are reproducible, differ, stay rain and follow the blob."""

import importlib

import numpy as np
import pytest
import torch

from climode.errors import ClimodeError
from climode.model import MODELS, ModelConfig, build
from climode.model.baselines import BASELINES, blend


def _imports(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


H = W = 64
STEP_MIN = 5.0  # minutes between inputs
SPEED = 2.0  # pixels per input step, eastward


def _blob(step: float, growth: float = 0.05) -> torch.Tensor:
    """(H, W) a Gaussian rain cell (peak 10 mm h-1) at x = 16 + SPEED step, growing by ``growth`` per step."""
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    return 10.0 * (1 + growth * step) * torch.exp(-((x - 16 - SPEED * step) ** 2 + (y - 32) ** 2) / (2 * 6.0**2))


def _inputs(growth: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Three inputs, 5 min apart (times in minutes), of two samples: the blob and the blob at half strength."""
    one = torch.stack([_blob(s, growth) for s in range(3)])[:, None]  # (L, C, H, W)
    return torch.stack((one, 0.5 * one)), torch.tensor([0.0, 1.0, 2.0]) * STEP_MIN


@pytest.fixture
def steps():
    pytest.importorskip("pysteps")
    pytest.importorskip("cv2")
    from climode.model.baselines import Steps

    return Steps(km_per_pixel=1.0, minutes_per_unit=1.0)  # times in minutes on a 1 km grid


def test_steps_is_registered_where_pysteps_and_opencv_import_else_named_with_the_reason():
    have_pysteps, have_cv2 = _imports("pysteps"), _imports("cv2")
    for name in ("pysteps", "steps"):
        if have_pysteps and have_cv2:
            assert name in BASELINES and name in MODELS and name not in BASELINES.unavailable
            continue
        reason = BASELINES.unavailable[name]
        assert name not in BASELINES and name not in MODELS
        assert reason.startswith(f"the {name} baseline needs the pysteps package and OpenCV")
        assert ("pysteps package cannot be imported" if not have_pysteps else "import cv2") in reason
        assert "pip install 'climode[steps]'" in reason
        with pytest.raises(ClimodeError, match="needs the pysteps package and OpenCV"):
            build(ModelConfig(architecture=name, channels=1))


@pytest.mark.slow
def test_members_are_reproducible_differ_stay_rain_and_follow_the_contract(steps):
    frames, times = _inputs()
    query = torch.tensor([2.5, 10.0, 15.0, 20.0, 40.0])  # between inputs, at the last, 1, 2 and 6 steps on
    draw = lambda seed: steps.sample(frames, times, query, 6, torch.Generator().manual_seed(seed))
    members = draw(0)
    assert members.shape == (6, 2, 5, 1, H, W) and torch.isfinite(members).all()
    assert members.min() >= 0
    torch.testing.assert_close(draw(0), members, rtol=0, atol=0)  # a fixed seed: the same members
    assert not torch.equal(draw(1)[:, :, 2:], members[:, :, 2:])
    spread = members[:, :, 2:].std(0).mean((0, 2, 3, 4))  # after the last input, per lead
    assert (spread > 0).all() and spread[-1] > spread[0]  # members differ, more with lead
    # at and before the last input, every member is the control: the observed or interpolated frame
    control = steps(frames, times, query)
    torch.testing.assert_close(members[:, :, :2], control[None, :, :2].expand(6, -1, -1, -1, -1, -1))
    torch.testing.assert_close(control[:, :2], blend(frames, times, query[:2]))


def test_ensemble_mean_tracks_the_moving_blob(steps):
    """The members scatter the cell by pySTEPS's velocity perturbations (about +-5 px at 30 min here), so
    the mean of 8 is held to the blob's displacement within half of it, and to its direction."""
    frames, times = _inputs(growth=0.0)
    leads = torch.tensor([1.0, 3.0, 6.0])  # input steps after the last input
    mean = steps.sample(frames[:1], times, times[-1] + STEP_MIN * leads, 8, torch.Generator().manual_seed(0)).mean(0)
    core = mean[0, :, 0] * (mean[0, :, 0] >= 0.5 * mean[0, :, 0].amax((1, 2), keepdim=True))  # the cell, not the noise
    x = torch.arange(W, dtype=torch.float32)
    centroid = (core.sum(1) * x).sum(1) / core.sum((1, 2))
    last = 16 + SPEED * 2  # the cell at the last input
    moved, truth = centroid - last, SPEED * leads
    assert (centroid.diff() > 0).all() and (moved > 0.5 * truth).all() and (moved < 1.5 * truth).all(), centroid


def test_a_model_of_it_has_the_control_and_the_members(steps):
    model = build(ModelConfig(architecture="steps", channels=1))
    frames, times = _inputs()
    times, query = times / 60, (times[-1:] + STEP_MIN) / 60  # hours, as the registered one takes
    torch.testing.assert_close(model(frames, times, query)["frames"], BASELINES["steps"](frames, times, query))
    assert model.sample(frames, times, query, 2, torch.Generator().manual_seed(0)).shape == (2, 2, 1, 1, H, W)


def test_a_field_that_only_moves_falls_back_to_ar1(steps):
    """Exact motion of an unchanging cell: lag correlations of 1 make STEPS's AR(2) fit singular."""
    rain = torch.stack([_blob(s, growth=0.0) for s in range(3)]).double().numpy()
    velocity = np.zeros((2, H, W))
    velocity[0] = SPEED
    out = steps._nowcast(rain, velocity, [1.0, 2.0], 3, seed=0, step=STEP_MIN)
    assert out.shape == (3, 2, H, W) and np.nanmin(out) >= 0


def test_what_steps_cannot_forecast_is_refused(steps):
    frames, times = _inputs()
    query = times[-1:] + STEP_MIN
    with pytest.raises(ValueError, match="non-negative"):
        steps.sample(frames - 1.0, times, query, 2)
    with pytest.raises(ValueError, match="at least two observed inputs"):
        steps.sample(torch.where(torch.arange(3).view(1, 3, 1, 1, 1) < 2, float("nan"), frames), times, query, 2)
    with pytest.raises(ValueError, match="members must be at least 1"):
        steps.sample(frames, times, query, 0)
