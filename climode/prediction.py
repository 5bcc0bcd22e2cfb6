"""The model run over a field: a grid larger than the model's tile cut into windows, forecast and
stitched (``predict``); a forecast on the model's grid carried onto the finer grid of the input
(``compose_native``, ``native_forecast``); and which forecast values depend on input cells the
model filled (``depends_on_filled``)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from .geo.grid import downsample, grid_step, upsample
from .geo.tiles import blend_weights, windows
from .model.compose import compose, fill_missing, finer_parts, shifted_fill
from .normalise import Normalised

OVERLAP = 8  # windows of a large domain share at least 1/OVERLAP of the tile size
FILLED_SHARE = 1e-3  # a forecast value with more than this share from filled input cells is flagged
FILL_SHIFT = 0.05  # model units (5 % of a min-max range): the shift of every filled cell that probes dependence
FILLED_TOLERANCE = 0.01  # a forecast value moved by more than this share of FILL_SHIFT depends on filled cells
BLENDED = ("frames", "flows", "weight", "valid")  # the outputs stitched across windows


def compose_native(
    predictor: Normalised, parts: dict[str, np.ndarray], frames: np.ndarray, coarse: xr.Dataset, native: xr.Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Forecast frames (K, C, H, W; physical units) on the native grid from ``predictor``'s forecast on
    its coarser grid (``parts``: its frames and composition parts, ``climode.model.compose``) and the
    native input frames ``frames`` (L, C, H, W; physical units, NaN missing, filled as the model fills
    them), by scale: the model's frames at the scales its grid holds, plus the inputs' detail finer
    than that grid carried along the model's flows.

        carried = the native inputs composed with the model's flows and weights (the anchor moved
                  whole where the model extrapolates: no unmoved copy of it, no residual)
        frame   = up(model's frame) + carried - up(down(carried))

    ``down`` is how inputs reach the model's grid (``geo.grid.downsample``), ``up`` bilinear. A compact
    storm core, unresolved at the model's grid, thus moves with the storm instead of being smoothed
    away or left behind (docs/design.md has the measurement that chose it). Returns the frames and the
    share of each carried cell drawn from valid input cells (K, C, H, W)."""
    scale = np.array(
        [
            grid_step(coarse.lon.values) / grid_step(native.lon.values),
            grid_step(coarse.lat.values) / grid_step(native.lat.values),
        ],
        np.float32,
    )
    up = lambda name: torch.as_tensor(upsample(parts[name], coarse, native))[None]
    sources, flows, weight = finer_parts({"sources": parts["sources"][None]}, tuple(scale), up)
    x = torch.as_tensor(predictor.scale_inputs(frames))[None]
    if np.isfinite(frames).all():  # nothing to fill: every carried value is drawn from valid cells
        carried = compose(x, sources, flows, weight)[0].numpy()
        share = np.ones_like(carried)
    else:
        filled, valid = fill_missing(x, torch.isfinite(x).flatten(2).any(2))
        carried = compose(filled, sources, flows, weight)[0].numpy()
        share = compose(valid.to(filled.dtype), sources, flows, weight)[0].numpy()
    coarse_gap = predictor.scale_inputs(parts["frames"]) - downsample(carried, native, coarse)
    return predictor.physical(carried + upsample(coarse_gap, coarse, native)), share  # up is linear: one call


