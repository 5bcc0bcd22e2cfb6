"""Videos read once: any file imageio reads (MP4, AVI, WebM, MOV, MKV through the ffmpeg that the
imageio-ffmpeg wheel carries; GIF through Pillow) or a folder of images, centre-cropped to a square
and resized (the datasets' samples) or as they are (``size`` None: frame-rate conversion), and cached.
A frame larger than ``MAX_PIXELS`` or a clip larger than ``MAX_BYTES`` decoded is refused before it
is decoded.

``read_video(source, size, channels)`` returns a ``Video``: ``frames`` (T, C, H, W) uint8 and
``fps``. Decoded frames are kept in a cache (one ``.npy``, memory-mapped when read, per file and settings, keyed by the
file's path, size and modification time and by the settings), so a second read decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ClimodeError
from ..io.atomic import replacing

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v", ".gif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
IMAGE_FPS = 30.0  # frames per second of an image sequence that does not say (Penn Action's)
CACHE_VERSION = 1
MAX_PIXELS = 4096 * 4096  # per frame: 4K UHD fits, a 10000 x 10000 frame does not
MAX_BYTES = 4 * 2**30  # decoded frames of one clip (uint8)


@dataclass(frozen=True)
class Video:
    """``frames`` (T, C, H, W) uint8 and ``fps`` (frames per second) of one ``source``."""

    frames: np.ndarray
    fps: float
    source: Path


def default_cache() -> Path:
    """``$CLIMODE_CACHE`` or ``~/.cache/climode``, with the decoded videos under ``video/``."""
    return Path(os.environ.get("CLIMODE_CACHE") or Path.home() / ".cache" / "climode") / "video"


def check_size(source: Path, width: int, height: int, frames: float = 1) -> None:
    """Refuse frames of ``width`` x ``height`` pixels over ``MAX_PIXELS``, or ``frames`` of them over
    ``MAX_BYTES`` decoded, before anything is decoded."""
    if width * height > MAX_PIXELS:
        raise ClimodeError(
            f"{source}: frames of {width} x {height} pixels are larger than climode reads "
            f"({MAX_PIXELS / 1e6:.1f} megapixels at most, e.g. 4096 x 4096); scale the clip down first "
            "(e.g. ffmpeg -i IN -vf scale=1920:-2 OUT)"
        )
    if frames * width * height * 3 > MAX_BYTES:
        raise ClimodeError(
            f"{source}: {frames:.0f} frames of {width} x {height} pixels need "
            f"{frames * width * height * 3 / 2**30:.1f} GiB decoded, over {MAX_BYTES / 2**30:.0f} GiB; "
            "cut the clip shorter or scale it down first"
        )


def _decode_file(path: Path) -> tuple[np.ndarray, float]:
    """All frames (T, H, W, 3 or 1) uint8 of a video file and its frame rate."""
    import imageio.v3 as iio  # imported here: only video work needs it

    gif = path.suffix.lower() == ".gif"
    plugin = None if gif else "FFMPEG"
    try:
        meta = iio.immeta(path, plugin=plugin)
        if gif:
            with Image.open(path) as image:
                check_size(path, *image.size, getattr(image, "n_frames", 1))
        elif meta.get("size"):
            width, height = meta["size"]
            check_size(path, width, height, float(meta.get("duration") or 0) * float(meta.get("fps") or 0))
        frames = np.asarray(iio.imread(path, index=None, plugin=plugin))
    except ClimodeError:
        raise
    except Exception as exc:  # imageio raises OSError, ValueError, RuntimeError, ... for a bad file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ClimodeError(f"{path}: cannot decode this video ({reason}); is it a complete video file?") from None
    if gif:
        frames = frames[None] if frames.ndim == 2 or (frames.ndim == 3 and frames.shape[-1] in (3, 4)) else frames
        duration_ms = float(meta.get("duration") or 100.0)
        fps = 1000.0 / max(duration_ms, 1.0)
    else:
        fps = float(meta.get("fps") or 0) or 25.0
        expected = float(meta.get("duration") or 0) * fps
        if expected > 4 and len(frames) < 0.9 * expected - 1:
            raise ClimodeError(
                f"{path}: the file says {expected:.0f} frames but only {len(frames)} decode; it looks truncated"
            )
    if frames.ndim == 3:
        frames = frames[..., None]
    return frames[..., :3], fps


def _decode_images(folder: Path) -> tuple[np.ndarray, float]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ClimodeError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    frames = []
    for f in files:
        try:
            with Image.open(f) as image:
                check_size(f, *image.size, len(files))
                frames.append(np.asarray(image.convert("RGB")))
        except OSError as exc:
            raise ClimodeError(f"{f}: cannot read this image ({exc})") from None
    shapes = {a.shape for a in frames}
    if len(shapes) > 1:
        raise ClimodeError(f"{folder}: the images differ in size ({', '.join(map(str, sorted(shapes)))})")
    return np.stack(frames), IMAGE_FPS


def _square(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, size, size, C): the centred square crop, resized with an antialiasing filter."""
    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    out = []
    for frame in frames[:, top : top + side, left : left + side]:
        image = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)
        out.append(np.asarray(image.resize((size, size), Image.Resampling.LANCZOS)).reshape(size, size, -1))
    return np.stack(out)


