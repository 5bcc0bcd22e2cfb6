"""CAM5 (or any lat/lon) fields -> basin tiles -> irregular storm samples -> zarr shards.

    climode prepare --input 'cam5/*.nc' --out tiles.zarr      (or python -m climode.prepare,
                                                              or pipelines/prepare_cam5.py)
        [--tracks FILE] [--basins east-pacific-atlantic] [--resolution 1.0]
        [--vars U850=u,V850=v,PSL=p] [--time-in-hours --reference-time '1996-01-05']
        [--n-in 5] [--n-out 5] [--min-gap H] [--max-gap 48] [--lead-step H] [--between]
        [--split 80,10,10] [--scheduler ADDRESS] [--workers 2]

Storm periods come from --tracks (IBTrACS CSV, TempestExtremes file, or climode's tracks CSV)
or, without it, from climode's detector run on the fields. Samples are split by time blocks:
the record's first 80 % trains, the next 10 % validates, the last 10 % tests, the first two
ending in a buffer of one sample's longest span (--max-gap gaps and every target) that no sample
uses; every sample lies inside one block (a storm's stay in a tile is cut at the block edges), so
no held-out target is a frame (same tile and time) of a training sample; --split chooses other
shares. A short record may leave val or test empty (a warning); one with no training sample in
its first 80 % gives up the test block, then validation (a warning) unless --split was given.
Normalisation statistics come from the training split only. The work runs on dask.distributed: a
LocalCluster by default, the scheduler at --scheduler if given. The store is written to a
temporary path and renamed into place when complete.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from ..conventions import STORM_VARIABLES
from ..errors import ClimodeError, cli
from .options import add_input_options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="climode prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", required=True, nargs="+", help="NetCDF files, globs, or a zarr store")
    p.add_argument("--out", required=True, help="zarr store to write")
    p.add_argument("--tracks", help="track file; without it storms are detected on the fields")
    p.add_argument(
        "--all-windows",
        action="store_true",
        help="no storm selection: every window is a sample (split by time blocks, as storms are)",
    )
    p.add_argument(
        "--basins",
        default="east-pacific-atlantic",
        help="basin names, 'regular', or LAT0:LON0 boxes, comma-separated; 'none' keeps the whole grid "
        "(any grid, e.g. projected y/x)",
    )
    p.add_argument("--resolution", type=float, default=1.0, help="tile grid in degrees; 0 keeps the native grid")
    p.add_argument(
        "--variables",
        default=",".join(STORM_VARIABLES),
        help="variables to keep (default U850,V850,PSL), NAME or NAME=NAME_IN_FILE; those --vars names are kept too",
    )
    add_input_options(p)
    p.add_argument("--n-in", type=int, default=5)
    p.add_argument("--n-out", type=int, default=5)
    p.add_argument("--min-gap", type=float, help="smallest input gap, hours (default: the storage step)")
    p.add_argument(
        "--max-gap",
        type=float,
        default=48.0,
        help="largest input gap, hours (with the targets, it sets the buffer between time blocks)",
    )
    p.add_argument(
        "--lead-step", type=float, help="hours between targets after the last input (default: the storage step)"
    )
    p.add_argument("--rate", type=float, help="fraction of frames observed (sampling-rate mode)")
    p.add_argument(
        "--between", action="store_true", help="also a target at a random step inside each input gap (interpolation)"
    )
    p.add_argument(
        "--split",
        metavar="TRAIN,VAL,TEST",
        help="percentages of the record in the train, val and test time blocks, in that order (default 80,10,10, "
        "less on a record too short for it)",
    )
    p.add_argument(
        "--samples-per-storm",
        type=int,
        default=8,
        help="samples drawn from each storm's stay in a tile, in each time block it reaches",
    )
    p.add_argument("--normalisation", choices=("minmax", "zscore"), default="minmax")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", help="dask.distributed scheduler address (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def _fractions(split: str) -> tuple[float, float, float]:
    """``--split TRAIN,VAL,TEST`` (percentages) as fractions of the record."""
    try:
        shares = tuple(float(p) / 100 for p in split.split(","))
    except ValueError:
        shares = ()
    if len(shares) != 3 or min(shares) < 0 or not shares[0] > 0 or not math.isclose(sum(shares), 1):
        raise ClimodeError(f"--split takes three percentages adding up to 100, e.g. 80,10,10 or 100,0,0; got {split!r}")
    return shares


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    fractions = _fractions(args.split) if args.split else None
    from ..pipeline import prepare  # the stack loads after the options are read

    started = time.perf_counter()
    plan = prepare(
        args.input,
        args.out,
        variables=args.variables,
        mapping=args.vars,
        time_in_hours=bool(args.time_in_hours),
        reference_time=args.reference_time,
        calendar=args.calendar,
        basins=args.basins,
        resolution=args.resolution,
        n_in=args.n_in,
        n_out=args.n_out,
        min_gap=args.min_gap,
        max_gap=args.max_gap,
        lead_step=args.lead_step,
        rate=args.rate,
        between=args.between,
        tracks=args.tracks,
        all_windows=args.all_windows,
        samples_per_storm=args.samples_per_storm,
        seed=args.seed,
        fractions=fractions,
        normalisation=args.normalisation,
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        workers=args.workers,
    )
    counts = plan.split.value_counts().to_dict()
    print(
        f"{len(plan)} samples from {plan.storm.nunique()} storms in {plan.tile.nunique()} tiles "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    print(Path(args.out))
