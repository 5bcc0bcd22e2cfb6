"""The training run behind ``python -m climode.train`` and ``climode.training.train``: the run directory,
the data, the model (new, resumed or started from saved weights), Lightning, the saved models."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import shutil
import signal
import sys
import warnings
import zipfile
from importlib.util import find_spec
from pathlib import Path

import lightning as L
import numpy as np
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from .._version import __version__
from ..checkpoint import Card, Checkpoint, load_model, save_model
from ..config import Config, config_from_dict, load_config, replace
from ..data import QuerySampler, collate, open_dataset
from ..data.gridded import is_shard_store
from ..data.gridded import prepare as prepare_gridded
from ..errors import ClimodeError
from ..io.fields import parse_variables
from ..io.write import is_current, replacing, sign
from ..model import LEARNED, VARIANTS, configure
from ..model.discriminator import PatchDiscriminator
from ..video.layouts import LAYOUTS
from .task import ForecastTask, steps_per_update

log = logging.getLogger(__name__)
RUN_FILE = "run.yaml"
MAX_SOLVER_STEPS = 10_000  # ODE solver steps per sample: far above a sensible run's (tens to hundreds)
DEFAULT_CONFIGS = {
    "cam5": "cam5-small",
    "gridded": "gridded-small",
    **dict.fromkeys(LAYOUTS, "video"),
}  # the built-in config a dataset gets without --config


def _prepare_run_dir(
    out: Path,
    config: Config | dict | str | Path | None,
    dataset: str | None,
    resume: str | None,
    overwrite: bool,
    launcher: bool,
) -> tuple[Config, bool]:
    """Check ``out`` against ``resume``/``overwrite``; return the run's config and whether ``out`` must be
    cleared (an existing run that ``overwrite`` replaces, removed only once every check has passed)."""
    run_file = out / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise ClimodeError(f"cannot resume: {out} holds no climode run ({RUN_FILE} not found)")
        saved = config_from_dict(yaml.safe_load(run_file.read_text()), str(run_file))
        path = saved.data.path
        if path and not Path(path).is_absolute():  # relative to the run directory (``_run_relative``)
            saved = replace(saved, "data", path=os.path.normpath(out / path))
        return saved, False
    if isinstance(config, dict):
        config = config_from_dict(config)
    elif not isinstance(config, Config):
        config = load_config(str(config) if config is not None else DEFAULT_CONFIGS.get(dataset))
    if launcher and out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ClimodeError(
                f"{out} already holds files; pass --resume to continue that run, "
                "--overwrite to replace it, or choose another --out"
            )
        if not run_file.is_file():
            raise ClimodeError(f"refusing to overwrite {out}: it is not a climode run directory (no {RUN_FILE})")
        return config, True
    return config, False


def _run_relative(config: Config, out: Path) -> Config:
    """``config`` as ``run.yaml`` keeps it: the data path relative to the run directory, so that a
    resume works from any working directory (and after moving the run and its data together)."""
    path = config.data.path
    if not path or "://" in str(path):
        return config
    return replace(config, "data", path=os.path.relpath(os.path.abspath(path), os.path.abspath(out)))


def _initial_model(path: str | None) -> Checkpoint | None:
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


def _check_initial(init: Checkpoint, data: Card, frame_shape: list[int]) -> None:
    """Refuse an --init-from model trained on other variables, time units or grid than the data."""
    what = f"--init-from {init.path}"
    if list(init.variables) != list(data.variables):
        raise ClimodeError(
            f"{what} forecasts {', '.join(init.variables)} but the data hold {', '.join(data.variables)}"
        )
    if init.card.time_units != data.time_units:
        raise ClimodeError(
            f"{what} was trained on times in {init.card.time_units!r}, the data are in {data.time_units!r}"
        )
    mine, theirs = init.card.grid or {}, data.grid or {}
    if mine.get("resolution") != theirs.get("resolution"):
        say = lambda r: "the native grid" if r is None else f"a {r:g}-degree grid"
        raise ClimodeError(
            f"{what} was trained on {say(mine.get('resolution'))}, the data are on {say(theirs.get('resolution'))}"
        )
    shape = init.model.config.frame_shape
    if init.model.config.derivative == "fc" and shape and list(shape) != list(frame_shape):
        raise ClimodeError(
            f"{what} ({init.model.config.architecture}) was built for {shape[0]} x {shape[1]} frames, "
            f"the data have {frame_shape[0]} x {frame_shape[1]}"
        )


def _check_frame_size(frame_shape: list[int], config: Config) -> None:
    """Refuse, for adversarial training of a learned model, frames smaller than the discriminators
    accept (the models themselves pad any frame), naming the data, the size and the way out."""
    need = PatchDiscriminator.MIN_SIZE
    if config.model.architecture in LEARNED and config.train.adversarial and min(frame_shape) < need:
        where = config.data.path or f"dataset {config.data.name!r}"
        raise ClimodeError(
            f"{where}: frames are {frame_shape[0]} x {frame_shape[1]} cells; adversarial training needs at least "
            f"{need} x {need} (the discriminators halve them three times); give larger frames or set "
            "train.adversarial: false"
        )


def _time_spans(dataset) -> np.ndarray:
    """(N, 2): each sample's input span (first to last input) and lead (last input to last target) in the
    data's units; of every sample where the dataset keeps their times (clips), else of its first."""
    if hasattr(dataset, "time_spans"):
        return dataset.time_spans()
    if not len(dataset):
        return np.zeros((0, 2))
    sample = dataset[0]
    t_in, t_out = (np.asarray(sample[key], dtype=np.float64) for key in ("times_in", "times_out"))
    last = np.nanmax(t_in)
    return np.array([[last - np.nanmin(t_in), np.nanmax(t_out) - last]])


