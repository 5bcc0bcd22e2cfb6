"""Forecasts that need no training, to measure the model against.

Each takes the model's arguments, frames (B, L, C, H, W) with all-NaN frames missing, input
times (L,) and query times (K,) in the data's units, and returns (B, K, C, H, W); each sample uses
its own observed frames only:

- ``persistence``: the last observed frame, unchanged;
- ``blend``: an interpolator: a query between two observed frames gets their linear blend in time
  (exactly the frame at an observed time), one outside the observed span the nearest observed frame
  (after the last: persistence);
- ``linear``: each cell along the line through its last two observed values;
- ``advection``: the last observed frame carried along a motion field estimated from the last
  two observed frames (``climode.model.motion``: coarse-to-fine Lucas-Kanade), semi-Lagrangian
  with constant velocity;
- ``advection-multi``: the same with the motion of the last ``MULTI_FRAMES`` observed frames: the
  velocity of each consecutive pair (its displacement over its own time gap), averaged with weights
  rising with recency (pySTEPS's Lucas-Kanade pools the vectors of all pairs alike);
- ``pysteps`` (only where pySTEPS and OpenCV, which its Lucas-Kanade needs, both import; else in
  ``BASELINES.unavailable`` with the reason): pySTEPS's Lucas-Kanade motion of the same pairs,
  combined the same way, and its semi-Lagrangian extrapolation;
- ``steps`` (where ``pysteps`` is): pySTEPS's STEPS ensemble (``Steps``); called as the others, its
  deterministic control (``pysteps`` after the last input, ``blend`` at and before it), and its
  ``sample(frames, times, query_times, members, generator)`` gives the members.

``linear``, ``advection`` and ``advection-multi`` are extrapolators: they fit a constant rate or
velocity to the last observed frames and evaluate it at every query, so a query before the last
observed frame runs the same model backward in time (``linear`` gives the line's value: between the
last two frames their linear interpolation, at the earlier one that frame; ``advection`` carries
the last frame back along the motion). ``pysteps`` extrapolates forward only: it gives the last
frame to a query at or before it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..registry import Registry
from .base import last_observed
from .motion import motion
from .warp import warp

_PYSTEPS_MISSING = None  # why the pySTEPS baselines cannot run here, or None
try:
    with contextlib.redirect_stdout(io.StringIO()):  # pySTEPS prints where its configuration file is
        import pysteps.extrapolation
        import pysteps.motion
        import pysteps.nowcasts
        import pysteps.utils.transformation
except Exception as exc:  # not installed, or broken: the baselines are left out, with the reason
    pysteps = None
    _PYSTEPS_MISSING = f"the pysteps package cannot be imported here ({type(exc).__name__}: {exc})"
else:
    try:  # pySTEPS does not require OpenCV, but its Lucas-Kanade raises without it, at call time
        import cv2  # noqa: F401
    except Exception as exc:
        _PYSTEPS_MISSING = (
            f"OpenCV, which pySTEPS's Lucas-Kanade needs, cannot be imported here (import cv2: "
            f"{type(exc).__name__}: {exc})"
        )

MULTI_FRAMES = 3  # observed frames whose motion advection-multi and pysteps combine
Forecast = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def persistence(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Copy the last observed input frame to every query time."""
    latest = last_observed(frames)
    return latest.unsqueeze(1).expand(-1, len(query_times), *latest.shape[1:])


