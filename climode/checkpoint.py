"""Model checkpoints that load without executing code.

The exported model is a safetensors file: the generator's weights plus a JSON
header entry ``climode`` holding its ``format`` (``FORMAT``), the model's config
(``model``) and its card (``Card``: variables, normalisation, time units, grid,
run config). Training checkpoints (Lightning ``.ckpt``) carry the same header and
are read with ``torch.load(weights_only=True)``, which refuses any pickled object
that is not plain data. ``load_model`` refuses, in one line naming the file, a
header of another format or with keys the format does not have, weights that do
not fit the configuration or are not finite, and statistics that cannot scale.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ClimodeError
from .io.atomic import replacing
from .model import ModelConfig, build
from .model.compute import check_device
from .normalise import METHODS, Normalised, Stats

FORMAT = "climode-vidode-1"
# the keys every header of FORMAT has held, and every model config in it: the config's other keys
# (architecture, derivative, frame_shape, channels_last, precision, checkpointing) came later and
# default to what a file without them meant (``ModelConfig.saved``)
REQUIRED_HEADER = {"format", "model", "variables", "time_units"}
REQUIRED_CONFIG = {"channels", "width", "time_scale", "encoder", "n_in", "encoder_solver", "decoder_solver",
                   "flow_warping", "mask_composition", "decoding"}  # fmt: skip


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
    ensemble : how its ensemble members are made (``climode.ensemble.Perturbation``'s fields, among
        them ``calibrated_on``: where they were fitted); None: climode's uncalibrated defaults.
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
    ensemble: dict | None = None

    def __post_init__(self):
        if isinstance(self.normalisation, dict):
            object.__setattr__(self, "normalisation", Stats.from_dict(self.normalisation))

    @classmethod
    def from_header(cls, header: dict) -> Card:
        """The card of a checkpoint's JSON header (its keys besides ``format`` and ``model``; an older
        file's second copy of the model config inside ``config`` is dropped)."""
        values = {k: v for k, v in header.items() if k not in ("format", "model")}
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


