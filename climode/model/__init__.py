"""The Vid-ODE model and the models it is compared with, chosen by name (``MODELS``, ``build``).

Every model is built from a ``ModelConfig`` and called as ``model(frames, times, query_times)``:
frames (B, L, C, H, W) with NaN for missing cells, input times (L,) or (B, L) and query times (K,)
or (B, K) in real units (``ModelConfig.time_scale`` per model unit); it returns a dict whose
``frames`` are (B, K, C, H, W), NaN where a sample asks for no frame.
"""

import dataclasses

from torch import nn

from ..registry import Registry
from .base import ModelConfig, check_times
from .baselines import BASELINES, Baseline
from .discriminator import PatchDiscriminator
from .dvf import MODELS as DVF_MODELS
from .latent import MODELS as LATENT
from .odefunc import SolverConfig
from .prednet import MODELS as PREDNET_MODELS
from .rcg import MODELS as RCG_MODELS
from .recurrent import MODELS as RECURRENT
from .savp import MODELS as SAVP_MODELS
from .srvp import MODELS as SRVP_MODELS
from .srvp import SRVP
from .svg import MODELS as SVG_MODELS
from .svg import SVGFP, SVGLP
from .uvi import MODELS as UVI_MODELS
from .vidode import VidODE
from .warp import warp

MODELS: Registry[type[nn.Module]] = Registry(
    "model",
    {"vid-ode": VidODE, "ode-conv": VidODE, "ode-fc": VidODE, **RECURRENT, **LATENT, **SVG_MODELS, **SRVP_MODELS,
     **DVF_MODELS, **UVI_MODELS,
     **PREDNET_MODELS, **RCG_MODELS, **SAVP_MODELS,
     **{name: Baseline for name in BASELINES}},
    unavailable=BASELINES.unavailable,
)  # fmt: skip
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
    package is missing here (``MODELS.unavailable``) is refused in one line."""
    MODELS.get_method(config.architecture)
    return dataclasses.replace(config, **VARIANTS.get(config.architecture, {}))


def build(config: ModelConfig) -> nn.Module:
    """The model ``config.architecture`` names, built from ``configure(config)``."""
    config = configure(config)
    return MODELS.get_method(config.architecture)(config)


def get_model(name: str = "vid-ode", **settings) -> nn.Module:
    """An untrained model by name; ``climode.load_model`` loads a trained one.

    Parameters
    ----------
    name : a name of ``MODELS`` ("vid-ode", "convgru", ..., "persistence", "advection").
    **settings : ``ModelConfig`` fields, e.g. ``channels=3``, ``width=32``.

    Returns
    -------
    torch.nn.Module
        called as ``model(frames, times, query)``: frames (B, L, C, H, W), NaN missing; times (L,)
        or (B, L) and query (K,) or (B, K) in the data's units; returns a dict whose ``frames`` are
        (B, K, C, H, W).
    """
    return build(ModelConfig(architecture=name, **settings))


__all__ = [
    "LEARNED",
    "MODELS",
    "VARIANTS",
    "ModelConfig",
    "PatchDiscriminator",
    "SRVP",
    "SVGFP",
    "SVGLP",
    "SolverConfig",
    "VidODE",
    "build",
    "check_times",
    "configure",
    "get_model",
    "warp",
]
