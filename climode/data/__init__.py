"""Datasets by name: each yields samples (see ``climode.data.samples``)."""

from __future__ import annotations

from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ClimodeError
from .bouncing_ball import BouncingBall
from .clips import Clips
from .samples import QuerySampler, collate
from .shards import Shards

DATASETS = ("bouncing-ball", "clips", "cam5", "gridded")


def open_dataset(cfg: DataConfig, split: str, normalisation: dict | None = None) -> Dataset:
    """Open split ``split`` ("train", "val" or "test") of the dataset ``cfg`` describes. ``normalisation``
    replaces the statistics a shard store holds (a model's own, to fine-tune or score it on other data)."""
    if cfg.name == "bouncing-ball":
        size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
        return BouncingBall(
            split,
            size,
            cfg.n_in,
            cfg.n_out,
            cfg.drop,
            cfg.frame_size,
            seed=cfg.seed,
            continuous=cfg.continuous and split == "train",
        )
    if cfg.name in ("clips", "cam5", "gridded") and cfg.path is None:
        raise ClimodeError(
            f"dataset {cfg.name!r} needs data: pass --data " + ("FILE.npz" if cfg.name == "clips" else "STORE.zarr")
        )
    if cfg.name == "clips":
        return Clips(cfg.path, split, cfg.n_in, cfg.n_out)
    if cfg.name in ("cam5", "gridded"):
        return Shards(cfg.path, split, normalisation)
    raise ClimodeError(f"unknown dataset {cfg.name!r}; choose one of {', '.join(DATASETS)}")


__all__ = ["DATASETS", "BouncingBall", "Clips", "QuerySampler", "Shards", "collate", "open_dataset"]
