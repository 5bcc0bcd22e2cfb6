"""Datasets by name (``DATASETS``): each entry is a ``DatasetSpec``, the one place that knows what is
particular to a dataset. Its opener is called as ``spec.open(cfg, split, normalisation)`` with a
``DataConfig``, a split ("train", "val" or "test") and optional statistics, and returns a torch
Dataset of samples (``climode.data.contract.Sample``) that declares its ``info``
(``climode.data.contract.DatasetInfo``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ClimodeError
from ..normalise import Stats
from ..registry import Registry
from ..video.layouts import LAYOUTS
from .bouncing_ball import BouncingBall
from .clips import Clips
from .contract import checked
from .gridded import prepare as prepare_gridded
from .shards import Shards

log = logging.getLogger(__name__)
Opener = Callable[[DataConfig, str, "Stats | None"], Dataset]
Preparer = Callable[[DataConfig, Path], None]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's registry entry.

    open : the opener, ``open(cfg, split, normalisation) -> Dataset``.
    default_config : the built-in config (``climode.configs``) a run on it gets without one; None: the defaults.
    prepare : ``prepare(cfg, store)`` turns the raw files at ``cfg.path`` into a shard store ``store``
        that ``open`` reads; training runs it in the run directory unless ``cfg.path`` is a shard store
        already, and only such data take train/val time spans (``data.train_times``/``val_times``).
    storms : storm tiles with tracks: the protocols build synthetic storms for it, score the storms
        (track, intensity) and report leads in hours.
    time_scale : the model time unit the protocols train with, in the data's time units.
    video : a video layout: the protocols run its video tasks on the user's copy under ``--root``.
    """

    open: Opener
    default_config: str | None = None
    prepare: Preparer | None = None
    storms: bool = False
    time_scale: float = 1.0
    video: bool = False


def _bouncing_ball(cfg: DataConfig, split: str, normalisation: Stats | None) -> Dataset:
    size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
    continuous = cfg.continuous and split == "train"
    return BouncingBall(
        split, size, cfg.n_in, cfg.n_out, cfg.drop, cfg.frame_size, seed=cfg.seed, continuous=continuous
    )


def _scenes(cfg: DataConfig, split: str, normalisation: Stats | None) -> Dataset:
    from ..video.scenes import Scenes

    size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
    return Scenes(split, size, cfg.n_in, cfg.n_out, cfg.frame_size, seed=cfg.seed)


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


def _prepare_gridded(cfg: DataConfig, store: Path) -> None:
    """Every window of the gridded fields at ``cfg.path`` into the shard store ``store``."""
    if not cfg.variables:
        raise ClimodeError(f"dataset {cfg.name!r} needs --vars (e.g. --vars U850=u,V850=v or --vars precip)")
    store.parent.mkdir(parents=True, exist_ok=True)
    log.info("preparing every window of %s into %s", cfg.path, store)
    prepare_gridded(
        cfg.path,
        store,
        cfg.variables,
        cfg.n_in,
        cfg.n_out,
        time_in_hours=cfg.time_in_hours,
        reference_time=cfg.reference_time,
        seed=cfg.seed,
        overwrite=True,
        train_times=cfg.train_times,
        val_times=cfg.val_times,
    )


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    {
        "bouncing-ball": DatasetSpec(_bouncing_ball),
        "clips": DatasetSpec(_clips),
        "scenes": DatasetSpec(_scenes, "video-bundled"),
        "cam5": DatasetSpec(_shards, "cam5-small", storms=True, time_scale=3.0),
        "gridded": DatasetSpec(_shards, "gridded-small", prepare=_prepare_gridded),
        **dict.fromkeys(LAYOUTS, DatasetSpec(_video, "video", video=True)),
    },
)


def open_dataset(cfg: DataConfig, split: str, normalisation: Stats | None = None) -> Dataset:
    """Open split ``split`` ("train", "val" or "test") of the dataset ``cfg`` describes. ``normalisation``
    replaces the statistics a shard store holds (a model's own, to fine-tune or score it on other data).
    A dataset that declares no ``info`` is refused here (TypeError)."""
    return checked(DATASETS.get_method(cfg.name).open(cfg, split, normalisation), cfg.name)
