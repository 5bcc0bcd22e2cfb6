"""CLIPER-style track forecasts: CLImatology and PERsistence regression (after Neumann 1972, simplified).

For each lead h, a least-squares linear fit of a storm's displacement from the forecast time t to
t + h (dlat, dlon in degrees, longitude unwrapped) on the predictors ``PREDICTORS`` at t: a constant,
the displacement over the last 12 h (t - 12 h to t), the one over the 12 h before (t - 24 h to
t - 12 h), and the position (lat, deg N; lon, deg E in 0..360). Positions between fixes are linear in
time. Fitted once on training tracks (``Cliper.fit``), kept as JSON (``save``, ``load``).

A storm with less than 24 h of history at the forecast time keeps its motion over the last 12 h (or
over all it has); one with a single fix keeps its position.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ClimodeError
from ..times import elapsed_hours, parse_stamps

PREDICTORS = ("const", "dlat_12h", "dlon_12h", "dlat_prev_12h", "dlon_prev_12h", "lat", "lon")
MOTION_H = 12.0  # hours of each displacement predictor
HISTORY_H = 2 * MOTION_H  # hours of history the regression needs
FORMAT = "climode-cliper"


def track_hours(times: Sequence, calendar: str = "noleap") -> np.ndarray:
    """Hours since the first of ``times``: numbers (hours), datetime64, cftime or datetime objects, or
    "YYYY-MM-DD HH:MM[:SS]" strings (dates of ``calendar``, as ``climode.io.tracks`` writes them)."""
    values = np.asarray(times)
    if values.size == 0:
        return np.zeros(0)
    if np.issubdtype(values.dtype, np.number):
        return values.astype(float) - float(values[0])
    if isinstance(values.flat[0], str):
        values = parse_stamps(values.astype(str), calendar, "track table")
    return elapsed_hours(values)


def _track(hours: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One storm's fixes sorted by time, one per time, longitude unwrapped (no jump at 0/360)."""
    order = np.argsort(hours, kind="stable")
    hours, lat, lon = hours[order], np.asarray(lat, float)[order], np.asarray(lon, float)[order]
    keep = np.concatenate(([True], np.diff(hours) > 0))
    return hours[keep], lat[keep], np.unwrap(lon[keep], period=360.0)


def _at(hours: np.ndarray, values: np.ndarray, when: np.ndarray) -> np.ndarray:
    """A track's ``values`` at times ``when`` (hours), linear between fixes; NaN after the last fix."""
    return np.interp(when, hours, values, right=np.nan)


