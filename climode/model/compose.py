"""How a forecast frame is made from observed frames: missing cells filled, sources warped and blended.

Every learned Vid-ODE-like model describes each forecast frame by its *parts* (all (B, K, ...)):

- ``sources`` (B, K, 2) long: the two frames it is made from, an input slot (>= 0) or, for recursive
  decoding, an earlier forecast of the same sample (-1 - its query index);
- ``flows`` (B, K, 2, 2, H, W): a backward flow in pixels for each source (``climode.model.warp``);
- ``weight`` (B, K, 1, H, W): the share of the first warped source (the rest is the second's);
- ``residual`` (B, K, C, H, W): what is added on top.

    frame = weight * W(flow_0, source_0) + (1 - weight) * W(flow_1, source_1) + residual

Extrapolation is M * W(F, X) + (1 - M) * (X + D) (both sources the anchor, the second unwarped,
residual (1 - M) D); interpolation blends the two observed frames around the query, each warped
along the motion between them. ``compose`` is the one place this sum is written: the models call
it on their own grid, and the forecast on the input's finer grid (``climode.forecast``) and a video
at its own size (``climode.video.retime``) call it with the parts brought there (``finer_parts``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F

from .warp import warp

UNKNOWN = 0.5  # a channel with no valid cell in any input frame: the middle of the [0, 1] min-max range
_SHIFT: ContextVar[float] = ContextVar("fill_shift", default=0.0)


@contextmanager
def shifted_fill(shift: float) -> Iterator[None]:
    """Inside it, ``fill_missing`` adds ``shift`` (the model's units) to every cell it fills, in every
    model and composition that fills: how far a forecast then moves is how much it depends on filled
    cells (``climode.forecasting`` flags values by it)."""
    token = _SHIFT.set(float(shift))
    try:
        yield
    finally:
        _SHIFT.reset(token)


def _push_pull(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the unknown cells of (N, C, H, W) ``values`` by the mean of the known cells around them,
    from ever coarser averages (push) brought back to the fine grid (pull); known cells are kept.
    A map with no known cell is left as it is (NaN)."""
    weight = known.to(values.dtype)
    levels = [(torch.where(known, values, 0.0), weight)]
    while min(levels[-1][0].shape[-2:]) > 1 and not bool((levels[-1][1] > 0).all()):
        v, w = levels[-1]
        levels.append((F.avg_pool2d(v, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    estimate = None
    for v, w in reversed(levels):
        here = v / w.clamp(min=1e-12)
        if estimate is not None:
            up = F.interpolate(estimate, size=v.shape[-2:], mode="bilinear", align_corners=False)
            here = torch.where(w > 0, here, up)
        else:
            here = torch.where(w > 0, here, torch.full_like(here, float("nan")))
        estimate = here
    return torch.where(known, values, estimate)


def fill_missing(frames: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Physically plausible values for missing cells of ``frames`` (B, L, C, H, W; NaN missing).

    A missing cell takes the last valid value of that cell in an earlier observed frame, else the
    first in a later one; a cell never valid is filled from the valid cells around it in its own
    frame (push-pull averaging); a channel with no valid cell anywhere takes ``UNKNOWN``. Frames
    not ``observed`` (B, L) are filled the same way (they are not used as observations). Inside
    ``shifted_fill`` every filled cell is shifted.
    Returns ``(filled, valid)``: the frames with no NaN and the (B, L, C, H, W) bool validity."""
    valid = torch.isfinite(frames)
    L = frames.shape[1]
    use = valid & observed.view(*observed.shape, 1, 1, 1)
    slots = list(torch.where(use, frames, torch.full_like(frames, float("nan"))).unbind(1))
    for i in range(1, L):  # the last valid value of each cell
        slots[i] = torch.where(torch.isnan(slots[i]), slots[i - 1], slots[i])
    for i in range(L - 2, -1, -1):  # before a cell's first valid value: that value
        slots[i] = torch.where(torch.isnan(slots[i]), slots[i + 1], slots[i])
    filled = torch.stack(slots, 1)
    gaps = torch.isnan(filled)
    if bool(gaps.any()):
        flat = filled.flatten(0, 1)
        filled = _push_pull(flat, ~gaps.flatten(0, 1)).unflatten(0, filled.shape[:2])
    filled = torch.nan_to_num(filled, nan=UNKNOWN)
    shift = _SHIFT.get()
    return (torch.where(valid, filled, filled + shift) if shift else filled), valid


def _gather(bank: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """bank (B, N, ...) at index (B, M) -> (B, M, ...)."""
    return bank.gather(1, index.view(*index.shape, *[1] * (bank.ndim - 2)).expand(-1, -1, *bank.shape[2:]))


def compose(
    inputs: torch.Tensor,
    sources: torch.Tensor,
    flows: torch.Tensor,
    weight: torch.Tensor,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frames (B, K, C, H, W) from their parts (module docstring) and the input frames (B, L, C, H, W)
    with no NaN. Anchored parts are composed all at once; recursive ones query by query."""
    B, K = sources.shape[:2]

    def frame(src: torch.Tensor, k: slice) -> torch.Tensor:
        """src (B, k, 2, C, H, W) -> frames (B, k, C, H, W)."""
        moved = warp(src.flatten(0, 2), flows[:, k].flatten(0, 2)).unflatten(0, src.shape[:3])
        w = weight[:, k]
        out = w * moved[:, :, 0] + (1 - w) * moved[:, :, 1]
        return out if residual is None else out + residual[:, k]

    if not bool((sources < 0).any()):
        src = _gather(inputs, sources.flatten(1)).unflatten(1, (K, 2))
        return frame(src, slice(None))
    out: list[torch.Tensor] = []
    for k in range(K):
        bank = torch.cat((inputs, torch.stack(out, 1)), 1) if out else inputs
        index = torch.where(sources[:, k] < 0, inputs.shape[1] - 1 - sources[:, k], sources[:, k])
        out.append(frame(_gather(bank, index).unsqueeze(1), slice(k, k + 1))[:, 0])
    return torch.stack(out, 1)


def finer_parts(
    parts: dict, scale: tuple[float, float], up: Callable[[str], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sources, flows, weight)`` of ``parts`` on a finer grid, for ``compose`` with the finer inputs:
    ``up(name)`` gives the part ``name`` (B, K, ..., h, w) brought to the finer grid (B, K, ..., H, W),
    the flows are scaled by ``scale`` (x, y: finer cells per coarse cell), and where a query's two
    sources are one frame (extrapolation) the weight is 1: that frame moved whole, with no unmoved
    copy of it, since its detail finer than the coarse grid would otherwise stay where it was."""
    flows = up("flows") * torch.as_tensor(scale, dtype=torch.float32).view(1, 1, 1, 2, 1, 1)
    sources = torch.as_tensor(parts["sources"])
    moved_whole = (sources[..., 0] == sources[..., 1]).view(*sources.shape[:2], 1, 1, 1)
    return sources, flows, torch.where(moved_whole, 1.0, up("weight"))
