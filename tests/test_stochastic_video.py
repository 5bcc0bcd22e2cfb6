"""The paper's stochastic video baselines (SVG-FP, SVG-LP, SRVP): the model contract, the step grid,
the latent draws and training (``climode.model.stochastic``, ``svg``, ``srvp``)."""

import csv

import pytest
import torch
from conftest import TINY

from climode import load_model
from climode.data import BouncingBall, collate
from climode.model import MODELS, ModelConfig, build
from climode.model.baselines import persistence
from climode.model.odefunc import SolverConfig
from climode.model.srvp import SRVP
from climode.model.stochastic import gaussian_kl
from climode.model.svg import SVGFP, SVGLP
from climode.training import train

NAMES = ("svg-fp", "svg-lp", "srvp")
ALL = pytest.mark.parametrize("name", NAMES)


def make(name: str, channels: int = 1, width: int = 4, state_dependent: bool = True, **settings):
    """A small model. Untrained, its decoder's output layer is zero (the forecast is the skip frame,
    whatever the latents); ``state_dependent`` gives that layer PyTorch's default random weights."""
    model = build(ModelConfig(architecture=name, channels=channels, width=width, **settings))
    if state_dependent:
        model.decoder.out.reset_parameters()
    return model


def inputs(B: int = 2, L: int = 4, C: int = 1, H: int = 16, W: int = 20):
    return torch.rand(B, L, C, H, W), torch.arange(float(L))


def test_registered_under_their_names():
    assert (MODELS["svg-fp"], MODELS["svg-lp"], MODELS["srvp"]) == (SVGFP, SVGLP, SRVP)


@ALL
@torch.no_grad()
def test_untrained_model_is_persistence(name):
    """Every frame is the skip frame plus a change from a zero output layer: the last observed frame
    after the inputs, the frame itself at an observed step, the first before them, sampled or not."""
    model = make(name, state_dependent=False).eval()
    frames, times = inputs(B=3)
    frames[1, -1] = float("nan")  # sample 1's last observed frame is the one at t = 2
    query = torch.tensor([-1.0, 1.0, 4.0, 6.0])
    expected = torch.cat((frames[:, :2], persistence(frames, times, query[2:])), 1)
    torch.testing.assert_close(model(frames, times, query)["frames"], expected, atol=1e-6, rtol=0)
    members = model.sample(frames, times, query, 2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(members, expected.expand(2, *expected.shape), atol=1e-6, rtol=0)


@ALL
def test_outputs_kl_and_determinism(name):
    """Per-sample irregular times (a gap, an all-NaN frame, a query not asked): the dict's shapes, NaN only
    where nothing was asked, a non-negative KL; training draws latents, eval takes their means."""
    model = make(name)
    frames = torch.rand(2, 4, 1, 16, 20)
    frames[0, 2] = float("nan")
    times = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 3.0, 5.0]])
    query = torch.tensor([[4.0, 6.0, 7.0], [6.0, 8.0, float("nan")]])
    drawn, again = model(frames, times, query), model(frames, times, query)
    assert drawn["frames"].shape == (2, 3, 1, 16, 20) and drawn["inputs"].shape == (2, 4, 1, 16, 20)
    assert torch.isnan(drawn["frames"][1, 2]).all() and torch.isfinite(drawn["frames"][:, :2]).all()
    assert torch.isfinite(drawn["inputs"]).all()
    for out in (drawn, again):
        assert out["kl"].ndim == 0 and torch.isfinite(out["kl"]) and out["kl"] >= 0
    assert (drawn["frames"][:, :2] - again["frames"][:, :2]).abs().max() > 1e-6
    model.eval()
    with torch.no_grad():
        first, second = model(frames, times, query), model(frames, times, query)
    torch.testing.assert_close(first["frames"], second["frames"], equal_nan=True, atol=0, rtol=0)


@ALL
@torch.no_grad()
def test_sample_members_differ_and_repeat_with_the_seed(name):
    model = make(name).eval()
    frames, times = inputs()
    query = torch.tensor([4.0, 5.0, 7.0])
    members = model.sample(frames, times, query, 4, torch.Generator().manual_seed(3))
    assert members.shape == (4, 2, 3, 1, 16, 20) and torch.isfinite(members).all()
    torch.testing.assert_close(members, model.sample(frames, times, query, 4, torch.Generator().manual_seed(3)))
    assert (members - model.sample(frames, times, query, 4, torch.Generator().manual_seed(4))).abs().max() > 1e-6
    gaps = (members[:, None] - members[None]).abs().flatten(2).amax(2)  # (4, 4): every pair of members
    assert (gaps + torch.eye(4)).min() > 1e-6


