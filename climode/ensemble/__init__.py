"""Ensembles at any time: members of a forecast (``members``: the deterministic forecast moved and
rescaled per member, the formula in its docstring), their storm tracks (``tracks``), the
probabilities a forecaster issues, exceedance and strike (``probabilities``), and the fit of how
members differ to past cases (``calibration``)."""

from __future__ import annotations

from .calibration import GROWTHS_PER_H, POWERS, SPEEDS_KMH, calibrate
from .members import KM_PER_DEGREE, REALIZATION, Perturbation, ages, perturb, perturb_cells, summary
from .probabilities import Event, parse_events, probability, products, strike_probability
from .tracks import member_tracks, storm_tracks

__all__ = [
    "GROWTHS_PER_H",
    "KM_PER_DEGREE",
    "POWERS",
    "REALIZATION",
    "SPEEDS_KMH",
    "Event",
    "Perturbation",
    "ages",
    "calibrate",
    "member_tracks",
    "parse_events",
    "perturb",
    "perturb_cells",
    "probability",
    "products",
    "storm_tracks",
    "strike_probability",
    "summary",
]
