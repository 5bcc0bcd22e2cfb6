"""The Vid-ODE model and the models it is compared with, chosen by name (``MODELS``, ``build``)."""

import dataclasses

from torch import nn

from ..errors import check_choice
from .base import ModelConfig, check_times
from .baselines import BASELINES, Baseline, check_available
from .discriminator import PatchDiscriminator
from .latent import MODELS as LATENT
from .odefunc import SolverConfig
from .recurrent import MODELS as RECURRENT
from .vidode import VidODE
from .warp import warp

MODELS: dict[str, type[nn.Module]] = {
    "vid-ode": VidODE,
    "ode-conv": VidODE,
    "ode-fc": VidODE,
    **RECURRENT,
    **LATENT,
    **{name: Baseline for name in BASELINES},
}
# what a name sets in ModelConfig besides ``architecture``: ODE-Conv and ODE-FC are Vid-ODE without the
# ODE-ConvGRU encoder (the input frames stacked along channels), with a conv or fully connected derivative
VARIANTS: dict[str, dict] = {
    "vid-ode": {"encoder": "ode-convgru", "derivative": "conv"},
    "ode-conv": {"encoder": "conv", "derivative": "conv"},
    "ode-fc": {"encoder": "conv", "derivative": "fc"},
}
LEARNED = tuple(name for name, cls in MODELS.items() if cls is not Baseline)


def configure(config: ModelConfig) -> ModelConfig:
    """``config`` with the settings its architecture's name implies (``VARIANTS``): ``ode-fc`` is always
    the conv encoder with a fully connected derivative, whatever else the config said; a baseline whose
    package is missing here (``climode.model.baselines.UNAVAILABLE``) is refused in one line."""
    check_available(config.architecture)
    check_choice("model", config.architecture, MODELS)
    return dataclasses.replace(config, **VARIANTS.get(config.architecture, {}))


def build(config: ModelConfig) -> nn.Module:
    """The model ``config.architecture`` names, built from ``configure(config)``."""
    config = configure(config)
    return MODELS[config.architecture](config)


__all__ = [
    "LEARNED",
    "MODELS",
    "VARIANTS",
    "ModelConfig",
    "PatchDiscriminator",
    "SolverConfig",
    "VidODE",
    "build",
    "check_times",
    "configure",
    "warp",
]
