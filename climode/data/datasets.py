"""Datasets by name (``DATASETS``): each opener is called as ``opener(cfg, split, normalisation)``
with a ``DataConfig``, a split ("train", "val" or "test") and optional statistics, and returns a
torch Dataset of samples (see ``climode.data.samples``)."""

from __future__ import annotations

from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ClimodeError
from ..normalise import Stats
from ..registry import Registry
from ..video.layouts import LAYOUTS
from .bouncing_ball import BouncingBall
from .clips import Clips
from .shards import Shards


def _bouncing_ball(cfg: DataConfig, split: str, normalisation: Stats | None) -> Dataset:
    size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
    continuous = cfg.continuous and split == "train"
    return BouncingBall(
        split, size, cfg.n_in, cfg.n_out, cfg.drop, cfg.frame_size, seed=cfg.seed, continuous=continuous
    )


def _path(cfg: DataConfig, example: str) -> str:
    if cfg.path is None:
        raise ClimodeError(f"dataset {cfg.name!r} needs data: pass --data {example}")
    return cfg.path


def _clips(cfg: DataConfig, split: str, normalisation: Stats | None) -> Dataset:
    return Clips(_path(cfg, "FILE.npz"), split, cfg.n_in, cfg.n_out)


def _shards(cfg: DataConfig, split: str, normalisation: Stats | None) -> Dataset:
    return Shards(_path(cfg, "STORE.zarr"), split, normalisation)


def _video(cfg: DataConfig, split: str, normalisation: Stats | None) -> Dataset:
    from ..video.clips import VideoClips

    sources = LAYOUTS.get_method(cfg.name)(_path(cfg, "ROOT (or --root ROOT)"), cfg.seed)[split]
    if not sources and split != "val":
        raise ClimodeError(f"{cfg.name} dataset under {cfg.path} has no {split} videos")
    return VideoClips(
        sources,
        cfg.task,
        cfg.n_in,
        cfg.n_out,
        size=cfg.frame_size,
        channels=cfg.channels,
        stride=cfg.stride,
        clips_per_video=0 if split == "train" else cfg.clips_per_video,
        drop=cfg.drop,
        augment=cfg.augment and split == "train",
        seed=cfg.seed,
        cache=cfg.cache,
    )


DATASETS: Registry = Registry(
    "dataset",
    {
        "bouncing-ball": _bouncing_ball,
        "clips": _clips,
        "cam5": _shards,
        "gridded": _shards,
        **dict.fromkeys(LAYOUTS, _video),
    },
)


def open_dataset(cfg: DataConfig, split: str, normalisation: Stats | None = None) -> Dataset:
    """Open split ``split`` ("train", "val" or "test") of the dataset ``cfg`` describes. ``normalisation``
    replaces the statistics a shard store holds (a model's own, to fine-tune or score it on other data)."""
    return DATASETS.get_method(cfg.name)(cfg, split, normalisation)
