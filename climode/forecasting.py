"""Forecasts at any times from irregularly timed frames: ``climode.forecast(ds, times)``; the command
over it is ``python -m climode.forecast`` (``climode.forecast``, whose docstring tells the path)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import cftime
import numpy as np
import torch
import xarray as xr

from . import ensemble
from ._version import __version__
from .checkpoint import Checkpoint, load_model
from .conventions import bounds, cf_attrs
from .errors import ClimodeError
from .geo.grid import downsample, grid_step, upsample
from .geo.storms import storm_centre
from .geo.tiles import blend_weights, model_grids, windows
from .io.checks import check_grid, check_memory, check_values, source, usable_frames, warn_missing_last
from .io.coords import normalise_coords
from .io.write import FLAG, FLAG_ATTRS
from .model.compose import compose, fill_missing, shifted_fill
from .normalise import Normalised
from .times import as_hours, at_hours, hours_between, resolution_us, stamp

BUNDLED = "cam5-synthetic.safetensors"
OVERLAP = 8  # windows of a large domain share at least 1/OVERLAP of the tile size
MATCH_H = 0.02  # hours: an --input-times entry matches a frame this close
FILLED_SHARE = 1e-3  # a forecast value with more than this share from filled input cells is flagged
FILL_SHIFT = 0.05  # model units (5 % of a min-max range): the shift of every filled cell that probes dependence
FILLED_TOLERANCE = 0.01  # a forecast value moved by more than this share of FILL_SHIFT depends on filled cells


def bundled_checkpoint() -> Path:
    """Path of the model shipped with climode."""
    return Path(str(resources.files("climode.weights") / BUNDLED))


def forecast_model(checkpoint: str | Path | Checkpoint | None, device: str = "cpu") -> Checkpoint:
    """The model ``forecast`` runs: ``checkpoint`` loaded (the bundled model when None), refused
    unless it was trained on times in hours."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_model(checkpoint or bundled_checkpoint(), device)
    if ckpt.card.time_units != "hours":
        raise ClimodeError(
            f"checkpoint {ckpt.path} was trained on times in {ckpt.card.time_units!r}, "
            "not hours; forecasting dated fields needs a model trained on them "
            "(e.g. --dataset cam5 or gridded)"
        )
    return ckpt


def _calendar(ds: xr.Dataset) -> str:
    first = ds.time.values[0]
    if not isinstance(first, cftime.datetime):
        raise ClimodeError("input time axis is not decoded to dates; open it with climode.io.fields.open_fields")
    return first.calendar


def _select_inputs(ds: xr.Dataset, input_times, calendar: str) -> xr.Dataset:
    """The frames at ``input_times`` (hours since the first frame of ``ds``, dates or a spec string)."""
    if input_times is None:
        return ds
    origin = ds.time.values[0]
    have = hours_between(ds.time.values, origin, calendar)
    wanted = as_hours(input_times, origin, calendar, "--input-times", lambda count, _: _check_frames(count, len(have)))
    picks = []
    for hours in wanted:
        nearest = int(np.argmin(np.abs(have - hours)))
        if abs(have[nearest] - hours) > MATCH_H:
            listed = ", ".join(f"{h:g}" for h in have[:12]) + (", ..." if len(have) > 12 else "")
            raise ClimodeError(
                f"--input-times: {hours:g} h after the first frame ({origin}) is not a frame of the "
                f"input; its frames are at {listed} h"
            )
        picks.append(nearest)
    if len(set(picks)) != len(picks):
        raise ClimodeError("--input-times names the same frame twice")
    return ds.isel(time=sorted(picks))


def _check_frames(count: int, frames: int) -> None:
    """Refuse more --input-times than there are frames, before they are expanded or matched."""
    if count > frames:
        raise ClimodeError(f"--input-times gives {count:,} times; the input has {frames:,} frames, each usable once")


