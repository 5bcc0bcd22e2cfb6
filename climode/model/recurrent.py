"""Recurrent baselines of the Vid-ODE paper (Park et al., AAAI 2021): ConvGRU, its time-aware variants
RNN-Δt and RNN-Decay (Che et al. 2018) made convolutional, and Vid-RNN (Vid-ODE with every ODE replaced
by a ConvGRU, paper supplement B).

All take the model's arguments: frames (B, L, C, H, W) with NaN for missing cells (an all-NaN frame is a
missing observation, skipped: the state is left unchanged and no time gap is counted to it), input times
(L,) and query times (K,), both strictly increasing, in real units (divided by ``time_scale`` into model
units). They return a dict whose ``frames`` is (B, K, C, H, W), cropped back to H, W.

Shared choices:

- every time gap Δt is measured per sample from its own previous *observed* input (so a missing frame
  is the same as no frame); the decoder starts at each sample's last observed input time;
- query times before that time are clamped to it (Δt = 0: those queries get the state at the last
  observation; a GRU cannot be run backward), so every query gets a finite frame;
- the decoders have no frame input: each step's input is the previous state itself (the rollout is
  autonomous, like the ODE it stands in for), plus the Δt channel where the model takes one.

``ConvGRUForecaster``, ``ConvGRUDt`` and ``ConvGRUDecay`` forecast the change from the last observed
frame, ``frame = anchor + StateDecoder(state)``, so each can represent persistence; the last layer of
the state decoder starts at zero, so an untrained one *is* persistence. ``VidRNN`` composes frames as
Vid-ODE does (flow-warped previous frame, difference image, mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    EXTRAPOLATED,
    ModelConfig,
    anchor_frame,
    check_inputs,
    empty_parts,
    extrapolate,
    finish,
    last_index,
    model_times,
    prepare_inputs,
)
from .compute import configure
from .decoder import ConvDecoder, StateDecoder
from .encoder import ConvEncoder, ConvGRUCell


class _GapStep(nn.Module):
    """One ConvGRU step that may see the time gap Δt (B,) in model units, Δt >= 0.

    decay: before the step the state decays, h <- exp(-relu(w * Δt + b)) * h, with w, b learned per
        channel (a 1x1 conv of the constant Δt map): RNN-Decay / GRU-D.
    gap_input: Δt is appended to the input as a constant channel and projected back to ``channels``
        by a 1x1 conv, since ``ConvGRUCell`` takes inputs as wide as its state: RNN-Δt.
    """

    def __init__(self, channels: int, gap_input: bool = False, decay: bool = False):
        super().__init__()
        self.cell = ConvGRUCell(channels)
        self.gap_input = nn.Conv2d(channels + 1, channels, 1) if gap_input else None
        self.decay = nn.Conv2d(1, channels, 1) if decay else None

    def forward(self, h: torch.Tensor, x: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """h, x (B, F, h, w); gap (B,) -> the next state (B, F, h, w)."""
        gap_map = gap.view(-1, 1, 1, 1).expand(-1, 1, *h.shape[-2:])
        if self.decay is not None:
            h = h * torch.exp(-F.relu(self.decay(gap_map)))
        if self.gap_input is not None:
            x = self.gap_input(torch.cat((x, gap_map), 1))
        return self.cell(h, x)


class _Recurrent(nn.Module):
    """Conv-Encoder and a ConvGRU over the observed frames, shared by the models of this module.
    Subclasses set ``gap_input`` / ``decay`` (see ``_GapStep``) for both their encoder and decoder step."""

    gap_input = False
    decay = False
    per_sample_times = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        self.frame_encoder = ConvEncoder(2 * c, w)
        self.encoder_step = _GapStep(4 * w, self.gap_input, self.decay)
        self.decoder_step = _GapStep(4 * w, self.gap_input, self.decay)

    def encode(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Check and encode the inputs (times (L,) or (B, L), queries (K,) or (B, K) as ``VidODE.forward``).
        Returns ``state`` (B, 4w, H4/4, W4/4) after the last observed frame, ``t_last`` (B,) that frame's
        time, ``anchor`` (B, C, H4, W4) that frame (missing cells filled), ``filled`` and ``valid``
        (B, L, C, H4, W4), ``observed`` (B, L), ``t`` (B, L) and ``s`` (B, K) the input and query times in
        model units (queries not ``asked`` (B, K), NaN, set to ``t_last``)."""
        times, query_times = check_inputs(self.config, frames, times, query_times)
        x, observed, filled, valid = prepare_inputs(frames)
        t, s = model_times(times, query_times, frames, self.config.time_scale)
        B, L = observed.shape
        feats = self.frame_encoder(x.flatten(0, 1)).unflatten(0, (B, L))
        state = torch.zeros_like(feats[:, 0])
        t_prev = t.gather(1, observed.int().argmax(1, keepdim=True)).squeeze(1)  # first observed: gap 0
        for i in range(L):
            seen = observed[:, i]
            t_i = torch.where(seen, t[:, i], t_prev)
            updated = self.encoder_step(state, feats[:, i], t_i - t_prev)
            state = torch.where(seen.view(-1, 1, 1, 1), updated, state)
            t_prev = t_i
        asked = torch.isfinite(s)
        return {
            "state": state,
            "t_last": t_prev,
            "anchor": anchor_frame(filled, observed),
            "filled": filled,
            "valid": valid,
            "observed": observed,
            "t": t,
            "s": torch.where(asked, s, t_prev.view(-1, 1)),
            "asked": asked,
        }


