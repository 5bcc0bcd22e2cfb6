"""Run configuration: a YAML file of three sections (model, data, train) plus command-line overrides."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .configs import builtin_configs
from .errors import ClimodeError, check_choice
from .model.base import ModelConfig

QUERIES = ("all", "random")
SCHEDULES = ("cosine", "epoch-decay")
LOGGERS = ("csv", "tensorboard")  # csv: logs/metrics.csv; tensorboard: event files beside it


@dataclass(frozen=True)
class DataConfig:
    """Which samples to train on. Sizes are numbers of sequences; times in the data's units.

    ``variables`` (gridded data): "NAME[=NAME_IN_FILE],..."; ``time_in_hours`` and
    ``reference_time`` read a time axis of bare numbers as hours since that time.
    ``queries``: "all" trains on every target of a sample; "random" on a random set of them each
    time (``climode.data.samples.QuerySampler``), with ``hide`` the chance that in-between input
    frames are hidden and asked for (interpolation), and ``missing`` the chance that a rectangle of
    cells is missing from the inputs (what the model's validity channels are for). ``continuous``
    (bouncing-ball): targets at random real times instead of whole frames, and one inside each gap
    between inputs.

    Video datasets (kth, mgif, penn, folder; ``climode.video``): ``path`` is the dataset's root,
    ``task`` "extrapolation" (n_in in, n_out out) or "interpolation" (n_in in, the n_in - 1 frames
    between them out), ``frame_size`` the square side in pixels, ``channels`` 1 (grey), 3 (colour)
    or None (as the videos are), ``stride`` the frame skip, ``clips_per_video`` the most samples a
    validation or test video gives (0: all), ``augment`` flips and rotates training samples, ``cache``
    where decoded videos are kept (default ``~/.cache/climode/video``).

    ``train_times`` / ``val_times`` (gridded): "START:END" dates; the samples of each split lie
    inside its span, the test samples after the later one (default: 80/10/10 of the record)."""

    name: str = "bouncing-ball"
    path: str | None = None
    variables: str | None = None
    time_in_hours: bool = False
    reference_time: str | None = None
    n_in: int = 10
    n_out: int = 10
    drop: float = 0.0
    frame_size: int = 32
    train_size: int = 1000
    val_size: int = 50
    test_size: int = 50
    seed: int = 0
    queries: str = "all"
    hide: float = 0.0
    missing: float = 0.0
    continuous: bool = False
    task: str = "extrapolation"
    channels: int | None = None
    stride: int = 1
    clips_per_video: int = 0
    augment: bool = False
    cache: str | None = None
    train_times: str | None = None
    val_times: str | None = None

    def __post_init__(self):
        check_choice("queries", self.queries, QUERIES)
        check_choice("video task", self.task, ("extrapolation", "interpolation"))
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels is 1 (grey), 3 (colour) or null (as the videos are), got {self.channels}")
        if self.stride < 1 or self.clips_per_video < 0:
            raise ValueError(f"need stride >= 1 and clips_per_video >= 0, got {self.stride} and {self.clips_per_video}")
        for name in ("hide", "missing"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. Steps count generator updates (batches).

    ``schedule``: "cosine" (linear warm-up over ``warmup_steps``, then a cosine from ``lr`` down to
    ``min_lr`` at the last update) or "epoch-decay" (the paper: warm-up, then x ``lr_decay`` after
    every epoch). ``clip``: gradients are clipped to this L2 norm (0: not). ``ema``: the decay of
    the weights' moving average (min(ema, (1 + n) / (10 + n)) at update n; 0: none) that validation
    and the exported models use. ``deterministic``: deterministic algorithms only (slower).
    ``log_every``: generator updates between rows of logs/metrics.csv.
    ``lambda_kl`` weighs the KL term of the variational models (latent-ode, ode2vae). ``lambda_core``
    weighs a second L1 whose cells count by how far the target lies from its frame's mean
    (``climode.training.losses.anomaly_l1``): what pays for a storm's core (0: none). ``logger``:
    "csv" (logs/metrics.csv) or "tensorboard" (also event files in logs/tensorboard, for ``tensorboard --logdir``;
    needs tensorboard or tensorboardX)."""

    batch_size: int = 8
    lr: float = 1e-3
    lr_decay: float = 0.99
    lambda_diff: float = 1.0
    lambda_img: float = 0.003
    lambda_seq: float = 0.003
    lambda_kl: float = 1e-3
    lambda_core: float = 0.0
    adversarial: bool = True
    disc_width: int = 64
    max_epochs: int = 500
    max_steps: int = -1
    checkpoint_every: int = 100
    val_every: int = 1
    log_every: int = 10
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int = 1
    seed: int = 0
    schedule: str = "cosine"
    warmup_steps: int = 50
    min_lr: float = 1e-5
    clip: float = 1.0
    ema: float = 0.999
    deterministic: bool = False
    logger: str = "csv"

    def __post_init__(self):
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("logger", self.logger, LOGGERS)
        for name in ("batch_size", "disc_width", "max_epochs", "checkpoint_every", "val_every", "log_every", "devices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}, but must be at least 1")
        if self.max_steps != -1 and self.max_steps < 1:
            raise ValueError(f"max_steps is {self.max_steps}, but must be at least 1 (or -1: no limit but max_epochs)")
        if not self.lr > 0:
            raise ValueError(f"lr is {self.lr}, but a learning rate must be positive")
        for name in (
            "num_workers",
            "warmup_steps",
            "clip",
            "lambda_diff",
            "lambda_img",
            "lambda_seq",
            "lambda_kl",
            "lambda_core",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}, but must not be negative")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema is a decay in [0, 1), got {self.ema}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < min_lr <= lr, got min_lr {self.min_lr} and lr {self.lr}")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ClimodeError(f"{where} must be a mapping, found {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ClimodeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        expected = _TYPES.get(hints[key])
        if expected is not None and not _is(value, expected):
            allowed = " or ".join(t.__name__ for t in expected if t is not type(None))
            raise ClimodeError(f"{where}: {key} is {value!r} ({type(value).__name__}); expected {allowed}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ClimodeError(f"{where}: {exc}") from None


# a field's annotation -> the YAML types its value may have (an int is a fine float)
_TYPES = {
    int: (int,),
    float: (float, int),
    bool: (bool,),
    str: (str,),
    int | None: (int, type(None)),
    float | None: (float, int, type(None)),
    str | None: (str, type(None)),
}


def _is(value, types: tuple[type, ...]) -> bool:
    """Whether ``value`` is one of ``types``; a bool is not a number here."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def config_from_dict(values: dict, where: str = "config") -> Config:
    """Build a Config from nested dicts, naming any unknown or invalid key."""
    values = values or {}
    unknown = sorted(set(values) - {"model", "data", "train"})
    if unknown:
        raise ClimodeError(f"{where}: unknown section(s) {', '.join(unknown)}; sections are model, data, train")
    return Config(
        model=_build(ModelConfig, values.get("model", {}), f"{where}: model"),
        data=_build(DataConfig, values.get("data", {}), f"{where}: data"),
        train=_build(TrainConfig, values.get("train", {}), f"{where}: train"),
    )


def load_config(source: str | None) -> Config:
    """Config from a YAML path, or a built-in name (see ``builtin_configs``); None gives defaults."""
    if source is None:
        return Config()
    path = Path(source)
    if not path.is_file():
        builtin = resources.files("climode.configs") / f"{source}.yaml"
        if not builtin.is_file():
            raise ClimodeError(
                f"config {source} not found: not a file, nor one of the built-in configs "
                f"({', '.join(builtin_configs())})"
            )
        path = Path(str(builtin))
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClimodeError(f"{path} is not valid YAML: {exc}") from None
    return config_from_dict(values, str(path))


def replace(config: Config, section: str, **changes) -> Config:
    """A copy of ``config`` with fields of one section changed (None values are ignored)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return config
    try:
        return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **changes)})
    except (TypeError, ValueError) as exc:
        raise ClimodeError(f"{section}: {exc}") from None