def _query_times(
    times, ds: xr.Dataset, calendar: str, last_h: float, check: Callable[[int, float], object]
) -> np.ndarray:
    """The query times (cftime, sorted, each once), ``check``ed (``times.as_hours``) before they are
    expanded, rounded to the time resolution of ``ds``'s frames (``times.resolution_us``: whole seconds
    at least), so that an asked 07:50 is 07:50:00 exactly."""
    origin = ds.time.values[0]
    hours = as_hours(times, origin, calendar, "--times", check)
    if hours.min() < 0:
        raise ClimodeError(
            f"--times: {hours.min():g} h falls before the first input frame ({origin}); forecasts are "
            f"made from the first input on (inside 0..{last_h:g} h interpolates, later extrapolates)"
        )
    return np.unique(at_hours(origin, hours, resolution_us(ds.time.values)))


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
    flows = up("flows") * torch.as_tensor(scale).view(1, 1, 1, 2, 1, 1)
    sources = torch.as_tensor(parts["sources"])[None]
    moved_whole = (sources[..., 0] == sources[..., 1]).view(*sources.shape[:2], 1, 1, 1)
    weight = torch.where(moved_whole, 1.0, up("weight"))
    x = torch.as_tensor(predictor.scale_inputs(frames))[None]
    filled, valid = fill_missing(x, torch.isfinite(x).flatten(2).any(2))
    carried = compose(filled, sources, flows, weight)[0].numpy()
    share = compose(valid.to(filled.dtype), sources, flows, weight)[0].numpy()
    detail = carried - upsample(downsample(carried, native, coarse), coarse, native)
    model = upsample(predictor.scale_inputs(parts["frames"]), coarse, native)
    return predictor.physical(model + detail), share


