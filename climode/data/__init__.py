"""Datasets by name: each yields samples (see ``climode.data.samples``)."""
from __future__ import annotations

from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ClimodeError
from .bouncing_ball import BouncingBall
from .clips import Clips
from .samples import collate

DATASETS = ("bouncing-ball", "clips")


def open_dataset(cfg: DataConfig, split: str) -> Dataset:
    """Open split ``split`` ("train", "val" or "test") of the dataset ``cfg`` describes."""
    if cfg.name == "bouncing-ball":
        size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
        return BouncingBall(split, size, cfg.n_in, cfg.n_out, cfg.drop, cfg.frame_size, seed=cfg.seed)
    if cfg.name == "clips":
        if cfg.path is None:
            raise ClimodeError("dataset 'clips' needs a file: pass --data FILE.npz")
        return Clips(cfg.path, split, cfg.n_in, cfg.n_out)
    raise ClimodeError(f"unknown dataset {cfg.name!r}; choose one of {', '.join(DATASETS)}")


__all__ = ["DATASETS", "BouncingBall", "Clips", "collate", "open_dataset"]
