"""``SVGFP`` ("svg-fp") and ``SVGLP`` ("svg-lp"), Denton & Fergus 2018, "Stochastic Video Generation
with a Learned Prior": a DCGAN-like conv encoder gives a vector h_t per frame; a two-layer LSTM
frame predictor maps (h_{t-1}, z_t) to the next frame's vector, decoded with skip connections from
the encoder of the last observed frame. The posterior q(z_t | x_{1..t}) is an LSTM over the
*target* frames' vectors; the prior is N(0, I) (FP) or an LSTM p(z_t | x_{1..t-1}) over the previous
frames' vectors (LP). Observed frames are fed back as they are (teacher forcing), unobserved ones
as the model generated them.

Times, outputs, randomness and the deviations from the papers: ``climode.model.stochastic``.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelConfig
from .stochastic import FrameDecoder, StochasticVideo, gaussian_kl

Z_DIM = 10  # SVG's z per step (SM-MNIST)


class StackedLSTM(nn.Module):
    """SVG's LSTM: Linear embedding, ``layers`` LSTM cells, Linear output; one step at a time."""

    def __init__(self, cin: int, hidden: int, cout: int, layers: int):
        super().__init__()
        self.embed = nn.Linear(cin, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, cout)

    def initial(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        zero = x.new_zeros(len(x), self.embed.out_features)
        return [(zero, zero)] * len(self.cells)

    def forward(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        h, new = self.embed(x), []
        for cell, hc in zip(self.cells, state):
            hc = cell(h, hc)
            new.append(hc)
            h = hc[0]
        return self.out(h), new


def keep_state(where: torch.Tensor, new: list, old: list) -> list:
    """The LSTM state ``new`` for the samples ``where`` (B,) says, ``old`` for the others."""
    m = where.view(-1, 1)
    return [(torch.where(m, h1, h0), torch.where(m, c1, c0)) for (h1, c1), (h0, c0) in zip(new, old)]


class SVG(StochasticVideo):
    """SVG (module docstring); ``learned_prior`` chooses LP over FP."""

    learned_prior = False

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c, w, hidden = config.channels, config.width, self.hidden
        self.decoder = FrameDecoder(self.dim, w, c)
        self.predictor = StackedLSTM(self.dim + Z_DIM, hidden, self.dim, layers=2)
        self.posterior = StackedLSTM(self.dim, hidden, 2 * Z_DIM, layers=1)
        self.prior = StackedLSTM(self.dim, hidden, 2 * Z_DIM, layers=1) if self.learned_prior else None

    def _run(self, grid: dict, mode: str, generator: torch.Generator | None) -> dict:
        x, filled, present, slot, before, rows = (grid[k] for k in ("x", "filled", "present", "slot", "before", "rows"))
        B, L = grid["observed"].shape
        T = present.shape[1]
        h_in, skips = self.encoder(x.flatten(0, 1))
        h_in, skips = h_in.unflatten(0, (B, L)), [s.unflatten(0, (B, L)) for s in skips]
        slot = slot.clamp(min=0)
        first = filled[rows, slot[:, 0]]
        outputs, predictions = [first], [first]
        state = self.predictor.initial(h_in[:, 0])
        q_state = self.posterior.initial(h_in[:, 0])
        p_state = self.prior.initial(h_in[:, 0]) if self.prior is not None else None
        kl, count = h_in.new_zeros(()), 0
        for n in range(1, T):
            h_prev = h_in[rows, slot[:, n - 1]]
            made = (~present[:, n - 1]).nonzero(as_tuple=True)[0]
            if len(made):  # a generated frame is fed back as it came out
                generated = outputs[n - 1][made]
                h_prev = h_prev.index_put(
                    (made,), self.encoder(torch.cat((generated, torch.ones_like(generated)), 1))[0]
                )
            if self.prior is not None:
                p, p_state = self.prior(h_prev, p_state)
                mu_p, logvar_p = p.chunk(2, 1)
            else:
                mu_p = logvar_p = h_prev.new_zeros(B, Z_DIM)
            z = self._draw(mu_p, logvar_p, mode, generator)
            seen = present[:, n]
            if bool(seen.any()):
                q, new_state = self.posterior(h_in[rows, slot[:, n]], q_state)
                q_state = keep_state(seen, new_state, q_state)
                mu_q, logvar_q = q.chunk(2, 1)
                z = torch.where(seen.view(-1, 1), self._draw(mu_q, logvar_q, mode, generator), z)
                kl = kl + (gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).sum(1) * seen).sum()
                count += int(seen.sum())
            g, state = self.predictor(torch.cat((h_prev, z), 1), state)
            source = before[:, n]
            frame = filled[rows, source] + self.decoder(g, [s[rows, source] for s in skips])
            predictions.append(frame)
            outputs.append(torch.where(seen.view(-1, 1, 1, 1), filled[rows, slot[:, n]], frame))
        outputs, predictions = torch.stack(outputs, 1), torch.stack(predictions, 1)
        out = self._finish(
            grid, outputs[rows.view(-1, 1), grid["query"]], predictions[rows.view(-1, 1), grid["step"].clamp(min=0)]
        )
        return {**out, "kl": kl / max(count, 1)}


class SVGFP(SVG):
    """SVG with a fixed prior N(0, I) ("svg-fp")."""


class SVGLP(SVG):
    """SVG with a learned prior LSTM p(z_t | x_{1..t-1}) ("svg-lp")."""

    learned_prior = True


MODELS = {"svg-fp": SVGFP, "svg-lp": SVGLP}
