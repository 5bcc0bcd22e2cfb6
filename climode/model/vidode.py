"""Vid-ODE: frames at irregular times in, frames at any query times out."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import ConvDecoder
from .encoder import ConvEncoder, ODEConvGRU
from .odefunc import ConvODEFunc, SolverConfig, solve
from .warp import warp

ENCODERS = ("ode-convgru", "conv")
DECODINGS = ("recursive", "anchored")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of Vid-ODE.

    channels: variables per frame (3 for RGB or U850/V850/PSL).
    width: base width w; the encoder is w-2w-4w, the ODE derivatives 4w-2w-2w-2w-4w,
        the decoder 4w-2w (paper: w = 32).
    time_scale: real time units per model time unit. Times are given to the model in
        real units (hours for climate data, frames for video) and divided by this
        before any ODE is solved, so solver step sizes are in model units.
    encoder: "ode-convgru" (the paper) or "conv" (ODE-Conv ablation: the n_in frames
        stacked along channels through one Conv-Encoder).
    flow_warping / mask_composition: the ablation switches of Table 4. Without warping
        the previous frame is used unwarped; without the mask the output is the
        (warped) previous frame plus the predicted difference.
    decoding: "recursive" (the paper: each frame warps the previous generated frame)
        or "anchored" (each frame warps the last input frame, so a query's forecast
        does not depend on which other times were asked for).
    """

    channels: int = 3
    width: int = 32
    time_scale: float = 1.0
    encoder: str = "ode-convgru"
    n_in: int | None = None
    encoder_solver: SolverConfig = field(default_factory=SolverConfig)
    decoder_solver: SolverConfig = field(default_factory=SolverConfig)
    flow_warping: bool = True
    mask_composition: bool = True
    decoding: str = "recursive"

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {self.decoding!r}; choose one of {', '.join(DECODINGS)}")
        if self.encoder == "conv" and not self.n_in:
            raise ValueError("the conv (ODE-Conv) encoder needs n_in, the number of input frames")
        if self.channels < 1 or self.width < 1 or not self.time_scale > 0:
            raise ValueError("channels, width and time_scale must be positive")
        for name in ("encoder_solver", "decoder_solver"):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, SolverConfig(**value))

    def to_dict(self) -> dict:
        return asdict(self)


def check_times(times: torch.Tensor, what: str) -> None:
    """Refuse times that are not a finite, strictly increasing 1-D sequence."""
    if times.ndim != 1 or times.numel() == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence, got shape {tuple(times.shape)}")
    if not torch.isfinite(times).all():
        raise ValueError(f"{what} must be finite numbers, got {times.tolist()}")
    if times.numel() > 1 and not (times[1:] > times[:-1]).all():
        raise ValueError(f"{what} must be strictly increasing (sorted, no duplicates), got {times.tolist()}")


def last_observed(frames: torch.Tensor) -> torch.Tensor:
    """The last input frame with any finite cell: (B, L, C, H, W) -> (B, C, H, W)."""
    observed = torch.isfinite(frames).flatten(2).any(2)
    last = observed.shape[1] - 1 - observed.flip(1).int().argmax(1)
    return frames[torch.arange(len(frames), device=frames.device), last]


def _trajectory(func: nn.Module, h0: torch.Tensor, t0: torch.Tensor, times: torch.Tensor, solver: SolverConfig):
    """States at ``times`` (monotonic away from t0, the first may equal t0) from h0 at t0."""
    states: list[torch.Tensor] = []
    if times.numel() and times[0] == t0:
        states.append(h0)
        times = times[1:]
    if times.numel():
        states.extend(solve(func, h0, torch.cat((t0.view(1), times)), solver)[1:].unbind(0))
    return states