def _check_solver_steps(datasets, config: Config) -> None:
    """Refuse samples whose time spans would take the ODE solvers more than ``MAX_SOLVER_STEPS`` steps
    each (times in other units than the model's, e.g. scaled by 1e12: one update would run for days),
    naming the span, the steps and the ``model.time_scale`` that would fit (the sample's mean gap)."""
    model = config.model
    scale = model.time_scale or 1.0
    step = lambda solver: solver.step_size if solver.method != "dopri5" else 1.0  # dopri5: nominally one unit
    steps_in, steps_out = step(model.encoder_solver), step(model.decoder_solver)
    for dataset in datasets:
        spans = _time_spans(dataset)
        steps = spans[:, 0] / (scale * steps_in) + spans[:, 1] / (scale * steps_out)
        if not len(steps) or np.all(steps <= MAX_SOLVER_STEPS):
            continue
        worst = int(np.nanargmax(np.nan_to_num(steps, nan=np.inf)))
        span_in, lead = spans[worst]
        raise ClimodeError(
            f"{config.data.path or config.data.name}: a sample spans {span_in:g} time units of inputs and {lead:g} "
            f"of lead, {steps[worst]:.3g} ODE solver steps at model.time_scale {scale:g} with solver steps of "
            f"{steps_in:g} (encoder) and {steps_out:g} (decoder) model units, over the {MAX_SOLVER_STEPS} a sample "
            f"may take; rescale the times or set model.time_scale to their step (about "
            f"{(span_in + lead) / (config.data.n_in + config.data.n_out - 1):.3g} in that sample)"
        )


def _check_logger(kind: str) -> None:
    """Refuse, before any work, a logger whose package is not installed, with the command that installs it."""
    if kind == "tensorboard" and not any(find_spec(name) for name in ("tensorboardX", "tensorboard")):
        raise ClimodeError(
            "--logger tensorboard needs tensorboardX (or tensorboard), which is not installed; install it from the "
            'climode checkout with: .venv/bin/python -m pip install -c constraints.txt -e ".[tensorboard]"'
        )


