"""What each evaluation protocol trains and scores, and at which size (preset).

A protocol is a list of entries (a model under a configuration, one row of its tables) run on
one kind of data; ``sampling-rate`` also scores every entry at several input sampling rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry


@dataclass(frozen=True)
class Entry:
    """One row of a protocol's tables: ``model`` (a name of ``climode.model.MODELS``) with config
    sections changed by ``model_config`` and ``train_config``."""

    label: str
    model: str
    model_config: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """Sizes. ``steps``: generator updates per learned model; ``width``: the models' base width;
    cam5 data: synthetic ``storms`` (seeded), ``samples_per_storm``, tile ``resolution`` (degrees);
    bouncing-ball data: ``train_size``/``test_size`` sequences; video data: ``video_size`` pixels a side
    and at most ``clips_per_video`` test samples per video. ``solver_step``: rk4 step, model units.
    ``seed``: the data's seed; ``seeds``: the training seeds, one run of every learned model each."""

    steps: int
    width: int
    batch_size: int
    storms: int
    samples_per_storm: int
    resolution: float
    train_size: int
    test_size: int
    solver_step: float = 1.0
    video_size: int = 64
    clips_per_video: int = 4
    seed: int = 7
    seeds: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class Protocol:
    """``data``: the dataset it runs on, a name of ``climode.data.DATASETS`` whose entry says how the
    protocol makes it: storms (cam5: synthetic storms -> basin tiles -> shards), a video layout (its
    dataset brought by the user under ``--root``; the entries are those of the task, ``VIDEO_ENTRIES``),
    else generated (bouncing-ball); ``rates``: input sampling rates
    scored (None: the irregular-gaps sampling of Table 5) and ``train_rate`` the one trained on;
    ``n_in``/``n_out`` for bouncing balls and videos."""

    title: str
    data: str
    entries: tuple[Entry, ...]
    rates: tuple[float, ...] | None = None
    train_rate: float | None = None
    n_in: int = 5
    n_out: int = 5

    @property
    def subject(self) -> str:
        """The entry the protocol is about (its last): every other entry is compared with it."""
        return self.entries[-1].label


BASELINES = (Entry("Persistence", "persistence"), Entry("Linear", "linear"), Entry("Advection", "advection"))
# the paper's video tasks with its baselines (Tables 2 and 3): interpolation (5 in, the 4 between)
# against frame blending, DVF and UVI; extrapolation (5 in, 5 out) against persistence, advection,
# PredNet, DVF, RCG and SAVP (supplement Table 9; stochastic, scored by its mean here)
VIDEO_ENTRIES = {
    "interpolation": (
        Entry("Frame blending", "blend"),
        Entry("DVF", "dvf"),
        Entry("UVI", "uvi", {"width": 8}),  # two Super SloMo U-Nets and a cycle of three interpolations:
        # at the preset's width one update costs five of Vid-ODE's (3.2 against 0.7 CPU-s at 64 x 64)
        Entry("Vid-ODE", "vid-ode"),
    ),
    "extrapolation": (
        Entry("Persistence", "persistence"),
        Entry("Advection", "advection"),
        Entry("PredNet", "prednet"),
        Entry("DVF", "dvf"),
        Entry("RCG", "rcg"),
        Entry("SAVP", "savp"),
        Entry("Vid-ODE", "vid-ode"),
    ),
}
VIDEO_TITLES = {
    "kth": "KTH Action (persons 1-16 train, 17-25 test)",
    "mgif": "Moving GIF (900 / 100)",
    "penn": "Penn Action (the dataset's train/test flag)",
    "folder": "a folder of videos (seeded 80 / 10 / 10 split)",
}
LEARNED = (
    Entry("ConvGRU", "convgru"),
    Entry("ConvGRU-dt", "convgru-dt"),
    Entry("ConvGRU-Decay", "convgru-decay"),
    Entry("Vid-RNN", "vid-rnn"),
    Entry("ODE-FC", "ode-fc"),
    Entry("ODE-Conv", "ode-conv"),
    Entry("Latent ODE", "latent-ode"),
    Entry("ODE2VAE", "ode2vae"),
    Entry("Vid-ODE", "vid-ode"),
)
PLAIN = {"flow_warping": False, "mask_composition": False}
ADVERSARIAL = {"adversarial": True}

PROTOCOLS: Registry[Protocol] = Registry(
    "protocol",
    {
        "cam5-irregular": Protocol(
            "CAM5-like storms, 5 irregular inputs (gaps 3-48 h), every 3 h for 15 h after the last (Table 5)",
            "cam5",
            BASELINES + LEARNED,
        ),
        "sampling-rate": Protocol(
            "CAM5-like storms, a 57-h input window with 100, 75, 50 or 25 % of its 3-hourly frames (Fig. 6)",
            "cam5",
            (*BASELINES, Entry("ConvGRU-Decay", "convgru-decay"), Entry("Vid-ODE", "vid-ode")),
            rates=(1.0, 0.75, 0.5, 0.25),
            train_rate=0.5,
        ),
        "ablation": Protocol(
            "Vid-ODE's parts one by one on bouncing balls, 10 in, 10 out (Table 4)",
            "bouncing-ball",
            (
                Entry("(A) ODE-Conv", "ode-conv", PLAIN),
                Entry("(B) + ODE-ConvGRU", "vid-ode", PLAIN),
                Entry("(C) + adversarial", "vid-ode", PLAIN, ADVERSARIAL),
                Entry("(D) + flow warping", "vid-ode", {"mask_composition": False}, ADVERSARIAL),
                Entry("(E) + mask composition", "vid-ode", {}, ADVERSARIAL),
            ),
            n_in=10,
            n_out=10,
        ),
        "bouncing-ball": Protocol(
            "Bouncing balls (3 in 32 x 32), 10 in, 10 out", "bouncing-ball", BASELINES + LEARNED, n_in=10, n_out=10
        ),
        **{name: Protocol(title, name, VIDEO_ENTRIES["extrapolation"]) for name, title in VIDEO_TITLES.items()},
    },
)

PRESETS: Registry[Preset] = Registry(
    "preset",
    {
        # 2 CPU cores, under an hour per protocol and seed: tiles at 2 degrees (30 x 80 cells), width 16, 300
        # updates; 120 storms so that the time-block split leaves validation storms and 11 test storms
        "cpu-small": Preset(
            steps=300,
            width=16,
            batch_size=4,
            storms=120,
            samples_per_storm=8,
            resolution=2.0,
            train_size=400,
            test_size=50,
        ),
        # the paper's sizes: width 32, 1-degree tiles (60 x 160), many more storms and updates (a GPU's work)
        "paper": Preset(
            steps=50_000,
            width=32,
            batch_size=8,
            storms=300,
            samples_per_storm=12,
            resolution=1.0,
            train_size=1000,
            test_size=50,
            solver_step=0.5,
            video_size=128,
            clips_per_video=0,
        ),
    },
)
