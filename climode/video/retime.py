"""A clip generated at frame rates it was never recorded at: every frame a continuous-time query of
the model, between the clip's frames (interpolation) and after them (extrapolation).

Times: the clip's frames are the model's inputs at 0, 1, 2, ... model time units (one unit = one
frame interval of the clip, as in training, where a unit is one frame of the video at the trained
``stride``); an output frame at ``t`` seconds is the query ``t * fps``. Each query is answered from
the ``n_in`` input frames around it (the last ``n_in`` for a query after the clip), the window the
model was trained on, so a long clip costs no more per frame than a short one.

Sizes: the model works on the clip's frames brought to ``working_shape`` (the shorter side at
``SIDE`` pixels unless asked otherwise, the aspect kept; the model pads to its multiple of 4 itself),
and every output frame has the clip's own size: the clip's frames composed with the model's flows
brought up to it, as a forecast on a grid finer than the model's (``at_size``).

Without a checkpoint the bundled video model runs (``bundled_video_checkpoint``: Vid-ODE trained on
procedural scenes, ``climode.video.scenes``; docs/video.md says where it fails).
"""

from __future__ import annotations

import logging
import math
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import Checkpoint, load_model
from ..errors import ClimodeError
from ..model.compose import compose, finer_parts
from .readers import Video, read_video
from .write import write_gif, write_mp4, write_strip

log = logging.getLogger(__name__)
BUNDLED_VIDEO = "video-scenes.safetensors"
SIDE = 128  # pixels: the shorter side of the frames the model works on, by default
QUERY_PIXELS = 2_000_000  # frame pixels answered at once (the parts at the clip's size take ~40 bytes each)


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


def bundled_video_checkpoint() -> Path:
    """Path of the video model shipped with climode."""
    return Path(str(resources.files("climode.weights") / BUNDLED_VIDEO))


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


def working_shape(height: int, width: int, side: int | None, fixed: list[int] | None = None) -> tuple[int, int]:
    """(h, w) of the frames the model works on for a clip of ``height`` x ``width`` pixels: the shorter
    side at ``side`` (never above the clip's own), the aspect kept; a model built for one frame size
    (``fixed``, ODE-FC) gets that size whatever the aspect."""
    if fixed:
        return int(fixed[0]), int(fixed[1])
    scale = min(1.0, side / min(height, width)) if side else 1.0
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(..., C, H, W) -> (..., C, *shape) (pixels): bilinear, antialiased when shrinking (how the model's inputs
    are made from the clip's frames, and the carried detail is taken back out at the model's size)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.interpolate(flat, size=shape, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*x.shape[:-2], *shape)


def at_size(out: dict, inputs: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Frames (B, K, C, H, W) at the clip's own size from the model's answer ``out`` at its size and the
    clip's input frames ``inputs`` (B, L, C, H, W): as a forecast on the input's finer grid
    (``climode.prediction.compose_native``), the inputs composed with the model's flows brought up,
    plus the model's frames where they differ at the scales its size holds; a model without
    composition parts: its frames upsampled."""
    frames = out["frames"]
    h, w = frames.shape[-2:]
    H, W = inputs.shape[-2:]
    if (h, w) == (H, W):
        return frames
    if not {"flows", "weight", "sources"} <= set(out):
        return resize(frames, (H, W))
    up = lambda name: resize(out[name], (H, W))
    sources, flows, weight = finer_parts(out, (W / w, H / h), up)
    carried = compose(inputs, sources, flows, weight)
    return carried + resize(frames - resize(carried, shape), (H, W))


@torch.no_grad()
def retime(model: torch.nn.Module, video: Video, seconds: np.ndarray, n_in: int, side: int | None = SIDE) -> np.ndarray:
    """Frames (K, C, H, W) uint8 of ``video`` at ``seconds`` (K,), at the clip's own size: made by
    ``model`` from the clip's frames brought to ``working_shape`` (``side``: the shorter side)."""
    frames = torch.as_tensor(np.asarray(video.frames, dtype=np.float32) / 255.0)
    n, H, W = len(frames), *frames.shape[-2:]
    shape = working_shape(H, W, side, getattr(getattr(model, "config", None), "fixed_shape", None))
    small = resize(frames, shape)
    n_in = min(n_in, n)
    query = np.asarray(seconds, np.float64) * video.fps
    starts = np.clip(np.floor(query).astype(int) - (n_in - 1) // 2, 0, n - n_in)
    out = np.zeros((len(query), *frames.shape[1:]), np.float32)
    batch = int(np.clip(QUERY_PIXELS // (H * W), 1, 16))  # queries at once: memory scales with the frame
    for start in np.unique(starts):
        picks = np.nonzero(starts == start)[0]
        times = torch.arange(n_in, dtype=torch.float32)
        for chunk in np.array_split(picks, max(1, math.ceil(len(picks) / batch))):
            q = torch.as_tensor(query[chunk] - start, dtype=torch.float32)
            answer = model(small[start : start + n_in][None], times, q)
            out[chunk] = at_size(answer, frames[start : start + n_in][None], shape)[0].clamp(0, 1).numpy()
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
    side: int | None = SIDE,
    overwrite: bool = False,
    cache=None,
) -> list:
    """Generate the clip ``source`` at each of ``rates`` (frames per second) from its first frame to
    ``extend`` seconds after its last, at the clip's own size, with the model ``checkpoint`` (a path or
    a loaded Checkpoint; None: the bundled video model) working on frames whose shorter side is
    ``side`` pixels (None: the clip's own size); ``channels`` (1 grey, 3 colour) converts the clip,
    by default to the model's. Writes ``<stem>_<rate>fps.mp4`` and ``.gif`` for each rate and
    ``<stem>_rates.png`` (the rates side by side at the same instants) into the folder ``out``.
    Returns the written paths."""
    if not (math.isfinite(extend) and extend >= 0):
        raise ClimodeError(f"--extend must be a number of seconds >= 0, got {extend}")
    if side is not None and side < 8:
        raise ClimodeError(f"--size must be at least 8 pixels, got {side}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_model(checkpoint or bundled_video_checkpoint())
    video = read_video(source, None, channels or ckpt.model.config.channels, cache)
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
        frames = retime(ckpt.model, video, seconds, n_in, side)
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
