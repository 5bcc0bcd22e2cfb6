"""The sample plan of a record: which frames (tile, time steps) each sample takes, and its split.

The record is cut into train/val/test time blocks (``time_blocks``, or the user's spans:
``span_blocks``) a buffer of one sample's longest span (``sample_span``) apart, and every sample
lies inside one block, so no held-out target is a frame (same tile and time) of a training sample.
``plan_samples`` draws the samples (storms' stays in tiles, or every window); ``plan_short`` gives
up held-out blocks on a record too short for the default split.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ClimodeError
from ..geo.storms import storm_periods
from ..geo.tiles import Tile
from ..times import DEFAULT_STEP_H, to_hours
from .sampling import SamplingConfig, draw_many, every_window
from .shards import SPLITS

FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test shares of the record, in time order
SHORT_SPLITS = (FRACTIONS, (0.9, 0.1, 0.0), (1.0, 0.0, 0.0))  # tried in turn on a short record
log = logging.getLogger(__name__)


def step_hours(ds: xr.Dataset) -> float:
    """The typical spacing of ``ds.time`` in hours (the median; storage is assumed regular)."""
    hours = to_hours(ds.time.values, ds.time.values[0].calendar)
    return float(np.median(np.diff(hours))) if len(hours) > 1 else DEFAULT_STEP_H


def sampling_for(
    ds: xr.Dataset,
    n_in: int,
    n_out: int,
    max_gap_h: float = 48.0,
    min_gap_h: float | None = None,
    lead_step_h: float | None = None,
    rate: float | None = None,
    between: bool = False,
) -> SamplingConfig:
    """The irregular sampling of ``ds`` (``climode.data.sampling``): the smallest input gap and the
    step between targets default to the data's storage step; all in hours."""
    step = step_hours(ds)
    return SamplingConfig(
        n_in=n_in,
        n_out=n_out,
        step_h=step,
        min_gap_h=min_gap_h or step,
        max_gap_h=max_gap_h,
        lead_step_h=lead_step_h or step,
        rate=rate,
        between=between,
    )


def _step_index(ds_hours: np.ndarray, hours: float) -> int:
    return int(np.argmin(np.abs(ds_hours - hours)))


def sample_span(sampling: SamplingConfig) -> int:
    """The most steps (of ``sampling.step_h`` hours) from a sample's first frame to its last: the inputs at
    their widest gaps (or the rate-mode window) and every target after the last input."""
    span_in = (
        sampling.steps(sampling.max_gap_h) * (sampling.n_in - 1)
        if sampling.rate is None
        else sampling.steps(sampling.window_h)
    )
    return span_in + sampling.steps(sampling.lead_step_h) * sampling.n_out


