"""The Bouncing Ball dataset of the paper: 3 balls in a 32 x 32 box, generated and seeded.

Balls move at constant speed, bounce elastically off the walls and off each other
(equal masses), and are drawn as soft discs in [0, 1] on one channel. Sequence i
of a split is generated from its own seed, so any item is reproducible on its own.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from ..errors import check_choice
from .contract import DatasetInfo, Sample
from .samples import drop_frames

SPLIT_SEEDS = {"train": 0, "val": 1_000_003, "test": 2_000_003}


def simulate(
    rng: np.random.Generator,
    n_frames: int,
    size: int = 32,
    balls: int = 3,
    radius: float = 3.0,
    speed: float = 1.5,
    substeps: int = 8,
    times: np.ndarray | None = None,
) -> np.ndarray:
    """Ball centres (n_frames, balls, 2) in pixels (row, column) at frames 0..n_frames-1, or, given
    ``times`` (T,) in frames within [0, n_frames - 1], at those real times (linear between substeps)."""
    lo, hi = radius, size - 1 - radius
    pos = rng.uniform(lo, hi, (balls, 2))
    for _ in range(100):  # start apart
        gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(balls) * 1e9
        if gaps.min() > 2 * radius:
            break
        pos = rng.uniform(lo, hi, (balls, 2))
    angle = rng.uniform(0, 2 * np.pi, balls)
    vel = speed * rng.uniform(0.7, 1.3, (balls, 1)) * np.stack((np.sin(angle), np.cos(angle)), 1)
    out = np.empty((n_frames, balls, 2))
    fine = np.empty((n_frames * substeps, balls, 2))
    for f in range(n_frames):
        out[f] = pos
        for sub in range(substeps):
            fine[f * substeps + sub] = pos
            pos = pos + vel / substeps
            for axis in range(2):
                low, high = pos[:, axis] < lo, pos[:, axis] > hi
                vel[low | high, axis] *= -1
                pos[low, axis] = 2 * lo - pos[low, axis]
                pos[high, axis] = 2 * hi - pos[high, axis]
            for i in range(balls):
                for j in range(i + 1, balls):
                    d = pos[i] - pos[j]
                    dist = np.linalg.norm(d)
                    closing = np.dot(vel[i] - vel[j], d)
                    if dist < 2 * radius and closing < 0:
                        n = d / max(dist, 1e-9)
                        exchange = np.dot(vel[i] - vel[j], n) * n
                        vel[i] -= exchange
                        vel[j] += exchange
    if times is None:
        return out
    clock = np.arange(len(fine)) / substeps
    return np.stack(
        [
            [[np.interp(t, clock, fine[:, b, a]) for a in range(2)] for b in range(balls)]
            for t in np.asarray(times, dtype=np.float64)
        ]
    )


def render(centres: np.ndarray, size: int = 32, radius: float = 3.0) -> np.ndarray:
    """Frames (T, 1, size, size) in [0, 1] from centres (T, balls, 2)."""
    yy, xx = np.mgrid[0:size, 0:size]
    d2 = (yy[None, None] - centres[..., 0, None, None]) ** 2 + (xx[None, None] - centres[..., 1, None, None]) ** 2
    discs = np.clip(radius + 0.5 - np.sqrt(d2), 0, 1)
    return discs.max(1)[:, None].astype(np.float32)


class BouncingBall(Dataset):
    """``n_in`` frames in at times 0..n_in-1, ``n_out`` targets after (frame units).

    drop: fraction of input frames marked missing at random (irregular sampling);
    the last input frame is always kept.
    continuous: the targets at ``n_out`` random real times within the ``n_out`` frames after the
    last input instead of at whole frames (leads off any solver grid), and one more at a random real
    time inside each gap between inputs (interpolation at any fraction of a gap; the storms'
    ``--between``), sorted.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 1000,
        n_in: int = 10,
        n_out: int = 10,
        drop: float = 0.0,
        frame_size: int = 32,
        balls: int = 3,
        seed: int = 0,
        continuous: bool = False,
    ):
        check_choice("split", split, SPLIT_SEEDS)
        self.split, self.size, self.n_in, self.n_out = split, size, n_in, n_out
        self.drop, self.frame_size, self.balls = drop, frame_size, balls
        self.seed = seed + SPLIT_SEEDS[split]
        self.continuous = continuous
        self.info = DatasetInfo(("intensity",), "frames", n_in, n_out)

    def __len__(self) -> int:
        return self.size

    def render(self, index: int, times: np.ndarray) -> np.ndarray:
        """Frames (T, 1, size, size) of sequence ``index`` at any real ``times`` (T,) in 0..n_in+n_out-1."""
        rng = np.random.default_rng((self.seed, index))
        centres = simulate(rng, self.n_in + self.n_out, self.frame_size, self.balls, times=times)
        return render(centres, self.frame_size)

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng((self.seed, index))
        n = self.n_in + self.n_out
        frames = render(simulate(rng, n, self.frame_size, self.balls), self.frame_size)
        times = np.arange(n, dtype=np.float64)
        inputs = drop_frames(frames[: self.n_in], self.drop, rng)
        if self.continuous:
            between = rng.uniform(times[: self.n_in - 1], times[1 : self.n_in])
            times_out = np.sort(np.concatenate((between, rng.uniform(self.n_in - 1, n - 1, self.n_out))))
            return {
                "frames_in": inputs,
                "times_in": times[: self.n_in],
                "frames_out": self.render(index, times_out),
                "times_out": times_out,
            }
        return {
            "frames_in": inputs,
            "times_in": times[: self.n_in],
            "frames_out": frames[self.n_in :],
            "times_out": times[self.n_in :],
        }
