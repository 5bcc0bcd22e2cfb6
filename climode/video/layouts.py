"""The video datasets in their published layouts, each split as its authors split it.

``LAYOUTS.get_method(name)(root, seed)`` returns ``{"train": [...], "val": [...], "test": [...]}``,
lists of sources (video files or folders of images), sorted; a folder that is not the named layout
is refused with what was expected and what was found. Each entry (a ``Layout``) also writes a fake
clip where its dataset keeps one (``write_clip``, for ``climode.video.synthetic``).

- ``kth`` (KTH Action): ``ROOT/<action>/personNN_<action>_dN_uncomp.avi`` for the six actions;
  persons 1-16 train, 17-25 test (the paper's split); no validation set.
- ``mgif`` (Moving GIF): ``ROOT/train/*.gif`` and ``ROOT/test/*.gif`` as published (900 / 100), or
  one folder of ``.gif`` files split 9 : 1 in name order.
- ``penn`` (Penn Action): ``ROOT/frames/NNNN/*.jpg`` with ``ROOT/labels/NNNN.mat`` whose ``train``
  flag (1 train, -1 test) is the dataset's own split.
- ``folder``: any videos (``VIDEO_SUFFIXES``) or folders of images under ROOT, split 80 / 10 / 10 by
  a seeded shuffle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ClimodeError
from ..registry import Registry
from .readers import IMAGE_SUFFIXES, VIDEO_SUFFIXES

KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_TRAIN_PERSONS = range(1, 17)  # 17-25 test
_KTH_NAME = re.compile(r"person(\d+)_([a-z]+)_d\d+(_uncomp)?\.avi", re.IGNORECASE)


def _root(root: str | Path, layout: str, expected: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ClimodeError(f"--root {root} is not a folder; {layout} expects {expected}")
    return root


def _found(root: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else "nothing (an empty folder)"


def kth(root: str | Path, seed: int = 0) -> dict[str, list[Path]]:
    expected = f"the KTH Action layout, <action>/personNN_<action>_dN_uncomp.avi for {', '.join(KTH_ACTIONS)}"
    root = _root(root, "kth", expected)
    split: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for action in KTH_ACTIONS:
        for path in sorted((root / action).glob("*.avi")) if (root / action).is_dir() else []:
            match = _KTH_NAME.fullmatch(path.name)
            if match is None:
                continue
            split["train" if int(match.group(1)) in KTH_TRAIN_PERSONS else "test"].append(path)
    if not split["train"] and not split["test"]:
        raise ClimodeError(f"{root} is not {expected}; it holds {_found(root)}")
    return split


def _kth_clip(root: Path, i: int, videos: int, clip: np.ndarray) -> Path:
    """Grey .avi (MPEG-4), spread over the six actions and persons 1-25 (so both splits hold videos)."""
    import imageio.v3 as iio

    action = KTH_ACTIONS[i % len(KTH_ACTIONS)]
    person = 1 + (i * 7) % 25
    path = root / action / f"person{person:02d}_{action}_d{1 + i % 4}_uncomp.avi"
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, clip, plugin="FFMPEG", fps=25, codec="mpeg4", quality=9, macro_block_size=1,
                ffmpeg_log_level="error")  # fmt: skip
    return path


def mgif(root: str | Path, seed: int = 0) -> dict[str, list[Path]]:
    expected = "the Moving GIF layout, train/*.gif and test/*.gif (or one folder of .gif files)"
    root = _root(root, "mgif", expected)
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = (sorted((root / s).glob("*.gif")) for s in ("train", "test"))
    else:
        files = sorted(root.glob("*.gif"))
        cut = len(files) - max(len(files) // 10, 1) if len(files) > 1 else len(files)
        train, test = files[:cut], files[cut:]
    if not train and not test:
        raise ClimodeError(f"{root} is not {expected}; it holds {_found(root)}")
    return {"train": train, "val": [], "test": test}


def _mgif_clip(root: Path, i: int, videos: int, clip: np.ndarray) -> Path:
    """Colour .gif under train/ and test/ (every tenth a test one, and the last when fewer than ten)."""
    import imageio.v3 as iio

    split = "test" if i % 10 == 9 or (i == videos - 1 and videos < 10) else "train"
    path = root / split / f"{i:05d}.gif"
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, clip, duration=40, loop=0)
    return path


def _penn_flag(path: Path) -> int:
    from scipy.io import loadmat

    try:
        flag = loadmat(path, variable_names=["train"]).get("train")
    except (OSError, ValueError, TypeError) as exc:
        raise ClimodeError(f"{path}: cannot read this Penn Action label file ({exc})") from None
    if flag is None or np.asarray(flag).size != 1:
        raise ClimodeError(f"{path}: no scalar 'train' flag (1 train, -1 test) in this Penn Action label file")
    return int(np.asarray(flag).item())


def penn(root: str | Path, seed: int = 0) -> dict[str, list[Path]]:
    expected = "the Penn Action layout, frames/NNNN/*.jpg with labels/NNNN.mat"
    root = _root(root, "penn", expected)
    frames, labels = root / "frames", root / "labels"
    if not frames.is_dir() or not labels.is_dir():
        raise ClimodeError(f"{root} is not {expected}; it holds {_found(root)}")
    split: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for folder in sorted(p for p in frames.iterdir() if p.is_dir()):
        label = labels / f"{folder.name}.mat"
        if not label.is_file():
            raise ClimodeError(f"{folder} has no label file {label} (Penn Action's train/test flag)")
        split["train" if _penn_flag(label) == 1 else "test"].append(folder)
    if not split["train"] and not split["test"]:
        raise ClimodeError(f"{root} is not {expected}; frames/ holds no sequence folders")
    return split


def _penn_clip(root: Path, i: int, videos: int, clip: np.ndarray) -> Path:
    """Colour .jpg frames under frames/NNNN with labels/NNNN.mat's train flag (every third sequence a test one)."""
    import imageio.v3 as iio
    from scipy.io import savemat

    path = root / "frames" / f"{i + 1:04d}"
    path.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(clip):
        iio.imwrite(path / f"{t + 1:06d}.jpg", frame, quality=95)
    (root / "labels").mkdir(exist_ok=True)
    savemat(root / "labels" / f"{i + 1:04d}.mat", {"train": -1 if i % 3 == 2 else 1, "nframes": len(clip)})
    return path


