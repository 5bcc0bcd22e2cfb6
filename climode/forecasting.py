"""Forecasts at any times from irregularly timed frames: ``climode.forecast(ds, times)``; the command
over it is ``python -m climode.forecast`` (``climode.forecast``, whose docstring tells the path).

``forecast`` runs in steps: the frames chosen and checked (``climode.times``, ``climode.leads``),
the model run over them (``climode.prediction``), an ensemble made of its forecast
(``climode.ensemble``), and the Dataset built on the input's grid and times."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from . import ensemble
from ._version import __version__
from .checkpoint import Checkpoint, load_model
from .conventions import bounds, cf_attrs
from .errors import ClimodeError
from .geo.storms import storm_centre
from .geo.tiles import model_grids
from .io.checks import check_grid, check_values, source, usable_frames, warn_missing_last
from .io.coords import normalise_coords
from .io.write import FLAG, FLAG_ATTRS
from .leads import check_cost, check_leads
from .prediction import depends_on_filled, native_forecast
from .times import axis_calendar, hours_between, query_times, select_frames, stamp

BUNDLED = "cam5-synthetic.safetensors"


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
    allow_long_leads : forecast leads beyond ``climode.leads.LONG_LEADS`` (4) times the longest the
        model was trained for (refused otherwise, with the memory such a lead takes).
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
        drawn from them or moved by more than ``climode.prediction.FILLED_TOLERANCE`` (1 %) of a shift
        of every filled cell (``climode.prediction.depends_on_filled``), wherever it lies; and
        provenance attributes, among them what the model was trained on. A query's forecast does not
        depend on the other queries. With ``members``, the variables are (realization, time, lat,
        lon), ``realization`` a CF coordinate 0..members-1, and the attributes say the perturbation,
        the seed and, where PSL is forecast, the storm centre at the last input
        (``climode_storm_start``: lat, lon) that member tracks start from (``climode.ensemble.products``).
    """
    _check_members(members)
    ckpt = forecast_model(checkpoint, device)
    ds, calendar = _chosen_frames(ds, ckpt, input_times)
    origin = ds.time.values[0]
    valid, query = _queries(times, ckpt, ds, calendar, allow_long_leads, members or 1)
    ds, skipped = _read(ds, ckpt)
    observed = hours_between(ds.time.values, origin, calendar)
    # checked again once read (``check_cost`` did before): a skipped last frame lengthens the leads
    check_leads(ckpt, float(np.max(query)) - float(observed[-1]), allow_long_leads)
    pred, filled, native, to_input = _model_forecast(ckpt, ds, observed, query)
    pred, spread = (pred, {}) if members is None else _members(pred, ckpt, native, query, observed, members, seed)
    out = _on_input_grid(pred, filled, ckpt.variables, native, to_input, members, mask_filled)
    out = _bounded(_with_times(out, valid, ds.time.values[-1], calendar), ds, ckpt)
    out.attrs = {**_provenance(ckpt, ds, skipped), **spread}
    return out


def _check_members(members) -> None:
    """Refuse ``members`` other than None or a whole number of at least 1."""
    if members is not None and (isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1):
        raise ClimodeError(f"--members must be a whole number of at least 1, got {members!r}")


def _chosen_frames(ds: xr.Dataset, ckpt: Checkpoint, input_times) -> tuple[xr.Dataset, str]:
    """``ds``'s frames at ``input_times`` (all when None) of the checkpoint's variables, coordinates
    normalised (nothing read), and their calendar; an input without every variable is refused."""
    ds = normalise_coords(ds)
    missing = [v for v in ckpt.variables if v not in ds.data_vars]
    if missing:
        raise ClimodeError(
            f"checkpoint {ckpt.path} forecasts {', '.join(ckpt.variables)}; the input lacks "
            f"{', '.join(missing)} (it has {', '.join(map(str, ds.data_vars)) or 'no variables'})"
        )
    calendar = axis_calendar(ds)
    return select_frames(ds[ckpt.variables], input_times, calendar), calendar


def _queries(
    times, ckpt: Checkpoint, ds: xr.Dataset, calendar: str, allow_long_leads: bool, members: int
) -> tuple[np.ndarray, np.ndarray]:
    """The query times (cftime, ``times.query_times``) and their hours since ``ds``'s first frame; their
    cost (``leads.check_cost``) is checked as soon as their number is known, before anything is read."""
    origin = ds.time.values[0]
    observed = hours_between(ds.time.values, origin, calendar)
    cost = lambda count, latest: check_cost(ckpt, ds, count, latest - observed[-1], allow_long_leads, members)
    valid = query_times(times, ds, calendar, observed[-1], cost)
    return valid, hours_between(valid, origin, calendar)


def _read(ds: xr.Dataset, ckpt: Checkpoint) -> tuple[xr.Dataset, list]:
    """The chosen inputs read, once (a new Dataset: the caller's stays as it was), without the frames
    with almost no valid cell (missing observations, so that the forecast starts from the last usable
    one; ``usable_frames``), and their values checked. Returns them and the times of the frames left out."""
    ds, skipped = usable_frames(ds.compute(), ckpt.variables)
    empty = [v for v in ckpt.variables if not bool(np.isfinite(ds[v].values).any())]
    if empty:
        raise ClimodeError(f"input variable(s) {', '.join(empty)} have no valid value in any input frame")
    check_values(ds, ckpt.variables, ckpt.card.normalisation)
    return ds, skipped


