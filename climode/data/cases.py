"""Forecast cases cut from the synthetic storm corpus: irregular input frames, the truth, the track.

``python -m climode.data.cases --out DIR [--inputs 0,9,21,42,57] [--until 72] [--seed 3] [--small]``
writes ``storm.nc`` (only the input frames, as a user's sparse record), ``storm_truth.nc``
(every 3-hourly frame from the first input to ``--until`` hours) and ``storm_track.csv`` (the
true track over that window), all CAM5-like (see ``climode.data.synthetic``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ClimodeError

if TYPE_CHECKING:  # the data stack loads on first use, so that the command's --help stays light
    import pandas as pd
    import xarray as xr


def _track_step_h() -> float:
    """Hours between track points (3): the corpus's STEP, whatever its frames' spacing."""
    from .synthetic import STEP

    return STEP.total_seconds() / 3600.0


@dataclass
class Case:
    """One forecast case: ``inputs`` and ``truth`` (dims time, lat, lon), the storm's true
    ``track`` (columns time, lat, lon, psl_min, vmax) over the truth's times, and its name."""

    storm: str
    inputs: xr.Dataset
    truth: xr.Dataset
    track: pd.DataFrame


def cut_case(
    ds: xr.Dataset, tracks: pd.DataFrame, storm: str, first: int, input_hours: Sequence[float], until_h: float
) -> Case:
    """The case of ``storm`` whose first input is step ``first`` of ``ds``: inputs at
    ``input_hours`` after it, truth every step (of the corpus's own spacing) from it to ``until_h`` hours."""
    from ..times import stamp
    from .plan import step_hours

    step = step_hours(ds)
    steps = [first + round(h / step) for h in input_hours]
    if any(abs(s - first - h / step) > 1e-6 for s, h in zip(steps, input_hours)):
        raise ClimodeError(f"input hours {list(input_hours)} are not on the corpus's {step:g}-hourly frames")
    last = first + round(until_h / step)
    if last >= ds.sizes["time"]:
        raise ClimodeError(f"the corpus ends before {until_h:g} h after step {first}")
    truth = ds.isel(time=slice(first, last + 1))
    track = tracks[(tracks.storm == storm) & tracks.time.isin([stamp(t) for t in truth.time.values])]
    return Case(storm, ds.isel(time=steps), truth, track.reset_index(drop=True))


def first_case(ds: xr.Dataset, tracks: pd.DataFrame, input_hours: Sequence[float], until_h: float) -> Case:
    """The case of the first storm tracked through the whole window, starting at its first track point."""
    from ..times import stamp
    from .plan import step_hours

    stamps = [stamp(t) for t in ds.time.values]
    span = round(until_h / step_hours(ds))
    track_step = _track_step_h()
    for storm, rows in tracks.groupby("storm", sort=False):
        first = bisect.bisect_left(stamps, rows.time.iloc[0])
        lived = (len(rows) - 1) * track_step  # tracks are 3-hourly whatever the frames' spacing
        if lived >= until_h and first + span < len(stamps):
            return cut_case(ds, tracks, storm, first, input_hours, until_h)
    raise ClimodeError(f"no storm of the corpus lives {until_h:g} h; try another --seed")


def _write(ds: xr.Dataset, path: Path) -> None:
    from ..io.atomic import replacing
    from .synthetic import encode

    data, encoding = encode(ds)
    with replacing(path) as tmp:
        data.to_netcdf(tmp, engine="netcdf4", encoding=encoding, unlimited_dims=["time"])


def write_case(out_dir: str | Path, case: Case, overwrite: bool = False) -> list[Path]:
    """Write ``storm.nc``, ``storm_truth.nc`` and ``storm_track.csv`` into ``out_dir``."""
    from ..io.atomic import replacing

    out = Path(out_dir)
    paths = [out / "storm.nc", out / "storm_truth.nc", out / "storm_track.csv"]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise ClimodeError(f"{existing[0]} exists; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    _write(case.inputs, paths[0])
    _write(case.truth, paths[1])
    with replacing(paths[2]) as tmp:
        case.track.to_csv(tmp, index=False)
    return paths


if __name__ == "__main__":
    from ..cli import forward

    forward(__name__, "case")
