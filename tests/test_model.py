import dataclasses

import pytest
import torch
from conftest import state_dependent

from climode.model import MODELS, VARIANTS, ModelConfig, SolverConfig, VidODE, build
from climode.model.decoder import DECODERS
from climode.model.odefunc import SOLVERS, ConvODEFunc, FCODEFunc

EULER = SolverConfig("euler", 0.5)


def make_model(**kw) -> VidODE:
    cfg = dict(channels=3, width=4, encoder_solver=EULER, decoder_solver=EULER)
    cfg.update(kw)
    return state_dependent(VidODE(ModelConfig(**cfg))).eval()


def inputs(B=2, L=4, C=3, H=20, W=26):
    return torch.rand(B, L, C, H, W), torch.tensor([0.0, 1.0, 3.0, 4.0])[:L]


@torch.no_grad()
def test_any_size_and_channels_cropped_back():
    model = make_model()
    frames, times = inputs(H=21, W=30)
    out = model(frames, times, torch.tensor([5.0, 6.0, 9.5]))
    assert out["frames"].shape == (2, 3, 3, 21, 30)
    assert out["flows"].shape == (2, 3, 2, 2, 21, 30)
    assert out["mask"].shape == (2, 3, 1, 21, 30) and out["valid"].shape == (2, 3, 3, 21, 30)
    assert torch.isfinite(out["frames"]).all()


@torch.no_grad()
def test_gap_to_first_query_changes_forecast():
    model = make_model()
    frames, times = inputs()
    near = model(frames, times, torch.tensor([5.0]))["frames"]
    far = model(frames, times, torch.tensor([12.0]))["frames"]
    assert (near - far).abs().max() > 1e-4


@torch.no_grad()
def test_encoder_integrates_over_real_time_gaps():
    model = make_model()
    frames, _ = inputs(L=3)
    query = torch.tensor([11.0])
    early = model(frames, torch.tensor([0.0, 1.0, 9.0]), query)["frames"]
    late = model(frames, torch.tensor([0.0, 8.0, 9.0]), query)["frames"]
    assert (early - late).abs().max() > 1e-4


@torch.no_grad()
def test_missing_frame_is_the_same_as_no_frame():
    model = make_model()
    frames, times = inputs()
    query = torch.tensor([5.0, 7.0])
    gappy = frames.clone()
    gappy[:, 1] = float("nan")
    with_gap = model(gappy, times, query)["frames"]
    without = model(frames[:, [0, 2, 3]], times[[0, 2, 3]], query)["frames"]
    assert torch.allclose(with_gap, without, atol=1e-5)


@torch.no_grad()
def test_nan_cells_are_masked():
    model = make_model()
    frames, times = inputs()
    frames[:, :, :, 3:7, 5:9] = float("nan")
    assert torch.isfinite(model(frames, times, torch.tensor([5.0]))["frames"]).all()
    frames[1] = float("nan")
    with pytest.raises(ValueError, match="observed"):
        model(frames, times, torch.tensor([5.0]))


@pytest.mark.parametrize("query", [[6.0, 5.0], [5.0, 5.0], [5.0, float("nan")]])
def test_unsorted_or_duplicate_query_times_refused(query):
    frames, times = inputs()
    with pytest.raises(ValueError, match="query times"):
        make_model()(frames, times, torch.tensor(query))


def test_non_increasing_input_times_refused():
    frames, _ = inputs()
    with pytest.raises(ValueError, match="input times must be strictly increasing"):
        make_model()(frames, torch.tensor([0.0, 2.0, 2.0, 3.0]), torch.tensor([5.0]))


@torch.no_grad()
def test_mixed_interpolation_and_extrapolation():
    model = make_model()
    frames, times = inputs()
    out = model(frames, times, torch.tensor([0.5, 2.0, 3.0, 4.0, 6.0]))
    assert out["frames"].shape[1] == 5
    assert out["kind"][0].tolist() == [1, 1, 0, 0, 2]  # between, between, at an input, at the last, after
    assert out["sources"][0].tolist() == [[0, 1], [1, 2], [2, 2], [3, 3], [3, 3]]
    torch.testing.assert_close(out["frames"][:, 2], frames[:, 2], atol=1e-5, rtol=0)  # an observed time: that frame


