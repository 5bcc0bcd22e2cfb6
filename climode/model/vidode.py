"""Vid-ODE: frames at irregular times in, frames at any query times out."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import ConvDecoder
from .encoder import ConvEncoder, ODEConvGRU
from .odefunc import ConvODEFunc, FCODEFunc, SolverConfig, solve
from .warp import warp

ENCODERS = ("ode-convgru", "conv")
DECODINGS = ("recursive", "anchored")
DERIVATIVES = ("conv", "fc")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of Vid-ODE and of the models compared with it (``climode.model.MODELS``).

    architecture: the model's name in ``climode.model.MODELS`` ("vid-ode", "convgru", ...).

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
    derivative: "conv" (the paper) or "fc" (ODE-FC: the decoder ODE's derivative is
        fully connected over the flattened state, which needs ``frame_shape``).
    frame_shape: (H, W) of the frames trained on, set by the trainer; models whose size
        depends on it (fully connected layers) need it.
    """

    architecture: str = "vid-ode"
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
    derivative: str = "conv"
    frame_shape: list[int] | None = None

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {self.decoding!r}; choose one of {', '.join(DECODINGS)}")
        if self.derivative not in DERIVATIVES:
            raise ValueError(f"unknown derivative {self.derivative!r}; choose one of {', '.join(DERIVATIVES)}")
        if self.derivative == "fc" and not self.frame_shape:
            raise ValueError("a fully connected derivative (ODE-FC) needs frame_shape, the (H, W) of the frames")
        if self.frame_shape is not None:
            object.__setattr__(self, "frame_shape", [int(n) for n in self.frame_shape])  # YAML-safe
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


def check_inputs(config: ModelConfig, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> None:
    """Refuse frames (B, L, C, H, W) of the wrong channel count, or times that do not fit them."""
    C, L = frames.shape[2], frames.shape[1]
    if C != config.channels:
        raise ValueError(f"the model expects {config.channels} channels per frame, got {C}")
    if times.shape != (L,):
        raise ValueError(f"input times must have shape ({L},) to match the frames, got {tuple(times.shape)}")
    check_times(times, "input times")
    check_times(query_times, "query times")


def last_observed(frames: torch.Tensor) -> torch.Tensor:
    """The last input frame with any finite cell: (B, L, C, H, W) -> (B, C, H, W)."""
    observed = torch.isfinite(frames).flatten(2).any(2)
    last = observed.shape[1] - 1 - observed.flip(1).int().argmax(1)
    return frames[torch.arange(len(frames), device=frames.device), last]


def pad4(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the last two dims of (..., H, W) up to multiples of 4 (the encoder's stride)."""
    H, W = x.shape[-2:]
    flat = x.reshape(-1, *x.shape[-3:]) if x.ndim > 4 else x
    out = F.pad(flat, (0, (-W) % 4, 0, (-H) % 4), mode="replicate")
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


def prepare_inputs(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every learned model takes in, from frames (B, L, C, H, W) with NaN for missing cells:
    ``x`` (B, L, 2C, H4, W4) the frames with NaN as 0 followed by their validity (1/0), padded to
    multiples of 4; ``observed`` (B, L) whether a frame has any finite cell; ``anchor``
    (B, C, H4, W4) the last observed frame, NaN as 0, padded. Refuses a sequence with no
    observed frame."""
    valid = torch.isfinite(frames)
    observed = valid.flatten(2).any(2)
    if not observed.any(1).all():
        raise ValueError("every sequence needs at least one observed (not all-NaN) input frame")
    filled = torch.where(valid, frames, torch.zeros((), dtype=frames.dtype, device=frames.device))
    x = pad4(torch.cat((filled, valid.to(frames.dtype)), 2))
    return x, observed, pad4(torch.nan_to_num(last_observed(frames)))


def model_times(times: torch.Tensor, query_times: torch.Tensor, like: torch.Tensor,
                time_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and query times (real units) in model units, on ``like``'s device and dtype."""
    to = lambda t: t.to(device=like.device, dtype=like.dtype) / time_scale
    return to(times), to(query_times)


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
        if config.derivative == "fc":
            H, W = (n + (-n) % 4 for n in config.frame_shape)
            self.decoder_func = FCODEFunc(4 * w, H // 4, W // 4)
        else:
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
        check_inputs(cfg, frames, times, query_times)
        x, observed, anchor = prepare_inputs(frames)
        t, s = model_times(times, query_times, frames, cfg.time_scale)

        if cfg.encoder == "ode-convgru":
            feats = self.frame_encoder(x.flatten(0, 1)).unflatten(0, (B, L))
            state = self.sequence_encoder(feats, t, observed)
        else:
            if L != cfg.n_in:
                raise ValueError(f"the ODE-Conv encoder was built for {cfg.n_in} input frames, got {L}")
            state = self.frame_encoder(x.flatten(1, 2))

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
            "anchor": last_observed(frames),
        }