def _channels(frames: np.ndarray, channels: int | None) -> np.ndarray:
    """(T, H, W, C) -> the requested channel count: grey (1) from colour by luma, colour (3) from grey
    by replication; None keeps grey videos (all channels equal) as one channel, colour as three."""
    grey = frames.shape[-1] == 1 or bool(
        (frames[..., :1] == frames[..., 1:2]).all() and (frames[..., :1] == frames[..., 2:3]).all()
    )
    want = channels or (1 if grey else 3)
    if want == 1:
        if frames.shape[-1] == 1 or grey:
            return frames[..., :1]
        luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if want == 3:
        return np.repeat(frames[..., :1], 3, -1) if frames.shape[-1] == 1 else frames
    raise ClimodeError(f"video channels must be 1 (grey) or 3 (colour), got {channels}")


def _key(source: Path, size: int, channels: int | None) -> str:
    stat = source.stat()
    if source.is_dir():
        stamps = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(source.iterdir())]
    else:
        stamps = [(stat.st_size, stat.st_mtime_ns)]
    text = json.dumps([CACHE_VERSION, str(source.resolve()), stamps, size, channels])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decode(source: Path, size: int | None, channels: int | None) -> Video:
    """Decode ``source`` (a video file or a folder of images) without the cache; ``size`` None keeps
    the frames' own size and aspect."""
    frames, fps = _decode_images(source) if source.is_dir() else _decode_file(source)
    if len(frames) == 0:
        raise ClimodeError(f"{source}: no frames")
    frames = _channels(frames, channels)
    if size is not None:
        frames = _square(frames, size)
    return Video(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)), fps, source)


def read_video(
    source: str | Path, size: int | None = 128, channels: int | None = None, cache: str | Path | None = None
) -> Video:
    """The frames of ``source`` (a video file or a folder of images), centre-cropped to a square of
    ``size`` x ``size`` pixels (None: the frames as they are), with ``channels`` (1 grey, 3 colour,
    None: as the video is); read from the cache under ``cache`` (default ``default_cache()``) when it
    was decoded before."""
    source = Path(source)
    if not source.exists():
        raise ClimodeError(f"video {source} not found")
    if size is not None and size < 8:
        raise ClimodeError(f"video frame size must be at least 8 pixels, got {size}")
    store = Path(cache) if cache is not None else default_cache()
    key = _key(source, size, channels)
    frames_file, meta_file = store / f"{key}.npy", store / f"{key}.json"
    if frames_file.is_file() and meta_file.is_file():  # the metadata is written last
        fps = float(json.loads(meta_file.read_text())["fps"])
        return Video(np.load(frames_file, mmap_mode="r", allow_pickle=False), fps, source)
    video = decode(source, size, channels)
    store.mkdir(parents=True, exist_ok=True)
    with replacing(frames_file) as tmp, open(tmp, "wb") as f:
        np.save(f, video.frames, allow_pickle=False)
    with replacing(meta_file) as tmp:
        tmp.write_text(json.dumps({"fps": video.fps, "source": str(source), "shape": list(video.frames.shape)}))
    log.debug("decoded %s: %d frames at %.3g fps into %s", source, len(video.frames), video.fps, frames_file)
    return video