def test_fp_prior_is_fixed_and_lp_prior_is_learned():
    """FP has no prior network (N(0, I)); LP's prior LSTM has parameters of its own that the ELBO trains."""
    fp, lp = make("svg-fp"), make("svg-lp")
    fp_names = {n for n, _ in fp.named_parameters()}
    lp_names = {n for n, _ in lp.named_parameters()}
    assert fp.prior is None and not any(n.startswith("prior.") for n in fp_names)
    assert {n for n in lp_names - fp_names} == {n for n in lp_names if n.startswith("prior.")} != set()
    frames, times = inputs(L=6)
    lp.elbo(frames[:, :3], times[:3], frames[:, 3:], times[3:])["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lp.prior.parameters())


def test_gaussian_kl_is_zero_at_equal_and_positive_elsewhere():
    torch.manual_seed(0)
    mu_q, lv_q, mu_p, lv_p = torch.randn(4, 1000).unbind(0)
    assert (gaussian_kl(mu_q, lv_q, mu_p, lv_p) >= 0).all()
    assert gaussian_kl(mu_q, lv_q, mu_q, lv_q).abs().max() < 1e-6
    standard = 0.5 * (mu_q.square() + lv_q.exp() - 1 - lv_q)
    torch.testing.assert_close(gaussian_kl(mu_q, lv_q, torch.zeros(1000), torch.zeros(1000)), standard)


@ALL
@torch.no_grad()
def test_times_map_to_the_nearest_step_of_time_scale(name):
    """Real times divided by time_scale, rounded to the nearest frame step: a query 0.4 step off gets the
    step's frame, one at an input that input, one in a gap a generated frame."""
    model = make(name).eval()
    frames, times = inputs()
    scaled = build(ModelConfig(**{**model.config.to_dict(), "time_scale": 6.0})).eval()
    scaled.load_state_dict(model.state_dict())
    query = torch.tensor([2.0, 5.0, 6.0])
    torch.testing.assert_close(model(frames, times, query)["frames"], scaled(frames, 6 * times, 6 * query)["frames"])
    on, off = model(frames, times, torch.tensor([5.0]))["frames"], model(frames, times, torch.tensor([5.4]))["frames"]
    torch.testing.assert_close(on, off, atol=0, rtol=0)
    assert torch.equal(model(frames, times, torch.tensor([1.0]))["frames"][:, 0], frames[:, 1])
    gappy = model(frames[:, [0, 1, 3]], times[[0, 1, 3]], torch.tensor([2.0]))["frames"][:, 0]
    assert torch.isfinite(gappy).all() and (gappy - frames[:, 2]).abs().max() > 1e-3


@ALL
def test_two_inputs_on_one_step_and_endless_rollouts_are_refused(name):
    model = make(name)
    frames, _ = inputs(L=3)
    with pytest.raises(ValueError, match="two frames on one step"):
        model(frames, torch.tensor([0.0, 0.4, 2.0]), torch.tensor([3.0]))
    with pytest.raises(ValueError, match="frame steps"):
        model(frames, torch.arange(3.0), torch.tensor([1e6]))


@torch.no_grad()
def test_srvp_steps_dt_from_the_decoder_solver():
    """Euler steps of 0.5: a query half way between frames has a state of its own; steps of 1 round it."""
    fine = make("srvp", decoder_solver=SolverConfig("euler", 0.5)).eval()
    coarse = make("srvp").eval()
    coarse.load_state_dict(fine.state_dict())
    assert (fine.substeps, coarse.substeps) == (2, 1)
    frames, times = inputs()
    at = lambda model, t: model(frames, times, torch.tensor([t]))["frames"]
    assert (at(fine, 4.5) - at(fine, 4.0)).abs().max() > 1e-6 and (at(fine, 4.5) - at(fine, 5.0)).abs().max() > 1e-6
    torch.testing.assert_close(at(coarse, 4.5), at(coarse, 5.0), atol=0, rtol=0)


def _balls(size: int = 8) -> dict:
    dataset = BouncingBall("train", size, n_in=5, n_out=5, frame_size=16, balls=1, seed=0)
    batch = collate([dataset[i] for i in range(size)])
    return {**batch, "times_in": batch["times_in"][0], "times_out": batch["times_out"][0]}


@pytest.mark.slow
@ALL
def test_elbo_decreases_on_a_fixed_batch(name):
    """20 Adam updates of the papers' ELBO (whole sequences, teacher-forced) on one batch of balls: the
    loss falls by over 15 % (SVG ~45 %, SRVP ~30 % here, ~3 s each)."""
    torch.manual_seed(0)
    batch = _balls()
    model = make(name, width=8, state_dependent=False)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        out = model.elbo(batch["frames_in"], batch["times_in"], batch["frames_out"], batch["times_out"])
        assert out["kl"] >= 0
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        losses.append(out["loss"].item())
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3]), losses


@pytest.mark.slow
@ALL
def test_trains_with_climode_train_and_its_kl_enters_the_loss(name, tmp_path):
    config = {k: dict(v) for k, v in TINY.items()}
    config["data"].update(n_in=4, n_out=3, frame_size=16, train_size=8, val_size=4)
    config["train"].update(batch_size=4, adversarial=False, log_every=1, val_every=100)
    path = train(config, tmp_path / "run", model=name, max_steps=2)
    loaded = load_model(path)
    assert type(loaded.model) is MODELS[name] and loaded.model.config.channels == 1
    (metrics,) = tmp_path.glob("run/**/metrics.csv")
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("train/kl")]
    assert rows and all(float(r["train/kl"]) >= 0 for r in rows)
    assert all(float(r["train/loss"]) > float(r["train/recon"]) for r in rows)  # recon + inputs + lambda_kl kl
