"""The training run behind ``python -m climode.train`` and ``climode.training.train``, as its steps: the
run directory (``rundir``), the config, the model chosen and the data (``setup``), Lightning (``fitting``)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import ClimodeError
from ..model import LEARNED
from .fitting import fit, parameter_free
from .rundir import holding_run_lock, is_launcher, resume_path, run_config, write_run_file
from .setup import chosen_model, initial_model, model_config, overridden, training_data


@holding_run_lock
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
    launcher, out = is_launcher(), Path(out)
    if init_from and resume:
        raise ClimodeError("--init-from starts a new run from a model's weights; --resume continues a run: give one")
    init = initial_model(init_from)
    config, clear = run_config(out, config, dataset, resume, overwrite, launcher)
    config = overridden(
        config,
        data=dict(name=dataset, path=data, variables=variables, time_in_hours=time_in_hours,
                  reference_time=reference_time, train_times=train_times, val_times=val_times),
        train=dict(max_steps=max_steps, max_epochs=max_epochs, devices=devices, accelerator=accelerator,
                   checkpoint_every=checkpoint_every, logger=logger),
    )  # fmt: skip
    config, chosen = chosen_model(config, model, resume, init, out)
    ckpt_path = resume_path(out, resume)
    config, train_set, val_set = training_data(config, out, init, clear, launcher)
    config, card = model_config(config, train_set, val_set, chosen, init)
    if launcher:
        write_run_file(out, config)
    if config.model.architecture not in LEARNED:
        return parameter_free(config, card, out, launcher)
    return fit(config, card, out, (train_set, val_set), ckpt_path, init, launcher)
