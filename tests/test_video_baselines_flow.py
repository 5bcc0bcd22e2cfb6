"""The paper's flow-based video baselines, DVF and UVI (``climode.model.dvf``, ``climode.model.uvi``):
the model contract, which frames each query is made from, the voxel flow's geometry, UVI's cycle loss
and training with ``climode.train``."""

import csv
import math

import pytest
import torch
from torch import nn

from climode import load_model
from climode.config import DataConfig
from climode.data.datasets import open_dataset
from climode.model import MODELS, get_model
from climode.model.base import EXTRAPOLATED, INTERPOLATED, OBSERVED
from climode.model.baselines import blend
from climode.model.dvf import DVF, voxel_parts
from climode.model.uvi import UVI
from climode.training import train
from climode.verification.scoring import ModelForecaster, score
from climode.video.synthetic import moving_shapes, write_layout

NAMES = ("dvf", "uvi")
BOTH = pytest.mark.parametrize("name", NAMES)
NAN = float("nan")
OWN_TERMS = {"dvf": {"tv_flow", "tv_mask"}, "uvi": {"cycle", "warp", "smooth"}}  # each model's ``losses``


def make(name: str, channels: int = 3, randomised: bool = False) -> nn.Module:
    """A width-8 model in eval mode. Untrained, its output layers are zero (it blends the two frames
    linearly); ``randomised`` gives them PyTorch's default random weights."""
    model = get_model(name, channels=channels, width=8).eval()
    if randomised:
        for layer in (model.net.out,) if name == "dvf" else (model.flow_out, model.interp_out):
            layer.reset_parameters()
    return model


def irregular() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (2, 5, 3, 16, 16) with a missing frame (sample 1, slot 2) and missing cells (sample 0,
    slot 1), each sample's own times (one NaN slot where the frame is missing) and queries (one not
    asked)."""
    torch.manual_seed(0)
    frames = torch.rand(2, 5, 3, 16, 16)
    frames[1, 2] = NAN
    frames[0, 1, :, 4:8, 4:8] = NAN
    times = torch.tensor([[0.0, 1, 2, 3, 4], [0, 2, NAN, 5, 6]])
    queries = torch.tensor([[0.5, 2, 3.25, 5, 7], [1, 2, 3.5, 7, NAN]])
    return frames, times, queries


def test_registered_under_their_names():
    assert (MODELS["dvf"], MODELS["uvi"]) == (DVF, UVI)
    assert type(get_model("uvi", channels=1, width=8)) is UVI


@BOTH
def test_answers_each_samples_queries_from_the_right_frames(name):
    frames, times, queries = irregular()
    with torch.no_grad():
        out = make(name, randomised=True)(frames, times, queries)
    assert out["frames"].shape == (2, 5, 3, 16, 16) and "losses" not in out
    assert torch.isfinite(out["frames"][0]).all() and torch.isfinite(out["frames"][1, :4]).all()
    assert torch.isnan(out["frames"][1, 4]).all()  # not asked
    kinds = [INTERPOLATED, OBSERVED, INTERPOLATED, EXTRAPOLATED]
    assert out["kind"][:, :4].tolist() == [kinds, kinds] and out["kind"][0, 4] == EXTRAPOLATED
    torch.testing.assert_close(out["frames"][:, 1], torch.stack((frames[0, 2], frames[1, 1])))  # at t = 2: that frame
    between = out["sources"][:, [0, 2]].tolist()
    assert between == [[[0, 1], [3, 4]], [[0, 1], [1, 3]]]  # around each query, the missing frame skipped
    if name == "uvi":  # outside the span: the nearest observed frame (here the last)
        torch.testing.assert_close(out["frames"][0, 3:], frames[0, 4].expand(2, -1, -1, -1))
        torch.testing.assert_close(out["frames"][1, 3], frames[1, 4])
    else:  # after the last frame: from the last two observed frames, moved
        assert out["sources"][:, 3].tolist() == [[3, 4], [3, 4]]
        assert (out["frames"][:, 3] - frames[:, 4]).abs().amax() > 1e-3
    shared = make(name)(frames[:1], times[0], torch.tensor([1.5, 9.0]))  # times shared by the batch
    assert shared["frames"].shape == (1, 2, 3, 16, 16) and torch.isfinite(shared["frames"]).all()


@BOTH
def test_untrained_it_blends_the_two_frames_around_a_query_linearly(name):
    """Zero flows and a weight of 1 - tau: the ``blend`` baseline at any fraction, missing frames skipped."""
    torch.manual_seed(1)
    frames = torch.rand(2, 5, 1, 12, 12)
    frames[1, 2] = NAN
    times, queries = torch.arange(5.0), torch.tensor([0.5, 1.25, 2.5, 3.9])
    with torch.no_grad():
        out = make(name, channels=1)(frames, times, queries)
    torch.testing.assert_close(out["frames"], blend(frames, times, queries), atol=1e-6, rtol=0)
    if name == "dvf":  # after the last frame: the mask's own 1/2 on each of the last two
        late = make(name, channels=1)(frames, times, torch.tensor([6.0]))["frames"][:, 0]
        torch.testing.assert_close(late, (frames[:, 3] + frames[:, 4]) / 2)


def test_voxel_flow_is_dvfs_mask_centred_on_the_linear_blend():
    torch.manual_seed(5)
    voxel = torch.rand(3, 3, 8, 10) * 2 - 1
    flow, weight = voxel_parts(voxel, torch.full((3,), 0.5))
    torch.testing.assert_close(weight, (1 + voxel[:, 2:]) / 2)  # at tau = 1/2: DVF's mask itself
    torch.testing.assert_close(flow[:, 0], voxel[:, 0] * 9)  # +-1: the frame's span, (W - 1) pixels
    torch.testing.assert_close(flow[:, 1], voxel[:, 1] * 7)
    _, prior = voxel_parts(torch.zeros(3, 3, 8, 10), torch.tensor([0.9, 0.5, 1e-4]))
    torch.testing.assert_close(prior[:, 0, 0, 0], torch.tensor([0.9, 0.5, 1e-4]))
    _, edge = voxel_parts(voxel, torch.tensor([1 - 1e-7, 1e-7, 0.5]))  # near an observed frame: that frame
    assert (edge[0] > 0.99).all() and (edge[1] < 0.01).all()


class FixedVoxels(nn.Module):
    """A stand-in for DVF's network: every pixel moves ``pixels`` to the right over the gap, mask 1/2."""

    def __init__(self, pixels: float):
        super().__init__()
        self.pixels = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), 3, *x.shape[-2:])
        out[:, 0] = self.pixels / (x.shape[-1] - 1)
        return out


