"""Write generated bouncing-ball sequences as a clips file (.npz) that ``--dataset clips`` reads.

    python pipelines/make_clips.py --out balls.npz --clips 200 --frames 20 [--drop 0.3] [--seed 0]

The file holds ``frames`` (clip, time, 1, 32, 32) in [0, 1], ``times`` (time,) in frames and
``variables``; with ``--drop`` a fraction of each clip's first half is NaN (missing frames).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from climode.data.bouncing_ball import BouncingBall
from climode.errors import ClimodeError, cli
from climode.io.atomic import replacing


@cli
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ClimodeError(f"--out {out} must end in .npz")
    if out.exists() and not args.overwrite:
        raise ClimodeError(f"{out} exists; pass --overwrite to replace it")
    half = args.frames // 2
    balls = BouncingBall("train", args.clips, half, args.frames - half, args.drop, seed=args.seed)
    samples = [balls[i] for i in range(args.clips)]
    frames = np.stack([np.concatenate((s["frames_in"], s["frames_out"])) for s in samples])
    with replacing(out) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
        np.savez_compressed(
            f, frames=frames, times=np.arange(args.frames, dtype=float), variables=np.array(balls.info.variables)
        )
    print(out)


if __name__ == "__main__":
    sys.exit(main())
