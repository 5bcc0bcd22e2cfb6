"""Samples of the video datasets for the paper's two tasks, in frame units.

- ``extrapolation``: ``n_in`` consecutive frames in, the ``n_out`` after them out (Eq. 4);
- ``interpolation``: ``2 n_in - 1`` frames, the ``n_in`` at even positions in, the ``n_in - 1``
  between them out (the supplement's 5 inputs and 4 in-between frames).

``stride`` takes every ``stride``-th frame of the video; times count the frames so taken
(0, 1, 2, ...). Each video gives its windows one after another (at most ``clips_per_video`` of
them, evenly spaced; 0: all). With ``drop`` each inner input frame is missing (NaN) with that
probability (the irregular variants); with ``augment`` a training sample is flipped left-right
with probability 1/2 and rotated by an angle in [-10, 10] degrees (the paper's augmentation), the
same for all its frames. Randomness is seeded per sample and by how often it was read.
Frames are float32 in [0, 1], (C, H, W).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.contract import DatasetInfo, Sample
from ..errors import ClimodeError
from .readers import Video, read_video

TASKS = ("extrapolation", "interpolation")
MAX_ROTATION = 10.0  # degrees


def span(task: str, n_in: int, n_out: int) -> int:
    """Frames one sample covers."""
    return n_in + n_out if task == "extrapolation" else 2 * n_in - 1


def _rotate_flip(frames: torch.Tensor, degrees: float, flip: bool) -> torch.Tensor:
    """(T, C, H, W) rotated about the centre (borders replicated) and flipped left-right."""
    if flip:
        frames = frames.flip(-1)
    if degrees == 0:
        return frames
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=frames.dtype)
    grid = F.affine_grid(theta.expand(len(frames), 2, 3), list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


class VideoClips(Dataset):
    """Samples of ``sources`` (video files or image folders, ``climode.video.layouts``); see the
    module docstring. ``channels`` None keeps each video's own (grey 1, colour 3); all must agree."""

    def __init__(
        self,
        sources: list[Path],
        task: str = "extrapolation",
        n_in: int = 5,
        n_out: int = 5,
        size: int = 64,
        channels: int | None = None,
        stride: int = 1,
        clips_per_video: int = 0,
        drop: float = 0.0,
        augment: bool = False,
        seed: int = 0,
        cache: str | Path | None = None,
    ):
        if task not in TASKS:
            raise ClimodeError(f"unknown video task {task!r}; choose one of {', '.join(TASKS)}")
        if n_in < 2 or (task == "extrapolation" and n_out < 1) or stride < 1:
            raise ClimodeError(
                f"a video sample needs n_in >= 2, n_out >= 1 and stride >= 1 (got {n_in}, {n_out}, {stride})"
            )
        self.task, self.n_in, self.n_out, self.stride = task, n_in, n_out, stride
        self.drop, self.augment, self.seed = drop, augment, seed
        self.videos: list[Video] = [read_video(s, size, channels, cache) for s in sources]
        kinds = {v.frames.shape[1] for v in self.videos}
        if len(kinds) > 1:
            raise ClimodeError(
                "the videos mix grey and colour frames; pass channels 1 or 3 (data.channels) to convert them"
            )
        self.channels = kinds.pop() if kinds else (channels or 3)
        variables = ("grey",) if self.channels == 1 else ("red", "green", "blue")
        self.info = DatasetInfo(variables, "frames", n_in, n_out, places=True)
        need = (span(task, n_in, n_out) - 1) * stride + 1
        self.index: list[tuple[int, int]] = []
        for i, video in enumerate(self.videos):
            if len(video.frames) < need:
                raise ClimodeError(
                    f"video {video.source} has {len(video.frames)} frames; a {task} sample with {n_in} inputs"
                    + (f" and {n_out} targets" if task == "extrapolation" else "")
                    + f" at stride {stride} needs {need}"
                )
            starts = list(range(0, len(video.frames) - need + 1, need))
            if clips_per_video and len(starts) > clips_per_video:
                starts = [starts[round(k)] for k in np.linspace(0, len(starts) - 1, clips_per_video)]
            self.index += [(i, s) for s in starts]
        self.draws = np.zeros(len(self.index), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def place(self, i: int) -> dict:
        """Where sample ``i`` comes from: ``storm`` (the key scores group cases by) is its video's
        name, since the samples of one video are not independent cases; ``start`` its first frame."""
        v, start = self.index[i]
        return {"storm": self.videos[v].source.name, "start": start, "lat": None}

    def __getitem__(self, i: int) -> Sample:
        v, start = self.index[i]
        n = span(self.task, self.n_in, self.n_out)
        raw = self.videos[v].frames[start : start + (n - 1) * self.stride + 1 : self.stride]
        frames = torch.from_numpy(np.asarray(raw, dtype=np.float32) / 255.0)
        rng = np.random.default_rng([self.seed, i, int(self.draws[i])])
        self.draws[i] += 1
        if self.augment:
            frames = _rotate_flip(frames, rng.uniform(-MAX_ROTATION, MAX_ROTATION), rng.random() < 0.5)
        times = torch.arange(n, dtype=torch.float64)
        if self.task == "extrapolation":
            inputs, targets = np.arange(self.n_in), np.arange(self.n_in, n)
        else:
            inputs, targets = np.arange(0, n, 2), np.arange(1, n, 2)
        frames_in = frames[inputs].clone()
        if self.drop:
            hidden = np.nonzero(rng.random(len(inputs) - 2) < self.drop)[0] + 1  # first and last always seen
            frames_in[hidden] = float("nan")
        return {
            "frames_in": frames_in.numpy(),
            "times_in": times[inputs].numpy(),
            "frames_out": frames[targets].numpy(),
            "times_out": times[targets].numpy(),
        }
