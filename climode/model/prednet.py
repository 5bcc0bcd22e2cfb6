"""``PredNet`` ("prednet"), Lotter, Kreiman and Cox, ICLR 2017, "Deep Predictive Coding Networks for Video
Prediction and Unsupervised Learning", a video extrapolation baseline of the Vid-ODE paper (Table 2).

A stack of layers l = 0..3, each with representation units R_l (a ConvLSTM), prediction units
A_hat_l = ReLU(Conv(R_l)), targets A_l and error units E_l = [ReLU(A_l - A_hat_l), ReLU(A_hat_l - A_l)].
Per frame step, first top-down: R_l = ConvLSTM([E_l of the previous step, Upsample(R_{l+1})], R_l of the
previous step); then bottom-up: A_0 is the frame, A_{l+1} = MaxPool(ReLU(Conv(E_l))). The bottom
layer's prediction A_hat_0 is the forecast of the frame at that step, made before the frame is seen.
After the last observed frame (and in a gap between inputs) the model's own prediction is fed back as
the frame (the extrapolation mode of its paper's multi-step experiments), so E_0 is zero there.

Training: PredNet's "L_0" loss (its layer-0 errors, lambda_0 = 1, every other layer 0, the first step
weighted 0) is the L1 of its one-step predictions, which the trainer applies to ``inputs`` (the
prediction of each observed input; the first one is the frame itself, the paper's zero weight) and to
the extrapolated ``frames`` (the extrapolation fine-tuning of its paper). The "L_all" variant (upper
layers weighted 0.1) is not used.

Times, gaps and queries as ``climode.model.stochastic`` (one step per frame of ``time_scale`` real
units from each sample's first observed input; a query off the grid gets the frame at its nearest step;
a query at an observed step gets that frame).

Deviations from the paper: the layer widths follow ``ModelConfig.width`` w: A and R are (C, w, 2w, 4w)
channels at full, 1/2, 1/4 and 1/8 resolution (its KITTI model: (3, 48, 96, 192), i.e. w = 48), every
convolution 3x3 as its KITTI model; ConvLSTM gates are sigmoid (its code: hard sigmoid); fields are not
in [0, 1], so the bottom prediction is not ReLU-and-saturated but the previous step's A_0 plus a
convolution of R_0 that starts at zero (an untrained PredNet is persistence, as every climode model);
a missing cell of an observed frame takes the prediction as its target (no error there), as a missing
frame does; at a step with no frame the target is that step's own prediction (its code feeds the
previous step's prediction); frames of any size (padded to multiples of 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelConfig
from .stochastic import StochasticVideo


class FrameSteps(nn.Module):
    """The deterministic one-frame-per-step models (PredNet, RCG): the step grid and output cropping of
    ``climode.model.stochastic.StochasticVideo`` (``_grid``, ``_finish``), without its latents."""

    per_sample_times = True
    substeps = 1
    _grid = StochasticVideo._grid
    _finish = StochasticVideo._finish

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config


def error_units(a: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
    """PredNet's error units: target A and prediction A_hat (N, c, h, w) -> [ReLU(A - A_hat),
    ReLU(A_hat - A)] (N, 2c, h, w), non-negative, zero where the prediction is right."""
    return torch.cat((F.relu(a - a_hat), F.relu(a_hat - a)), 1)


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM: one ``kernel`` x ``kernel`` convolution of [input, h] to the four gates
    (sigmoid input, forget and output gates, tanh candidate); (N, cin, h, w) -> h (N, hidden, h, w)."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def initial(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero state (h, c) on the grid of ``x`` (N, ..., h, w)."""
        zero = x.new_zeros(len(x), self.hidden, *x.shape[-2:])
        return zero, zero

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = state
        i, f, o, g = self.gates(torch.cat((x, h), 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class PredNet(FrameSteps):
    """PredNet (module docstring): A and R widths (C, w, 2w, 4w)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        w = config.width
        self.sizes = sizes = (config.channels, w, 2 * w, 4 * w)
        top = len(sizes) - 1
        self.cells = nn.ModuleList(
            ConvLSTMCell(2 * sizes[i] + (sizes[i + 1] if i < top else 0), sizes[i]) for i in range(len(sizes))
        )
        self.predict = nn.ModuleList(nn.Conv2d(n, n, 3, padding=1) for n in sizes)  # R_l -> A_hat_l
        self.target = nn.ModuleList(nn.Conv2d(2 * a, b, 3, padding=1) for a, b in zip(sizes[:-1], sizes[1:]))
        nn.init.zeros_(self.predict[0].weight)
        nn.init.zeros_(self.predict[0].bias)

    def initial(self, frame: torch.Tensor) -> tuple[list, list]:
        """Zero (R, C) and E of every layer for frames (B, C, H, W), H and W multiples of 8."""
        states, errors = [], []
        for i, cell in enumerate(self.cells):
            grid = frame[..., :: 2**i, :: 2**i]
            states.append(cell.initial(grid))
            errors.append(grid.new_zeros(len(grid), 2 * self.sizes[i], *grid.shape[-2:]))
        return states, errors

    def step(
        self, frame: torch.Tensor, seen: torch.Tensor, previous: torch.Tensor, memory: tuple[list, list]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[list, list]]:
        """One frame step. frame (B, C, H, W) and ``seen`` (B, C, H, W) bool, the cells observed; previous
        (B, C, H, W) the last step's A_0; ``memory`` the last step's (R, C) and E of every layer. Returns
        the prediction A_hat_0, the target A_0 (the frame where seen, else the prediction) and the new
        memory, whose E_l are this step's error units."""
        states, errors = memory
        top = len(states) - 1
        new: list = [None] * len(states)
        for i in reversed(range(len(states))):  # top-down: the representations
            x = errors[i] if i == top else torch.cat((errors[i], F.interpolate(new[i + 1][0], scale_factor=2.0)), 1)
            _, new[i] = self.cells[i](x, states[i])
        prediction = previous + self.predict[0](new[0][0])
        target = torch.where(seen, frame, prediction)
        a, a_hat, units = target, prediction, []
        for i in range(len(states)):  # bottom-up: predictions, errors and the next layer's targets
            if i > 0:
                a_hat = F.relu(self.predict[i](new[i][0]))
            units.append(error_units(a, a_hat))
            if i < top:
                a = F.max_pool2d(F.relu(self.target[i](units[-1])), 2)
        return prediction, target, (new, units)

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, L, C, H, W), NaN missing; times (L,) or (B, L), query_times (K,) or (B, K) in real
        units -> ``frames`` (B, K, C, H, W) (NaN where not asked) and ``inputs`` (B, L, C, H, W), the
        one-step prediction of each observed input (the first observed one: itself)."""
        grid = self._grid(frames, times, query_times)
        x, filled, present, rows = grid["x"], grid["filled"], grid["present"], grid["rows"]
        C = self.config.channels
        slot = grid["slot"].clamp(min=0)
        first = filled[rows, slot[:, 0]]
        memory = self.initial(first)
        previous = torch.zeros_like(first)
        outputs, predictions = [], []
        for n in range(present.shape[1]):
            seen = present[:, n].view(-1, 1, 1, 1)
            observed = x[rows, slot[:, n]]
            prediction, previous, memory = self.step(observed[:, :C], seen & (observed[:, C:] > 0.5), previous, memory)
            predictions.append(prediction if n else first)  # the first step's prediction is not scored
            outputs.append(torch.where(seen, observed[:, :C], prediction))
        outputs, predictions = torch.stack(outputs, 1), torch.stack(predictions, 1)
        return self._finish(
            grid, outputs[rows.view(-1, 1), grid["query"]], predictions[rows.view(-1, 1), grid["step"].clamp(min=0)]
        )


MODELS = {"prednet": PredNet}
