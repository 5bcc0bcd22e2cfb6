"""``python -m climode.video --input clip.mp4 --fps 50,100 [--out DIR] [--checkpoint MODEL]``: the clip
generated at each frame rate (MP4 and GIF, at the clip's own size) and the rates side by side (PNG),
by the bundled video model unless --checkpoint names another."""

from __future__ import annotations

import argparse

from ..errors import ClimodeError, cli


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ClimodeError(f"--extend: {text!r} is not a number of seconds") from None


@cli
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m climode.video", description=__doc__)
    p.add_argument("--input", required=True, help="a video file (mp4, avi, gif, webm, mov, ...) or a folder of images")
    p.add_argument(
        "--checkpoint", help="a model trained on video frames (.safetensors or .ckpt); default: the bundled video model"
    )
    p.add_argument("--fps", required=True, help="frame rates to generate, comma-separated, e.g. 8,11,14,17,20")
    p.add_argument("--out", default=".", help="folder for the generated videos (default: the current folder)")
    p.add_argument("--extend", default="0", help="seconds to go on after the clip's last frame (default 0)")
    p.add_argument(
        "--channels", type=int, choices=(1, 3), help="convert the clip to grey (1) or colour (3) (default: the model's)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=128,
        help="shorter side in pixels of the frames the model works on (default 128); the output keeps the clip's size",
    )
    p.add_argument("--overwrite", action="store_true", help="replace videos of an earlier run in --out")
    args = p.parse_args(argv)
    from ..video.retime import generate, parse_rates  # the stack loads after the options are read

    rates = parse_rates(args.fps)
    written = generate(
        args.input,
        args.checkpoint,
        rates,
        args.out,
        extend=_seconds(args.extend),
        channels=args.channels,
        side=args.size,
        overwrite=args.overwrite,
    )
    for path in written:
        print(path)