@pytest.mark.parametrize("method", SOLVERS)
@torch.no_grad()
def test_a_query_does_not_depend_on_the_other_queries(method):
    """Off the solver's grid too, for every solver: the forecast at 7.3 alone or among others."""
    solver = SolverConfig(method, 0.5)
    model = make_model(encoder_solver=solver, decoder_solver=solver)
    frames, times = inputs()
    alone = model(frames, times, torch.tensor([7.3]))["frames"][:, 0]
    together = model(frames, times, torch.tensor([2.6, 4.25, 5.1, 7.3, 9.9]))["frames"][:, 3]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=0)
    recursive = make_model(encoder_solver=solver, decoder_solver=solver, decoding="recursive")
    recursive.load_state_dict(model.state_dict())
    chained = recursive(frames, times, torch.tensor([5.1, 7.3]))["frames"][:, 1]
    assert (chained - alone).abs().max() > 1e-4  # the paper's recursive decoding composes from the 5.1 forecast


@torch.no_grad()
def test_samples_with_their_own_times_share_a_batch_as_if_alone():
    model = make_model(encoder_solver=SolverConfig("rk4", 0.5), decoder_solver=SolverConfig("rk4", 0.5))
    frames, _ = inputs(B=3)
    times = torch.tensor([[0.0, 1.0, 3.0, 4.0], [0.0, 2.5, 3.0, 7.0], [1.0, 1.5, 2.0, 6.2]])
    nan = float("nan")
    query = torch.tensor([[2.0, 5.5, 8.0], [7.7, nan, nan], [1.2, 6.2, 9.1]])
    together = model(frames, times, query)["frames"]
    assert torch.isnan(together[1, 1:]).all()
    for b in range(3):
        asked = ~torch.isnan(query[b])
        alone = model(frames[b : b + 1], times[b], query[b][asked])["frames"][0]
        torch.testing.assert_close(together[b][asked], alone, atol=1e-5, rtol=0)


def _moving_blob(times, velocity=(1.5, -1.0), size=(48, 64)) -> torch.Tensor:
    """A Gaussian blob (sigma 4 px) moving ``velocity`` (x, y) pixels per time unit: (1, T, 1, H, W)."""
    y, x = torch.meshgrid(
        torch.arange(size[0], dtype=torch.float32), torch.arange(size[1], dtype=torch.float32), indexing="ij"
    )
    return torch.stack(
        [torch.exp(-((x - 20 - velocity[0] * t) ** 2 + (y - 30 - velocity[1] * t) ** 2) / 32) for t in times]
    )[None, :, None]


@torch.no_grad()
@pytest.mark.parametrize("decoder", DECODERS)
def test_untrained_model_is_persistence_and_motion_compensated_interpolation(decoder):
    """The decoders' output layers start at zero: extrapolation copies the last frame; interpolation
    blends its two neighbours along the motion between them (the linear blend where nothing moves),
    so training starts from the strongest simple baselines."""
    config = ModelConfig(channels=3, width=4, encoder_solver=EULER, decoder_solver=EULER, decoder=decoder)
    model = VidODE(config).eval()
    frames, times = inputs()
    frames = frames.mean((-2, -1), keepdim=True).expand_as(frames).contiguous()  # nothing to see move
    out = model(frames, times, torch.tensor([0.25, 2.5, 6.0, 9.5]))["frames"]
    torch.testing.assert_close(out[:, 0], 0.75 * frames[:, 0] + 0.25 * frames[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], 0.25 * frames[:, 1] + 0.75 * frames[:, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 2], frames[:, 3], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 3], frames[:, 3], atol=1e-5, rtol=0)
    model = VidODE(dataclasses.replace(config, channels=1)).eval()
    moving, truth = _moving_blob([0.0, 1.0, 4.0]), _moving_blob([2.5])[:, 0]
    out = model(moving, torch.tensor([0.0, 1.0, 4.0]), torch.tensor([2.5]))["frames"][:, 0]
    blend = 0.5 * (moving[:, 1] + moving[:, 2])  # two half blobs, 4.5 px apart
    assert (out - truth).abs().max() < 0.2 * (blend - truth).abs().max()


@torch.no_grad()
def test_interpolation_sees_the_frames_on_both_sides():
    model = make_model()
    frames, times = inputs()
    query = torch.tensor([2.0])  # between the inputs at 1 and 3
    base = model(frames, times, query)["frames"]
    later = frames.clone()
    later[:, 2] = torch.rand_like(later[:, 2])
    assert (model(later, times, query)["frames"] - base).abs().max() > 1e-3


