import pytest
import torch
from conftest import state_dependent

from climode.model import ModelConfig, SolverConfig, VidODE

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
    assert out["flow"].shape == (2, 3, 2, 21, 30)
    assert out["mask"].shape == (2, 3, 1, 21, 30)
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
    out = model(frames, times, torch.tensor([0.5, 2.0, 4.0, 6.0]))
    assert out["frames"].shape[1] == 4
    # decoded outwards from t_L = 4 in both directions
    assert out["previous"].tolist() == [1, -1, -1, 2]


@torch.no_grad()
def test_anchored_decoding_does_not_depend_on_other_queries():
    model = make_model(decoding="anchored")
    frames, times = inputs()
    alone = model(frames, times, torch.tensor([8.0]))["frames"][:, 0]
    together = model(frames, times, torch.tensor([5.0, 6.5, 8.0]))["frames"][:, 2]
    assert torch.allclose(alone, together, atol=1e-5)


@torch.no_grad()
def test_time_scale_is_applied():
    frames, times = inputs()
    a = make_model(time_scale=1.0)
    b = make_model(time_scale=3.0)
    b.load_state_dict(a.state_dict())
    out_a = a(frames, times, torch.tensor([5.0, 6.0]))["frames"]
    out_b = b(frames, times * 3, torch.tensor([15.0, 18.0]))["frames"]
    assert torch.allclose(out_a, out_b, atol=1e-5)


@pytest.mark.parametrize("changes", [
    {"encoder": "conv", "n_in": 4},
    {"flow_warping": False},
    {"mask_composition": False},
    {"encoder_solver": SolverConfig("rk4", 0.25), "decoder_solver": SolverConfig("dopri5")},
    {"decoder_solver": SolverConfig("euler", 0.5, adjoint=True)},
])
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
    assert out["flow"].grad_fn is not None
    out["frames"].sum().backward()
    flow_head = model.decoder.net[-1].weight.grad[:2]
    assert flow_head.abs().max() == 0


def test_bad_config_refused():
    with pytest.raises(ValueError, match="solver"):
        SolverConfig("heun")
    with pytest.raises(ValueError, match="n_in"):
        ModelConfig(encoder="conv")