def folder(root: str | Path, seed: int = 0) -> dict[str, list[Path]]:
    expected = f"videos ({', '.join(VIDEO_SUFFIXES)}) or folders of images ({', '.join(IMAGE_SUFFIXES)})"
    root = _root(root, "folder", expected)
    sources = sorted(
        p
        for p in root.iterdir()
        if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        or (p.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()))
    )
    if not sources:
        raise ClimodeError(f"{root} holds no {expected}; it holds {_found(root)}")
    order = np.random.default_rng(seed).permutation(len(sources))
    n_test = max(round(0.1 * len(sources)), 1) if len(sources) > 1 else 0
    n_val = round(0.1 * len(sources)) if len(sources) > 2 else 0
    picked = [sources[i] for i in order]
    return {
        "test": sorted(picked[:n_test]),
        "val": sorted(picked[n_test : n_test + n_val]),
        "train": sorted(picked[n_test + n_val :]),
    }


def _folder_clip(root: Path, i: int, videos: int, clip: np.ndarray) -> Path:
    """An H.264 .mp4 at 25 fps."""
    import imageio.v3 as iio

    root.mkdir(parents=True, exist_ok=True)
    path = root / f"clip{i:03d}.mp4"
    iio.imwrite(path, clip, plugin="FFMPEG", fps=25.0, codec="libx264", macro_block_size=1, ffmpeg_log_level="error")
    return path


@dataclass(frozen=True)
class Layout:
    """A video dataset's published layout. Called as ``layout(root, seed)``, it splits the sources under
    ``root`` (``split``); ``write_clip(root, i, videos, clip)`` writes fake clip ``i`` of ``videos``
    (``clip``: (T, H, W, 3) uint8) where the dataset keeps one and returns the written path."""

    split: Callable[[str | Path, int], dict[str, list[Path]]]
    write_clip: Callable[[Path, int, int, np.ndarray], Path]
    colour: bool = True  # False: a grey dataset (its fake clips grey too)

    def __call__(self, root: str | Path, seed: int = 0) -> dict[str, list[Path]]:
        return self.split(root, seed)


LAYOUTS: Registry[Layout] = Registry(
    "video dataset",
    {
        "kth": Layout(kth, _kth_clip, colour=False),
        "mgif": Layout(mgif, _mgif_clip),
        "penn": Layout(penn, _penn_clip),
        "folder": Layout(folder, _folder_clip),
    },
)
