"""Small video datasets of moving shapes written as real encoded files in each published layout
(KTH Action .avi, Moving GIF .gif, Penn Action .jpg + .mat, a folder of .mp4), for the tests, the
recorded video table (docs/video.md) and the notebooks; the real datasets cannot be downloaded here.

``python -m climode.video.synthetic --layout folder --out DIR [--videos N --frames T --size S]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layouts import LAYOUTS


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


def write_layout(
    root: str | Path, layout: str, videos: int = 6, frames: int = 40, size: int = 64, seed: int = 0
) -> list[Path]:
    """Write ``videos`` moving-shape clips of ``frames`` frames in ``layout``'s published form under
    ``root``, each where its dataset keeps one (the layout's ``write_clip`` in ``climode.video.layouts``:
    kth grey .avi, mgif .gif, penn .jpg frames with a .mat train flag, folder .mp4); returns their paths."""
    entry = LAYOUTS.get_method(layout)
    root = Path(root)
    return [
        entry.write_clip(root, i, videos, moving_shapes(frames, size, seed * 1000 + i, colour=entry.colour))
        for i in range(videos)
    ]


if __name__ == "__main__":
    from ..cli import forward

    forward(__name__, "video-synthetic")
