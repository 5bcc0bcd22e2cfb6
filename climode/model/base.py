"""What every model shares: its configuration (``ModelConfig``), the input check, the frames every
learned model takes in, where a query falls among the inputs, and the composition of the output
frames from their parts (``climode.model.compose``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_choice
from .compose import compose, fill_missing
from .compute import COMPILE_MODES, PRECISIONS
from .decoder import DECODERS
from .odefunc import SolverConfig

ENCODERS = ("ode-convgru", "conv")
# keys whose default changed: what a saved config without them meant (``ModelConfig.saved``)
SAVED_BEFORE = {"decoder": "paper"}
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
        before any ODE is solved, so solver step sizes are in model units. None: the trainer
        takes the data's storage step (hours) or 1 (frames); an untrained model uses 1.
    encoder_solver / decoder_solver: how the encoders' and the decoder's ODEs are integrated; by
        default (since issue 32) one Euler step per data interval in the encoders (as the paper's
        code) and one midpoint step in the decoder: 14 evaluations for 5 inputs and 5 leads where
        rk4 took 36, with skill as good on the cpu-small storm protocol (docs/performance.md).
    encoder: "ode-convgru" (the paper) or "conv" (ODE-Conv ablation: the n_in frames
        stacked along channels through one Conv-Encoder).
    flow_warping / mask_composition: the ablation switches of Table 4. Without warping
        the previous frame is used unwarped; without the mask the output is the
        (warped) previous frame plus the predicted difference.
    decoding: "anchored" (each extrapolated frame is composed from the last observed frame, so
        a query's forecast does not depend on which other times were asked for) or "recursive"
        (the paper: each from the previous forecast frame).
    decoder: the Conv-Decoders' layout (``climode.model.decoder``): "light" (each convolution before
        its upsampling, the full-resolution one w/2 wide: 38 % of the paper's work, the default since
        issue 32) or "paper" (upsampling first, as the paper and every model saved before that).
    derivative: "conv" (the paper) or "fc" (ODE-FC: the decoder ODE's derivative is
        fully connected over the flattened state, which needs ``frame_shape``).
    frame_shape: (H, W) of the frames trained on, set by the trainer; models whose size
        depends on it (fully connected layers) need it.
    channels_last, precision, checkpointing, compile: how Vid-ODE runs, not what it computes
        (``climode.model.compute``): convolution weights stored NHWC (faster on CPU); "bfloat16"
        runs the convolutions in bfloat16 with states and outputs in float32 (faster where the
        hardware has bfloat16 units, e.g. CPUs with AMX and recent GPUs; else slower), "auto" does
        so only where the device has them (``compute.has_bfloat16_units``); activation
        checkpointing of the networks at the frames' resolution, the frame encoder and the decoders'
        full-resolution stage (less memory, a little more time; on by default since issue 32: the
        ODEs and the ConvGRU work on a grid 16 times smaller, where recomputing costs more than it
        saves); ``compile``
        runs every network (encoders, ODE derivatives, ConvGRU cells, decoders) through
        torch.compile in that mode ("reduce-overhead": CUDA graphs on a GPU; "off" by default: the
        first call compiles for a minute or more).
    """

    architecture: str = "vid-ode"
    channels: int = 3
    width: int = 32
    time_scale: float | None = None
    encoder: str = "ode-convgru"
    n_in: int | None = None
    encoder_solver: SolverConfig = field(default_factory=lambda: SolverConfig("euler"))
    decoder_solver: SolverConfig = field(default_factory=lambda: SolverConfig("midpoint"))
    flow_warping: bool = True
    mask_composition: bool = True
    decoding: str = "anchored"
    decoder: str = "light"
    derivative: str = "conv"
    frame_shape: list[int] | None = None
    channels_last: bool = True
    precision: str = "float32"
    checkpointing: bool = True
    compile: str = "off"

    def __post_init__(self):
        check_choice("encoder", self.encoder, ENCODERS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("decoding", self.decoding, DECODINGS)
        check_choice("decoder", self.decoder, DECODERS)
        check_choice("compile", self.compile, COMPILE_MODES)
        check_choice("derivative", self.derivative, DERIVATIVES)
        if self.derivative == "fc" and not self.frame_shape:
            raise ValueError("a fully connected derivative (ODE-FC) needs frame_shape, the (H, W) of the frames")
        if self.frame_shape is not None:
            object.__setattr__(self, "frame_shape", [int(n) for n in self.frame_shape])  # YAML-safe
        if self.encoder == "conv" and not self.n_in:
            raise ValueError("the conv (ODE-Conv) encoder needs n_in, the number of input frames")
        if self.channels < 1 or self.width < 1 or not (self.time_scale is None or self.time_scale > 0):
            raise ValueError("channels, width and time_scale must be positive")
        for name in ("encoder_solver", "decoder_solver"):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, SolverConfig(**value))

    @property
    def fixed_shape(self) -> list[int] | None:
        """(H, W) pixels the model runs at only (ODE-FC: its derivative is fully connected over the
        state), or None: any size, e.g. every convolutional model, whatever ``frame_shape`` it was trained on."""
        return self.frame_shape if self.derivative == "fc" else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def saved(cls, values: dict) -> dict:
        """``values`` as climode wrote them (a checkpoint's header, a run's run.yaml), with the keys
        added since given what a file without them meant (``SAVED_BEFORE``)."""
        return {**SAVED_BEFORE, **values}