def time_blocks(n_steps: int, buffer: int, fractions: tuple[float, float, float] = FRACTIONS) -> dict[str, range]:
    """The steps of the train, val and test blocks of a record of ``n_steps`` steps: it is cut at the
    cumulative ``fractions`` and each block followed by steps of a later one gives up its final ``buffer``
    steps (all of them, when it is shorter), so that at least ``buffer`` unused steps separate any two
    blocks; with fractions (1, 0, 0) the whole record is the training block."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1):
        raise ValueError(f"split fractions must be three numbers >= 0 adding up to 1, got {fractions}")
    edges = np.round(np.cumsum((0.0, *fractions)) * n_steps).astype(int)
    stops = np.append([b - buffer if b < n_steps else b for b in edges[1:-1]], n_steps)  # no buffer before nothing
    return {name: range(int(a), max(int(a), int(b))) for name, a, b in zip(SPLITS, edges[:-1], stops, strict=True)}


def span_blocks(hours: np.ndarray, spans: dict[str, tuple[float, float]], buffer: int) -> dict[str, range]:
    """Blocks of the times the user chose: ``spans`` {"train": (start, end)[, "val": (start, end)]} in
    hours since the origin (both ends included) -> the steps of ``hours`` inside each, and as the test
    block the steps after the later span's end beyond a buffer of ``buffer`` steps. Overlapping spans,
    or a span holding no step of the record, are refused."""
    (train_lo, train_hi), val = spans["train"], spans.get("val")
    if val is not None and val[0] <= train_hi and train_lo <= val[1]:
        raise ClimodeError("--train-times and --val-times overlap; give disjoint spans")
    tolerance = 1e-6
    out: dict[str, range] = {}
    for name in SPLITS[:2]:
        if name not in spans:
            out[name] = range(0)
            continue
        lo, hi = spans[name]
        inside = np.nonzero((hours >= lo - tolerance) & (hours <= hi + tolerance))[0]
        if not len(inside):
            raise ClimodeError(f"--{name}-times holds no time of the record ({len(hours)} steps)")
        out[name] = range(int(inside[0]), int(inside[-1]) + 1)
    later = max(block.stop for block in out.values())
    out["test"] = range(min(later + buffer, len(hours)), len(hours))
    return out


def plan_samples(
    ds: xr.Dataset,
    tiles: list[Tile] | None,
    tracks: pd.DataFrame | None,
    sampling: SamplingConfig,
    per_period: int,
    seed: int,
    fractions: tuple[float, float, float] = FRACTIONS,
    spans: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """One row per sample: tile, storm, split and the step indices (into ``ds.time``) of its
    inputs, their observed flags and its targets.

    The record is cut into train/val/test time blocks (``time_blocks``: ``fractions`` of it, in that
    order) separated by a buffer of ``sample_span`` steps, and every sample lies inside one block: no
    held-out frame (tile and time) is a frame of a training sample. With tracks, each storm's stay in
    a tile is clipped to each block and ``per_period`` samples are drawn from each clipped stay (a
    storm may give training samples early in its life and held-out ones later). Without tracks every
    window of each block is a sample, its storm named after its split. ``tiles`` None takes the whole
    grid (any grid, e.g. projected y/x) as one tile, "grid". An empty held-out split is logged as a
    warning; no training sample at all is a ClimodeError. ``spans`` replaces the fractions with the
    times the user chose (``span_blocks``).
    """
    plan, blocks, fractions = _plan(ds, tiles, tracks, sampling, per_period, seed, fractions, spans)
    _report_empty(
        plan, blocks, len(ds.time), sample_span(sampling), sampling, tracks is not None, fractions, bool(spans)
    )
    return plan


def _plan(
    ds: xr.Dataset,
    tiles: list[Tile] | None,
    tracks: pd.DataFrame | None,
    sampling: SamplingConfig,
    per_period: int,
    seed: int,
    fractions: tuple[float, float, float],
    spans: dict[str, tuple[float, float]] | None,
) -> tuple[pd.DataFrame, dict[str, range], tuple[float, float, float]]:
    """``plan_samples``' plan, unreported, with its time blocks and their shares of the record."""
    calendar = ds.time.values[0].calendar
    ds_hours = to_hours(ds.time.values, calendar)
    n_steps, buffer = len(ds_hours), sample_span(sampling)
    if spans:
        blocks = span_blocks(ds_hours, spans, buffer)
        fractions = tuple(len(blocks[name]) / n_steps for name in SPLITS)
    else:
        blocks = time_blocks(n_steps, buffer, fractions)
    rng = np.random.default_rng(seed)
    rows = []
    for tile in tiles or [None]:
        if tracks is None:
            stays = [(None, 0, n_steps - 1)]
        else:
            periods = storm_periods(tracks, tile.lat_range, tile.lon_range)
            stays = [
                (
                    str(p.storm),
                    _step_index(ds_hours, to_hours([p.start], calendar)[0]),
                    _step_index(ds_hours, to_hours([p.end], calendar)[0]),
                )
                for p in periods.itertuples()
            ]
        for storm, first, last in stays:
            for split, block in blocks.items():
                start, stop = max(first, block.start), min(last + 1, block.stop)
                if stop <= start:
                    continue
                drawn = (
                    every_window(stop - start, sampling, rng)
                    if tracks is None
                    else draw_many(stop - start, sampling, per_period, rng)
                )
                rows += [
                    {
                        "tile": tile.name if tile else "grid",
                        "storm": storm or split,
                        "split": split,
                        "inputs": start + inputs,
                        "observed": observed,
                        "targets": start + targets,
                    }
                    for inputs, observed, targets in drawn
                ]
    plan = pd.DataFrame(rows, columns=["tile", "storm", "split", "inputs", "observed", "targets"])
    return plan, blocks, fractions