def _predictors(hours: np.ndarray, lat: np.ndarray, lon: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rows of ``PREDICTORS`` (N, 7) at forecast times ``t`` (N,) of one track (unwrapped lon)."""
    lat0, lat1, lat2 = (_at(hours, lat, when) for when in (t - HISTORY_H, t - MOTION_H, t))
    lon0, lon1, lon2 = (_at(hours, lon, when) for when in (t - HISTORY_H, t - MOTION_H, t))
    return np.stack((np.ones_like(t), lat2 - lat1, lon2 - lon1, lat1 - lat0, lon1 - lon0, lat2, lon2 % 360.0), 1)


def _lead_index(fitted: Sequence[float], leads_h: Sequence[float]) -> list[int]:
    """Where each of ``leads_h`` is among the ``fitted`` leads; ValueError for one that is not."""
    index = []
    for lead in leads_h:
        found = np.flatnonzero(np.isclose(fitted, lead))
        if not len(found):
            raise ValueError(f"lead {lead} h was not fitted; the model has {', '.join(f'{h:g}' for h in fitted)} h")
        index.append(int(found[0]))
    return index


@dataclass(frozen=True)
class Cliper:
    """Per lead ``leads_h[k]`` (hours), ``coefficients[k]`` (7, 2): the displacement (dlat, dlon; deg) is
    ``predictors @ coefficients[k]``; ``samples[k]`` forecasts were fitted, every ``step_h`` hours along
    each training track."""

    leads_h: tuple[float, ...]
    coefficients: np.ndarray
    samples: tuple[int, ...]
    step_h: float

    @classmethod
    def fit(cls, tracks: pd.DataFrame, leads_h: Sequence[float], step_h: float, calendar: str = "noleap") -> Cliper:
        """Fit on a track table (columns storm, lat, lon and time: cftime, datetime64, datetime, strings of
        ``calendar`` or hours; or time_h in hours), from forecast times every ``step_h`` hours along each
        storm from 24 h after its first fix, each lead on the forecasts whose lead time the track reaches."""
        if step_h <= 0 or not len(leads_h) or min(leads_h) <= 0:
            raise ValueError(f"need step_h > 0 and leads > 0 h; got step_h {step_h}, leads {list(leads_h)}")
        time = "time_h" if "time_h" in tracks else "time"
        rows: list[np.ndarray] = []
        targets: list[list[np.ndarray]] = []
        for _, storm in tracks.groupby("storm", sort=False):
            hours, lat, lon = _track(
                track_hours(storm[time].to_numpy(), calendar), storm["lat"].to_numpy(), storm["lon"].to_numpy()
            )
            t = np.arange(hours[0] + HISTORY_H, hours[-1] + 1e-6, step_h)
            rows.append(_predictors(hours, lat, lon, t))
            targets.append(
                [np.stack([_at(hours, v, t + h) - _at(hours, v, t) for v in (lat, lon)], 1) for h in leads_h]
            )
        x = np.concatenate(rows) if rows else np.zeros((0, len(PREDICTORS)))
        coefficients, samples = [], []
        for k, lead in enumerate(leads_h):
            y = np.concatenate([storm[k] for storm in targets]) if targets else np.zeros((0, 2))
            known = np.isfinite(y).all(1)
            if known.sum() < len(PREDICTORS):
                raise ClimodeError(
                    f"only {known.sum()} forecasts of the tracks reach lead {lead:g} h; the fit "
                    f"needs at least {len(PREDICTORS)} (longer or more tracks, or a shorter step_h)"
                )
            coefficients.append(np.linalg.lstsq(x[known], y[known], rcond=None)[0])
            samples.append(int(known.sum()))
        return cls(tuple(float(h) for h in leads_h), np.stack(coefficients), tuple(samples), float(step_h))

    def predict(self, history: pd.DataFrame, leads_h: Sequence[float] | None = None) -> pd.DataFrame:
        """Positions of one storm at ``leads_h`` (default: all fitted) hours after its last fix, from its
        past fixes (columns time_h, lat, lon): columns lead_h, lat (deg N), lon (deg E, 0..360)."""
        leads = list(self.leads_h if leads_h is None else leads_h)
        index = _lead_index(self.leads_h, leads)
        if history.empty:
            raise ValueError("a CLIPER forecast needs at least one past position")
        hours, lat, lon = _track(
            history["time_h"].to_numpy(float), history["lat"].to_numpy(), history["lon"].to_numpy()
        )
        t, span = hours[-1], hours[-1] - hours[0]
        if span >= HISTORY_H:
            moved = _predictors(hours, lat, lon, np.array([t]))[0] @ self.coefficients[index]  # (K, 2)
        elif span > 0:
            window = min(MOTION_H, span)
            rate = np.array([v[-1] - _at(hours, v, t - window) for v in (lat, lon)]) / window
            moved = np.outer(leads, rate)
        else:
            moved = np.zeros((len(leads), 2))
        return pd.DataFrame(
            {"lead_h": np.asarray(leads, float), "lat": lat[-1] + moved[:, 0], "lon": (lon[-1] + moved[:, 1]) % 360.0}
        )

    def to_dict(self) -> dict:
        """What ``save`` writes: the fit, ``coefficients`` nested as (lead, predictor, dlat/dlon)."""
        return {
            "format": FORMAT,
            "version": 1,
            "predictors": list(PREDICTORS),
            "step_h": self.step_h,
            "leads_h": list(self.leads_h),
            "samples": list(self.samples),
            "coefficients": self.coefficients.tolist(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Cliper:
        """Read a model ``save`` wrote."""
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT or data.get("predictors") != list(PREDICTORS):
            raise ClimodeError(
                f"{path} is not a CLIPER model of climode (format {FORMAT}, predictors {', '.join(PREDICTORS)})"
            )
        return cls(
            tuple(data["leads_h"]),
            np.asarray(data["coefficients"], float),
            tuple(data["samples"]),
            float(data["step_h"]),
        )