def _model_forecast(
    ckpt: Checkpoint, ds: xr.Dataset, observed: np.ndarray, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, xr.Dataset, object]:
    """The model's forecast from ``ds`` (observed at ``observed`` hours) at ``query`` hours, on the input's
    grid: the frames (K, C, H, W; physical units), where any variable depends on filled input cells
    (K, H, W bool), the input's grid (``native``) and the function that puts a Dataset on it back into
    the input's layout (``geo.tiles.model_grids``)."""
    grid = ckpt.card.grid or {}
    model_ds, native, to_input = model_grids(ds, grid.get("resolution"))
    check_grid(model_ds, source(ds))
    warn_missing_last(ds, ckpt.variables)
    predictor = ckpt.predictor
    frames = lambda fields: np.stack([fields[v].values for v in ckpt.variables], 1).astype(np.float32)
    tile = tuple(grid["tile_shape"]) if grid.get("tile_shape") else None
    inputs = frames(model_ds), frames(native)
    run = lambda: native_forecast(predictor, inputs, observed, query, tile, model_ds, native)
    pred, share = run()
    filled = depends_on_filled(predictor, run, pred, share, any(np.isnan(x).any() for x in inputs))
    return pred, filled.any(1), native, to_input  # a cell is flagged, and masked, when any variable depends


def _members(
    pred: np.ndarray,
    ckpt: Checkpoint,
    native: xr.Dataset,
    query: np.ndarray,
    observed: np.ndarray,
    members: int,
    seed: int,
) -> tuple[np.ndarray, dict]:
    """The ensemble (members, K, C, H, W) made of the forecast ``pred`` (K, C, H, W) by the checkpoint's
    perturbation (``climode.ensemble``), and its attributes (``_ensemble_attrs``); a lat/lon grid only."""
    space = native[ckpt.variables[0]].dims[1:]
    if tuple(space) != ("lat", "lon"):
        raise ClimodeError(f"ensembles need a lat/lon grid; the input's is ({', '.join(space)})")
    perturbation = ensemble.Perturbation.of(ckpt.card)
    age = ensemble.ages(query, observed)
    pred = ensemble.perturb(pred, age, native.lat.values, native.lon.values, perturbation, members, seed)
    return pred, _ensemble_attrs(perturbation, members, seed, native, ckpt.variables)


def _on_input_grid(
    pred: np.ndarray,
    filled: np.ndarray,
    variables: list[str],
    native: xr.Dataset,
    to_input,
    members: int | None,
    mask_filled: bool,
) -> xr.Dataset:
    """The forecast ``pred`` ([members,] K, C, H, W; NaN where ``filled`` with ``mask_filled``) and its
    ``filled`` flag (K, H, W) as a Dataset in the input's layout, dims ([realization,] time, *space);
    times not yet labelled."""
    if mask_filled:
        pred = np.where(filled[..., :, None, :, :], np.nan, pred)
    space = native[variables[0]].dims[1:]
    dims = ("time", *space) if members is None else ("realization", "time", *space)
    data = {v: (dims, pred[..., c, :, :]) for c, v in enumerate(variables)}
    data[FLAG] = (("time", *space), filled.astype(np.int8), FLAG_ATTRS)
    out = to_input(xr.Dataset(data, coords={d: native[d] for d in space if d in native.coords}))
    if members is not None:
        out = out.assign_coords(realization=("realization", np.arange(members, dtype=np.int32), ensemble.REALIZATION))
    return out


def _with_times(out: xr.Dataset, valid: np.ndarray, reference, calendar: str) -> xr.Dataset:
    """``out`` with its times ``valid`` (cftime), ``lead_time`` (float64 hours after ``reference``, the
    last input frame's time: exact to the microsecond) and ``forecast_reference_time``."""
    return out.assign_coords(
        time=("time", valid, {"standard_name": "time", "axis": "T"}),
        lead_time=(
            "time",
            hours_between(valid, reference, calendar),
            {"standard_name": "forecast_period", "long_name": "hours after the last input frame", "units": "hours"},
        ),
        forecast_reference_time=(
            (),
            reference,
            {"standard_name": "forecast_reference_time", "long_name": "time of the last input frame"},
        ),
    )


def _bounded(out: xr.Dataset, ds: xr.Dataset, ckpt: Checkpoint) -> xr.Dataset:
    """Each variable inside its physical bounds (``conventions.bounds``: rain never below 0, whatever
    the model says), float32 with CF attributes; the flag int8."""
    units = (ckpt.card.grid or {}).get("units") or {}
    for v in ckpt.variables:
        low, high = bounds(v, {"units": units.get(v, ""), **ds[v].attrs})
        bounded = out[v] if low is None and high is None else out[v].clip(low, high)  # numpy < 2 needs one
        out[v] = bounded.astype(np.float32, copy=False).assign_attrs(cf_attrs(v, ds[v].attrs), ancillary_variables=FLAG)
    out[FLAG] = out[FLAG].astype(np.int8).assign_attrs(FLAG_ATTRS)
    return out


def _provenance(ckpt: Checkpoint, ds: xr.Dataset, skipped) -> dict:
    """The forecast's global attributes: CF, the model and what it was trained on, the inputs used and
    those left out."""
    return {
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
    }


def _sha256(path: Path) -> str:
    """The model file's SHA-256, read once per file version (path, size, modification time)."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