def check_times(times: torch.Tensor, what: str) -> None:
    """Refuse times that are not a finite, strictly increasing 1-D sequence."""
    if times.ndim != 1 or times.numel() == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence, got shape {tuple(times.shape)}")
    if not torch.isfinite(times).all():
        raise ValueError(f"{what} must be finite numbers, got {times.tolist()}")
    if times.numel() > 1 and not (times[1:] > times[:-1]).all():
        raise ValueError(f"{what} must be strictly increasing (sorted, no duplicates), got {times.tolist()}")


def _per_sample(times: torch.Tensor, B: int, n: int, what: str, keep: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) times shared by the batch or (B, n) times of each sample's own -> (B, n). In the (B, n) form
    NaN marks a slot a sample does not use; the others (and those ``keep`` marks) must increase."""
    if times.ndim == 1:
        if times.shape != (n,):
            raise ValueError(
                f"{what} must have shape ({n},) or ({B}, {n}) to match the frames, got {tuple(times.shape)}"
            )
        check_times(times, what)
        return times.expand(B, n)
    if times.shape != (B, n):
        raise ValueError(f"{what} must have shape ({n},) or ({B}, {n}), got {tuple(times.shape)}")
    used = keep if keep is not None else ~torch.isnan(times)
    # each used time must be finite and above every used time before it (one check for the batch)
    before = torch.where(used, times, -torch.inf).cummax(1).values.roll(1, 1)
    before[:, 0] = -torch.inf
    bad = used & ~(torch.isfinite(times) & (times > before))
    if bool(bad.any()):
        b = int(bad.any(1).int().argmax())
        check_times(times[b][used[b]], f"{what} of sample {b}")
    return times


def check_inputs(
    config: ModelConfig, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refuse frames (B, L, C, H, W) of the wrong channel count, or times that do not fit them; return
    the input times (B, L) and query times (B, K) of each sample (see ``VidODE.forward``)."""
    if frames.ndim != 5:
        raise ValueError(f"frames must be (batch, time, channel, y, x), got shape {tuple(frames.shape)}")
    B, L, C = frames.shape[:3]
    if C != config.channels:
        raise ValueError(f"the model expects {config.channels} channels per frame, got {C}")
    observed = torch.isfinite(frames).flatten(2).any(2)
    times = _per_sample(times, B, L, "input times", observed)
    K = query_times.shape[-1] if query_times.ndim else 0
    return times, _per_sample(query_times, B, K, "query times")


def last_index(observed: torch.Tensor) -> torch.Tensor:
    """(B, L) bool -> (B,) the slot of each sample's last observed frame."""
    return observed.shape[1] - 1 - observed.flip(1).int().argmax(1)


def last_observed(frames: torch.Tensor) -> torch.Tensor:
    """The last input frame with any finite cell: (B, L, C, H, W) -> (B, C, H, W)."""
    observed = torch.isfinite(frames).flatten(2).any(2)
    return frames[torch.arange(len(frames), device=frames.device), last_index(observed)]