@torch.no_grad()
def test_missing_cells_take_their_last_valid_value_not_zero():
    """An untrained model persists the last frame: its missing cells must come back as the same cells'
    values in the frame before (the old behaviour put 0, the training minimum, there: a fake storm)."""
    model = VidODE(ModelConfig(channels=3, width=4, encoder_solver=EULER, decoder_solver=EULER)).eval()
    frames, times = inputs()
    frames[:, 3, :, 5:9, 6:12] = float("nan")
    out = model(frames, times, torch.tensor([6.0]))
    torch.testing.assert_close(out["frames"][:, 0, :, 5:9, 6:12], frames[:, 2, :, 5:9, 6:12], atol=1e-5, rtol=0)
    assert (out["valid"][:, 0, :, 5:9, 6:12] < 1e-5).all() and (out["valid"][:, 0, :, :4] > 1 - 1e-5).all()
    frames[:, :, 1, 0:4, 0:4] = float("nan")  # never valid: filled from the valid cells around them
    filled = model(frames, times, torch.tensor([6.0]))["frames"][:, 0, 1, 0:4, 0:4]
    around = frames[:, 3, 1, 4:6, 0:6]
    assert (filled >= around.amin((1, 2)).view(-1, 1, 1) - 1e-6).all()
    assert (filled <= around.amax((1, 2)).view(-1, 1, 1) + 1e-6).all()


@torch.no_grad()
def test_group_norm_makes_a_sample_independent_of_its_batch():
    model = make_model()
    frames, times = inputs(B=3)
    frames[2, 1] = float("nan")  # a missing frame beside it must not change the others' statistics
    batch = model(frames, times, torch.tensor([2.5, 6.0]))["frames"]
    alone = model(frames[:1], times, torch.tensor([2.5, 6.0]))["frames"]
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=0)


@torch.no_grad()
def test_time_scale_is_applied():
    frames, times = inputs()
    a = make_model(time_scale=1.0)
    b = make_model(time_scale=3.0)
    b.load_state_dict(a.state_dict())
    out_a = a(frames, times, torch.tensor([5.0, 6.0]))["frames"]
    out_b = b(frames, times * 3, torch.tensor([15.0, 18.0]))["frames"]
    assert torch.allclose(out_a, out_b, atol=1e-5)


@pytest.mark.parametrize(
    "changes",
    [
        {"encoder": "conv", "n_in": 4},
        {"flow_warping": False},
        {"mask_composition": False},
        {"encoder_solver": SolverConfig("rk4", 0.25), "decoder_solver": SolverConfig("dopri5")},
        {"decoder_solver": SolverConfig("euler", 0.5, adjoint=True)},
    ],
)
def test_ablation_and_solver_switches_run_and_train(changes):
    model = make_model(**changes).train()
    frames, times = inputs()
    out = model(frames, times, torch.tensor([5.0, 6.0]))["frames"]
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:3])


def test_without_warping_flow_does_not_matter():
    """With flow_warping off the previous frame is used as it is."""
    model = make_model(flow_warping=False)
    frames, times = inputs()
    out = model(frames, times, torch.tensor([5.0]))
    assert (out["flows"] == 0).all()
    out["frames"].sum().backward()
    flow_head = model.decoder.net[-1].weight.grad[:2]
    assert flow_head.abs().max() == 0


def test_bad_config_refused():
    with pytest.raises(ValueError, match="solver"):
        SolverConfig("heun")
    with pytest.raises(ValueError, match="n_in"):
        ModelConfig(encoder="conv")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_name_builds_its_own_class_and_switches(name):
    """Wherever a model is built (trainer, checkpoint loader, protocols), ``build`` decides by the name: a
    config naming ode-fc but saying nothing of its encoder or derivative still builds ODE-FC."""
    config = ModelConfig(architecture=name, channels=2, width=4, n_in=4, frame_shape=[16, 20])
    model = build(config)
    assert type(model) is MODELS[name]
    settings = {**VARIANTS.get(name, {})}
    for key, value in settings.items():
        assert getattr(model.config, key) == value
    if MODELS[name] is VidODE:
        expected_func = FCODEFunc if name == "ode-fc" else ConvODEFunc
        assert type(model.decoder_func) is expected_func
        assert hasattr(model, "sequence_encoder") == (name == "vid-ode")
        frames = torch.rand(1, 4, 2, 16, 20)
        out = model.eval()(frames, torch.arange(4.0), torch.tensor([2.5, 5.0]))
        assert out["frames"].shape == (1, 2, 2, 16, 20)