def _resume_path(out: Path, resume: str | None) -> str | None:
    if not resume:
        return None
    path = out / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise ClimodeError(f"cannot resume: checkpoint {path} not found")
    try:  # the zip's central directory sits at its end: a truncated file fails here, without reading it all
        zipfile.ZipFile(path).close()
    except (zipfile.BadZipFile, OSError) as exc:
        others = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt") if p != path)
        hint = f"; resume from another: {', '.join(others)}" if others else ""
        raise ClimodeError(f"cannot resume: checkpoint {path} is truncated or corrupt ({exc}){hint}") from None
    return str(path)


def _prepare_gridded(config: Config, out: Path) -> Config:
    """Turn gridded fields into shards of every window inside the run directory."""
    data = config.data
    if not data.variables:
        raise ClimodeError("dataset 'gridded' needs --vars (e.g. --vars U850=u,V850=v or --vars precip)")
    store = out / "data.zarr"
    out.mkdir(parents=True, exist_ok=True)
    log.info("preparing every window of %s into %s", data.path, store)
    prepare_gridded(
        data.path,
        store,
        data.variables,
        data.n_in,
        data.n_out,
        time_in_hours=data.time_in_hours,
        reference_time=data.reference_time,
        seed=data.seed,
        overwrite=True,
        train_times=data.train_times,
        val_times=data.val_times,
    )
    return replace(config, "data", path=str(store))


def _card(dataset) -> Card:
    """The card of a model trained on ``dataset``: its variables, scaling, time units and grid."""
    return Card(
        variables=tuple(dataset.variables),
        time_units=dataset.time_units,
        normalisation=getattr(dataset, "normalisation", None),
        grid=getattr(dataset, "grid", None),
        climode_version=__version__,
    )


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


def _log_version(out: Path, resuming: bool) -> str:
    """``logs`` for a new run; a resumed run logs to ``logs-resumed-N`` so earlier metrics are kept
    (Lightning's CSV logger empties the directory it writes to)."""
    if not resuming:
        return "logs"
    n = 1
    while (out / f"logs-resumed-{n}").exists():
        n += 1
    return f"logs-resumed-{n}"


def _quiet_lightning() -> None:
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


def _holding_run_lock(train_fn):
    """``train`` holding the run directory's lock (``_run_lock``) on the launching process."""

    @functools.wraps(train_fn)
    def locked(config=None, out="runs/vidode", **settings):
        launcher = int(os.environ.get("LOCAL_RANK", "0")) == 0
        with _run_lock(Path(out)) if launcher else contextlib.nullcontext():
            return train_fn(config, out, **settings)

    return locked