def _read_training_checkpoint(path: Path) -> tuple[dict, object]:
    """The generator's weights and the header of a Lightning ``.ckpt``, unpickling only plain data."""
    try:
        with warnings.catch_warnings():  # torch's notes on the file's pickle protocol: the error says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it refers to {found[1]})" if found else ""
        raise ClimodeError(
            f"checkpoint {path} carries a pickled object that is not plain weights{what}; "
            "climode never executes code from a checkpoint and refuses to load it"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ClimodeError(f"checkpoint {path} could not be read ({exc})") from None
    if not isinstance(ckpt, dict) or "climode" not in ckpt or not isinstance(ckpt.get("state_dict"), dict):
        raise ClimodeError(f"checkpoint {path} is not a climode training checkpoint (no climode metadata)")
    averaged = any(k.startswith("ema.module.") for k in ckpt["state_dict"])
    prefix = "ema.module." if averaged else "model."  # the moving average, as the exported models
    weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return weights, ckpt["climode"]


def _read_model_file(path: Path) -> tuple[dict, object]:
    """The weights and the parsed JSON header of a safetensors export."""
    try:
        weights = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            header = (f.metadata() or {}).get("climode")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ClimodeError(f"{path} is not a safetensors checkpoint ({exc})") from None
    if header is None:
        raise ClimodeError(f"{path} is a safetensors file without climode metadata, not a climode checkpoint")
    try:
        return weights, json.loads(header)
    except json.JSONDecodeError as exc:
        raise ClimodeError(f"{path}: its climode metadata is corrupt (not JSON: {exc})") from None


def _check_keys(path: Path, what: str, given: dict, known: set[str], required: set[str]) -> None:
    """Refuse ``given`` (the header's ``what``) with keys format ``FORMAT`` does not have, or without
    those it requires."""
    unknown, missing = sorted(set(given) - known), sorted(required - set(given))
    problems = [
        f"{label} {', '.join(keys)}" for label, keys in (("unknown key(s)", unknown), ("missing", missing)) if keys
    ]
    if problems:
        raise ClimodeError(
            f"checkpoint {path}: its {what} does not follow format {FORMAT} ({'; '.join(problems)}): "
            "the file was edited or written by another program"
        )


def _read_header(path: Path, header: object) -> tuple[ModelConfig, Card]:
    """The model config and card of a checkpoint's ``header``, refused unless it is of ``FORMAT``."""
    written = header.get("format") if isinstance(header, dict) else None
    if written != FORMAT:
        version = re.fullmatch(r"climode-vidode-(\d+)", str(written))
        if version and int(version[1]) > int(FORMAT.rsplit("-", 1)[1]):
            raise ClimodeError(
                f"checkpoint {path} was written in format {written}, newer than this climode reads "
                f"({FORMAT}): upgrade climode"
            )
        raise ClimodeError(f"checkpoint {path} is in format {written!r}, not one climode reads ({FORMAT})")
    _check_keys(path, "header", header, {f.name for f in fields(Card)} | REQUIRED_HEADER, REQUIRED_HEADER)
    if not isinstance(header["model"], dict):
        raise ClimodeError(f"{path}: its climode metadata names no model configuration (corrupt or not climode's)")
    _check_keys(path, "model configuration", header["model"], {f.name for f in fields(ModelConfig)}, REQUIRED_CONFIG)
    try:
        config = ModelConfig(**ModelConfig.saved(header["model"]))
    except (TypeError, ValueError) as exc:
        raise ClimodeError(f"checkpoint {path}: its model configuration is invalid ({exc})") from None
    try:
        card = Card.from_header(header)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        reason = f"no statistic {exc}" if isinstance(exc, KeyError) else exc
        raise ClimodeError(f"checkpoint {path}: its card is invalid ({reason})") from None
    return config, card


def _check_weights(path: Path, weights: dict, expected: dict[str, torch.Tensor]) -> None:
    """Refuse ``weights`` that are not the tensors of ``expected`` (a model's state dict) in their
    shapes, or that hold NaN or Inf, naming the first such tensor."""
    missing, unknown = [k for k in expected if k not in weights], [k for k in weights if k not in expected]
    if missing or unknown:
        problems = [
            f"{len(keys)} {label} (first {keys[0]})"
            for label, keys in (("missing", missing), ("unknown", unknown))
            if keys
        ]
        raise ClimodeError(
            f"checkpoint {path} does not hold the tensors of its model configuration: {'; '.join(problems)}"
        )
    for name, tensor in expected.items():
        value = weights[name]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ClimodeError(
                f"checkpoint {path} does not fit its model configuration: tensor {name} is {found} in the file, "
                f"{tuple(tensor.shape)} in the model (a checkpoint of another width or architecture?)"
            )
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise ClimodeError(
                f"checkpoint {path} has non-finite weights: tensor {name} holds {bad} NaN or Inf of "
                f"{value.numel()} values (the training diverged or the file is corrupt)"
            )


def _check_card(path: Path, card: Card, channels: int) -> None:
    """Refuse a card whose variables are not the network's ``channels``, or whose statistics do not
    cover its variables or could not scale them (not finite, or a span that is not positive)."""
    if card.variables and len(card.variables) != channels:
        raise ClimodeError(
            f"checkpoint {path} names {len(card.variables)} variables ({', '.join(card.variables)}) but its network "
            f"takes {channels} channels: the file is inconsistent"
        )
    if not card.normalisation:  # none, or empty: the data were not scaled
        return
    missing = [v for v in card.variables if v not in card.normalisation.variables]
    if missing:
        raise ClimodeError(f"checkpoint {path}: its normalisation has no statistics for {', '.join(missing)}")
    for name, s in card.normalisation.variables.items():
        low, high = METHODS[s.method]
        bad = [stat for stat, value in ((low, s.first), (high, s.second)) if not math.isfinite(value)]
        span = s.second - s.first if s.method == "minmax" else s.second
        if bad or not span > 0:
            problem = (
                f"{' and '.join(bad)} not finite" if bad else f"{high} not above {low if s.method == 'minmax' else 0}"
            )
            raise ClimodeError(
                f"checkpoint {path}: the normalisation of {name} ({s.method}: {low} {s.first:g}, {high} {s.second:g}) "
                f"cannot scale it, {problem} (statistics corrupt or taken on constant or missing data)"
            )


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

    Raises
    ------
    ClimodeError
        one line naming the file: not found or not a climode checkpoint, a pickled object, a header of
        another format (a newer one says to upgrade) or with keys the format does not have, weights
        that do not fit the configuration or hold NaN or Inf, statistics that cannot scale.
    """
    path = Path(path)
    if not path.is_file():
        raise ClimodeError(f"checkpoint {path} not found")
    with open(path, "rb") as f:
        start = f.read(9)
    if start[8:9] == b"{":  # an 8-byte header length, then the JSON header
        weights, header = _read_model_file(path)
    elif start[:4] == b"PK\x03\x04" or start[:1] == b"\x80":  # torch.save's zip, or a bare pickle
        weights, header = _read_training_checkpoint(path)
    else:
        raise ClimodeError(f"{path} is not a safetensors model nor a training checkpoint (.ckpt)")
    config, card = _read_header(path, header)
    try:
        model = build(config)
    except (ClimodeError, TypeError, ValueError) as exc:
        raise ClimodeError(f"checkpoint {path}: cannot build its model ({exc})") from None
    _check_weights(path, weights, model.state_dict())
    model.load_state_dict(weights)
    _check_card(path, card, model.config.channels)
    return Checkpoint(model.to(check_device(device)).eval(), card, path)
