"""Vid-ODE: frames at irregular times in, frames at any query times out."""

from __future__ import annotations

import torch
from torch import nn

from .base import (
    EXTRAPOLATED,
    INTERPOLATED,
    ModelConfig,
    check_inputs,
    classify,
    empty_parts,
    extrapolate,
    finish,
    last_index,
    model_times,
    pad4,
    prepare_inputs,
)
from .compute import configure, lowered, run, use_channels_last
from .decoder import ConvDecoder, InterpolationDecoder
from .encoder import ConvEncoder, ODEConvGRU
from .motion import motion
from .odefunc import ConvODEFunc, FCODEFunc, advance, trajectory
from .warp import warp


class VidODE(nn.Module):
    """The Vid-ODE generator: encoders, decoder ODE, Conv-Decoders and composition (``compose``);
    docs/design.md gives the reasons.

    Extrapolation (after the last observed frame X_L at t_L, lead Delta): the decoder ODE runs from the
    forward encoder's state at t_L to the query, G(h_s, h_L) gives a velocity, a rate of change and a mask
    M; F and D are Delta times the first two, and the frame is M * W(F, X_L) + (1 - M) * (X_L + D), D
    trained towards X_s - X_L.
    Interpolation (between observed frames X_i at t_i and X_j at t_j, gap Delta): the forward encoder's
    state at t_i carried to s, the backward encoder's state at t_j carried back to s and the two frames
    carried to s along their motion m (``motion``: X_j(x) ~ X_i(x - m)) give velocity corrections v_i,
    v_j, a blend b and a difference D; with tau = (s - t_i) / Delta the frame is
    w W(tau (Delta v_i - m), X_i) + (1 - w) W((1 - tau) (Delta v_j + m), X_j) + 4 tau (1 - tau) D,
    w = sigmoid(b + logit(1 - tau)): motion-compensated interpolation when untrained (the linear blend
    where nothing moves), and X_i or X_j exactly at either end.
    """

    per_sample_times = True  # takes (B, L) input and (B, K) query times: no grouping by shared times

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        ode_widths = (4 * w, 2 * w, 2 * w, 2 * w, 4 * w)
        if config.encoder == "ode-convgru":
            self.frame_encoder = ConvEncoder(2 * c, w)
            self.sequence_encoder = ODEConvGRU(4 * w, ode_widths, config.encoder_solver)
            self.backward_encoder = ODEConvGRU(4 * w, ode_widths, config.encoder_solver, reverse=True)
        else:
            self.frame_encoder = ConvEncoder(2 * c * config.n_in, w)
        if config.derivative == "fc":
            H, W = (n + (-n) % 4 for n in config.frame_shape)
            self.decoder_func = FCODEFunc(4 * w, H // 4, W // 4)
        else:
            self.decoder_func = ConvODEFunc(ode_widths)
        self.decoder = ConvDecoder(c, w, config.decoder)
        self.interpolator = InterpolationDecoder(c, w, config.decoder)
        configure(self, config.checkpointing, config.compile)
        if config.channels_last:
            use_channels_last(self)

    def ode_functions(self) -> dict[str, nn.Module]:
        """The ODE derivatives by role, whose ``nfe`` counts their evaluations."""
        funcs = {"decoder": self.decoder_func}
        if self.config.encoder == "ode-convgru":
            funcs.update(encoder=self.sequence_encoder.func, backward_encoder=self.backward_encoder.func)
        return funcs

    def _encode(self, x: torch.Tensor, t: torch.Tensor, observed: torch.Tensor, backward: bool):
        """``(forward, backward, h_last)``: the encoders' states at every input slot (B, L, 4w, h, w)
        (None for the conv encoder, and ``backward`` None unless asked for) and the state at t_L."""
        B, L = observed.shape
        if self.config.encoder == "conv":
            if L != self.config.n_in:
                raise ValueError(f"the ODE-Conv encoder was built for {self.config.n_in} input frames, got {L}")
            return None, None, self.frame_encoder(x.flatten(1, 2))
        cfg = self.config
        feats = run(self.frame_encoder, x[observed], checkpointing=cfg.checkpointing, compile=cfg.compile)
        feats = feats.to(x.dtype)  # states stay in the frames' dtype
        features = feats.new_zeros(B, L, *feats.shape[1:])
        features[observed] = feats
        forward = self.sequence_encoder(features, t, observed)
        rows = torch.arange(B, device=x.device)
        back = self.backward_encoder(features, t, observed) if backward else None
        return forward, back, forward[rows, last_index(observed)]

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forecast frames at ``query_times``.

        frames: (B, L, C, H, W), NaN marks missing cells; a frame with no finite cell is a missing
            observation (the same as no frame).
        times: (L,) strictly increasing, or (B, L) each sample's own (increasing over its observed
            frames), real units. query_times: (K,) strictly increasing, or (B, K) each sample's own
            (NaN: no query; its frame is NaN), real units, before, between or after the observations.
        Returns a dict of (B, K, ...) tensors: ``frames`` (C channels), the parts they are composed of
        (``sources`` (B, K, 2), ``flows`` (2, 2), ``weight`` (1), ``residual`` (C); see
        ``climode.model.compose``), ``kind`` (B, K) (``classify``), the extrapolation decoder's
        ``diff`` D (C) and ``mask`` M (1) (zero and one elsewhere), and ``valid`` (C) the share of each
        cell drawn from valid input cells (below 1 where missing cells were filled).
        """
        cfg = self.config
        B, L, C, H, W = frames.shape
        times, query_times = check_inputs(cfg, frames, times, query_times)
        x, observed, filled, valid = prepare_inputs(frames)
        t, s = model_times(times, query_times, frames, cfg.time_scale)
        asked = torch.isfinite(s)
        t_last = t.gather(1, last_index(observed).view(-1, 1))
        s = torch.where(asked, s, t_last)
        where = classify(t, s, observed)
        kind = where["kind"]
        extrapolated, interpolated = kind == EXTRAPOLATED, kind == INTERPOLATED
        with lowered(cfg.precision, frames):
            forward, backward, h_last = self._encode(x, t, observed, bool(interpolated.any()))

        parts = empty_parts(filled, s.shape[1])
        sources = torch.stack((where["before"], where["after"]), -1)
        if bool(extrapolated.any()):
            leads = torch.where(extrapolated, s - t_last, 0.0)
            with lowered(cfg.precision, frames):
                states = trajectory(self.decoder_func, h_last, leads, cfg.decoder_solver)
                extrapolate(self.decoder, cfg, parts, sources, states, h_last, extrapolated, leads)
        if bool(interpolated.any()):
            self._interpolate(
                interpolated.nonzero(as_tuple=True),
                t,
                s,
                where,
                forward,
                backward,
                h_last,
                t_last,
                filled,
                parts,
                (H, W),
            )
        return finish(parts, sources, kind, filled, valid, asked, (H, W))

    def _interpolate(self, at, t, s, where, forward, backward, h_last, t_last, filled, parts, size) -> None:
        """Fill the parts at ``at`` (rows, columns) of queries between two observed frames of ``size`` (H, W)."""
        cfg = self.config
        H, W = size
        b, k = at
        i, j = where["before"][b, k], where["after"][b, k]
        t_i, t_j, s_q = t[b, i], t[b, j], s[b, k]
        with lowered(cfg.precision, filled):
            if forward is not None:
                before = advance(self.sequence_encoder.func, forward[b, i], s_q - t_i, cfg.encoder_solver)
                after = advance(self.backward_encoder.func, backward[b, j], t_j - s_q, cfg.encoder_solver)
            else:  # the conv encoder has one state, at t_L: the decoder ODE carries it back to s
                before = after = advance(self.decoder_func, h_last[b], s_q - t_last[b, 0], cfg.decoder_solver)
        gap = (t_j - t_i).view(-1, 1, 1, 1)
        tau = ((s_q - t_i) / (t_j - t_i)).clamp(1e-6, 1 - 1e-6).view(-1, 1, 1, 1)
        x_i, x_j = filled[b, i], filled[b, j]
        moved = x_i.new_zeros(len(x_i), 2, *x_i.shape[-2:])
        if cfg.flow_warping:
            with torch.no_grad():  # the motion carrying X_i onto X_j over the gap, pixels: where the flows start
                moved = pad4(motion(x_i[..., :H, :W], x_j[..., :H, :W]))  # on the frames, unpadded
        with lowered(cfg.precision, filled):
            decoded = self.interpolator(before, after, warp(x_i, -tau * moved), warp(x_j, (1 - tau) * moved))
        velocity_i, velocity_j, blend, d = (v.to(filled.dtype) for v in decoded)
        if cfg.flow_warping:
            # corrections are velocities (pixels per model time unit): a displacement over the gap scales with it
            parts["flows"][b, k, 0] = tau * (gap * velocity_i - moved)
            parts["flows"][b, k, 1] = (1 - tau) * (gap * velocity_j + moved)
        linear = torch.log((1 - tau) / tau)
        parts["weight"][b, k] = torch.sigmoid(blend + linear) if cfg.mask_composition else torch.sigmoid(linear)
        parts["residual"][b, k] = 4 * tau * (1 - tau) * d
