"""Generated videos written as MP4 (H.264), GIF and a PNG strip, each to a temporary file renamed
into place."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ClimodeError
from ..io.atomic import replacing


def write_mp4(frames: np.ndarray, path: Path, fps: float) -> Path:
    """(T, C, H, W) uint8 -> an H.264 MP4 at ``fps`` and the frames' own size: yuv420p (any player opens
    it) where both sides are even, else yuv444p (4:2:0 halves both sides; x264 writes nothing then)."""
    import imageio.v3 as iio

    even = frames.shape[-1] % 2 == 0 and frames.shape[-2] % 2 == 0
    with replacing(path) as tmp:
        staged = tmp.with_name(tmp.name + ".mp4")  # ffmpeg picks the container by the file's suffix
        try:
            iio.imwrite(
                staged, _hwc(frames), plugin="FFMPEG", fps=fps, codec="libx264",
                pixelformat="yuv420p" if even else "yuv444p", macro_block_size=1, ffmpeg_log_level="error",
                quality=9,
            )  # fmt: skip
            if not staged.is_file() or staged.stat().st_size == 0:
                size = f"{frames.shape[-1]} x {frames.shape[-2]}"
                raise ClimodeError(f"{path}: ffmpeg wrote no video for frames of {size} pixels")
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)
    return path


def write_gif(frames: np.ndarray, path: Path, fps: float) -> Path:
    """(T, C, H, W) uint8 -> a looping GIF (frame durations are whole milliseconds; GIF keeps 10 ms steps)."""
    import imageio.v3 as iio

    with replacing(path) as tmp:
        iio.imwrite(tmp, _hwc(frames), extension=".gif", duration=round(1000.0 / fps), loop=0)
    return path


def write_strip(rows: dict[str, list[tuple[float, np.ndarray]]], path: Path, title: str) -> Path:
    """A PNG grid: one row per label (a frame rate), one column per instant; each cell a (C, H, W)
    uint8 frame with the time it shows."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend (a notebook's) is left alone

    n_cols = max(len(cells) for cells in rows.values())
    fig = Figure(figsize=(1.6 * n_cols, 1.7 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, cells) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            seconds, frame = cells[c]
            image = _hwc(frame[None])[0]
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{seconds:.3f} s", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def _hwc(frames: np.ndarray) -> np.ndarray:
    """(T, C, H, W) -> (T, H, W, C), grey replicated to three channels (what players and GIF readers expect)."""
    out = np.ascontiguousarray(np.asarray(frames).transpose(0, 2, 3, 1))
    return np.repeat(out, 3, -1) if out.shape[-1] == 1 else out
