"""A clip generated at frame rates it was never recorded at: every frame a continuous-time query of
the model, between the clip's frames (interpolation) and after them (extrapolation).

Times: the clip's frames are the model's inputs at 0, 1, 2, ... model time units (one unit = one
frame interval of the clip, as in training, where a unit is one frame of the video at the trained
``stride``); an output frame at ``t`` seconds is the query ``t * fps``. Each query is answered from
the ``n_in`` input frames around it (the last ``n_in`` for a query after the clip), the window the
model was trained on, so a long clip costs no more per frame than a short one.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_model
from ..errors import ClimodeError
from .readers import Video, read_video
from .write import write_gif, write_mp4, write_strip

log = logging.getLogger(__name__)


def parse_rates(text: str) -> list[float]:
    """``"8,11,14"`` -> [8.0, 11.0, 14.0]: frame rates, each a positive finite number."""
    rates = []
    for item in str(text).split(","):
        try:
            value = float(item)
        except ValueError:
            raise ClimodeError(f"--fps: {item.strip()!r} is not a number (frames per second, e.g. 8,11,14)") from None
        if not (math.isfinite(value) and value > 0):
            raise ClimodeError(f"--fps: frame rates must be positive, got {item.strip()}")
        rates.append(value)
    if len(set(rates)) != len(rates):
        raise ClimodeError("--fps names the same rate twice")
    return rates


def frame_times(duration: float, fps: float) -> np.ndarray:
    """Seconds of every frame at ``fps`` from 0 to ``duration`` (both ends included where they fall on a frame)."""
    return np.arange(math.floor(duration * fps + 1e-6) + 1) / fps


def check_model(ckpt: Checkpoint, channels: int, source) -> int:
    """The model's input count per window; refuses a model trained on other channels or not on video frames."""
    if ckpt.card.time_units != "frames":
        raise ClimodeError(
            f"checkpoint {ckpt.path} was trained on times in {ckpt.card.time_units}, not video frames; "
            "train one on videos (python -m climode.train --dataset folder --root DIR)"
        )
    trained = ckpt.model.config.channels
    if trained != channels:
        kinds = {1: "grey", 3: "colour"}
        raise ClimodeError(
            f"checkpoint {ckpt.path} was trained on {trained}-channel ({kinds.get(trained, '?')}) frames but "
            f"{source} has {channels} ({kinds.get(channels, '?')}); pass --channels {trained} to convert the clip"
        )
    config = (ckpt.card.config or {}).get("data", {})
    return int(config.get("n_in") or 5)


@torch.no_grad()
def retime(model: torch.nn.Module, video: Video, seconds: np.ndarray, n_in: int, batch: int = 16) -> np.ndarray:
    """Frames (K, C, H, W) uint8 of ``video`` at ``seconds`` (K,), made by ``model`` from the clip's frames."""
    frames = torch.as_tensor(np.asarray(video.frames, dtype=np.float32) / 255.0)
    n = len(frames)
    n_in = min(n_in, n)
    query = np.asarray(seconds, np.float64) * video.fps
    starts = np.clip(np.floor(query).astype(int) - (n_in - 1) // 2, 0, n - n_in)
    out = np.zeros((len(query), *frames.shape[1:]), np.float32)
    for start in np.unique(starts):
        picks = np.nonzero(starts == start)[0]
        window = frames[start : start + n_in][None]
        times = torch.arange(n_in, dtype=torch.float32)
        for chunk in np.array_split(picks, max(1, math.ceil(len(picks) / batch))):
            q = torch.as_tensor(query[chunk] - start, dtype=torch.float32)
            out[chunk] = model(window, times, q)["frames"][0].clamp(0, 1).numpy()
    return np.rint(out * 255).astype(np.uint8)


def strip_instants(duration: float, count: int = 6) -> np.ndarray:
    """``count`` instants (s) spread over ``duration`` at which the rates are compared side by side."""
    return np.linspace(0, duration, count)


def generate(
    source,
    checkpoint,
    rates: list[float],
    out,
    *,
    extend: float = 0.0,
    channels: int | None = None,
    size: int | None = None,
    overwrite: bool = False,
    cache=None,
) -> list:
    """Generate the clip ``source`` at each of ``rates`` (frames per second) from its first frame to
    ``extend`` seconds after its last, with the model ``checkpoint`` (a path or a loaded Checkpoint);
    write ``<stem>_<rate>fps.mp4`` and ``.gif`` for each rate and ``<stem>_rates.png`` (the rates side
    by side at the same instants) into the folder ``out``. Returns the written paths."""
    if not (math.isfinite(extend) and extend >= 0):
        raise ClimodeError(f"--extend must be a number of seconds >= 0, got {extend}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_model(checkpoint)
    trained = (ckpt.card.config or {}).get("data", {})
    shape = ckpt.model.config.frame_shape
    size = size or (shape[0] if shape else int(trained.get("frame_size") or 64))
    video = read_video(source, size, channels, cache)
    if len(video.frames) < 2:
        raise ClimodeError(f"{source} has {len(video.frames)} frame; generating other frame rates needs at least 2")
    n_in = check_model(ckpt, video.frames.shape[1], source)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ClimodeError(f"--out {out} is a file; give a folder for the generated videos")
    stem = Path(source).stem
    names = [out / f"{stem}_{rate:g}fps.{ext}" for rate in rates for ext in ("mp4", "gif")] + [
        out / f"{stem}_rates.png"
    ]
    taken = [p for p in names if p.exists()]
    if taken and not overwrite:
        raise ClimodeError(f"{taken[0]} exists; pass --overwrite to replace the generated videos")
    duration = (len(video.frames) - 1) / video.fps + extend
    instants = strip_instants(duration)
    written, strip = [], {}
    for rate in rates:
        seconds = frame_times(duration, rate)
        frames = retime(ckpt.model, video, seconds, n_in)
        out.mkdir(parents=True, exist_ok=True)
        written += [write_mp4(frames, out / f"{stem}_{rate:g}fps.mp4", rate)]
        written += [write_gif(frames, out / f"{stem}_{rate:g}fps.gif", rate)]
        nearest = [int(np.argmin(np.abs(seconds - t))) for t in instants]
        strip[f"{rate:g} fps"] = [(float(seconds[k]), frames[k]) for k in nearest]
        log.info("%g fps: %d frames (%d of %d rates)", rate, len(frames), len(strip), len(rates))
    title = f"{stem}: recorded at {video.fps:g} fps, {len(video.frames)} frames" + (
        f", extended by {extend:g} s" if extend else ""
    )
    written.append(write_strip(strip, out / f"{stem}_rates.png", title))
    return written