@contextlib.contextmanager
def _run_lock(out: Path):
    """Hold ``.<run>.lock`` beside the run directory for the whole run (an advisory ``flock``, released
    by the system when the process ends, however it ends): a second run on the same directory is
    refused instead of interleaving checkpoints. A refused run (ClimodeError) leaves nothing it
    created: the run directory while it holds no checkpoint, the lock file and the folders made for
    them (``--out deep/er/run``) are removed before the lock is released."""
    run = out.resolve()
    lock = run.parent / f".{run.name}.lock"
    made = [p for p in (run.parent, *run.parent.parents) if not p.exists()]  # deepest first
    existed = run.exists(), lock.exists()
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ClimodeError(f"{out} is in use by another training run ({holder}); wait for it or stop it") from None
        if is_current(handle, lock):
            break
        handle.close()  # a refused run removed the file this one opened: lock the one now there
    with handle:
        sign(handle)
        try:
            yield
        except ClimodeError:
            if not existed[0] and not any((run / "checkpoints").glob("*.ckpt")):
                shutil.rmtree(run, ignore_errors=True)
            if not existed[1]:
                lock.unlink(missing_ok=True)
            for folder in made:
                with contextlib.suppress(OSError):  # only while empty
                    folder.rmdir()
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@_holding_run_lock
def train(
    config: Config | dict | str | Path | None = None,
    out: str | Path = "runs/vidode",
    *,
    model: str | None = None,
    dataset: str | None = None,
    data: str | None = None,
    variables: str | None = None,
    time_in_hours: bool | None = None,
    reference_time: str | None = None,
    train_times: str | None = None,
    val_times: str | None = None,
    max_steps: int | None = None,
    max_epochs: int | None = None,
    resume: str | None = None,
    init_from: str | Path | None = None,
    overwrite: bool = False,
    devices: int | None = None,
    accelerator: str | None = None,
    checkpoint_every: int | None = None,
    logger: str | None = None,
) -> Path | None:
    """Train a model into the run directory ``out``; return the path of its ``model.safetensors``
    (None on the other processes of a data-parallel run).

    Parameters
    ----------
    config : a ``Config``, its dict, a YAML path or a built-in config's name (default: the dataset's
        built-in config, else the defaults); ignored with ``resume``, which reads the run's own.
    out : the run directory (``run.yaml``, ``checkpoints/``, ``logs/``, ``model.safetensors``).
    model : a name of ``climode.model.MODELS`` (default: the config's).
    dataset, data, variables, time_in_hours, reference_time, train_times, val_times : the data,
        overriding the config (``python -m climode.train --help`` says what each takes).
    max_steps, max_epochs, devices, accelerator, checkpoint_every, logger : training settings overriding the
        config.
    resume : "last" or a checkpoint path: continue the run in ``out``.
    init_from : start from a saved model's weights ("bundled": the model shipped with climode).
    overwrite : replace an existing run in ``out``.

    Progress and messages go to the ``climode`` logger; a problem with what was given raises
    ``ClimodeError``.
    """
    launcher = int(os.environ.get("LOCAL_RANK", "0")) == 0
    out = Path(out)
    if init_from and resume:
        raise ClimodeError("--init-from starts a new run from a model's weights; --resume continues a run: give one")
    init = _initial_model(init_from)
    config, clear = _prepare_run_dir(out, config, dataset, resume, overwrite, launcher)
    config = replace(
        config,
        "data",
        name=dataset,
        path=data,
        variables=variables,
        time_in_hours=time_in_hours,
        reference_time=reference_time,
        train_times=train_times,
        val_times=val_times,
    )
    if (config.data.train_times or config.data.val_times) and config.data.name != "gridded":
        raise ClimodeError(
            f"--train-times and --val-times choose the blocks of fields prepared in the run (--dataset gridded), "
            f"not of {config.data.name}"
        )
    config = replace(
        config,
        "train",
        max_steps=max_steps,
        max_epochs=max_epochs,
        devices=devices,
        accelerator=accelerator,
        checkpoint_every=checkpoint_every,
        logger=logger,
    )
    _check_logger(config.train.logger)
    chosen = {"architecture": model, **VARIANTS.get(model, {})} if model and not resume else {}
    if model and resume and model != config.model.architecture:
        raise ClimodeError(f"cannot resume {out} as --model {model}: that run trains {config.model.architecture}")
    if init is not None:
        kept = init.model.config
        if model and model != kept.architecture:
            raise ClimodeError(f"--init-from {init.path} holds a {kept.architecture} model, not --model {model}")
        config, chosen = dataclasses.replace(config, model=kept), {}
    ckpt_path = _resume_path(out, resume)
    gridded = config.data.name == "gridded" and config.data.path and not is_shard_store(config.data.path)
    if init is not None and gridded:
        names = parse_variables(config.data.variables or "")[0] if config.data.variables else []
        if names != list(init.variables):
            raise ClimodeError(
                f"--init-from {init.path} forecasts {', '.join(init.variables)} but --vars names "
                f"{', '.join(names) or 'nothing'}"
            )
    normalisation = init.card.normalisation if init is not None else None
    if not gridded:
        train_set, val_set = (open_dataset(config.data, split, normalisation) for split in ("train", "val"))
    if clear and launcher:
        shutil.rmtree(out)
    if gridded and launcher:
        config = _prepare_gridded(config, out)  # a refused input leaves nothing behind (``_run_lock``)
    elif gridded:
        config = replace(config, "data", path=str(out / "data.zarr"))
    if gridded:
        train_set, val_set = (open_dataset(config.data, split, normalisation) for split in ("train", "val"))
    config = replace(config, "data", n_in=train_set.n_in, n_out=train_set.n_out)  # the data decide
    if config.model.time_scale is None:  # one model time unit: the data's storage step
        scale = float(getattr(train_set, "step_hours", 1.0) or 1.0)
        config = replace(config, "model", time_scale=scale)
        if train_set.time_units == "hours":
            log.info("model time unit: %g h (the data's storage step; set model.time_scale to choose)", scale)
    channels, *frame_shape = train_set[0]["frames_in"].shape[1:]
    card = _card(train_set)
    if init is not None:
        _check_initial(init, card, frame_shape)
    n_in = config.data.n_in if chosen.get("encoder", config.model.encoder) == "conv" else None
    config = replace(config, "model", channels=channels, n_in=n_in, frame_shape=frame_shape, **chosen)
    _check_frame_size(frame_shape, config)
    if config.model.architecture in LEARNED:
        _check_solver_steps((train_set, val_set), config)
    configure(config.model)  # a model that cannot be built here (e.g. pysteps missing) is refused before any file
    if launcher:
        out.mkdir(parents=True, exist_ok=True)
        with replacing(out / RUN_FILE) as tmp:
            tmp.write_text(yaml.safe_dump(_run_relative(config, out).to_dict(), sort_keys=False))

    if config.model.architecture not in LEARNED:
        if not launcher:
            return None
        log.info("%s has no parameters: nothing to train", config.model.architecture)
        task = ForecastTask(config, card)
        return save_model(out / "model.safetensors", task.model, task.checkpoint_card())
    _quiet_lightning()
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    settings = config.train
    samples = (
        QuerySampler(train_set, config.data.hide, config.data.seed, config.data.missing)
        if config.data.queries == "random"
        else train_set
    )
    loader = lambda ds, shuffle: DataLoader(
        ds,
        settings.batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        num_workers=settings.num_workers,
        persistent_workers=settings.num_workers > 0,
    )
    updates_per_batch = steps_per_update(settings)
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        save_last=True,
        save_top_k=0,
        every_n_train_steps=settings.checkpoint_every * updates_per_batch,
    )
    trainer = L.Trainer(
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
        logger=_loggers(settings.logger, out, _log_version(out, bool(ckpt_path))),
        log_every_n_steps=settings.log_every,
        enable_model_summary=False,
    )
    task = ForecastTask(config, card)
    if init is not None:
        task.model.load_state_dict(init.model.state_dict())
        if task.ema is not None:
            task.ema.module.load_state_dict(init.model.state_dict())
        log.info("starting from the weights of %s", init.path)
    if ckpt_path and launcher:
        log.info("resuming from %s", ckpt_path)
    if not len(val_set):
        log.warning("no validation samples: training without validation")
    try:
        trainer.fit(
            task,
            loader(samples, True),
            loader(val_set, False) if len(val_set) else None,
            ckpt_path=ckpt_path,
            weights_only=True,
        )
    except (SIGTERMException, KeyboardInterrupt) as stop:  # a scheduler's time limit, or Ctrl-C
        path = _export(trainer, task, out)
        log.warning(
            "stopped by %s after %d updates: wrote %s and checkpoints/last.ckpt (continue with --resume)",
            "SIGTERM" if isinstance(stop, SIGTERMException) else "an interrupt",
            trainer.global_step // updates_per_batch, path,
        )  # fmt: skip
        if isinstance(stop, SIGTERMException):
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    return _export(trainer, task, out)


def _loggers(kind: str, out: Path, version: str) -> list:
    """CSV metrics always (logs/metrics.csv); with "tensorboard", TensorBoard event files in logs/tensorboard
    (its package checked by ``_check_logger``)."""
    loggers = [CSVLogger(out, name="", version=version)]
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out / version, name="", version="tensorboard", default_hp_metric=False))
    return loggers


def _export(trainer: L.Trainer, task: ForecastTask, out: Path) -> Path | None:
    """The run's last checkpoint and its model (the moving-average weights) as model.safetensors."""
    trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=False)
    if not trainer.is_global_zero:
        return None
    return save_model(out / "model.safetensors", task.averaged().cpu(), task.checkpoint_card())
