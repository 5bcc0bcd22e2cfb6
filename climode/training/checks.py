"""What a training run refuses before any work, each with the way out: a logger that is not installed,
an --init-from model that does not fit the data, frames too small for the discriminators, samples
that would take the ODE solvers too many steps."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np

from ..checkpoint import Card, Checkpoint
from ..config import Config, DataConfig
from ..errors import ClimodeError
from ..io.variables import parse_variables
from ..model import LEARNED
from ..model.discriminator import PatchDiscriminator

MAX_SOLVER_STEPS = 10_000  # ODE solver steps per sample: far above a sensible run's (tens to hundreds)


def check_logger(kind: str) -> None:
    """Refuse, before any work, a logger whose package is not installed, with the command that installs it."""
    if kind == "tensorboard" and not any(find_spec(name) for name in ("tensorboardX", "tensorboard")):
        raise ClimodeError(
            "--logger tensorboard needs tensorboardX (or tensorboard), which is not installed; install it from the "
            'climode checkout with: .venv/bin/python -m pip install -c constraints.txt -e ".[tensorboard]"'
        )


def check_prepared_variables(init: Checkpoint, data: DataConfig) -> None:
    """Refuse raw data to prepare whose ``--vars`` are not the variables the --init-from model forecasts."""
    names = parse_variables(data.variables or "")[0] if data.variables else []
    if names != list(init.variables):
        raise ClimodeError(
            f"--init-from {init.path} forecasts {', '.join(init.variables)} but --vars names "
            f"{', '.join(names) or 'nothing'}"
        )


def check_initial(init: Checkpoint, data: Card, frame_shape: list[int]) -> None:
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


def check_frame_size(frame_shape: list[int], config: Config) -> None:
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


def time_spans(dataset) -> np.ndarray:
    """(N, 2): each sample's input span (first to last input) and lead (last input to last target) in the
    data's units; of every sample where the dataset's ``info`` keeps them (clips), else of its first."""
    if dataset.info.time_spans is not None:
        return dataset.info.time_spans
    if not len(dataset):
        return np.zeros((0, 2))
    sample = dataset[0]
    t_in, t_out = (np.asarray(sample[key], dtype=np.float64) for key in ("times_in", "times_out"))
    last = np.nanmax(t_in)
    return np.array([[last - np.nanmin(t_in), np.nanmax(t_out) - last]])


def check_solver_steps(datasets, config: Config) -> None:
    """Refuse samples whose time spans would take the ODE solvers more than ``MAX_SOLVER_STEPS`` steps
    each (times in other units than the model's, e.g. scaled by 1e12: one update would run for days),
    naming the span, the steps and the ``model.time_scale`` that would fit (the sample's mean gap)."""
    model = config.model
    scale = model.time_scale or 1.0
    step = lambda solver: solver.step_size if solver.method != "dopri5" else 1.0  # dopri5: nominally one unit
    steps_in, steps_out = step(model.encoder_solver), step(model.decoder_solver)
    for dataset in datasets:
        spans = time_spans(dataset)
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
