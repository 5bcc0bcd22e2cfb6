"""Procedural video that can be rendered at any real time: the bundled video model's training data.

A scene is a textured background seen through a camera that pans and zooms, with textured shapes
(discs, boxes, ellipses, blobs) that move, turn and pass in front of one another, under a light that
brightens or dims over time. Everything is a smooth function of time, so a frame exists at every real
time: the targets of a sample lie anywhere inside the gaps between its inputs, as frame-rate
conversion asks. Units: times in input frame intervals; speeds in pixels of a ``size``-pixel frame
per interval; values in [0, 1], RGB.

``Scenes(split, size, n_in, n_out, frame_size)`` is the dataset (``climode.data.DATASETS["scenes"]``):
``n_in`` inputs at times 0 .. n_in - 1; targets at one random real time inside each gap and ``n_out``
random real times within the ``n_out`` intervals after the last input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.contract import DatasetInfo, Sample
from ..errors import check_choice

SPLIT_SEEDS = {"train": 0, "val": 1_000_003, "test": 2_000_003}
TEXTURE = 64  # texture side in pixels
SHAPES = ("disc", "box", "ellipse", "blob")


def texture(rng: np.random.Generator, side: int = TEXTURE) -> torch.Tensor:
    """(3, side, side) in [0, 1]: noise at several scales plus a few gratings, coloured at random."""
    grey = np.zeros((side, side), np.float32)
    for cells, amp in ((2, 1.0), (4, 0.7), (8, 0.5), (16, 0.4), (32, 0.3), (side, 0.15)):
        coarse = torch.as_tensor(rng.normal(size=(1, 1, cells, cells)), dtype=torch.float32)
        grey += amp * F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)[0, 0].numpy()
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    for _ in range(rng.integers(0, 3)):
        k = rng.uniform(2, 12) * np.array([math.cos(a := rng.uniform(0, math.pi)), math.sin(a)])
        grey += rng.uniform(0.2, 0.8) * np.sin(2 * math.pi * (k[0] * x + k[1] * y) + rng.uniform(0, 6.3))
    grey = (grey - grey.mean()) / (grey.std() + 1e-6)
    base, tint = rng.uniform(0.15, 0.85, 3), rng.uniform(0.08, 0.3, 3)
    second = rng.normal(size=(3, 1, 1)) * 0.05
    colour = base[:, None, None] + tint[:, None, None] * grey + second * np.roll(grey, side // 3, 0)
    return torch.as_tensor(np.clip(colour, 0, 1), dtype=torch.float32)


@dataclass(frozen=True)
class Thing:
    """A moving shape: world position ``pos`` (2,) and velocity ``vel`` (2,) in frame pixels, ``radius``
    (pixels), angle ``angle`` (rad) and turn ``spin`` (rad per interval), ``aspect`` (ellipse, box),
    ``shape`` (``SHAPES``), its ``texture`` and, for blobs, its ``outline`` (1, n, n) noise."""

    pos: np.ndarray
    vel: np.ndarray
    radius: float
    angle: float
    spin: float
    aspect: float
    shape: str
    texture: torch.Tensor
    outline: torch.Tensor | None


@dataclass(frozen=True)
class Scene:
    """One clip's content: ``background`` texture spanning ``extent`` pixels of the world, the camera's
    centre ``centre`` (2,) and pan ``pan`` (2,) (pixels per interval), zoom ``zoom`` (log-scale per
    interval), the ``things`` back to front and the light's ``gain`` per interval."""

    background: torch.Tensor
    extent: float
    centre: np.ndarray
    pan: np.ndarray
    zoom: float
    things: tuple[Thing, ...]
    gain: float


def make_scene(rng: np.random.Generator, size: int) -> Scene:
    """A random scene for ``size``-pixel frames; speeds up to about 6 % of the frame per interval."""
    speed = lambda top: rng.uniform(0, top) * size / 64 * np.array([math.cos(a := rng.uniform(0, 6.3)), math.sin(a)])
    still = rng.random() < 0.3
    things = []
    for _ in range(rng.integers(1, 5)):
        shape = SHAPES[rng.integers(len(SHAPES))]
        outline = None
        if shape == "blob":
            outline = torch.as_tensor(rng.normal(size=(1, 1, 4, 4)), dtype=torch.float32)
        things.append(
            Thing(
                pos=rng.uniform(-0.45, 0.45, 2) * size,
                vel=speed(4.0),
                radius=rng.uniform(0.08, 0.25) * size,
                angle=rng.uniform(0, 6.3),
                spin=rng.uniform(-0.06, 0.06),
                aspect=rng.uniform(0.5, 1.0),
                shape=shape,
                texture=texture(rng),
                outline=outline,
            )
        )
    return Scene(
        background=texture(rng, 2 * TEXTURE),
        extent=rng.uniform(1.5, 3.0) * size,
        centre=rng.uniform(-0.2, 0.2, 2) * size,
        pan=np.zeros(2) if still else speed(3.0),
        zoom=0.0 if still else rng.uniform(-0.025, 0.025),
        things=tuple(things),
        gain=rng.uniform(-0.03, 0.03),
    )


