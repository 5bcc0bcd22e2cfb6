"""Fitting a model with Lightning: the trainer (checkpoints, the best model, loggers), the task (new
or from saved weights), the data loaders, and what a stop by SIGTERM or Ctrl-C leaves (a model and
a checkpoint to resume from)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import Card, Checkpoint, save_model
from ..config import Config, TrainConfig
from ..data.samples import QuerySampler, collate
from .rundir import log_version
from .task import ForecastTask, steps_per_update

log = logging.getLogger(__name__)


class BestModel(Callback):
    """Write ``best.safetensors`` (the moving-average weights) whenever the validation MSE is the lowest
    so far; the best score is part of the training checkpoint, so a resumed run keeps it."""

    def __init__(self, path: Path):
        self.path, self.best = path, float("inf")

    def on_validation_end(self, trainer: L.Trainer, task: ForecastTask) -> None:
        score = trainer.callback_metrics.get("val/mse")
        if trainer.sanity_checking or score is None or not float(score) < self.best:
            return
        self.best = float(score)
        if trainer.is_global_zero:
            model = task.averaged()
            save_model(
                self.path,
                model,
                dataclasses.replace(task.checkpoint_card(), val_mse=self.best, epoch=int(trainer.current_epoch)),
            )

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])


def quiet_lightning() -> None:
    """Silence Lightning's notices that say nothing to a climode user."""
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.pytorch.accelerators.cuda",
        "lightning.fabric.utilities.seed",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*find_unused_parameters=True was specified.*")
    warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # mid-epoch resume draws the rest of the epoch from a fresh shuffle (documented in docs/training.md)
    warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")


def loggers(kind: str, out: Path, version: str) -> list:
    """CSV metrics always (logs/metrics.csv); with "tensorboard", TensorBoard event files in logs/tensorboard
    (its package checked by ``check_logger``)."""
    found = [CSVLogger(out, name="", version=version)]
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        found.append(TensorBoardLogger(out / version, name="", version="tensorboard", default_hp_metric=False))
    return found


def lightning_trainer(settings: TrainConfig, out: Path, resuming: bool) -> L.Trainer:
    """The Lightning trainer of ``settings``: checkpoints (``out/checkpoints``, ``last.ckpt`` every
    ``checkpoint_every`` updates), the best model, a progress bar and the loggers."""
    updates_per_batch = steps_per_update(settings)
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        save_last=True,
        save_top_k=0,
        every_n_train_steps=settings.checkpoint_every * updates_per_batch,
    )
    return L.Trainer(
        accelerator=settings.accelerator,
        devices=settings.devices,
        deterministic=settings.deterministic,
        strategy="ddp_find_unused_parameters_true" if settings.devices > 1 else "auto",
        max_epochs=settings.max_epochs,
        max_steps=settings.max_steps * updates_per_batch if settings.max_steps > 0 else -1,
        check_val_every_n_epoch=settings.val_every,
        default_root_dir=out,
        callbacks=[
            checkpoints,
            BestModel(out / "best.safetensors"),
            TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else 50),
        ],
        logger=loggers(settings.logger, out, log_version(out, resuming)),
        log_every_n_steps=settings.log_every,
        enable_model_summary=False,
    )


def forecast_task(config: Config, card: Card, init: Checkpoint | None) -> ForecastTask:
    """The task training ``config.model``, from the --init-from model's weights when given."""
    task = ForecastTask(config, card)
    if init is not None:
        task.model.load_state_dict(init.model.state_dict())
        if task.ema is not None:
            task.ema.module.load_state_dict(init.model.state_dict())
        log.info("starting from the weights of %s", init.path)
    return task


def loaders(config: Config, train_set: Dataset, val_set: Dataset) -> tuple[DataLoader, DataLoader | None]:
    """The training loader (shuffled; random query sets with ``data.queries: random``) and the validation
    loader, None without validation samples."""
    settings, data = config.train, config.data
    samples = QuerySampler(train_set, data.hide, data.seed, data.missing) if data.queries == "random" else train_set
    loader = lambda ds, shuffle: DataLoader(
        ds,
        settings.batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        num_workers=settings.num_workers,
        persistent_workers=settings.num_workers > 0,
    )
    return loader(samples, True), loader(val_set, False) if len(val_set) else None


@contextlib.contextmanager
def stop_handling(trainer: L.Trainer, task: ForecastTask, out: Path) -> Iterator[None]:
    """On SIGTERM (a scheduler's time limit) or Ctrl-C inside, save the model and the checkpoint to resume
    from, say so, and exit with 128 + SIGTERM (or let the interrupt go on)."""
    try:
        yield
    except (SIGTERMException, KeyboardInterrupt) as stop:
        path = export(trainer, task, out)
        log.warning(
            "stopped by %s after %d updates: wrote %s and checkpoints/last.ckpt (continue with --resume)",
            "SIGTERM" if isinstance(stop, SIGTERMException) else "an interrupt",
            trainer.global_step // steps_per_update(task.config.train), path,
        )  # fmt: skip
        if isinstance(stop, SIGTERMException):
            raise SystemExit(128 + signal.SIGTERM) from None
        raise


def fit(
    config: Config,
    card: Card,
    out: Path,
    datasets: tuple[Dataset, Dataset],
    ckpt_path: str | None,
    init: Checkpoint | None,
    launcher: bool,
) -> Path | None:
    """Train ``config``'s learned model on the train and validation ``datasets`` into ``out`` (resuming
    ``ckpt_path``); return its ``model.safetensors`` (None on the other processes)."""
    quiet_lightning()
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    trainer = lightning_trainer(config.train, out, bool(ckpt_path))
    task = forecast_task(config, card, init)
    if ckpt_path and launcher:
        log.info("resuming from %s", ckpt_path)
    if not len(datasets[1]):
        log.warning("no validation samples: training without validation")
    train_loader, val_loader = loaders(config, *datasets)
    with stop_handling(trainer, task, out):
        trainer.fit(task, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    return export(trainer, task, out)


def parameter_free(config: Config, card: Card, out: Path, launcher: bool) -> Path | None:
    """Write a model without parameters (a baseline) at once: nothing to train."""
    if not launcher:
        return None
    log.info("%s has no parameters: nothing to train", config.model.architecture)
    task = ForecastTask(config, card)
    return save_model(out / "model.safetensors", task.model, task.checkpoint_card())


def export(trainer: L.Trainer, task: ForecastTask, out: Path) -> Path | None:
    """The run's last checkpoint and its model (the moving-average weights) as model.safetensors."""
    trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=False)
    if not trainer.is_global_zero:
        return None
    return save_model(out / "model.safetensors", task.averaged().cpu(), task.checkpoint_card())