def plan_short(
    ds: xr.Dataset,
    tiles: list[Tile] | None,
    tracks: pd.DataFrame | None,
    sampling: SamplingConfig,
    per_period: int,
    seed: int,
) -> pd.DataFrame:
    """``plan_samples`` with the default split (``FRACTIONS``) where it gives training samples; on a record
    too short for that, with the first of ``SHORT_SPLITS`` that gives samples in every block it keeps (the
    test block given up, then validation), said in one warning line naming ``--split``, the option that
    chooses the blocks. Where even the whole record gives no training sample, ``plan_samples``' error."""
    for fractions in SHORT_SPLITS:
        plan, blocks, _ = _plan(ds, tiles, tracks, sampling, per_period, seed, fractions, None)
        needed = ["train"] if fractions == FRACTIONS else [name for name, f in zip(SPLITS, fractions) if f > 0]
        if all((plan.split == name).any() for name in needed):
            break
    _report_empty(plan, blocks, len(ds.time), sample_span(sampling), sampling, tracks is not None, fractions)
    if fractions != FRACTIONS:
        say = lambda split: ", ".join(f"{name} {100 * f:g} %" for name, f in zip(SPLITS, split) if f > 0)
        log.warning(
            "a short record (%d steps of %g h): no training sample in time blocks %s, so held-out blocks are "
            "given up: time blocks %s (--split chooses them)",
            len(ds.time), sampling.step_h, say(FRACTIONS), say(fractions),
        )  # fmt: skip
    return plan


def _report_empty(
    plan: pd.DataFrame,
    blocks: dict[str, range],
    n_steps: int,
    buffer: int,
    sampling: SamplingConfig,
    storms: bool,
    fractions: tuple[float, float, float],
    spans: bool = False,
) -> None:
    """Raise ClimodeError when the plan has no training sample; log a warning for each held-out split asked
    for (a fraction above 0) that is empty."""
    span_in = (
        sampling.steps(sampling.min_gap_h) * (sampling.n_in - 1)
        if sampling.rate is None
        else sampling.steps(sampling.window_h)
    )
    need = span_in + sampling.steps(sampling.lead_step_h) * sampling.n_out + 1  # the shortest sample, in steps
    why = ("no storm stays inside the tiles long enough there" if storms else "it is too short") + (
        f" for {sampling.n_in} inputs and {sampling.n_out} targets (at least {need} steps)"
    )
    train = blocks["train"]
    if not (plan.split == "train").any() and spans:
        raise ClimodeError(
            f"no training samples: --train-times holds {len(train)} steps of {sampling.step_h:g} h "
            f"(steps {train.start}-{train.stop - 1} of {n_steps}); {why}"
        )
    if not (plan.split == "train").any():
        share, more = "all of it, nothing held out", ""
        if fractions[0] < 1:
            share = f"{100 * fractions[0]:g} % of the record less a buffer of {buffer} steps, the longest span of a "
            share += "sample, before the held-out blocks"
            more = ", more of it for training (--split)"
        raise ClimodeError(
            f"no training samples: the record has {n_steps} steps of {sampling.step_h:g} h and the training block "
            f"is its first {len(train)} steps ({share}); {why}; give a longer record{more} or shorter samples "
            "(--n-in, --n-out, --min-gap)"
        )
    for name in ("val", "test"):
        if fractions[SPLITS.index(name)] > 0 and not (plan.split == name).any():
            block = blocks[name]
            where = (
                f"steps {block.start}-{block.stop - 1} of {n_steps}"
                if len(block)
                else f"empty: {100 * fractions[SPLITS.index(name)]:g} % of {n_steps} steps less a buffer of "
                f"{buffer} steps"
            )
            log.warning(f"no {name} samples: the {name} block is {where}" + (f"; {why}" if len(block) else ""))


__all__ = [
    "FRACTIONS",
    "SHORT_SPLITS",
    "plan_samples",
    "plan_short",
    "sample_span",
    "sampling_for",
    "span_blocks",
    "step_hours",
    "time_blocks",
]