class _StepPerQuery(_Recurrent):
    """Sequence to sequence: one decoder step per query, each state decoded to the change from the
    last observed frame. The step's gap is the time since the previous query (the first: since the
    last observed input), with query times clamped to no earlier than the last observed input."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.state_decoder = StateDecoder(config.channels, config.width, config.decoder)
        last = self.state_decoder.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, L, C, H, W); times (L,), query_times (K,) real units -> {"frames": (B, K, C, H, W)}."""
        H, W = frames.shape[-2:]
        enc = self.encode(frames, times, query_times)
        t_last, state = enc["t_last"], enc["state"]
        clamped = torch.maximum(enc["s"], t_last.view(-1, 1))  # (B, K)
        gaps = torch.diff(clamped, dim=1, prepend=t_last.view(-1, 1))
        out = []
        for k in range(gaps.shape[1]):
            state = self.decoder_step(state, state, gaps[:, k])
            out.append(enc["anchor"] + self.state_decoder(state))
        frames = torch.stack(out, 1)[..., :H, :W]
        return {"frames": torch.where(enc["asked"].view(*gaps.shape, 1, 1, 1), frames, float("nan"))}


class ConvGRUForecaster(_StepPerQuery):
    """ConvGRU sequence to sequence ("convgru"): the times are ignored, only the order counts."""


class ConvGRUDt(_StepPerQuery):
    """ConvGRU with the time gap as an input channel at every step ("convgru-dt", RNN-Δt)."""

    gap_input = True


class ConvGRUDecay(_StepPerQuery):
    """ConvGRU whose state decays with the time gap before every step ("convgru-decay", RNN-Decay)."""

    decay = True


def interpolate_states(rollout: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
    """States at fractional steps by linear interpolation between the adjacent regular ones.

    rollout: (N + 1, B, ...) states at 0, 1, ..., N model time units after each sample's start;
    lead: (B, K) model units in [0, N]. Returns (B, K, ...).
    """
    n = lead.floor().long().clamp(max=rollout.shape[0] - 2)
    frac = (lead - n).view(*lead.shape, *[1] * (rollout.ndim - 2))
    rows = torch.arange(lead.shape[0], device=lead.device).view(-1, 1)
    return (1 - frac) * rollout[n, rows] + frac * rollout[n + 1, rows]


class VidRNN(_Recurrent):
    """Vid-ODE with ConvGRUs for its ODEs ("vid-rnn"): a ConvGRU encoder over the observed frames, a
    ConvGRU decoder rolled out at steps of one model time unit from the last observed input, the state
    at a query linearly interpolated between its two neighbouring steps, and Vid-ODE's Conv-Decoder and
    composition (``flow_warping``, ``mask_composition``, ``decoding`` as in ``VidODE``). The rollout
    takes ceil(lead) steps for the furthest query, lead in model units (choose ``time_scale`` so that
    one model unit is about one frame interval)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.decoder = ConvDecoder(config.channels, config.width, config.decoder)
        configure(self, config.checkpointing, config.compile)

    def _query_states(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, K, 4w, h, w): the decoder's state at each query (clamped to the last observed input)."""
        lead = (enc["s"] - enc["t_last"].view(-1, 1)).clamp(min=0)  # (B, K)
        state = enc["state"]
        rollout = [state]
        ones = torch.ones_like(enc["t_last"])
        for _ in range(max(1, math.ceil(float(lead.max())))):
            state = self.decoder_step(state, state, ones)
            rollout.append(state)
        return interpolate_states(torch.stack(rollout), lead)

    def query_states(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
        """The decoder's state (B, K, 4w, H4/4, W4/4) at each query time, as ``forward`` decodes it."""
        return self._query_states(self.encode(frames, times, query_times))

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forecast frames at ``query_times``; arguments and outputs as ``VidODE.forward``. Every query is
        composed as an extrapolation from the last observed frame (``decoding`` as in Vid-ODE), those
        before it with the state there."""
        H, W = frames.shape[-2:]
        enc = self.encode(frames, times, query_times)
        states = self._query_states(enc)
        B, K = enc["s"].shape
        last = last_index(enc["observed"]).view(-1, 1, 1).expand(B, K, 2).clone()
        parts = empty_parts(enc["filled"], K)
        leads = (enc["s"] - enc["t_last"].view(-1, 1)).clamp(min=0)
        extrapolate(self.decoder, self.config, parts, last, states, enc["state"], enc["asked"], leads)
        kind = torch.full_like(enc["s"], EXTRAPOLATED, dtype=torch.long)
        return finish(parts, last, kind, enc["filled"], enc["valid"], enc["asked"], (H, W))


MODELS = {"convgru": ConvGRUForecaster, "convgru-dt": ConvGRUDt, "convgru-decay": ConvGRUDecay, "vid-rnn": VidRNN}
