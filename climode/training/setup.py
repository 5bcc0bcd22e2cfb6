"""What a training run trains, step by step: the config with the caller's overrides, the model chosen
(by name, by the run resumed or by the --init-from model), the data (prepared in the run directory
when its registry entry says so, then opened), and the model config the data decide."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from torch.utils.data import Dataset

from .._version import __version__
from ..checkpoint import Card, Checkpoint, load_model
from ..config import Config, replace
from ..data.contract import DatasetInfo
from ..data.datasets import DATASETS, open_dataset
from ..data.gridded import is_shard_store
from ..errors import ClimodeError
from ..model import LEARNED, VARIANTS, configure
from .checks import check_frame_size, check_initial, check_logger, check_prepared_variables, check_solver_steps

log = logging.getLogger(__name__)
PREPARED = "data.zarr"  # the shard store raw data are prepared into, inside the run directory


def overridden(config: Config, data: dict, train: dict) -> Config:
    """``config`` with the ``data`` and ``train`` settings given (None: the config's), refusing train/val
    time spans for data that are not prepared in the run and a logger that is not installed."""
    config = replace(config, "data", **data)
    if (config.data.train_times or config.data.val_times) and not _prepares(config.data.name):
        prepared = ", ".join(name for name in DATASETS if _prepares(name))
        raise ClimodeError(
            f"--train-times and --val-times choose the blocks of fields prepared in the run (--dataset {prepared}), "
            f"not of {config.data.name}"
        )
    config = replace(config, "train", **train)
    check_logger(config.train.logger)
    return config


def _prepares(name: str | None) -> bool:
    spec = DATASETS.get(name)
    return spec is not None and spec.prepare is not None


def initial_model(path: str | Path | None) -> Checkpoint | None:
    """The model --init-from names ('bundled': the one shipped with climode), or None."""
    if path is None:
        return None
    if path == "bundled":
        from ..forecasting import bundled_checkpoint

        path = bundled_checkpoint()
    init = load_model(path)
    if init.model.config.architecture not in LEARNED:
        raise ClimodeError(f"--init-from {path}: {init.model.config.architecture} has no weights to start from")
    return init


def chosen_model(
    config: Config, model: str | None, resume: str | None, init: Checkpoint | None, out: Path
) -> tuple[Config, dict]:
    """The config with the --init-from model's config, and the model settings ``model`` (a name of
    ``climode.model.MODELS``, with its variant's) sets once the data are known; a name the resumed run
    or the --init-from model does not train is refused."""
    chosen = {"architecture": model, **VARIANTS.get(model, {})} if model and not resume else {}
    if model and resume and model != config.model.architecture:
        raise ClimodeError(f"cannot resume {out} as --model {model}: that run trains {config.model.architecture}")
    if init is not None:
        kept = init.model.config
        if model and model != kept.architecture:
            raise ClimodeError(f"--init-from {init.path} holds a {kept.architecture} model, not --model {model}")
        config, chosen = dataclasses.replace(config, model=kept), {}
    return config, chosen


def training_data(
    config: Config, out: Path, init: Checkpoint | None, clear: bool, launcher: bool
) -> tuple[Config, Dataset, Dataset]:
    """The config (its data path the prepared store's, where the data were prepared) and the train and
    validation sets, scaled as the --init-from model was. Data that the dataset's registry entry prepares
    (``DatasetSpec.prepare``) are prepared into ``out/data.zarr`` by the launching process, unless they are
    a shard store already; other data are opened first. An existing run that ``clear`` replaces is removed
    once the data are known to open, and before data are prepared into its directory."""
    spec = DATASETS.get_method(config.data.name)
    prepare = spec.prepare is not None and config.data.path and not is_shard_store(config.data.path)
    if init is not None and prepare:
        check_prepared_variables(init, config.data)
    normalisation = init.card.normalisation if init is not None else None
    splits = lambda: tuple(open_dataset(config.data, split, normalisation) for split in ("train", "val"))
    train_set, val_set = (None, None) if prepare else splits()
    if clear and launcher:
        shutil.rmtree(out)
    if prepare:
        if launcher:  # a refused input leaves nothing behind (``run_lock``)
            spec.prepare(config.data, out / PREPARED)
        config = replace(config, "data", path=str(out / PREPARED))
        train_set, val_set = splits()
    return config, train_set, val_set


def card_of(info: DatasetInfo) -> Card:
    """The card of a model trained on data of ``info``: their variables, scaling, time units and grid."""
    return Card(
        variables=info.variables,
        time_units=info.time_units,
        normalisation=info.normalisation,
        grid=info.grid,
        climode_version=__version__,
    )


def model_config(
    config: Config, train_set: Dataset, val_set: Dataset, chosen: dict, init: Checkpoint | None
) -> tuple[Config, Card]:
    """The config the data decide (sample sizes, channels, frame shape, by default the model's time unit:
    the data's storage step) with the ``chosen`` model settings, and the card of the model trained on
    them; refused before any file is written when the --init-from model, the frame size, the samples'
    time spans or the model (e.g. pysteps missing) cannot train here."""
    info = train_set.info
    config = replace(config, "data", n_in=info.n_in, n_out=info.n_out)
    if config.model.time_scale is None:  # one model time unit: the data's storage step
        config = replace(config, "model", time_scale=float(info.time_step or 1.0))
        if info.time_units == "hours":
            log.info(
                "model time unit: %g h (the data's storage step; set model.time_scale to choose)",
                config.model.time_scale,
            )
    channels, *frame_shape = train_set[0]["frames_in"].shape[1:]
    card = card_of(info)
    if init is not None:
        check_initial(init, card, frame_shape)
    n_in = config.data.n_in if chosen.get("encoder", config.model.encoder) == "conv" else None
    config = replace(config, "model", channels=channels, n_in=n_in, frame_shape=frame_shape, **chosen)
    check_frame_size(frame_shape, config)
    if config.model.architecture in LEARNED:
        check_solver_steps((train_set, val_set), config)
    configure(config.model)
    return config, card
