"""``climode synthetic`` (``python -m climode.data.synthetic``): write a synthetic corpus (see
``climode.data.synthetic``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import cli


@cli
def main(argv: list[str] | None = None) -> None:
    """``python -m climode.data.synthetic --out DIR --storms N --seed S [--small] [--overwrite]``."""
    parser = argparse.ArgumentParser(
        prog="python -m climode.data.synthetic",
        description="Write synthetic CAM5-like tropical cyclones (U850, V850, PSL, "
        "TS, LANDFRAC; 3-hourly, noleap) and their true tracks (tracks.csv).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--storms", type=int, default=8, help="number of storms (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--small", action="store_true", help="coarse 1-degree grid over 0-60N, 200-359E, short-lived storms"
    )
    parser.add_argument(
        "--hours-per-frame",
        type=float,
        default=3.0,
        help="time between frames, hours (default 3, CAM5's; e.g. 1 for leads off the 3-hour grid)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")
    args = parser.parse_args(argv)
    import pandas as pd  # the stack loads after the options are read

    from ..data.synthetic.files import write_corpus

    paths = write_corpus(
        args.out, args.storms, args.seed, args.small, overwrite=args.overwrite, hours_per_frame=args.hours_per_frame
    )
    tracks = pd.read_csv(paths[-1])
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {len(paths) - 1} NetCDF files and tracks.csv ({tracks['storm'].nunique()} storms, "
        f"{len(tracks)} track points; {size / 1e6:.1f} MB) to {args.out}"
    )