def _sample(tex: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``tex`` (C, n, n) at ``coords`` (T, H, W, 2) in [-1, 1] (x, y), tiled (reflected) beyond."""
    return F.grid_sample(
        tex.expand(len(coords), *tex.shape), coords, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def render(scene: Scene, times: np.ndarray, size: int) -> np.ndarray:
    """Frames (T, 3, size, size) float32 in [0, 1] of ``scene`` at real ``times`` (T,), intervals."""
    t = torch.as_tensor(np.asarray(times, np.float64), dtype=torch.float32).view(-1, 1, 1, 1)
    pix = (torch.arange(size, dtype=torch.float32) + 0.5 - size / 2).tolist()
    gy, gx = torch.meshgrid(torch.tensor(pix), torch.tensor(pix), indexing="ij")
    screen = torch.stack((gx, gy), -1)[None]  # (1, H, W, 2) pixels from the centre, (x, y)
    centre = torch.as_tensor(scene.centre, dtype=torch.float32) + torch.as_tensor(scene.pan, dtype=torch.float32) * t
    world = centre + torch.exp(scene.zoom * t) * screen  # (T, H, W, 2)
    frame = _sample(scene.background, 2 * world / scene.extent)
    edge = 1.5 / size  # soft edges about a pixel wide, in units of the radius
    for thing in scene.things:
        pos = torch.as_tensor(thing.pos, dtype=torch.float32) + torch.as_tensor(thing.vel, dtype=torch.float32) * t
        angle = thing.angle + thing.spin * t
        rel = (world - pos) / thing.radius
        cos, sin = torch.cos(angle), torch.sin(angle)
        u = torch.stack(
            (
                cos[..., 0] * rel[..., 0] + sin[..., 0] * rel[..., 1],
                -sin[..., 0] * rel[..., 0] + cos[..., 0] * rel[..., 1],
            ),
            -1,
        )
        if thing.shape in ("ellipse", "box"):
            u = u * torch.tensor([1.0, 1.0 / thing.aspect])
        if thing.shape == "box":
            reach = u.abs().amax(-1)
        else:
            reach = u.norm(dim=-1)
        if thing.outline is not None:  # a blob: the radius varies smoothly with the direction
            wobble = _sample(thing.outline[0], u.clamp(-1, 1))[:, 0]
            reach = reach * (1 + 0.25 * torch.tanh(wobble))
        alpha = ((1 - reach) / (edge * size / thing.radius)).clamp(0, 1)[:, None]
        frame = alpha * _sample(thing.texture, u / 2) + (1 - alpha) * frame
    light = torch.exp(scene.gain * t)  # the whole scene brightens or dims
    return (frame * light).clamp(0, 1).numpy()


class Scenes(Dataset):
    """``size`` scenes of split ``split`` as samples (module docstring); ``frame_size`` pixels a side."""

    def __init__(
        self, split: str = "train", size: int = 1000, n_in: int = 4, n_out: int = 1, frame_size: int = 64, seed: int = 0
    ):
        check_choice("split", split, SPLIT_SEEDS)
        if n_in < 2 or n_out < 0:
            raise ValueError(f"scenes need n_in >= 2 and n_out >= 0, got {n_in} and {n_out}")
        self.size, self.n_in, self.n_out, self.frame_size = size, n_in, n_out, frame_size
        self.seed = seed + SPLIT_SEEDS[split]
        self.info = DatasetInfo(("red", "green", "blue"), "frames", n_in, n_in - 1 + n_out)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng((self.seed, index))
        scene = make_scene(rng, self.frame_size)
        times_in = np.arange(self.n_in, dtype=np.float64)
        between = rng.uniform(times_in[:-1], times_in[1:])
        after = np.sort(rng.uniform(self.n_in - 1, self.n_in - 1 + self.n_out, self.n_out))
        times_out = np.concatenate((between, after))
        frames = render(scene, np.concatenate((times_in, times_out)), self.frame_size)
        return {
            "frames_in": frames[: self.n_in],
            "times_in": times_in,
            "frames_out": frames[self.n_in :],
            "times_out": times_out,
        }
