"""``climode video-synthetic --layout kth|mgif|penn|folder --out DIR [--videos N --frames T --size S]``
(``python -m climode.video.synthetic``): small video datasets of moving shapes, written as real encoded
files in a published layout (KTH Action .avi, Moving GIF .gif, Penn Action .jpg + .mat, a folder of
.mp4; ``climode.video.synthetic``), to try the video datasets where the real ones cannot be
downloaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ClimodeError, cli


@cli
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m climode.video.synthetic", description=__doc__)
    p.add_argument("--layout", required=True, choices=("kth", "mgif", "penn", "folder"))
    p.add_argument("--out", required=True, help="the dataset's root folder")
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise ClimodeError(f"--out {args.out} is not empty; give a new folder")
    from ..video.synthetic import write_layout  # the stack loads after the options are read

    for path in write_layout(args.out, args.layout, args.videos, args.frames, args.size, args.seed):
        print(path)
