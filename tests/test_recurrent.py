"""The recurrent baselines of climode.model.recurrent: shapes, missing frames, time-awareness, learning."""

import pytest
import torch
from conftest import state_dependent
from torch import nn

from climode.data import BouncingBall, collate
from climode.model.base import ModelConfig
from climode.model.recurrent import MODELS, interpolate_states
from climode.model.warp import warp

NAMES = sorted(MODELS)
TIMES = torch.tensor([0.0, 1.0, 3.0, 4.0])


def make(name: str, channels: int = 3, width: int = 4) -> nn.Module:
    """An untrained model in eval mode whose output depends on its state: the baselines' state decoder
    starts at zero (persistence), so here its last layer gets random weights and its convolutions zero
    biases (random negative biases can silence a narrow untrained layer after its ReLU)."""
    model = state_dependent(MODELS[name](ModelConfig(architecture=name, channels=channels, width=width))).eval()
    if hasattr(model, "state_decoder"):
        nn.init.normal_(model.state_decoder.net[-1].weight, std=0.3)
        for layer in model.state_decoder.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.zeros_(layer.bias)
    return model


def frames(B: int = 2, L: int = 4, H: int = 18, W: int = 22) -> torch.Tensor:
    return torch.rand(B, L, 3, H, W)


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_shapes_finite_odd_size_and_query_before_last_input(name):
    out = make(name)(frames(), TIMES, torch.tensor([2.5, 5.0, 6.5]))
    assert out["frames"].shape == (2, 3, 3, 18, 22)
    assert torch.isfinite(out["frames"]).all()
    if name == "vid-rnn":
        assert out["flows"].shape == (2, 3, 2, 2, 18, 22) and out["mask"].shape == (2, 3, 1, 18, 22)
        assert out["diff"].shape == (2, 3, 3, 18, 22)
        assert out["sources"][0].tolist() == [[3, 3]] * 3  # every query composed from the last frame


@pytest.mark.parametrize("missing", [1, 3])
@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_missing_frame_is_the_same_as_no_frame(name, missing):
    model, x, query = make(name), frames(), torch.tensor([5.0, 6.5])
    gappy = x.clone()
    gappy[:, missing] = float("nan")
    keep = [i for i in range(4) if i != missing]
    with_gap = model(gappy, TIMES, query)["frames"]
    without = model(x[:, keep], TIMES[keep], query)["frames"]
    assert torch.allclose(with_gap, without, atol=1e-5)


@pytest.mark.parametrize("name, aware", [("convgru", False), ("convgru-dt", True), ("convgru-decay", True)])
@torch.no_grad()
def test_time_gaps_change_the_forecast_only_of_time_aware_models(name, aware):
    model, x = make(name), frames()
    query = torch.tensor([5.0])
    early = model(x, torch.tensor([0.0, 1.0, 2.0, 4.0]), query)["frames"]
    late = model(x, torch.tensor([0.0, 2.5, 3.5, 4.0]), query)["frames"]
    near = model(x, TIMES, query)["frames"]
    far = model(x, TIMES, torch.tensor([9.0]))["frames"]
    for a, b in ((early, late), (near, far)):
        assert ((a - b).abs().max() > 1e-4) == aware


@torch.no_grad()
def test_vid_rnn_blends_the_neighbouring_steps_and_decodes_the_blend():
    model, x = make("vid-rnn"), frames()
    h0, h1, half, h2 = model.query_states(x, TIMES, torch.tensor([4.0, 5.0, 5.5, 6.0])).unbind(1)
    assert torch.allclose(half, (h1 + h2) / 2, atol=1e-6)
    assert (h1 - h2).abs().max() > 1e-4
    assert torch.allclose(h0, model.encode(x, TIMES, TIMES)["state"])
    velocity, rate, mask = model.decoder(half, h0)
    flow, diff = 1.5 * velocity, 1.5 * rate  # the decoder's rates times the lead, 5.5 - 4
    anchor = nn.functional.pad(x[:, -1], (0, 2, 0, 2), mode="replicate")
    expected = (mask * warp(anchor, flow) + (1 - mask) * (anchor + diff))[..., :18, :22]
    assert torch.allclose(model(x, TIMES, torch.tensor([5.5]))["frames"][:, 0], expected, atol=1e-5)


def test_interpolate_states_per_sample():
    rollout = torch.arange(4.0).view(4, 1, 1).expand(4, 2, 1).clone()  # state n at step n
    rollout[:, 1] *= 10
    lead = torch.tensor([[0.0, 0.25, 3.0], [1.5, 2.0, 2.75]])
    expected = torch.tensor([[0.0, 0.25, 3.0], [15.0, 20.0, 27.5]])
    assert torch.allclose(interpolate_states(rollout, lead).squeeze(-1), expected)


# ---- learning: each model beats persistence on held-out bouncing balls after a short training

FRAME, N_IN, N_OUT, BALLS = 16, 5, 2, 2


def balls(split: str, size: int) -> dict[str, torch.Tensor]:
    data = BouncingBall(split, size, N_IN, N_OUT, 0.0, FRAME, balls=BALLS, seed=0)
    return collate([data[i] for i in range(size)])


@pytest.fixture(scope="module")
def ball_data() -> tuple[dict, dict]:
    return balls("train", 1024), balls("test", 64)


def held_out_mse(model: nn.Module, test: dict) -> float:
    model.eval()
    with torch.no_grad():
        out = model(test["frames_in"], test["times_in"][0], test["times_out"][0])["frames"]
    return float(((out - test["frames_out"]) ** 2).mean())


def train(model: nn.Module, data: dict, steps: int = 300, batch: int = 16, lr: float = 3e-3) -> nn.Module:
    """Adam on the MSE of the forecast frames, random batches of ``data``."""
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(data["frames_in"]), (batch,))
        out = model(data["frames_in"][idx], data["times_in"][0], data["times_out"][0])["frames"]
        loss = ((out - data["frames_out"][idx]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_learns_to_beat_persistence(name, ball_data):
    data, test = ball_data
    persistence = float(((test["frames_in"][:, -1:] - test["frames_out"]) ** 2).mean())
    model = MODELS[name](ModelConfig(architecture=name, channels=1, width=8))
    untrained = held_out_mse(model, test)
    learned = held_out_mse(train(model, data), test)
    print(f"{name}: held-out MSE persistence {persistence:.4f} untrained {untrained:.4f} learned {learned:.4f}")
    assert learned < 0.75 * persistence
