"""Clips from a user's .npz file: ``frames`` (N, T, C, H, W) and ``times`` (T,) or (N, T).

The first ``n_in`` frames of each clip are the inputs, the next ``n_out`` the targets;
clips are split 80/10/10 into train/val/test in file order. Optional ``variables``
(C,) names the channels. Everything is checked on opening, with errors that name
the file and what was wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import ClimodeError
from .contract import DatasetInfo, Sample

SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    if not path.is_file():
        raise ClimodeError(f"data file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ClimodeError(f"{path} is not a readable .npz file ({exc})") from None
    for key in ("frames", "times"):
        if key not in arrays:
            raise ClimodeError(f"{path} has no array {key!r}; it holds {', '.join(sorted(arrays)) or 'nothing'}")
    frames, times = arrays["frames"].astype(np.float32), arrays["times"].astype(np.float64)
    if frames.ndim != 5:
        raise ClimodeError(f"{path}: 'frames' must have 5 dims (clip, time, channel, y, x), found shape {frames.shape}")
    n, t = frames.shape[:2]
    if times.ndim == 1:
        times = np.broadcast_to(times, (n, len(times)))
    if times.shape != (n, t):
        raise ClimodeError(
            f"{path}: 'times' must have shape ({t},) or ({n}, {t}) to match 'frames', found {times.shape}"
        )
    bad = np.nonzero(~np.isfinite(times).all(1))[0]
    if len(bad):
        raise ClimodeError(f"{path}: times must be finite numbers; clip {bad[0]} has {times[bad[0]].tolist()}")
    bad = np.nonzero(~(np.diff(times, axis=1) > 0).all(1))[0]
    if len(bad):
        raise ClimodeError(f"{path}: times must be strictly increasing; clip {bad[0]} has {times[bad[0]].tolist()}")
    empty = np.nonzero(~np.isfinite(frames).reshape(n, -1).any(1))[0]
    if len(empty):
        raise ClimodeError(f"{path}: clip {empty[0]} is all NaN: no frame has a finite value")
    names = tuple(str(v) for v in arrays.get("variables", [f"var{i}" for i in range(frames.shape[2])]))
    if len(names) != frames.shape[2]:
        raise ClimodeError(f"{path}: 'variables' names {len(names)} channels but frames have {frames.shape[2]}")
    return frames, times, names


class Clips(Dataset):
    """Clips of a .npz file (see the module docstring); times in the file's units."""

    def __init__(self, path: str | Path, split: str = "train", n_in: int = 10, n_out: int = 10):
        path = Path(path)
        frames, times, variables = _load(path)
        if n_in + n_out > frames.shape[1]:
            raise ClimodeError(f"{path}: clips have {frames.shape[1]} frames, fewer than n_in + n_out = {n_in + n_out}")
        lo, hi = SPLITS[split]
        n = len(frames)
        keep = slice(int(round(lo * n)), int(round(hi * n)))
        self.frames, self.times = frames[keep], times[keep]
        if not len(self.frames):
            raise ClimodeError(f"{path}: {n} clips leave none for the {split} split (80/10/10)")
        inputs = self.frames[:, :n_in]
        empty = np.nonzero(~np.isfinite(inputs).reshape(len(inputs), -1).any(1))[0]
        if len(empty):
            raise ClimodeError(f"{path}: the {n_in} input frames of {split} clip {empty[0]} are all NaN")
        last = self.times[:, n_in - 1]
        spans = np.stack((last - self.times[:, 0], self.times[:, n_in + n_out - 1] - last), 1)
        self.info = DatasetInfo(variables, "file units", n_in, n_out, time_spans=spans)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:
        f, t, n, k = self.frames[index], self.times[index], self.info.n_in, self.info.n_out
        return {"frames_in": f[:n], "times_in": t[:n], "frames_out": f[n : n + k], "times_out": t[n : n + k]}
