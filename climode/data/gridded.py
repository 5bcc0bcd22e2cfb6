"""Any gridded variables, straight from files: every time window becomes a sample.

``prepare(...)`` runs the pipeline's own steps (reading, irregular sampling, normalisation,
shards) on the whole grid with no storm selection: the record is cut into train/val/test time
blocks (80/10/10, a buffer of one sample's longest span at the end of the first two; see
``climode.data.prepare.plan_samples``) and every window of each block is a sample. Lat/lon and
projected (y, x) grids alike; nothing here needs a coordinate system.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ClimodeError
from ..io.fields import open_fields, parse_variables
from .prepare import FRACTIONS, prepare_shards, sampling_for, step_hours


def is_shard_store(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "frames").is_dir()


def prepare(
    source: str | Path,
    store: str | Path,
    variables: str,
    n_in: int,
    n_out: int,
    max_gap_h: float = 48.0,
    time_in_hours: bool = False,
    reference_time: str | None = None,
    normalisation: str = "zscore",
    seed: int = 0,
    overwrite: bool = False,
    fractions: tuple[float, float, float] = FRACTIONS,
) -> Path:
    """Shards of every window of the fields in ``source`` (files, a glob or a zarr store), split into
    train/val/test time blocks of ``fractions`` of the record (``plan_samples``)."""
    names, mapping = parse_variables(variables)
    if not names:
        raise ClimodeError("--vars names no variable")
    ds = open_fields(source, names, mapping=mapping or None, time_in_hours=time_in_hours, reference_time=reference_time)
    sampling = sampling_for(ds, n_in, n_out, max_gap_h=max(max_gap_h, step_hours(ds)))
    prepare_shards(
        store, ds, names, sampling, seed=seed, fractions=fractions, normalisation=normalisation, overwrite=overwrite
    )
    return Path(store)