def _recent(frames: torch.Tensor, times: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, its last ``n`` observed frames, newest first: frames (B, n, C, H, W), times (B, n)
    and whether each exists (B, n); a slot past the first observed frame repeats the oldest one."""
    B, L = frames.shape[:2]
    observed = torch.isfinite(frames).flatten(2).any(2)
    later = observed.flip(1).cumsum(1).flip(1) - observed.long()  # observed frames after each slot
    slots = torch.arange(L, device=frames.device).expand(B, L)
    chosen = [torch.where(observed & (later == k), slots, -1).max(1).values for k in range(n)]
    present = torch.stack(chosen, 1) >= 0
    index = torch.stack(chosen, 1)
    oldest = torch.where(present, index, L).min(1, keepdim=True).values.clamp(max=L - 1)
    index = torch.where(present, index, oldest)
    rows = torch.arange(B, device=frames.device)[:, None]
    return frames[rows, index], times.to(device=frames.device, dtype=frames.dtype)[index], present


def _leads(t_last: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Query times (K,) minus each sample's last observed time (B,): (B, K)."""
    return query_times.to(t_last).view(1, -1) - t_last.view(-1, 1)


def blend(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """The linear blend in time of the two observed frames around each query (a cell missing in one of
    them: the other's value); the nearest observed frame before the first or after the last."""
    B, L = frames.shape[:2]
    observed = torch.isfinite(frames).flatten(2).any(2)
    t = times.to(device=frames.device, dtype=frames.dtype)
    s = query_times.to(t)
    slots = torch.arange(L, device=frames.device)
    seen = observed[:, None, :]  # (B, 1, L) against queries (1, K, 1)
    before = torch.where(seen & (t.view(1, 1, L) <= s.view(1, -1, 1)), slots, -1).max(-1).values  # (B, K)
    after = torch.where(seen & (t.view(1, 1, L) > s.view(1, -1, 1)), slots, L).min(-1).values
    before = torch.where(before < 0, after, before)  # before the first: the first
    after = torch.where(after == L, before, after)  # after the last: the last
    t0, t1 = t[before], t[after]
    w1 = torch.where(t1 > t0, (s.view(1, -1) - t0) / (t1 - t0).clamp(min=1e-12), torch.zeros_like(t0))
    rows = torch.arange(B, device=frames.device)[:, None]
    x0, x1 = frames[rows, before], frames[rows, after]  # (B, K, C, H, W)
    a = (1 - w1).view(B, -1, 1, 1, 1) * torch.isfinite(x0)
    b = w1.view(B, -1, 1, 1, 1) * torch.isfinite(x1)
    total = a + b
    mixed = (a * torch.nan_to_num(x0) + b * torch.nan_to_num(x1)) / total.clamp(min=1e-12)
    return torch.where(total > 0, mixed, float("nan"))


def linear(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Every cell along the line through its last two observed values (persistence where there is
    only one observed frame, or the earlier value is missing), at any query time."""
    x, t, _ = _recent(frames, times, 2)
    x1, x0, t1, t0 = x[:, 0], x[:, 1], t[:, 0], t[:, 1]
    gap = (t1 - t0).view(-1, 1, 1, 1)
    rate = torch.where((gap > 0) & torch.isfinite(x0), (x1 - x0) / gap.clamp(min=1e-12), torch.zeros_like(x1))
    return x1.unsqueeze(1) + rate.unsqueeze(1) * _leads(t1, query_times).view(*t1.shape, -1, 1, 1, 1)


def _advect(last: torch.Tensor, velocity: torch.Tensor, leads: torch.Tensor) -> torch.Tensor:
    """``last`` (B, C, H, W; NaN as 0) at each lead (B, K) under a constant ``velocity`` (B, 2, H, W;
    pixels per time unit): value at x and lead s is the frame's at x - v s (semi-Lagrangian)."""
    last = torch.nan_to_num(last)
    return torch.stack([warp(last, -velocity * leads[:, k].view(-1, 1, 1, 1)) for k in range(leads.shape[1])], 1)


def _combined_velocity(
    frames: torch.Tensor, times: torch.Tensor, n: int, pair_motion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Velocity (B, 2, H, W; pixels per time unit) from the last ``n`` observed frames: each consecutive
    pair's ``pair_motion(before, after)`` (pixels) over its own time gap, averaged with weights
    n - 1 (newest pair) down to 1 (oldest); zero with fewer than two observed frames."""
    x, t, present = _recent(frames, times, n)
    total = torch.zeros(len(x), 2, *x.shape[-2:], dtype=x.dtype, device=x.device)
    weights = torch.zeros(len(x), 1, 1, 1, dtype=x.dtype, device=x.device)
    for k in range(n - 1):  # pair (k + 1, k): older, newer
        gap = t[:, k] - t[:, k + 1]
        weight = ((n - 1 - k) * (present[:, k + 1] & (gap > 0))).to(x.dtype).view(-1, 1, 1, 1)
        if weight.any():
            total = total + weight * pair_motion(x[:, k + 1], x[:, k]) / gap.clamp(min=1e-12).view(-1, 1, 1, 1)
            weights = weights + weight
    return total / weights.clamp(min=1e-12)


def advection(frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """The last observed frame advected by the motion between the last two observed frames, at
    constant velocity (``_advect``)."""
    x, t, _ = _recent(frames, times, 1)
    return _advect(x[:, 0], _combined_velocity(frames, times, 2, motion), _leads(t[:, 0], query_times))


def advection_multi(
    frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor, n: int = MULTI_FRAMES
) -> torch.Tensor:
    """The last observed frame advected at constant velocity by the recency-weighted mean velocity of
    the last ``n`` observed frames' consecutive pairs (``_combined_velocity``); with only two observed
    frames, ``advection``."""
    x, t, _ = _recent(frames, times, 1)
    return _advect(x[:, 0], _combined_velocity(frames, times, n, motion), _leads(t[:, 0], query_times))


def _pysteps_motion(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """pySTEPS's dense Lucas-Kanade displacement (B, 2, H, W; pixels, x then y) from ``before`` to
    ``after`` (B, C, H, W; NaN cells masked): per sample and channel, averaged over the channels."""
    lucas_kanade = pysteps.motion.get_method("LK")
    pairs = torch.stack((before, after), 1).double().cpu().numpy()  # (B, 2, C, H, W)
    flows = [
        np.mean([np.asarray(lucas_kanade(pair[:, c]), dtype=np.float64) for c in range(pair.shape[1])], 0)
        for pair in pairs
    ]
    return torch.from_numpy(np.stack(flows)).to(before)


def pysteps_advection(
    frames: torch.Tensor,
    times: torch.Tensor,
    query_times: torch.Tensor,
    n: int = MULTI_FRAMES,
    velocity: torch.Tensor | None = None,
) -> torch.Tensor:
    """The last observed frame extrapolated by pySTEPS's semi-Lagrangian scheme along the recency-weighted
    mean of pySTEPS's Lucas-Kanade velocities of the last ``n`` observed frames' pairs (or ``velocity``,
    (B, 2, H, W) pixels per time unit, where given), each channel on its own; the last frame at leads
    <= 0 and where the motion draws from outside the grid."""
    extrapolate = pysteps.extrapolation.get_method("semilagrangian")
    x, t, _ = _recent(frames, times, 1)
    last = x[:, 0]
    if velocity is None:
        velocity = _combined_velocity(frames, times, n, _pysteps_motion)
    velocity = velocity.double().cpu().numpy()
    leads = _leads(t[:, 0], query_times)
    out = last.unsqueeze(1).repeat(1, leads.shape[1], 1, 1, 1)
    for b in range(len(last)):
        ahead = torch.nonzero(leads[b] > 0).flatten()
        if not len(ahead):
            continue
        for c in range(last.shape[1]):
            field = last[b, c].double().cpu().numpy()
            moved = extrapolate(field, velocity[b], leads[b, ahead].tolist(), allow_nonfinite_values=True)
            moved = torch.from_numpy(np.asarray(moved)).to(out)
            out[b, ahead, c] = torch.where(torch.isfinite(moved), moved, last[b, c])
    return out


STEPS_INPUTS = 3  # inputs STEPS takes: its AR(2) model's three


@dataclass(frozen=True)
class Steps:
    """pySTEPS's STEPS ensemble nowcast (Bowler, Seed & Nelson 2006; ``pysteps.nowcasts.get_method("steps")``
    with pySTEPS's defaults: 6 cascade levels, AR(2), nonparametric noise, BPS velocity perturbations,
    incremental mask, CDF probability matching), for rain-like fields.

    ``Steps()(frames, times, query_times)`` is the deterministic control, (B, K, C, H, W): the ``pysteps``
    baseline after each sample's last observed input (the same Lucas-Kanade motion as the members),
    ``blend`` at and before it (the observed frame at an input, their linear blend between inputs).
    ``sample(frames, times, query_times, members, generator)`` gives (members, B, K, C, H, W): after the
    last input STEPS's members; at and before it every member is the control (STEPS only extrapolates:
    an interpolation query gets the observed or interpolated frame, with no spread).

    Inputs. Rain-like: non-negative (ValueError otherwise), in units where ``threshold`` is the
    smallest rain that counts (0.1: mm h-1, pySTEPS's usual); a missing cell (NaN) counts as no rain.
    Each channel is its own STEPS run (own noise, seed, AR fit) under the one motion field of all
    channels (as ``pysteps``). Rain is transformed as pySTEPS expects: ``dB_transform`` with
    ``threshold`` (rain below it -> ``zerovalue_db``, -15 dB; STEPS's ``precip_thr`` is 10 log10
    threshold = -10 dB) and back (10^(x / 10), below ``threshold`` -> 0), so members are non-negative
    and light rain under ``threshold`` is zero.

    Times. STEPS takes the last three observed inputs (AR(2); two when a sample has only two, AR(1);
    ValueError with fewer) and assumes them evenly spaced with a motion field per input step. The step
    here is the mean gap of the inputs taken ((t_last - t_first) / (n - 1)); irregular inputs are taken
    as if evenly spaced at that step (STEPS's AR fit and its alignment of the older inputs along the
    motion assume it), while the motion is the ``pysteps`` baseline's (each pair over its own gap) times
    the step. Leads are (query - t_last) / step in those steps, as pySTEPS's list of float timesteps
    (it interpolates between whole steps). ``minutes_per_unit`` converts the data's time unit (default
    hours, climode's) to the minutes and ``km_per_pixel`` gives the grid (default 1 km, a radar
    composite's) that STEPS's velocity perturbations and incremental mask are scaled by.

    Randomness and fallbacks. Each (sample, channel) run's seed is drawn from ``generator`` (the global
    torch generator for None), so a fixed seed gives the same members; numpy's global random state,
    which STEPS reseeds, is restored after. Where the AR(2) fit is singular (lag correlations of 1: a
    field that only moves), the run is AR(1) on the last two inputs. Where the motion draws from outside
    the grid (pySTEPS's NaN) a member has the control's value; a run whose last input has no rain
    (nothing >= ``threshold``) has every member equal to the control.
    """

    km_per_pixel: float = 1.0
    minutes_per_unit: float = 60.0
    threshold: float = 0.1
    zerovalue_db: float = -15.0
    n_cascade_levels: int = 6

    def __call__(
        self,
        frames: torch.Tensor,
        times: torch.Tensor,
        query_times: torch.Tensor,
        velocity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The control (class docstring); ``velocity`` (B, 2, H, W) pixels per time unit, if known."""
        out = pysteps_advection(frames, times, query_times, velocity=velocity)
        _, t, _ = _recent(frames, times, 1)
        behind = _leads(t[:, 0], query_times) < 0
        if behind.any():
            out = torch.where(behind[:, :, None, None, None], blend(frames, times, query_times), out)
        return out

    def sample(
        self,
        frames: torch.Tensor,
        times: torch.Tensor,
        query_times: torch.Tensor,
        members: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``members`` STEPS members, (members, B, K, C, H, W) (class docstring)."""
        if members < 1:
            raise ValueError(f"members must be at least 1, got {members}")
        if (frames < 0).any():
            raise ValueError(
                f"STEPS forecasts rain-like fields, which are non-negative; these frames reach "
                f"{float(torch.nan_to_num(frames).min()):g}"
            )
        B, C = frames.shape[0], frames.shape[2]
        device = generator.device if generator is not None else "cpu"
        seeds = torch.randint(0, 2**31 - 1, (B, C), generator=generator, device=device).tolist()
        velocity = _combined_velocity(frames, times, MULTI_FRAMES, _pysteps_motion)
        control = self(frames, times, query_times, velocity)
        out = control.unsqueeze(0).repeat(members, *[1] * control.ndim)
        x, t, present = _recent(frames, times, STEPS_INPUTS)
        leads = _leads(t[:, 0], query_times)
        for b in range(B):
            ahead = torch.nonzero(leads[b] > 0).flatten()
            n_in = int(present[b].sum())
            if not len(ahead):
                continue
            step = float(t[b, 0] - t[b, n_in - 1]) / max(n_in - 1, 1)
            if n_in < 2 or not step > 0:
                raise ValueError(f"STEPS needs at least two observed inputs at distinct times; sample {b} has {n_in}")
            unique, back = np.unique((leads[b, ahead] / step).double().cpu().numpy(), return_inverse=True)
            v = velocity[b].double().cpu().numpy() * step
            for c in range(C):
                inputs = x[b, :n_in, c].flip(0).double().cpu().numpy()  # oldest first
                drawn = self._nowcast(inputs, v, unique.tolist(), members, seeds[b][c], step)
                if drawn is None:
                    continue
                drawn = torch.from_numpy(drawn[:, back.reshape(-1)]).to(out)
                out[:, b, ahead, c] = torch.where(torch.isfinite(drawn), drawn, control[b, ahead, c])
        return out

    def _nowcast(
        self, inputs: np.ndarray, velocity: np.ndarray, timesteps: list[float], members: int, seed: int, step: float
    ) -> np.ndarray | None:
        """STEPS members (members, len(timesteps), H, W) of rain ``inputs`` (n, H, W; oldest first) in the
        data's units; None where the last input has no rain."""
        rain = np.nan_to_num(inputs, nan=0.0)
        if not (rain[-1] >= self.threshold).any():
            return None
        transform = pysteps.utils.transformation.dB_transform
        db, meta = transform(rain, threshold=self.threshold, zerovalue=self.zerovalue_db)
        nowcast = pysteps.nowcasts.get_method("steps")
        options = dict(
            n_ens_members=members,
            n_cascade_levels=self.n_cascade_levels,
            precip_thr=meta["threshold"],
            kmperpixel=self.km_per_pixel,
            timestep=step * self.minutes_per_unit,
            seed=seed,
        )
        state = np.random.get_state()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pySTEPS prints its settings and progress
                for order in range(len(db) - 1, 0, -1):
                    try:
                        out = nowcast(db[-order - 1 :], velocity, timesteps, ar_order=order, **options)
                        break
                    except np.linalg.LinAlgError:  # singular AR(2) fit: AR(1)
                        if order == 1:
                            raise
        finally:
            np.random.set_state(state)
        return transform(np.asarray(out), threshold=meta["threshold"], inverse=True)[0]


BASELINES: Registry[Forecast] = Registry(
    "baseline",
    {"persistence": persistence, "blend": blend, "linear": linear, "advection": advection,
     "advection-multi": advection_multi},
)  # fmt: skip
if _PYSTEPS_MISSING:  # named, with the reason, so that asking for them says why they cannot be had
    for _name in ("pysteps", "steps"):
        BASELINES.unavailable[_name] = (
            f"the {_name} baseline needs the pysteps package and OpenCV: {_PYSTEPS_MISSING}; install them "
            f"(pip install 'climode[steps]', i.e. pysteps and opencv-python-headless) or choose another model"
        )
else:
    BASELINES["pysteps"] = pysteps_advection
    BASELINES["steps"] = Steps()


class Baseline(nn.Module):
    """A forecast of ``BASELINES`` behind the model interface (``forward`` returns ``{"frames": ...}``),
    so that it is trained (a no-op: it has no parameters), saved and evaluated like any model."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.forecast = BASELINES.get_method(config.architecture)
        if hasattr(self.forecast, "sample"):  # an ensemble baseline (steps): its members, as a stochastic model's
            self.sample = self.forecast.sample

    def forward(self, frames: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"frames": self.forecast(frames, times, query_times)}
