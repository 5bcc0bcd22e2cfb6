"""Model checkpoints that load without executing code.

The exported model is a safetensors file: the generator's weights plus a JSON
header entry ``climode`` holding the model's config (``model``) and its card
(``Card``: variables, normalisation, time units, grid, run config). Training
checkpoints (Lightning ``.ckpt``) carry the same header and are read with
``torch.load(weights_only=True)``, which refuses any pickled object that is not
plain data.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ClimodeError
from .io.write import replacing
from .model import ModelConfig, build
from .model.compute import check_device
from .normalise import Normalised, Stats

FORMAT = "climode-vidode-1"


@dataclass(frozen=True)
class Card:
    """What a checkpoint says of its model besides the weights and the architecture (which is
    ``model.config``, stored once).

    variables : names in channel order.
    time_units : "hours" (dated fields) or "frames" (video).
    normalisation : the statistics its inputs were scaled with (``climode.normalise.Stats``; its
        JSON form is accepted and converted); None when the data were not scaled.
    grid : for gridded data, {"resolution": degrees or None (native), "tile_shape": [H, W], ...}.
    config : the run's data and train sections (``climode.config``).
    climode_version : the version that wrote it.
    val_mse, epoch : for the best-validation export, its score and epoch.
    training : what the weights were trained on, said in every forecast they make: ``data`` (the
        dataset and where it came from), ``updates``, ``hardware``, and for the bundled model the
        world it was trained in, its resolution and its budget.
    """

    variables: tuple[str, ...] = ()
    time_units: str = "frames"
    normalisation: Stats | None = None
    grid: dict | None = None
    config: dict | None = None
    climode_version: str | None = None
    val_mse: float | None = None
    epoch: int | None = None
    training: dict | None = None

    def __post_init__(self):
        if isinstance(self.normalisation, dict):
            object.__setattr__(self, "normalisation", Stats.from_dict(self.normalisation))

    @classmethod
    def from_header(cls, header: dict) -> Card:
        """The card of a checkpoint's JSON header (keys it does not know are left out; an older file's
        second copy of the model config inside ``config`` is dropped)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in header.items() if k in known}
        values["variables"] = tuple(values.get("variables", ()))
        if isinstance(values.get("config"), dict):
            values["config"] = {k: v for k, v in values["config"].items() if k != "model"}
        return cls(**values)

    def provenance(self) -> str:
        """``training`` as one line ("key: value; ..."), or a line saying it is not recorded."""
        if not self.training:
            return "not recorded (a checkpoint written before climode recorded it)"
        return "; ".join(f"{k}: {v}" for k, v in self.training.items())

    def header(self, model: nn.Module) -> dict:
        """The JSON header of a checkpoint of ``model`` with this card."""
        card = {k: v for k, v in asdict(self).items() if v is not None}
        if self.normalisation is not None:
            card["normalisation"] = self.normalisation.to_dict()
        return {"format": FORMAT, **card, "variables": list(self.variables), "model": model.config.to_dict()}


@dataclass
class Checkpoint:
    """A loaded model (``model``, in eval mode), its ``card`` and the file it came from."""

    model: nn.Module
    card: Card
    path: Path

    @property
    def variables(self) -> list[str]:
        return list(self.card.variables)

    @property
    def predictor(self) -> Normalised:
        """The model with its normalisation around it: physical units in and out
        (``climode.normalise.Normalised``)."""
        return Normalised(self.model, self.card.normalisation, self.variables)


def save_model(path: str | Path, model: nn.Module, card: Card) -> Path:
    """Write ``model`` and its ``card`` to a safetensors file atomically (temporary file, then rename).

    Parameters
    ----------
    path : the ``.safetensors`` file.
    model : a model of ``climode.model`` (its ``config`` is stored once, in the header).
    card : what the model was trained on (variables, time units, normalisation, grid, run config).

    Returns
    -------
    pathlib.Path
        ``path``; ``load_model(path)`` reads it back without executing code.
    """
    path = Path(path)
    header = card.header(model)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={"climode": json.dumps(header)})
    return path


def _read_training_checkpoint(path: Path) -> tuple[dict, dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise ClimodeError(
            f"checkpoint {path} carries a pickled object that is not plain weights ({reason}); "
            "climode never executes code from a checkpoint and refuses to load it"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ClimodeError(f"checkpoint {path} could not be read ({exc})") from None
    if not isinstance(ckpt, dict) or "climode" not in ckpt or "state_dict" not in ckpt:
        raise ClimodeError(f"checkpoint {path} is not a climode training checkpoint (no climode metadata)")
    averaged = any(k.startswith("ema.module.") for k in ckpt["state_dict"])
    prefix = "ema.module." if averaged else "model."  # the moving average, as the exported models
    weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return weights, ckpt["climode"]


def _read_model_file(path: Path) -> tuple[dict, dict]:
    try:
        weights = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            header = (f.metadata() or {}).get("climode")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ClimodeError(f"{path} is not a safetensors checkpoint ({exc})") from None
    if header is None:
        raise ClimodeError(f"{path} is a safetensors file without climode metadata, not a climode checkpoint")
    try:
        metadata = json.loads(header)
    except json.JSONDecodeError as exc:
        raise ClimodeError(f"{path}: its climode metadata is corrupt (not JSON: {exc})") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("model"), dict):
        raise ClimodeError(f"{path}: its climode metadata names no model configuration (corrupt or not climode's)")
    return weights, metadata


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a model without executing code from the file.

    Parameters
    ----------
    path : a ``.safetensors`` export or a training ``.ckpt`` (its moving-average weights where it has
        them, as ``model.safetensors``; read with ``torch.load(weights_only=True)``).
    device : where the weights go ("cpu", "cuda").

    Returns
    -------
    Checkpoint
        ``model`` (in eval mode; ``model(frames (B, L, C, H, W), times (L,), query (K,))``),
        ``card`` (variables, time units, normalisation, grid, run config), ``path``;
        ``predictor`` is the model in physical units.
    """
    path = Path(path)
    if not path.is_file():
        raise ClimodeError(f"checkpoint {path} not found")
    with open(path, "rb") as f:
        start = f.read(9)
    if start[8:9] == b"{":  # an 8-byte header length, then the JSON header
        weights, metadata = _read_model_file(path)
    elif start[:4] == b"PK\x03\x04" or start[:1] == b"\x80":  # torch.save's zip, or a bare pickle
        weights, metadata = _read_training_checkpoint(path)
    else:
        raise ClimodeError(f"{path} is not a safetensors model nor a training checkpoint (.ckpt)")
    try:
        model = build(ModelConfig(**metadata["model"]))
        model.load_state_dict(weights)
        card = Card.from_header(metadata)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ClimodeError(f"checkpoint {path} does not match the climode model ({str(exc)[:300]})") from None
    if card.variables and len(card.variables) != model.config.channels:
        raise ClimodeError(
            f"checkpoint {path} names {len(card.variables)} variables ({', '.join(card.variables)}) but its network "
            f"takes {model.config.channels} channels: the file is inconsistent"
        )
    return Checkpoint(model.to(check_device(device)).eval(), card, path)
