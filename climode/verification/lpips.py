"""LPIPS (Zhang et al. 2018; the perceptual distance of the paper's tables) from weights the user has.

LPIPS needs an ImageNet-trained AlexNet and the five linear heads learned on human judgements. Neither
can be fetched here, and torchmetrics' LPIPS builds its backbone with torchvision (not used by
climode), so this is the metric in plain torch, version 0.1 with the AlexNet backbone, loading:

- the backbone: torchvision's AlexNet weights file (``alexnet-owt-7be5be79.pth``; the keys
  ``features.{0,3,6,8,10}.{weight,bias}``; the classifier's keys are ignored);
- the heads: the ``lpips`` package's ``weights/v0.1/alex.pth`` (keys ``lin{0..4}.model.1.weight``);

from one file holding both or from two files (``.pth``/``.pt`` read with ``weights_only=True``, so
that nothing in them is executed, or ``.safetensors``). Without them LPIPS is reported as n/a.

``LPIPS(x, y)`` takes frames (B, C, H, W) in [0, 1] (C 1 or 3; grey is repeated to RGB) of at least
32 x 32 pixels and returns (B,): 0 for equal frames, larger for frames further apart.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import ClimodeError

CHANNELS = (64, 192, 384, 256, 256)  # AlexNet's features after each of its five ReLUs
TAPS = (1, 4, 7, 9, 11)  # their indices in torchvision's ``alexnet().features``
MIN_SIDE = 32  # pixels: smaller frames vanish in AlexNet's strides and pools
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS's input scaling, on [-1, 1] RGB
SCALE = (0.458, 0.448, 0.450)


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` layout, so that its weights file loads by name."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    )


class LPIPS(nn.Module):
    """LPIPS v0.1 on AlexNet; build with ``LPIPS.from_files`` (an unloaded one has random weights)."""

    def __init__(self):
        super().__init__()
        self.features = _alexnet_features()
        for k, c in enumerate(CHANNELS):
            self.add_module(f"lin{k}", _Head(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    @classmethod
    def from_files(cls, *paths: str | Path) -> LPIPS:
        """The metric with its weights from ``paths`` (module docstring); one error naming the files and
        the first missing or misshapen weight."""
        metric, found = cls(), {}
        for path in map(Path, paths):
            found.update(_read(path))
        wanted = {k: v for k, v in metric.state_dict().items() if k not in ("shift", "scale")}
        names = ", ".join(str(p) for p in paths)
        missing = [k for k in wanted if k not in found]
        if missing:
            kind = "AlexNet backbone (torchvision's alexnet weights)" if missing[0].startswith("features") else "heads"
            raise ClimodeError(
                f"LPIPS weights {names}: {len(missing)} of {len(wanted)} weights missing (first {missing[0]}, of the "
                f"{kind}); give torchvision's AlexNet file and the lpips package's v0.1 alex.pth"
            )
        for key, value in wanted.items():
            if tuple(found[key].shape) != tuple(value.shape):
                raise ClimodeError(
                    f"LPIPS weights {names}: {key} is {tuple(found[key].shape)}, AlexNet LPIPS needs "
                    f"{tuple(value.shape)}"
                )
        metric.load_state_dict({k: found[k].float() for k in wanted}, strict=False)  # the buffers stay
        if not all(torch.isfinite(p).all() for p in metric.parameters()):
            raise ClimodeError(f"LPIPS weights {names} hold non-finite values")
        return metric

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) x 2 in [0, 1] -> (B,) distances."""
        if x.shape[1] not in (1, 3):
            raise ClimodeError(f"LPIPS scores grey or RGB frames, not {x.shape[1]} channels")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ClimodeError(
                f"LPIPS needs frames of at least {MIN_SIDE} x {MIN_SIDE} pixels, got {tuple(x.shape[-2:])}"
            )
        total = x.new_zeros(len(x))
        fx, fy = self._taps(x), self._taps(y)
        for k, (a, b) in enumerate(zip(fx, fy)):
            d = (_unit(a) - _unit(b)) ** 2
            total = total + getattr(self, f"lin{k}")(d).mean((1, 2, 3))
        return total

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.float().nan_to_num(0.0)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        h, taps = (2 * x - 1 - self.shift) / self.scale, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                taps.append(h)
        return taps


class _Head(nn.Module):
    """The lpips package's NetLinLayer (``model``: dropout, then a 1x1 convolution to one channel)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Features scaled to unit length over channels at each position (LPIPS's normalize_tensor)."""
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def _read(path: Path) -> dict[str, torch.Tensor]:
    """A weights file's tensors, never executing code (safetensors, or torch.load with weights_only)."""
    if not path.is_file():
        raise ClimodeError(f"LPIPS weights {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user error
        raise ClimodeError(f"LPIPS weights {path}: not a weights file torch or safetensors can read ({exc})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ClimodeError(f"LPIPS weights {path}: holds a {type(loaded).__name__}, not a dict of named weights")
    return {k.removeprefix("module."): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
