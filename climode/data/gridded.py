"""Any gridded variables, straight from files: every time window becomes a sample.

``prepare(...)`` runs the pipeline's own steps (reading, irregular sampling, normalisation,
shards) on the whole grid with no storm selection: the record is cut into train/val/test time
blocks (80/10/10, a buffer of one sample's longest span at the end of the first two; see
``climode.data.plan.plan_samples``) and every window of each block is a sample. Lat/lon and
projected (y, x) grids alike; nothing here needs a coordinate system.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ClimodeError
from ..io.fields import open_fields
from ..io.variables import parse_variables
from ..times import parse_span, to_hours
from .plan import FRACTIONS, SHORT_SPLITS, step_hours, time_blocks
from .prepare import build_store
from .shards import SPLITS

log = logging.getLogger(__name__)
MAX_GAP_H, MAX_GAP_STEPS = 48.0, 16  # the default largest input gap: the shorter of the two


def _spans(ds, train_times: str | None, val_times: str | None) -> dict[str, tuple[float, float]] | None:
    """The ``--train-times`` / ``--val-times`` spans in hours on ``ds``'s calendar, or None."""
    if val_times and not train_times:
        raise ClimodeError("--val-times goes with --train-times")
    if not train_times:
        return None
    calendar = ds.time.values[0].calendar
    spans = {"train": parse_span(train_times, calendar, "--train-times")}
    if val_times:
        spans["val"] = parse_span(val_times, calendar, "--val-times")
    return spans


def fit_record(
    n_steps: int, n_in: int, n_out: int, max_gap_steps: int, splits: tuple = SHORT_SPLITS
) -> tuple[int, tuple[float, float, float]]:
    """The largest input gap (steps, at most ``max_gap_steps``) and the first of ``splits``
    (train/val/test fractions) whose every non-empty block holds a sample of ``n_in`` inputs and
    ``n_out`` targets on a record of ``n_steps`` steps."""
    for fractions in splits:
        for gap in range(max(max_gap_steps, 1), 0, -1):
            span = gap * (n_in - 1) + n_out
            blocks = time_blocks(n_steps, span, fractions)
            if all(len(blocks[name]) > span for name, f in zip(SPLITS, fractions) if f > 0):
                return gap, fractions
    raise ClimodeError(
        f"the record has {n_steps} time steps; a sample of {n_in} inputs and {n_out} targets needs at least "
        f"{n_in + n_out}, even with nothing held out; give a longer record or a smaller data.n_in or data.n_out"
    )


def is_shard_store(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "frames").is_dir()


def prepare(
    source: str | Path,
    store: str | Path,
    variables: str,
    n_in: int,
    n_out: int,
    max_gap_h: float | None = None,
    time_in_hours: bool = False,
    reference_time: str | None = None,
    normalisation: str = "zscore",
    seed: int = 0,
    overwrite: bool = False,
    fractions: tuple[float, float, float] | None = None,
    train_times: str | None = None,
    val_times: str | None = None,
) -> Path:
    """Shards of every window of the fields in ``source`` (files, a glob or a zarr store), split into
    train/val/test time blocks of ``fractions`` of the record (``plan_samples``).

    By default the largest input gap is 48 h or 16 storage steps, whichever is shorter, and the
    split 80/10/10; on a record too short for that, the gap shrinks and then the split gives up the
    test block, then validation (``fit_record``), and the choice is logged. ``train_times`` (and
    ``val_times``), "START:END" dates of the record's calendar, choose the blocks instead: every
    sample of a split lies inside its span, the test block follows the later one."""
    names, mapping = parse_variables(variables)
    if not names:
        raise ClimodeError("--vars names no variable")
    ds = open_fields(source, names, mapping=mapping or None, time_in_hours=time_in_hours, reference_time=reference_time)
    step = step_hours(ds)
    wanted = max(int(round(min(MAX_GAP_H, MAX_GAP_STEPS * step) / step)), 1)
    spans = _spans(ds, train_times, val_times)
    if spans:  # the user's spans decide the blocks; the gaps fit the training span
        if max_gap_h is None:
            lo, hi = spans["train"]
            hours = to_hours(ds.time.values, ds.time.values[0].calendar)
            inside = int(((hours >= lo - 1e-6) & (hours <= hi + 1e-6)).sum())
            max_gap_h = fit_record(max(inside, 1), n_in, n_out, wanted, ((1.0, 0.0, 0.0),))[0] * step
    elif max_gap_h is None or fractions is None:
        gap, split = fit_record(ds.sizes["time"], n_in, n_out, wanted)
        if (gap, split) != (wanted, FRACTIONS):
            blocks = ", ".join(f"{name} {100 * f:.0f} %" for name, f in zip(SPLITS, split) if f > 0)
            log.warning(
                "a short record (%d steps of %g h): input gaps up to %d steps (%g h), time blocks %s "
                "(--train-times and --val-times choose them)",
                ds.sizes["time"], step, gap, gap * step, blocks,
            )  # fmt: skip
        max_gap_h = gap * step if max_gap_h is None else max_gap_h
        fractions = split if fractions is None else fractions
    build_store(
        ds,
        store,
        names,
        n_in=n_in,
        n_out=n_out,
        max_gap_h=max(max_gap_h, step),
        seed=seed,
        fractions=fractions or FRACTIONS,
        spans=spans,
        normalisation=normalisation,
        overwrite=overwrite,
    )
    return Path(store)