def test_dvf_samples_both_frames_along_the_flow_between_and_after_them():
    """Frames moving 2 pixels right per step: half way, both frames sampled 1 pixel back and forth give the
    frame moved by 1; one step past the last, both sampled back along the motion give it moved by 4."""
    torch.manual_seed(2)
    x0 = torch.rand(1, 1, 16, 16)
    frames = torch.stack((x0, x0.roll(2, -1)), 1)  # (1, 2, 1, 16, 16) at t = 0, 1
    model = make("dvf", channels=1)
    model.net = FixedVoxels(2.0)
    with torch.no_grad():
        out = model(frames, torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0, 2.0]))["frames"][0]
    torch.testing.assert_close(out[0, ..., 1:15], x0.roll(1, -1)[0, ..., 1:15], atol=1e-5, rtol=0)  # off the border
    torch.testing.assert_close(out[1], frames[0, 1])  # at the observed time: that frame
    torch.testing.assert_close(out[2, ..., 4:], x0.roll(4, -1)[0, ..., 4:], atol=1e-5, rtol=0)


def test_dvf_is_continuous_at_the_observed_frames():
    torch.manual_seed(3)
    frames = torch.rand(1, 3, 1, 16, 16)
    with torch.no_grad():
        out = make("dvf", channels=1, randomised=True)(frames, torch.arange(3.0), torch.tensor([1 - 1e-5, 1 + 1e-5]))
    torch.testing.assert_close(out["frames"][0], frames[0, 1].expand(2, -1, -1, -1), atol=2e-3, rtol=0)


