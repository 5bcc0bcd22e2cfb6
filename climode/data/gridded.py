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
from .fields import open_fields
from .prepare import FRACTIONS, plan_samples, step_hours, write_shards
from .sampling import SamplingConfig


def parse_variables(spec: str) -> tuple[list[str], dict[str, str]]:
    """``"U850=u,V850=v,precip"`` -> (["U850", "V850", "precip"], {"U850": "u", "V850": "v"})."""
    variables, mapping = [], {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, source = item.partition("=")
        if not name or (_ and not source):
            raise ClimodeError(f"--vars item {item!r} is not NAME or NAME=VARIABLE_IN_FILE")
        variables.append(name)
        if source:
            mapping[name] = source
    if not variables:
        raise ClimodeError("--vars names no variable")
    return variables, mapping


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
    ds = open_fields(source, names, mapping=mapping or None, time_in_hours=time_in_hours, reference_time=reference_time)
    step = step_hours(ds)
    sampling = SamplingConfig(
        n_in=n_in, n_out=n_out, step_h=step, min_gap_h=step, max_gap_h=max(max_gap_h, step), lead_step_h=step
    )
    plan = plan_samples(ds, None, None, sampling, 0, seed, fractions)
    write_shards(
        store,
        ds,
        None,
        plan,
        names,
        None,
        normalisation,
        None,
        sampling,
        {"source_files": ds.attrs.get("climode_sources", "")},
        overwrite=overwrite,
    )
    return Path(store)
