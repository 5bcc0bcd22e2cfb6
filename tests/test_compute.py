"""The fast paths of ``climode.model.compute`` match the plain path within stated tolerances, and the
default settings (rk4, one step per data interval, NHWC) keep the model's invariants."""

import dataclasses

import pytest
import torch
from conftest import state_dependent

from climode.model import ModelConfig, SolverConfig, VidODE
from climode.model.decoder import InterpolationDecoder

NAN = float("nan")
TIMES = torch.tensor([[0.0, 1.0, 3.0, 4.0], [0.0, 2.5, 3.0, 7.0]])
QUERIES = torch.tensor([[0.5, 2.0, 5.5, 8.0], [1.7, 6.2, 9.1, NAN]])  # interpolated and extrapolated


def _pair(**fast) -> tuple[VidODE, VidODE]:
    """A plain model (NCHW, float32, no checkpointing) and the same weights with ``fast`` settings,
    their decoders' output layers random (untrained they are zero and every path gives persistence)."""
    plain_config = ModelConfig(channels=3, width=8, channels_last=False, checkpointing=False)
    plain = state_dependent(VidODE(plain_config))
    for layer in plain.modules():
        if isinstance(layer, InterpolationDecoder):
            layer.net[-1].reset_parameters()
    fast_model = VidODE(dataclasses.replace(plain_config, **fast))
    fast_model.load_state_dict(plain.state_dict())
    return plain, fast_model


def _run(model: VidODE, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The frames at QUERIES and the gradients of a loss on them, per parameter."""
    model.zero_grad()
    out = model(frames, TIMES, QUERIES)["frames"]
    out.nan_to_num().square().mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _frames() -> torch.Tensor:
    frames = torch.rand(2, 4, 3, 24, 32)
    frames[1, 2, :, 4:12, 6:20] = NAN  # missing cells
    return frames


def _gradient(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten() for _, g in sorted(grads.items())])


@pytest.mark.parametrize(
    ("fast", "atol", "grad_rtol"),
    [
        ({"channels_last": True}, 1e-4, 1e-4),  # float rounding only, other summation orders
        ({"checkpointing": True}, 1e-6, 1e-5),  # the same arithmetic, recomputed chunk by chunk
        ({"checkpointing": True, "channels_last": True}, 1e-4, 1e-4),
        # torch.compile's kernels (inductor on the CPU) fuse and reorder: rounding only; a minute to compile
        ({"compile": "default", "checkpointing": True, "channels_last": True}, 1e-4, 1e-4),
    ],
)
@pytest.mark.slow
def test_layout_and_checkpointing_match_the_plain_path(fast, atol, grad_rtol):
    """Frames within ``atol`` (inputs in [0, 1]) and the whole gradient within ``grad_rtol`` of its norm."""
    plain, fast_model = _pair(**fast)
    frames = _frames()
    out, grads = _run(plain, frames)
    fast_out, fast_grads = _run(fast_model, frames)
    assert torch.isnan(out[1, 3]).all() and torch.isfinite(out[:, :3]).all()
    torch.testing.assert_close(fast_out, out, atol=atol, rtol=0, equal_nan=True)
    assert grads.keys() == fast_grads.keys() and len(grads) > 20
    gradient, fast_gradient = _gradient(grads), _gradient(fast_grads)
    assert (fast_gradient - gradient).norm() <= grad_rtol * gradient.norm()


@pytest.mark.slow
def test_bfloat16_matches_float32_within_its_rounding():
    """bfloat16 keeps 8 bits of mantissa (relative rounding 0.4 %), compounded through some forty
    layers: frames in [0, 1] within 0.01 on average and 0.1 everywhere, float32 outputs, and the
    gradient pointing the same way (cosine above 0.99 overall and 0.95 for every tensor that matters)."""
    plain, fast_model = _pair(precision="bfloat16")
    frames = _frames()
    out, grads = _run(plain, frames)
    low, low_grads = _run(fast_model, frames)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, out, atol=0.1, rtol=0, equal_nan=True)
    error = (low - out).nan_to_num().abs()
    assert 0 < error.mean() < 0.01  # bfloat16 did run, and stays close
    gradient, low_gradient = _gradient(grads), _gradient(low_grads)
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(gradient, low_gradient, 0) > 0.99
    for name, grad in grads.items():
        if grad.norm() > 1e-3 * gradient.abs().max():
            assert cosine(grad.flatten(), low_grads[name].flatten(), 0) > 0.95, name


def test_default_solver_steps_once_per_data_interval():
    """Euler in the encoders and midpoint in the decoder, on a grid of whole data intervals: one
    evaluation per unit gap in the encoder, two per whole unit of lead in the decoder; a query off
    the grid adds one step from the grid point before."""
    config = ModelConfig(channels=3, width=4)
    assert config.encoder_solver == SolverConfig("euler", 1.0)
    assert config.decoder_solver == SolverConfig("midpoint", 1.0)
    model = VidODE(config).eval()
    with torch.no_grad():
        model(torch.rand(1, 5, 3, 16, 16), torch.arange(5.0), torch.tensor([5.0, 6.0, 7.0]))
        assert model.sequence_encoder.func.nfe == 1 * 4 and model.decoder_func.nfe == 2 * 3
        model.decoder_func.nfe = 0
        model(torch.rand(1, 5, 3, 16, 16), torch.arange(5.0), torch.tensor([6.5]))
        assert model.decoder_func.nfe == 2 * 2 + 2


@torch.no_grad()
def test_default_settings_keep_query_and_batch_invariance():
    """A query's forecast does not depend on the other queries nor on the other samples of its batch."""
    model = state_dependent(VidODE(ModelConfig(channels=3, width=4))).eval()
    frames = _frames()
    together = model(frames, TIMES, QUERIES)["frames"]
    for b in range(2):
        asked = ~torch.isnan(QUERIES[b])
        for k in asked.nonzero().flatten().tolist():
            alone = model(frames[b : b + 1], TIMES[b], QUERIES[b, k : k + 1])["frames"][0, 0]
            torch.testing.assert_close(together[b, k], alone, atol=1e-5, rtol=0)


def test_a_bad_time_is_named_with_its_sample():
    model = VidODE(ModelConfig(channels=3, width=4)).eval()
    times = TIMES.clone()
    times[1, 2] = 2.0  # not after 2.5
    with pytest.raises(ValueError, match="input times of sample 1 must be strictly increasing"):
        model(_frames(), times, QUERIES)
    times[1, 2] = float("inf")
    with pytest.raises(ValueError, match="input times of sample 1 must be finite"):
        model(_frames(), times, QUERIES)


@pytest.mark.parametrize("units", [True, False])
def test_auto_precision_lowers_only_where_the_device_has_bfloat16_units(monkeypatch, units):
    """``precision: auto`` is bfloat16 on a device with bfloat16 arithmetic (AMX, AVX-512 BF16, a GPU
    that has it) and float32 elsewhere, where emulated bfloat16 is slower: the same outputs as the
    precision it stands for."""
    from climode.model import compute

    monkeypatch.setattr(compute, "has_bfloat16_units", lambda device: units)
    torch.manual_seed(0)
    _, auto = _pair(precision="auto")
    torch.manual_seed(0)
    _, chosen = _pair(precision="bfloat16" if units else "float32")
    frames = _frames()
    with torch.no_grad():
        out, expected = (model(frames, TIMES, QUERIES)["frames"] for model in (auto, chosen))
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
