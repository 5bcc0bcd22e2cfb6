"""A forecast as a looping animation: one map frame per time, as :func:`climode.maps.draw_forecast` draws
them, in a GIF or an H.264 MP4."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from ..io.atomic import replacing
from .base import Centre
from .fields import _figure, _Plan


def animate_forecast(
    ds: xr.Dataset,
    path: str | Path,
    *,
    fps: float = 2,
    wind: Sequence[str] = ("U850", "V850"),
    pressure: str = "PSL",
    centres: Sequence[Centre] | None = None,
    title: str | None = None,
) -> Path:
    """A GIF (or, for a ``.mp4`` path, an H.264 MP4) at ``path`` with one map frame per time of ``ds``
    (as in :func:`draw_forecast`, colour levels and wind scale fixed across frames), ``fps`` frames per
    second, looping; written atomically."""
    path = Path(path)
    plan = _Plan.of(ds, wind, pressure, centres)
    frames = []
    for i in range(ds.sizes["time"]):
        fig = _figure(plan, [i], title)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB"))
        fig.clear()
    if path.suffix.lower() in (".mp4", ".m4v", ".mov"):
        from ..video.write import write_mp4  # imageio-ffmpeg: H.264

        even = [np.asarray(f)[: f.height // 2 * 2, : f.width // 2 * 2] for f in frames]  # yuv420p: even sides
        return write_mp4(np.stack(even).transpose(0, 3, 1, 2), path, fps)
    with replacing(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return path
