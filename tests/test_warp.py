import pytest
import torch

from climode.model.warp import warp


def test_zero_flow_is_identity():
    frames = torch.rand(3, 4, 37, 53)
    zero = torch.zeros(3, 2, 37, 53)
    assert (warp(frames, zero) - frames).abs().max() < 1e-5
    out = frames
    for _ in range(5):
        out = warp(out, zero)
    assert (out - frames).abs().max() < 5e-5


def _blob(h=32, w=40, cy=14.0, cx=17.0):
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)[None, None]


def _centroid(img):
    img = img[0, 0]
    yy, xx = torch.meshgrid(
        torch.arange(img.shape[0], dtype=img.dtype), torch.arange(img.shape[1], dtype=img.dtype), indexing="ij"
    )
    return float((img * yy).sum() / img.sum()), float((img * xx).sum() / img.sum())


@pytest.mark.parametrize("dy,dx", [(0.0, 3.0), (-2.0, 0.0), (1.5, -2.5)])
def test_known_flow_moves_pattern(dy, dx):
    """Backward warping by a uniform flow (fx, fy) moves the pattern by (-fy, -fx) pixels."""
    frame = _blob()
    flow = torch.zeros(1, 2, *frame.shape[-2:])
    flow[:, 0], flow[:, 1] = -dx, -dy
    cy, cx = _centroid(warp(frame, flow))
    assert cy == pytest.approx(14.0 + dy, abs=1e-3)
    assert cx == pytest.approx(17.0 + dx, abs=1e-3)
    if dy.is_integer() and dx.is_integer():
        expected = _blob(cy=14.0 + dy, cx=17.0 + dx)
        assert (warp(frame, flow) - expected).abs().max() < 1e-5


def test_flow_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="flow"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))
