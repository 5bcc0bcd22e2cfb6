"""The video datasets in their published layouts, each split as its authors split it.

``LAYOUTS.get_method(name)(root, seed)`` returns ``{"train": [...], "val": [...], "test": [...]}``,
lists of sources (video files or folders of images), sorted; a folder that is not the named layout
is refused with what was expected and what was found.

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


LAYOUTS: Registry = Registry("video dataset", {"kth": kth, "mgif": mgif, "penn": penn, "folder": folder})
