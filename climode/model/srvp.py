"""``SRVP`` ("srvp"), Franceschi et al. 2020, "Stochastic Latent Residual Video Prediction": a state
y_1 inferred from the first ``NT_INF`` frames (an MLP over their encodings, q(y_1) with a KL to
N(0, I)), residual dynamics y <- y + dt f(y, z_{t+1}) with one z per frame from the learned prior
p(z_{t+1} | y_t) (posterior: a forward LSTM over the frames' encodings, as the official code), frames
decoded from the state alone with a content vector w (a permutation-invariant sum over ``NT_INF``
frames) and the skip connections of one frame's encoder. The paper's continuous-time variant is
``dt = 1 / round(1 / decoder_solver.step_size)`` Euler steps per frame (dopri5: dt = 1), one z per
frame.

Times, outputs, randomness and the deviations from the papers: ``climode.model.stochastic``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelConfig
from .stochastic import FrameDecoder, StochasticVideo, gaussian_kl

SRVP_DIM = 20  # SRVP's y and z (SM-MNIST)
NT_INF = 5  # SRVP: frames that infer y_1 and the content w (SM-MNIST's nt_inf = nt_cond = 5)


def softplus_params(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SRVP's Gaussian from raw parameters (..., 2n): mean and scale softplus(raw) + 1e-8, as (mean, logvar)."""
    mean, raw_scale = raw.chunk(2, -1)
    return mean, 2 * torch.log(F.softplus(raw_scale) + 1e-8)


def mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """SRVP's MLP: three linear layers with ReLU between them."""
    return nn.Sequential(
        nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, cout),
    )  # fmt: skip


class SRVP(StochasticVideo):
    """SRVP (module docstring): state y (``SRVP_DIM``), per-frame z (``SRVP_DIM``), content w (8w),
    frame vectors 4w, three-layer MLPs of width 8w (the paper: 4 layers of 512 for f, 3 of 256 for
    inference), Gaussians parameterised by mean and softplus scale (the paper's). The residual MLP keeps
    PyTorch's default init: the paper's orthogonal init with gain 1.41 made the untrained state grow
    ~1.75x per frame here, the first update's KL ~1e16."""

    beta = None
    reconstructs_first = True

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c, w, hidden = config.channels, config.width, self.hidden
        self.decoder = FrameDecoder(hidden + SRVP_DIM, w, c)
        self.content_proj = nn.Sequential(nn.Linear(self.dim, hidden), nn.ReLU(inplace=True))
        self.content = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.q_y = mlp(NT_INF * (self.dim + 1), hidden, 2 * SRVP_DIM)
        self.inference = nn.LSTM(self.dim + 1, hidden)
        self.q_z = nn.Linear(hidden, 2 * SRVP_DIM)
        self.p_z = mlp(SRVP_DIM, hidden, 2 * SRVP_DIM)
        self.dynamics = mlp(2 * SRVP_DIM, hidden, SRVP_DIM)

    @property
    def substeps(self) -> int:
        solver = self.config.decoder_solver
        return 1 if solver.method == "dopri5" else max(1, round(1 / solver.step_size))

    def _chosen(self, observed: torch.Tensor, random: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The content frames (B, L) bool: up to ``NT_INF`` observed ones, random when training (the
        paper), else the last; and the skip frame's slot (B,): random when training, else the last."""
        B, L = observed.shape
        key = (
            torch.rand(B, L, device=observed.device) if random else torch.arange(L, device=observed.device).expand(B, L)
        )
        key = torch.where(observed, key.float(), -1.0)
        rank = key.argsort(1, descending=True).argsort(1)
        return observed & (rank < NT_INF), key.argmax(1)

    def _run(self, grid: dict, mode: str, generator: torch.Generator | None) -> dict:
        x, filled, present, slot, observed, rows = (
            grid[k] for k in ("x", "filled", "present", "slot", "observed", "rows")
        )
        B, L = observed.shape
        T, n_sub = present.shape[1], self.substeps
        dt = 1.0 / n_sub
        h_in, skips = self.encoder(x.flatten(0, 1))
        h_in, skips = h_in.unflatten(0, (B, L)), [s.unflatten(0, (B, L)) for s in skips]
        content, source = self._chosen(observed, mode == "train")
        w = self.content((self.content_proj(h_in) * content.unsqueeze(-1)).sum(1))
        skip = [s[rows, source] for s in skips]
        slot = slot.clamp(min=0)
        # each step's frame vector and whether it was observed, steps 0 .. the last observed one
        T_obs = int(grid["step"].max()) + 1
        seen = present[:, :T_obs].unsqueeze(-1).to(h_in.dtype)
        steps = torch.cat((h_in[rows.view(-1, 1), slot[:, :T_obs]] * seen, seen), -1)  # (B, T_obs, dim + 1)
        first = F.pad(steps[:, :NT_INF], (0, 0, 0, max(0, NT_INF - T_obs)))
        mu_y, logvar_y = softplus_params(self.q_y(first.flatten(1)))
        y = self._draw(mu_y, logvar_y, mode, generator)
        kl = gaussian_kl(mu_y, logvar_y).sum()
        count = int(observed.sum())
        hidden = self.inference(steps.transpose(0, 1))[0]  # (T_obs, B, hidden): forward over x_1..t
        states, residual = [y], []
        for n in range(1, T):
            mu_p, logvar_p = softplus_params(self.p_z(y))
            z = self._draw(mu_p, logvar_p, mode, generator)
            here = present[:, n]
            if bool(here.any()):
                mu_q, logvar_q = softplus_params(self.q_z(hidden[n]))
                z = torch.where(here.view(-1, 1), self._draw(mu_q, logvar_q, mode, generator), z)
                kl = kl + (gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).sum(1) * here).sum()
            for _ in range(n_sub):
                step = dt * self.dynamics(torch.cat((y, z), 1))
                y = y + step
                states.append(y)
                residual.append(step.norm(dim=1))
        states = torch.stack(states, 1)  # (B, (T - 1) n_sub + 1, y)
        query, step = grid["query"], (grid["step"].clamp(min=0) * n_sub)
        at = torch.cat((query, step), 1)  # (B, K + L) sub-steps to decode
        decoded = self.decoder(
            torch.cat((w.unsqueeze(1).expand(-1, at.shape[1], -1), states[rows.view(-1, 1), at]), -1).flatten(0, 1),
            [s.repeat_interleave(at.shape[1], 0) for s in skip],
        ).unflatten(0, (B, at.shape[1])) + filled[rows, source].unsqueeze(1)
        K = query.shape[1]
        whole = (query % n_sub == 0) & present.gather(1, (query // n_sub).clamp(max=T - 1))
        given = filled[rows.view(-1, 1), slot.gather(1, (query // n_sub).clamp(max=T - 1))]
        frames = torch.where(whole.view(B, K, 1, 1, 1), given, decoded[:, :K])
        out = self._finish(grid, frames, decoded[:, K:])
        residual = torch.stack(residual, 1).mean() if residual else kl.new_zeros(())
        return {**out, "kl": kl / max(count, 1), "residual": residual}


MODELS = {"srvp": SRVP}