class VidODE(nn.Module):
    """The Vid-ODE generator (encoder, decoder ODE, Conv-Decoder and composition)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        ode_widths = (4 * w, 2 * w, 2 * w, 2 * w, 4 * w)
        if config.encoder == "ode-convgru":
            self.frame_encoder = ConvEncoder(2 * c, w)
            self.sequence_encoder = ODEConvGRU(4 * w, ode_widths, config.encoder_solver)
        else:
            self.frame_encoder = ConvEncoder(2 * c * config.n_in, w)
        self.decoder_func = ConvODEFunc(ode_widths)
        self.decoder = ConvDecoder(c, w)

    def forward(
        self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Forecast frames at ``query_times``.

        frames: (B, L, C, H, W), NaN marks missing cells; a frame with no finite cell is
            a missing observation. times: (L,) strictly increasing, real units.
        query_times: (K,) strictly increasing, real units, before, inside or after the
            observed range.
        Returns a dict of (B, K, ...) tensors: ``frames`` (C channels), ``flow`` (2, pixels),
        ``diff`` (C), ``mask`` (1); ``previous`` (K,) the index of the query each frame was
        composed from (-1: the last observed input frame) and ``anchor`` (B, C, H, W) that frame.
        """
        cfg = self.config
        B, L, C, H, W = frames.shape
        if C != cfg.channels:
            raise ValueError(f"the model expects {cfg.channels} channels per frame, got {C}")
        if times.shape != (L,):
            raise ValueError(f"input times must have shape ({L},) to match the frames, got {tuple(times.shape)}")
        check_times(times, "input times")
        check_times(query_times, "query times")
        valid = torch.isfinite(frames)
        observed = valid.flatten(2).any(2)
        if not observed.any(1).all():
            raise ValueError("every sequence needs at least one observed (not all-NaN) input frame")
        filled = torch.where(valid, frames, torch.zeros((), dtype=frames.dtype, device=frames.device))

        pad_h, pad_w = (-H) % 4, (-W) % 4
        x = torch.cat((filled, valid.to(frames.dtype)), 2).flatten(0, 1)
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate").unflatten(0, (B, L))
        t = times.to(frames.dtype) / cfg.time_scale
        s = query_times.to(device=frames.device, dtype=frames.dtype) / cfg.time_scale

        if cfg.encoder == "ode-convgru":
            feats = self.frame_encoder(x.flatten(0, 1)).unflatten(0, (B, L))
            state = self.sequence_encoder(feats, t, observed)
        else:
            if L != cfg.n_in:
                raise ValueError(f"the ODE-Conv encoder was built for {cfg.n_in} input frames, got {L}")
            state = self.frame_encoder(x.flatten(1, 2))

        anchor_raw = last_observed(frames)
        anchor = F.pad(torch.nan_to_num(anchor_raw), (0, pad_w, 0, pad_h), mode="replicate")

        t_last = t[-1]
        forward_idx = torch.nonzero(s >= t_last).flatten().tolist()
        backward_idx = torch.nonzero(s < t_last).flatten().flip(0).tolist()
        outputs: list = [None] * len(s)
        previous = [-1] * len(s)
        for order in (forward_idx, backward_idx):
            if not order:
                continue
            states = _trajectory(self.decoder_func, state, t_last, s[order], cfg.decoder_solver)
            prev_state, prev_frame, prev_i = state, anchor, -1
            for i, h in zip(order, states):
                flow, diff, mask = self.decoder(h, prev_state)
                source = warp(prev_frame, flow) if cfg.flow_warping else prev_frame
                frame = mask * source + (1 - mask) * diff if cfg.mask_composition else source + diff
                outputs[i] = (frame, flow, diff, mask)
                previous[i] = prev_i
                if cfg.decoding == "recursive":
                    prev_state, prev_frame, prev_i = h, frame, i
        frames_out, flow, diff, mask = (torch.stack(parts, 1)[..., :H, :W] for parts in zip(*outputs))
        return {
            "frames": frames_out,
            "flow": flow,
            "diff": diff,
            "mask": mask,
            "previous": torch.tensor(previous, device=frames.device),
            "anchor": anchor_raw,
        }