def pad4(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the last two dims of (..., H, W) up to multiples of 4 (the encoder's stride)."""
    H, W = x.shape[-2:]
    flat = x.reshape(-1, *x.shape[-3:]) if x.ndim > 4 else x
    out = F.pad(flat, (0, (-W) % 4, 0, (-H) % 4), mode="replicate")
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


def prepare_inputs(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every learned model takes in, from frames (B, L, C, H, W) with NaN for missing cells:
    ``x`` (B, L, 2C, H4, W4) the filled frames (``compose.fill_missing``) followed by their validity
    (1/0), padded to multiples of 4; ``observed`` (B, L) whether a frame has any finite cell;
    ``filled`` (B, L, C, H4, W4) and ``valid`` (B, L, C, H4, W4) float. Refuses a sequence with no
    observed frame."""
    observed = torch.isfinite(frames).flatten(2).any(2)
    if not observed.any(1).all():
        raise ValueError("every sequence needs at least one observed (not all-NaN) input frame")
    filled, valid = fill_missing(frames, observed)
    filled, valid = pad4(filled), pad4(valid.to(frames.dtype))
    return torch.cat((filled, valid), 2), observed, filled, valid


def anchor_frame(filled: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The last observed frame, missing cells filled: (B, L, C, H, W) -> (B, C, H, W)."""
    return filled[torch.arange(len(filled), device=filled.device), last_index(observed)]


def model_times(
    times: torch.Tensor, query_times: torch.Tensor, like: torch.Tensor, time_scale: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and query times (real units) in model units, on ``like``'s device and dtype."""
    scale = time_scale or 1.0  # None: not chosen yet (ModelConfig.time_scale)
    to = lambda t: t.to(device=like.device, dtype=like.dtype) / scale
    return to(times), to(query_times)


OBSERVED, INTERPOLATED, EXTRAPOLATED = 0, 1, 2  # what ``kind`` says of a query


def classify(t: torch.Tensor, s: torch.Tensor, observed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Where each query s (B, K) falls among each sample's observed times t (B, L): ``kind`` (B, K):
    OBSERVED (at an observed time, or before the first: that frame), INTERPOLATED (between two
    observed frames) or EXTRAPOLATED (after the last); ``before`` and ``after`` (B, K) the slots of the
    observed frames around it (for OBSERVED both that frame, for EXTRAPOLATED both the last)."""
    L = t.shape[1]
    slot = torch.arange(L, device=t.device)
    seen = observed[:, None, :]
    before = torch.where(seen & (t[:, None, :] <= s[:, :, None]), slot, -1).max(-1).values
    after = torch.where(seen & (t[:, None, :] > s[:, :, None]), slot, L).min(-1).values
    first = observed.int().argmax(1, keepdim=True).expand_as(before)
    last = last_index(observed).view(-1, 1).expand_as(before)
    at = (before >= 0) & (t.gather(1, before.clamp(min=0)) == s)
    extrapolated = (before >= 0) & (after == L) & ~at
    interpolated = (before >= 0) & (after < L) & ~at
    kind = torch.where(extrapolated, EXTRAPOLATED, torch.where(interpolated, INTERPOLATED, OBSERVED))
    before = torch.where(before < 0, first, torch.where(extrapolated, last, before))
    after = torch.where(interpolated, after, before)
    return {"kind": kind, "before": before, "after": after}


def placed_queries(config: ModelConfig, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor):
    """What a model that composes frames from the inputs around each query reads first: ``(observed,
    filled, valid, t, s, where)``: the inputs' ``prepare_inputs`` parts, each sample's input and query
    times in model units (B, L) and (B, K) (``model_times``; NaN: no query) and where each query falls
    among the observed frames (``classify``). Refuses inputs ``check_inputs`` refuses."""
    times, query_times = check_inputs(config, frames, times, query_times)
    _, observed, filled, valid = prepare_inputs(frames)
    t, s = model_times(times, query_times, frames, config.time_scale)
    return observed, filled, valid, t, s, classify(t, s, observed)


def empty_parts(filled: torch.Tensor, K: int) -> dict[str, torch.Tensor]:
    """Composition parts (``climode.model.compose``) of K queries that copy their first source, on the
    grid of ``filled`` (B, L, C, H, W): zero ``flows``, ``residual`` and ``diff``, unit ``weight`` and ``mask``."""
    B, _, C, H, W = filled.shape
    return {
        "flows": filled.new_zeros(B, K, 2, 2, H, W),
        "weight": filled.new_ones(B, K, 1, H, W),
        "residual": filled.new_zeros(B, K, C, H, W),
        "diff": filled.new_zeros(B, K, C, H, W),
        "mask": filled.new_ones(B, K, 1, H, W),
    }


def _decode_extrapolation(
    decoder: nn.Module,
    cfg: ModelConfig,
    parts: dict,
    at: tuple,
    state: torch.Tensor,
    previous: torch.Tensor,
    lead: torch.Tensor,
) -> None:
    """The parts at ``at`` (rows, columns) from G(h_s, h_prev) and the ``lead`` (N,) from the source frame X
    (model units): M * W(F, X) + (1 - M) * (X + D), or W(F, X) + D without the mask; the flow is dropped
    without warping. G gives rates, F and D are lead times them: both vanish at lead 0 (the frame is X)
    and grow with the lead as a steady motion's displacement and a steady deepening's change do."""
    dtype = parts["diff"].dtype
    velocity, rate, mask = (v.to(dtype) for v in decoder(state, previous))
    lead = lead.view(-1, 1, 1, 1)
    flow, diff = lead * velocity, lead * rate
    parts["diff"][at], parts["mask"][at] = diff, mask
    if cfg.flow_warping:
        parts["flows"][at[0], at[1], 0] = flow
    if cfg.mask_composition:
        parts["weight"][at], parts["residual"][at] = mask, (1 - mask) * diff
    else:
        parts["residual"][at] = diff


def extrapolate(
    decoder: nn.Module,
    cfg: ModelConfig,
    parts: dict,
    sources: torch.Tensor,
    states: torch.Tensor,
    h_last: torch.Tensor,
    extrapolated: torch.Tensor,
    leads: torch.Tensor,
) -> None:
    """Decode the ``extrapolated`` (B, K) queries from their states (B, K, ...) at ``leads`` (B, K) after
    the last observed frame (model units) into ``parts`` and ``sources`` (whose entries there name that
    frame). Anchored: G(h_s, h_L), each from that frame. Recursive (the paper): G(h_s, h_prev), each
    from the previous forecast of its sample."""
    if cfg.decoding == "anchored":
        b, k = extrapolated.nonzero(as_tuple=True)
        _decode_extrapolation(decoder, cfg, parts, (b, k), states[b, k], h_last[b], leads[b, k])
        return
    rows = torch.arange(len(sources), device=sources.device)
    previous, source = h_last, sources[rows, extrapolated.int().argmax(1), 0]  # the last observed frame
    before = torch.zeros_like(leads[:, 0])
    for k in range(extrapolated.shape[1]):
        b = extrapolated[:, k].nonzero(as_tuple=True)[0]
        if len(b):
            _decode_extrapolation(
                decoder, cfg, parts, (b, torch.full_like(b, k)), states[b, k], previous[b], leads[b, k] - before[b]
            )
            sources[b, k] = source[b].view(-1, 1)
            previous = previous.index_put((b,), states[b, k])
            before = before.index_put((b,), leads[b, k])
            source[b] = -1 - k


def finish(
    parts: dict,
    sources: torch.Tensor,
    kind: torch.Tensor,
    filled: torch.Tensor,
    valid: torch.Tensor,
    asked: torch.Tensor,
    size: tuple[int, int],
) -> dict[str, torch.Tensor]:
    """The model's output dict (``VidODE.forward``): frames composed from ``parts`` and ``sources`` over
    the filled inputs, the validity share carried the same way, NaN where no query was ``asked``
    (B, K), everything cropped back to ``size`` (H, W)."""
    frames = compose(filled, sources, parts["flows"], parts["weight"], parts["residual"])
    share = compose(valid, sources, parts["flows"], parts["weight"])
    frames = torch.where(asked.view(*asked.shape, 1, 1, 1), frames, float("nan"))
    crop = lambda v: v[..., : size[0], : size[1]]
    return {
        "frames": crop(frames),
        "valid": crop(share),
        "sources": sources,
        "kind": kind,
        **{name: crop(value) for name, value in parts.items()},
    }
