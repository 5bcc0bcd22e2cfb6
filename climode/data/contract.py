"""What every dataset declares and yields: its ``info`` (``DatasetInfo``, the metadata the trainer,
the checkpoint's card and scoring read) and its samples (``Sample``; batched by ``collate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from ..normalise import Stats


class Sample(TypedDict):
    """One sample: ``frames_in`` (L, C, H, W) float32, NaN where a cell is missing (an all-NaN frame is a
    missing observation); ``times_in`` (L,) strictly increasing, in the dataset's ``time_units``;
    ``frames_out`` (K, C, H, W) float32 targets, NaN where unknown; ``times_out`` (K,) strictly
    increasing, between the inputs (interpolation) or after them (extrapolation)."""

    frames_in: np.ndarray
    times_in: np.ndarray
    frames_out: np.ndarray
    times_out: np.ndarray


@dataclass(frozen=True)
class DatasetInfo:
    """The metadata every dataset declares as its ``info``.

    variables : channel names, in channel order.
    time_units : the unit of the samples' times ("hours", "frames", "file units").
    n_in, n_out : input frames and targets of a sample.
    time_step : the data's storage step in ``time_units`` (the model's time unit unless the config
        sets ``model.time_scale``); 1 for frames.
    normalisation : the statistics the samples are scaled with (physical units are
        ``normalisation.denormalise``); None when they are not scaled.
    grid : for gridded data, {"resolution": degrees or None (native), "tile_shape": [H, W],
        "calendar", "units"}; None otherwise.
    places : the dataset has ``place(i)``: the case sample ``i`` belongs to (``storm``: a storm, a
        video) and, for geographic tiles, their ``lat``/``lon`` (None otherwise) and storm ``centre``.
    time_spans : (N, 2) each sample's input span (first to last input) and lead (last input to last
        target) where samples' times differ (clips); None: the first sample's stand for all.
    """

    variables: tuple[str, ...]
    time_units: str
    n_in: int
    n_out: int
    time_step: float = 1.0
    normalisation: Stats | None = None
    grid: dict | None = None
    places: bool = False
    time_spans: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "variables", tuple(self.variables))
        if not self.variables or self.n_in < 1 or self.n_out < 0:
            raise ValueError(f"a dataset needs variables, n_in >= 1 and n_out >= 0, got {self}")


def checked(dataset, name: str):
    """``dataset`` once it declares its ``info`` (``DatasetInfo``); TypeError naming dataset ``name``
    when it does not, at open time rather than as a missing field later."""
    try:
        info = dataset.info
    except AttributeError:
        info = None
    if not isinstance(info, DatasetInfo):
        raise TypeError(
            f"dataset {name!r} ({type(dataset).__name__}) declares no info: DatasetInfo "
            f"(climode.data.contract), found {info!r}"
        )
    return dataset