def native_forecast(
    predictor: Normalised,
    inputs: tuple[np.ndarray, np.ndarray],
    observed: np.ndarray,
    query: np.ndarray,
    tile: tuple[int, int] | None,
    model_ds: xr.Dataset,
    native: xr.Dataset,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Forecast frames (K, C, H, W; physical units) on the input's grid from ``inputs``, the input
    frames (L, C, h, w) on the model's grid and (L, C, H, W) on the input's: the model's forecast on its
    grid, composed again on the input's (``compose_native``) or, for a model without composition parts,
    upsampled. Returns the frames and the share of each value drawn from valid input cells (None when
    the model does not tell)."""
    parts = predict(predictor, inputs[0], observed, query, tile)
    share = parts.get("valid")
    if model_ds is native:
        return parts["frames"], share
    if {"flows", "weight", "sources"} <= set(parts):
        return compose_native(predictor, parts, inputs[1], model_ds, native)
    return upsample(parts["frames"], model_ds, native), None if share is None else upsample(share, model_ds, native)


def depends_on_filled(
    predictor: Normalised, run, pred: np.ndarray, share: np.ndarray | None, missing: bool
) -> np.ndarray:
    """(K, C, H, W) bool: the forecast values ``pred`` (physical units) that depend on filled input
    cells. A value is drawn from a filled cell by the composition (``share`` below 1 - FILLED_SHARE), or
    it is moved through the network: ``run()`` forecasts again with every filled cell shifted by
    FILL_SHIFT (``shifted_fill``), and a value that moves by more than FILLED_TOLERANCE of that shift
    (in the model's units) is flagged, however far it lies from the filled cells. Without ``missing``
    input cells nothing is filled and nothing is run again."""
    filled = np.zeros(pred.shape, bool) if share is None else share < 1 - FILLED_SHARE
    if not missing:
        return filled
    with shifted_fill(FILL_SHIFT):
        shifted, _ = run()
    moved = np.abs(predictor.scale_inputs(shifted) - predictor.scale_inputs(pred))
    return filled | (moved > FILLED_TOLERANCE * FILL_SHIFT)


@torch.no_grad()
def predict(
    model,
    frames: np.ndarray,
    times: np.ndarray,
    query: np.ndarray,
    tile_shape: tuple[int, int] | None = None,
    batch: int = 4,
) -> dict[str, np.ndarray]:
    """Forecasts by ``model`` (``model(frames, times, query) -> {"frames": ..., ...}``, e.g. a
    ``climode.normalise.Normalised``) from ``frames`` (L, C, H, W; its units, NaN missing) observed at
    ``times`` (L,) for ``query`` (K,) times, both in the model's time units.

    Returns ``frames`` (K, C, H, W) float32 and, when the model gives them, ``valid`` (K, C, H, W)
    (the share drawn from valid input cells) and the composition parts ``compose_native`` uses
    (``climode.model.compose``: ``flows`` (K, 2, 2, H, W; pixels), ``weight`` (K, 1, H, W), ``sources``
    (K, 2)). A grid larger than ``tile_shape`` is cut into overlapping windows of that size,
    forecast in batches of ``batch`` windows and stitched with weights that cross-fade the overlaps;
    the parts are left out when the windows disagree on their sources (a frame missing in one window only).
    """
    L, C, H, W = frames.shape
    th, tw = (min(tile_shape[0], H), min(tile_shape[1], W)) if tile_shape else (H, W)
    ys, xs = windows(H, th, max(th // OVERLAP, 1)), windows(W, tw, max(tw // OVERLAP, 1))
    weight = np.outer(
        blend_weights(th, th // OVERLAP if len(ys) > 1 else 0), blend_weights(tw, tw // OVERLAP if len(xs) > 1 else 0)
    ).astype(np.float32)
    device = next(model.parameters(), torch.zeros(())).device
    t = torch.as_tensor(times, dtype=torch.float32, device=device)
    q = torch.as_tensor(query, dtype=torch.float32, device=device)
    total: dict[str, np.ndarray] = {}
    norm = np.zeros((H, W), np.float32)
    sources: set = set()
    boxes = [(y, x) for y in ys for x in xs]
    for start in range(0, len(boxes), batch):
        chunk = boxes[start : start + batch]
        x = torch.as_tensor(np.stack([frames[..., y : y + th, x : x + tw] for y, x in chunk]), device=device)
        out = model(x, t, q)
        if "sources" in out:
            sources.update(tuple(map(tuple, row.tolist())) for row in out["sources"].cpu())
        for name in BLENDED:
            if name not in out:
                continue
            values = out[name].float().cpu().numpy()
            acc = total.setdefault(name, np.zeros((len(query), *values.shape[2:-2], H, W), np.float32))
            for (y, x0), part in zip(chunk, values):
                acc[..., y : y + th, x0 : x0 + tw] += part * weight
        for y, x0 in chunk:
            norm[y : y + th, x0 : x0 + tw] += weight
    result = {name: acc / norm for name, acc in total.items()}
    if len(sources) == 1:
        result["sources"] = np.array(next(iter(sources)))
    else:
        for name in ("flows", "weight", "sources"):
            result.pop(name, None)
    return result
