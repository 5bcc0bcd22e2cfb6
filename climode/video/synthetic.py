"""Small video datasets of moving shapes written as real encoded files in each published layout
(KTH Action .avi, Moving GIF .gif, Penn Action .jpg + .mat, a folder of .mp4), for the tests, the
recorded video table (docs/video.md) and the notebooks; the real datasets cannot be downloaded here.

``python -m climode.video.synthetic --layout folder --out DIR [--videos N --frames T --size S]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import ClimodeError, cli
from .layouts import KTH_ACTIONS


def moving_shapes(frames: int = 40, size: int = 64, seed: int = 0, colour: bool = True) -> np.ndarray:
    """(T, size, size, 3) uint8: two to three soft-edged discs and squares crossing a shaded
    background at constant velocities (0.5-2.5 pixels per frame), bouncing off the borders."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    background = 40 + 30 * (x / size) + 20 * np.sin(2 * np.pi * y / size)
    video = np.repeat(background[None, ..., None], 3, -1) * np.ones((frames, 1, 1, 1), np.float32)
    for _ in range(rng.integers(2, 4)):
        radius = rng.uniform(0.08, 0.16) * size
        pos = rng.uniform(radius, size - radius, 2)
        speed = rng.uniform(0.5, 2.5) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        colour_of = rng.uniform(120, 255, 3) if colour else np.full(3, rng.uniform(120, 255))
        square = rng.random() < 0.5
        for t in range(frames):
            dy, dx = y - pos[0], x - pos[1]
            distance = np.maximum(abs(dy), abs(dx)) if square else np.hypot(dy, dx)
            alpha = np.clip(radius - distance + 0.5, 0, 1)[..., None]
            video[t] = (1 - alpha) * video[t] + alpha * colour_of
            pos = pos + speed
            for k in range(2):  # bounce
                if not radius <= pos[k] <= size - radius:
                    speed[k] = -speed[k]
                    pos[k] = np.clip(pos[k], radius, size - radius)
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def _mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, ffmpeg_log_level="error")


def write_layout(root: str | Path, layout: str, videos: int = 6, frames: int = 40, size: int = 64, seed: int = 0):
    """Write ``videos`` moving-shape clips of ``frames`` frames in ``layout``'s published form under
    ``root``; returns the written paths. kth: grey .avi (MPEG-4) spread over the six actions and
    persons 1-25 (so both splits hold videos); mgif: colour .gif under train/ and test/ (9 : 1);
    penn: colour .jpg frames with a .mat train flag (every third sequence a test one); folder: .mp4."""
    import imageio.v3 as iio
    from scipy.io import savemat

    root = Path(root)
    written = []
    for i in range(videos):
        clip = moving_shapes(frames, size, seed * 1000 + i, colour=layout != "kth")
        if layout == "kth":
            action = KTH_ACTIONS[i % len(KTH_ACTIONS)]
            person = 1 + (i * 7) % 25
            path = root / action / f"person{person:02d}_{action}_d{1 + i % 4}_uncomp.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, clip, plugin="FFMPEG", fps=25, codec="mpeg4", quality=9, macro_block_size=1,
                        ffmpeg_log_level="error")  # fmt: skip
        elif layout == "mgif":
            split = "test" if i % 10 == 9 or (i == videos - 1 and videos < 10) else "train"
            path = root / split / f"{i:05d}.gif"
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, clip, duration=40, loop=0)
        elif layout == "penn":
            path = root / "frames" / f"{i + 1:04d}"
            path.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(clip):
                iio.imwrite(path / f"{t + 1:06d}.jpg", frame, quality=95)
            (root / "labels").mkdir(exist_ok=True)
            savemat(root / "labels" / f"{i + 1:04d}.mat", {"train": -1 if i % 3 == 2 else 1, "nframes": frames})
        elif layout == "folder":
            root.mkdir(parents=True, exist_ok=True)
            path = root / f"clip{i:03d}.mp4"
            _mp4(path, clip, 25.0)
        else:
            raise ClimodeError(f"unknown video layout {layout!r}; choose one of kth, mgif, penn, folder")
        written.append(path)
    return written


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
    for path in write_layout(args.out, args.layout, args.videos, args.frames, args.size, args.seed):
        print(path)


if __name__ == "__main__":
    sys.exit(main())