@BOTH
def test_its_own_loss_terms_come_in_training_mode_only_with_gradients(name):
    frames, times, queries = irregular()
    model = make(name, randomised=True).train()
    losses = model(frames, times, queries)["losses"]
    assert set(losses) == OWN_TERMS[name]
    assert all(value.ndim == 0 and torch.isfinite(value) and value > 0 for value in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert "losses" not in model.eval()(frames, times, queries)


def test_uvi_cycle_reconstructs_the_middle_frame_from_the_two_halfway_frames():
    """Untrained (a linear blend): I_a = (I0 + I1) / 2, I_b = (I1 + I2) / 2 and I1 at 1/3 of the way from
    I_a to I_b for times 0, 1, 3, so I1_hat = I0 / 3 + I1 / 2 + I2 / 6; static frames cycle exactly."""
    torch.manual_seed(4)
    frames = torch.rand(1, 3, 1, 12, 12)
    model = make("uvi", channels=1).train()
    losses = model(frames, torch.tensor([0.0, 1, 3]), torch.tensor([2.0]))["losses"]
    i0, i1, i2 = frames[0].unbind(0)
    expected = 0.8 * (i0 / 3 + i1 / 2 + i2 / 6 - i1).abs().mean()
    torch.testing.assert_close(losses["cycle"], expected)
    static = model(frames[:, :1].expand(-1, 3, -1, -1, -1), torch.arange(3.0), torch.tensor([0.5]))["losses"]
    assert float(static["cycle"].detach()) < 1e-6 and float(static["warp"].detach()) < 1e-6
    gap = frames.clone()
    gap[0, 1] = NAN  # two observed frames: no triplet, no cycle
    assert float(model(gap, torch.arange(3.0), torch.tensor([0.5]))["losses"]["cycle"].detach()) == 0


def _shapes(n: int = 4) -> torch.Tensor:
    """(n, 9, 1, 16, 16) grey clips of moving shapes in [0, 1]."""
    clips = [torch.as_tensor(moving_shapes(9, 16, seed=s, colour=False)[..., :1]) for s in range(n)]
    return torch.stack(clips).permute(0, 1, 4, 2, 3).float() / 255


@pytest.mark.slow
def test_dvf_learns_the_motion_between_frames():
    """30 Adam updates on one batch of moving shapes (inputs every other frame, the frames between them
    asked for): DVF's L1 drops well below frame blending's (~0.55x here, 0.5 s)."""
    torch.manual_seed(0)
    clips = _shapes()
    frames, truth, times, queries = clips[:, 0::2], clips[:, 1::2], torch.arange(0.0, 9, 2), torch.arange(1.0, 9, 2)
    model = make("dvf", channels=1).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        out = model(frames, times, queries)
        loss = (out["frames"] - truth).abs().mean()
        optimiser.zero_grad()
        (loss + sum(out["losses"].values())).backward()
        optimiser.step()
    assert float(loss) < 0.75 * float((blend(frames, times, queries) - truth).abs().mean())


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_layout(root, "folder", videos=4, frames=12, size=24, seed=1)
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "task"), [("dvf", "interpolation"), ("dvf", "extrapolation"), ("uvi", "interpolation")]
)
def test_trains_with_climode_train_and_scores(name, task, videos, tmp_path):
    data = {"n_in": 5, "n_out": 3, "task": task, "frame_size": 16, "clips_per_video": 1}
    config = {
        "model": {"width": 8},
        "data": data,
        "train": {"batch_size": 4, "adversarial": False, "log_every": 1, "val_every": 100, "checkpoint_every": 100},
    }
    path = train(config, tmp_path / "run", model=name, dataset="folder", data=str(videos), max_steps=2)
    model = load_model(path).model
    assert type(model) is MODELS[name] and model.config.channels == 3
    (metrics,) = tmp_path.glob("run/**/metrics.csv")
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("train/loss")]
    own = [k for k in rows[0] if k.startswith("train/model_")]
    assert {k.removeprefix("train/model_") for k in own} == OWN_TERMS[name]
    for row in rows:  # the model's terms enter the loss as they are
        terms = float(row["train/recon"]) + sum(float(row[k]) for k in own)
        assert math.isclose(float(row["train/loss"]), terms, rel_tol=1e-5)
    test = open_dataset(DataConfig(name="folder", path=str(videos), **data), "test")
    scores = score({name: ModelForecaster(model), "blend": blend}, test)
    assert len(scores["lead_times"]) == (4 if task == "interpolation" else 3)
    mse = scores["methods"][name]["mse"]
    assert all(math.isfinite(v) for v in mse)
    if task == "interpolation":  # two updates from the linear blend: still about as good as it
        assert max(m / b for m, b in zip(mse, scores["methods"]["blend"]["mse"])) < 1.5
