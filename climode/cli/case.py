"""``climode case`` (``python -m climode.data.cases``): one synthetic storm to forecast, cut into
inputs, truth and track (``climode.data.cases``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data import cases
from ..errors import ClimodeError, cli


def _hours(text: str) -> list[float]:
    """``--inputs``: hours after the first input, from 0, increasing, on the corpus's track points."""
    from ..data.synthetic import STEP

    try:
        hours = [float(h) for h in text.split(",")]
    except ValueError:
        raise ClimodeError(f"--inputs {text!r} is not a comma-separated list of hours") from None
    step = STEP.total_seconds() / 3600.0
    if any(h % step for h in hours) or hours != sorted(set(hours)) or hours[0] != 0:
        raise ClimodeError(f"--inputs {text!r}: hours must start at 0, increase, and be multiples of {step:g}")
    return hours


@cli
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m climode.data.cases",
        description=cases.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--inputs", default="0,9,21,42,57", help="input hours after the first (default 0,9,21,42,57)")
    p.add_argument("--until", type=float, default=72.0, help="last truth hour (default 72)")
    p.add_argument("--seed", type=int, default=3, help="corpus seed (default 3)")
    p.add_argument("--small", action="store_true", help="1-degree grid instead of 0.25 degree")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    hours = _hours(args.inputs)
    if args.until <= hours[-1]:
        raise ClimodeError(f"--until {args.until:g} must come after the last input ({hours[-1]:g} h)")
    from ..data.synthetic import make_corpus  # the stack loads after the options are read

    ds, tracks = make_corpus(1, args.seed, args.small)
    case = cases.first_case(ds, tracks, hours, args.until)
    for path in cases.write_case(args.out, case, args.overwrite):
        print(f"wrote {path}")