def _native_forecast(
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


def _depends_on_filled(
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


BLENDED = ("frames", "flows", "weight", "valid")  # the outputs stitched across windows


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


LONG_LEADS = 4  # leads up to this many times the longest trained one need no --allow-long-leads


def _decoder_steps(config, lead: float) -> float:
    """Decoder ODE steps to ``lead`` (time units after the last input) of a model's ``config``:
    fixed-step solvers step ``step_size`` model time units, dopri5 is counted at one per unit."""
    solver = config.decoder_solver
    unit = (config.time_scale or 1.0) * (solver.step_size if solver.method != "dopri5" else 1.0)
    return max(lead, 0.0) / unit


def _check_cost(ckpt: Checkpoint, ds: xr.Dataset, count: int, lead: float, allowed: bool, members: int = 1) -> None:
    """Refuse, before ``ds`` is read, ``count`` query times reaching ``lead`` hours after its last frame:
    a lead too long (``_check_leads``), or a forecast that would not fit in memory or not end
    (``check_memory``)."""
    _check_leads(ckpt, lead, allowed)
    config = getattr(ckpt.model, "config", None)
    grid = ckpt.card.grid or {}
    tile = tuple(grid["tile_shape"]) if grid.get("tile_shape") else None
    width, steps = (config.width, _decoder_steps(config, lead)) if config else (0, 0.0)
    check_memory(
        ds,
        ckpt.variables,
        count,
        resolution=grid.get("resolution"),
        tile_shape=tile,
        width=width,
        steps=steps,
        members=members,
    )


def _check_leads(ckpt: Checkpoint, lead: float, allowed: bool) -> None:
    """Refuse a lead (time units after the last input) beyond LONG_LEADS times the longest the model was
    trained on (``n_out`` steps of ``time_scale``) unless ``allowed``, naming the memory it would take."""
    config = getattr(ckpt.model, "config", None)  # None: a baseline, which integrates nothing
    n_out = ((ckpt.card.config or {}).get("data") or {}).get("n_out")
    if allowed or config is None or not n_out or lead <= 0:
        return
    step = config.time_scale or 1.0
    trained = n_out * step
    if lead <= LONG_LEADS * trained:
        return
    steps = _decoder_steps(config, lead)
    H, W = (ckpt.card.grid or {}).get("tile_shape") or (64, 64)
    gib = steps * 4 * (4 * config.width) * (H // 4 + 1) * (W // 4 + 1) * 4 / 2**30  # one state per step
    units = ckpt.card.time_units
    raise ClimodeError(
        f"a lead of {lead:g} {units} after the last input is beyond {LONG_LEADS}x the longest the model was "
        f"trained for ({trained:g} {units}); pass --allow-long-leads (allow_long_leads=True) to forecast it anyway "
        f"(about {steps:,.0f} decoder ODE steps and {gib:,.1f} GiB per window batch)"
    )


def forecast(
    ds: xr.Dataset,
    times,
    *,
    checkpoint: str | Path | Checkpoint | None = None,
    input_times=None,
    device: str = "cpu",
    mask_filled: bool = False,
    allow_long_leads: bool = False,
    members: int | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Forecast ``ds``'s variables at ``times`` from its frames as irregular observations; with
    ``members``, an ensemble.

    Parameters
    ----------
    ds : dims (time, lat, lon) (or (time, y, x) for a model trained on a projected grid), time as
        cftime dates (``climode.open_fields`` reads files that way), the checkpoint's variables in
        physical units (U850/V850 m s-1, PSL Pa), NaN for missing cells; a frame with fewer than
        ``climode.io.checks.USABLE`` (10 %) of its cells valid is a missing observation (warned about,
        left out, listed in the output's ``climode_skipped_input_times``).
    times : hours after the first input frame (numbers), cftime dates, or a string such as
        "60,63,66", "60:72:3" (inclusive) or "2000-08-03 12:00" (the input's calendar). Times
        inside the observed range interpolate, later ones extrapolate; none may precede the first
        input frame.
    checkpoint : a path or a loaded ``Checkpoint`` (default: the bundled model).
    input_times : the frames of ``ds`` to use (same forms as ``times``, relative to ``ds``'s
        first frame); default all.
    device : torch device ("cpu", "cuda").
    mask_filled : NaN wherever ``filled`` is set (the model fills missing input cells with the cell's
        last valid value, else from the valid cells around it).
    allow_long_leads : forecast leads beyond LONG_LEADS times the longest the model was trained for
        (refused otherwise, with the memory such a lead takes).
    members : an ensemble of this many members (``climode.ensemble``: the forecast moved and rescaled
        by each member's perturbation, the one the checkpoint's card records); None: one deterministic
        forecast. Member m is the same for the same ``seed`` whatever the other times or the number of
        members asked.
    seed : the ensemble's seed.

    The input is checked first (``climode.io.checks``): Inf values, values outside a known
    variable's plausible range and grids under 16 x 16 cells of the model's grid are refused; a
    last input frame with missing regions is warned about; a forecast whose estimated peak memory (the
    whole path, ``climode.io.checks.forecast_cost``) will not fit in the free memory, or whose estimated
    time is unbounded, is refused before anything is read, as soon as the number of times is known
    (ranges are counted, not expanded); only the chosen input frames are read, once.

    Returns
    -------
    xarray.Dataset
        on ``ds``'s grid, dims (time, lat, lon), float32 in physical units with CF attributes, inside the
        variable's physical bounds (``conventions.bounds``: rain and humidity never below 0), the
        input's calendar, times rounded to its time resolution (whole seconds at least: an asked 07:50 is
        07:50:00 exactly); coordinates ``lead_time`` (time; float64 hours after the last input frame) and
        ``forecast_reference_time`` (the last usable input frame's time); the int8 status flag
        ``filled`` (time, lat, lon): 1 where any variable's forecast depends on filled input cells,
        drawn from them or moved by more than FILLED_TOLERANCE (1 %) of a shift of every filled cell
        (``_depends_on_filled``), wherever it lies; and provenance attributes, among them what the
        model was trained on. A query's forecast does not depend on the other queries. With
        ``members``, the variables are (realization, time, lat, lon), ``realization`` a CF coordinate
        0..members-1, and the attributes say the perturbation, the seed and, where PSL is forecast, the
        storm centre at the last input (``climode_storm_start``: lat, lon) that member tracks start from
        (``climode.ensemble.products``).
    """
    if members is not None and (isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1):
        raise ClimodeError(f"--members must be a whole number of at least 1, got {members!r}")
    ckpt = forecast_model(checkpoint, device)
    ds = normalise_coords(ds)
    missing = [v for v in ckpt.variables if v not in ds.data_vars]
    if missing:
        raise ClimodeError(
            f"checkpoint {ckpt.path} forecasts {', '.join(ckpt.variables)}; the input lacks "
            f"{', '.join(missing)} (it has {', '.join(map(str, ds.data_vars)) or 'no variables'})"
        )
    calendar = _calendar(ds)
    ds = _select_inputs(ds[ckpt.variables], input_times, calendar)
    origin = ds.time.values[0]
    observed = hours_between(ds.time.values, origin, calendar)
    cost = lambda count, latest: _check_cost(ckpt, ds, count, latest - observed[-1], allow_long_leads, members or 1)
    valid = _query_times(times, ds, calendar, observed[-1], cost)
    query = hours_between(valid, origin, calendar)
    # the chosen inputs only, read once (a new Dataset: the caller's stays as it was); frames with
    # almost no valid cell are missing observations, so the forecast starts from the last usable one
    ds, skipped = usable_frames(ds.compute(), ckpt.variables)
    observed = hours_between(ds.time.values, origin, calendar)
    empty = [v for v in ckpt.variables if not bool(np.isfinite(ds[v].values).any())]
    if empty:
        raise ClimodeError(f"input variable(s) {', '.join(empty)} have no valid value in any input frame")
    check_values(ds, ckpt.variables, ckpt.card.normalisation)
    # checked again once read (``_check_cost`` did before): a skipped last frame lengthens the leads
    _check_leads(ckpt, float(np.max(query)) - float(observed[-1]), allow_long_leads)
    grid = ckpt.card.grid or {}
    model_ds, native, to_input = model_grids(ds, grid.get("resolution"))
    check_grid(model_ds, source(ds))
    warn_missing_last(ds, ckpt.variables)
    predictor = ckpt.predictor
    frames = lambda fields: np.stack([fields[v].values for v in ckpt.variables], 1).astype(np.float32)
    tile = tuple(grid["tile_shape"]) if grid.get("tile_shape") else None
    inputs = frames(model_ds), frames(native)
    run = lambda: _native_forecast(predictor, inputs, observed, query, tile, model_ds, native)
    pred, share = run()
    filled = _depends_on_filled(predictor, run, pred, share, any(np.isnan(x).any() for x in inputs))
    filled = filled.any(1)  # (K, H, W): a cell is flagged, and masked, when any variable depends on filled cells
    space = native[ckpt.variables[0]].dims[1:]
    dims: tuple[str, ...] = ("time", *space)
    spread = {}
    if members is not None:
        if tuple(space) != ("lat", "lon"):
            raise ClimodeError(f"ensembles need a lat/lon grid; the input's is ({', '.join(space)})")
        perturbation = ensemble.Perturbation.of(ckpt.card)
        age = ensemble.ages(query, observed)
        pred = ensemble.perturb(pred, age, native.lat.values, native.lon.values, perturbation, members, seed)
        dims = ("realization", *dims)
        spread = _ensemble_attrs(perturbation, members, seed, native, ckpt.variables)
    if mask_filled:
        pred = np.where(filled[..., :, None, :, :], np.nan, pred)
    variables = {v: (dims, pred[..., c, :, :]) for c, v in enumerate(ckpt.variables)}
    variables[FLAG] = (("time", *space), filled.astype(np.int8), FLAG_ATTRS)
    out = to_input(xr.Dataset(variables, coords={d: native[d] for d in space if d in native.coords}))
    if members is not None:
        out = out.assign_coords(realization=("realization", np.arange(members, dtype=np.int32), ensemble.REALIZATION))
    reference = ds.time.values[-1]
    out = out.assign_coords(
        time=("time", valid, {"standard_name": "time", "axis": "T"}),
        lead_time=(
            "time",
            hours_between(valid, reference, calendar),  # float64: exact to the microsecond
            {"standard_name": "forecast_period", "long_name": "hours after the last input frame", "units": "hours"},
        ),
        forecast_reference_time=(
            (),
            reference,
            {"standard_name": "forecast_reference_time", "long_name": "time of the last input frame"},
        ),
    )
    units = (ckpt.card.grid or {}).get("units") or {}
    for v in ckpt.variables:
        low, high = bounds(v, {"units": units.get(v, ""), **ds[v].attrs})  # rain never below 0, whatever the model says
        bounded = out[v] if low is None and high is None else out[v].clip(low, high)  # numpy < 2 needs one
        out[v] = bounded.astype(np.float32).assign_attrs(cf_attrs(v, ds[v].attrs), ancillary_variables=FLAG)
    out[FLAG] = out[FLAG].astype(np.int8).assign_attrs(FLAG_ATTRS)
    out.attrs = {
        "Conventions": "CF-1.8",
        "title": "climode Vid-ODE forecast",
        "source": f"climode {__version__} (Vid-ODE, Park et al. 2021)",
        "climode_version": __version__,
        "climode_checkpoint": str(ckpt.path),
        "climode_checkpoint_sha256": _sha256(ckpt.path),
        "climode_model_training": ckpt.card.provenance(),
        "climode_input": ds.attrs.get("climode_sources", ""),
        "climode_input_times": ", ".join(stamp(t) for t in ds.time.values),
        **({"climode_skipped_input_times": ", ".join(stamp(t) for t in skipped)} if skipped else {}),
        "date_created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **spread,
    }
    return out


def _ensemble_attrs(perturbation, members: int, seed: int, native: xr.Dataset, variables) -> dict:
    """The attributes of an ensemble forecast: how its members were made, and where PSL is forecast
    the storm centre (the deepest low) of the last input frame, where member tracks start."""
    attrs = {
        "climode_members": members,
        "climode_seed": seed,
        "climode_ensemble_method": (
            f"displacement and intensity perturbation of the forecast (climode.ensemble): steering "
            f"{perturbation.speed_kmh:g} km h-1, intensity growth {perturbation.growth_per_h:g} h-1, "
            f"correlation length {perturbation.length_km:g} km; {perturbation.calibrated_on}"
        ),
    }
    if "PSL" in variables:
        lat, lon, _ = storm_centre(native["PSL"].values[-1], native.lat.values, native.lon.values)
        if np.isfinite(lat):
            attrs["climode_storm_start"] = np.array([lat, lon])
    return attrs
