"""How far and at what cost a model may forecast: leads beyond LONG_LEADS times the longest it was
trained for are refused unless allowed, and a forecast that would not fit in memory or not end is
refused before its input is read (``climode.io.checks.check_memory``)."""

from __future__ import annotations

import xarray as xr

from .checkpoint import Checkpoint
from .errors import ClimodeError
from .io.checks import check_memory

LONG_LEADS = 4  # leads up to this many times the longest trained one need no --allow-long-leads


def decoder_steps(config, lead: float) -> float:
    """Decoder ODE steps to ``lead`` (time units after the last input) of a model's ``config``:
    fixed-step solvers step ``step_size`` model time units, dopri5 is counted at one per unit."""
    solver = config.decoder_solver
    unit = (config.time_scale or 1.0) * (solver.step_size if solver.method != "dopri5" else 1.0)
    return max(lead, 0.0) / unit


def check_cost(ckpt: Checkpoint, ds: xr.Dataset, count: int, lead: float, allowed: bool, members: int = 1) -> None:
    """Refuse, before ``ds`` is read, ``count`` query times reaching ``lead`` hours after its last frame:
    a lead too long (``check_leads``), or a forecast that would not fit in memory or not end
    (``check_memory``)."""
    check_leads(ckpt, lead, allowed)
    config = getattr(ckpt.model, "config", None)
    grid = ckpt.card.grid or {}
    tile = tuple(grid["tile_shape"]) if grid.get("tile_shape") else None
    width, steps = (config.width, decoder_steps(config, lead)) if config else (0, 0.0)
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


def check_leads(ckpt: Checkpoint, lead: float, allowed: bool) -> None:
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
    steps = decoder_steps(config, lead)
    H, W = (ckpt.card.grid or {}).get("tile_shape") or (64, 64)
    gib = steps * 4 * (4 * config.width) * (H // 4 + 1) * (W // 4 + 1) * 4 / 2**30  # one state per step
    units = ckpt.card.time_units
    raise ClimodeError(
        f"a lead of {lead:g} {units} after the last input is beyond {LONG_LEADS}x the longest the model was "
        f"trained for ({trained:g} {units}); pass --allow-long-leads (allow_long_leads=True) to forecast it anyway "
        f"(about {steps:,.0f} decoder ODE steps and {gib:,.1f} GiB per window batch)"
    )
