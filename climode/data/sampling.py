"""Irregular samples from a period of regularly stored frames (e.g. a storm's 3-hourly steps).

A sample is a set of input steps with irregular gaps and target steps after the last input,
as the paper's CAM5 protocol: 5 inputs with gaps of 3 to 48 h, then targets every 3 h for
15 h. With ``rate`` < 1 the inputs are the frames kept when only that fraction of the input
window's frames is observed (the paper's Fig. 6: 100, 75, 50, 25 %). With ``between`` a target
at a random step inside each gap of the inputs comes first (interpolation, as the paper's
interpolation protocol asks for the frames between its inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingConfig:
    """Hours are real hours; ``step_h`` is the spacing of the stored frames."""

    n_in: int = 5
    n_out: int = 5
    step_h: float = 3.0
    min_gap_h: float = 3.0
    max_gap_h: float = 48.0
    lead_step_h: float = 3.0
    rate: float | None = None
    window_h: float = 57.0
    between: bool = False

    def __post_init__(self):
        if self.n_in < 1 or self.n_out < 1:
            raise ValueError("n_in and n_out must be at least 1")
        if not 0 < (self.rate if self.rate is not None else 1) <= 1:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        if not 0 < self.min_gap_h <= self.max_gap_h:
            raise ValueError("need 0 < min_gap_h <= max_gap_h")

    def steps(self, hours: float) -> int:
        return int(round(hours / self.step_h))

    @property
    def input_frames(self) -> int:
        """Input slots per sample: n_in, or every frame of the window in rate mode."""
        return self.n_in if self.rate is None else self.steps(self.window_h) + 1

    @property
    def targets(self) -> int:
        """Target slots per sample: n_out, and one inside each input gap with ``between``."""
        return self.n_out + (self.input_frames - 1 if self.between else 0)


def draw(n_steps: int, cfg: SamplingConfig, rng: np.random.Generator, last: int | None = None):
    """Step indices into a period of ``n_steps`` frames: ``(inputs, observed, targets)``, or None
    if the period is too short.

    Gaps mode (rate None): n_in inputs, consecutive gaps uniform in [min_gap_h, max_gap_h], all
    observed. Rate mode: every frame of the window_h hours up to the last input, each observed
    with probability ``rate`` (the last always); unobserved ones are to be stored as missing.
    Targets: with ``between``, one random step strictly inside each input gap (the gap's middle
    step when it has none inside: a gap of one step); then every lead_step_h after the last input,
    n_out of them. ``last`` fixes the last input step (None: drawn at random).
    """
    lead = cfg.steps(cfg.lead_step_h)
    span_out = lead * cfg.n_out
    if cfg.rate is None:
        gaps = _gaps((n_steps - 1 - span_out) if last is None else last, cfg, rng)
        if gaps is None:
            return None
        offsets = np.concatenate(([0], np.cumsum(gaps[::-1])))[::-1]  # steps before the last input
        observed = np.ones(cfg.n_in, dtype=bool)
    else:
        offsets = np.arange(cfg.steps(cfg.window_h), -1, -1)
        observed = np.append(rng.random(len(offsets) - 1) < cfg.rate, True)
    span_in = int(offsets[0])
    if last is None:
        if span_in + span_out >= n_steps:
            return None
        last = int(rng.integers(span_in, n_steps - span_out))
    elif last < span_in or last + span_out >= n_steps:
        return None
    inputs, after = last - offsets, last + lead * np.arange(1, cfg.n_out + 1)
    if not cfg.between:
        return inputs, observed, after
    inside = [int(rng.integers(a + 1, b)) if b - a > 1 else a for a, b in zip(inputs[:-1], inputs[1:])]
    return inputs, observed, np.concatenate((inside, after))


def _gaps(budget: int, cfg: SamplingConfig, rng: np.random.Generator) -> np.ndarray | None:
    """n_in - 1 gaps in [min_gap, max_gap] steps adding up to at most ``budget`` steps, in random order."""
    low, high = cfg.steps(cfg.min_gap_h), cfg.steps(cfg.max_gap_h)
    if budget < low * (cfg.n_in - 1):
        return None
    gaps: list[int] = []
    for k in range(cfg.n_in - 1):
        room = budget - sum(gaps) - low * (cfg.n_in - 2 - k)
        gaps.append(int(rng.integers(low, min(high, room) + 1)))
    return rng.permutation(gaps)


def every_window(n_steps: int, cfg: SamplingConfig, rng: np.random.Generator) -> list:
    """One sample for every possible last-input step of a period of ``n_steps`` frames."""
    samples = (draw(n_steps, cfg, rng, last) for last in range(n_steps))
    return [s for s in samples if s is not None]


def draw_many(n_steps: int, cfg: SamplingConfig, count: int, rng: np.random.Generator) -> list:
    """Up to ``count`` samples from one period (fewer when it is too short for any)."""
    samples = []
    for _ in range(count * 4):
        sample = draw(n_steps, cfg, rng)
        if sample is not None:
            samples.append(sample)
        if len(samples) == count:
            break
    return samples
