"""Synthetic tropical cyclones written like CAM5 history files (U850, V850, PSL, TS, LANDFRAC; 3-hourly, noleap).

Environment (analytic, continuous in space and time): a streamfunction psi gives the 850 hPa winds
(u = -dpsi/dy, v = dpsi/dx) and PSL = P_BASE + RHO f psi (geostrophic-like, |f| floored at its 10N value):
a zonal-mean state (trades near -4 m/s at 15N, a ridge at 27N, westerlies near 8 m/s at 45-50N); an
Azores-Bermuda high (5 hPa), a North Pacific high (4.5 hPa) and a trough off the US east coast (-4 hPa)
whose strength (+-25 %), centre (+-5 degrees) and western extent (+-9 degrees) vary over 8-20 days;
mid-latitude troughs and ridges moving east (3000-6000 km, 5-12 m/s, 3-7 hPa, tilted SW-NE, at 34-48N,
each growing and decaying over 4-8 days, one every 1-2.5 days); westward tropical easterly waves
(2000-3500 km, 6-9 m/s, 1.5-3 m/s winds at 10-16N); 1.5 m/s rms of low-wavenumber noise. TS is SST over
the ocean (a latitude profile, warm pools, a Gulf-Stream tongue, cool California and Canary currents,
0.5 K rms anomalies drifting at < 1 m/s) and a land temperature with a 5 K diurnal cycle; LANDFRAC an
idealised, recognisable coast (the Americas from Alaska to northern Brazil, the Greater Antilles,
Hawaii, West Africa, western Europe) from a few hundred polygon vertices.

Storms form over the ocean with a 300-600 Pa deficit in the Atlantic main development region (8-20N,
300-340E) or, one in four, the east Pacific (10-16N, 240-265E). Each hour (midpoint RK2) a centre moves
with the steering flow -- the environment's wind (no vortex) averaged over the 300-700 km annulus --
plus beta drift (1.5-3 m/s at 20N, growing with the storm's size, 20-50 degrees west of north, times
cos(lat) / cos(20N)) plus AR(1) noise (0.6 m/s, 12 h). Recurvature is not prescribed: storms turn around
the western edge of a high, or ahead of a trough. The pressure deficit dp relaxes in 1-2 days towards
the potential intensity PI = 8500 Pa ((SST - 26 C) / 4 K)**0.7 times an efficiency (0.55-1), a shear
factor (1 up to 7.5 m/s, 0 from 25 m/s; the shear is a westerly profile rising through 28N plus 1.5
times the trough winds at the centre) and (1 - et); over land dp e-folds in 12 h, outside the domain
less MARGIN and after the lifetime cap (9 days, 5 with --small) in 6 h more. Extratropical transition:
et rises towards 1 (18 h) poleward of 35N or over SST below 25 C north of 28N, and never falls. Rmax =
r0 (1.5 - 0.6 min(dp / 7000 Pa, 1)) (1 + 1.5 et) with r0 34-60 km: 30-90 km while tropical, smaller as
the storm deepens, up to 2.5 times larger in transition. On grids coarser than 0.25 degree Rmax is
floored at 1.5 grid spacings (167 km on the 1-degree --small grid), the grid's resolution limit. A storm
ends when dp < 150 Pa (after its first 12 hours).

Fields: Holland (1980) vortices in gradient-wind balance,

    p(r) = p_env - dp * (1 - exp(-(Rmax/r)**B))
    V(r) = sqrt((B/rho) (Rmax/r)**B dp exp(-(Rmax/r)**B) + (r f/2)**2) - r f/2,   B 1-2,

cyclonic, with a 10 degree inflow angle, a wavenumber-1 asymmetry (up to 20 % at 15 m/s of shear, 45
degrees left of downshear) and the storm's motion added in proportion to V(r)/V(Rmax). Storm states are
kept hourly and interpolated linearly, so the fields are continuous in time at any real time.

Not in this world: moist processes and a cold wake (SST ignores the storms), storm-storm interaction
beyond the SEPARATION kept between them, vertical structure (steering and shear are proxies from the
one 850 hPa level), topography (land only decays storms and sets TS), southern-hemisphere storms.

``tracks.csv`` holds the truth: one row per storm per 3-hourly step while dp >= 1500 Pa and the centre
is at least MARGIN inside the domain (its first such stretch: the weak genesis and decay stages are in
the fields but not in the tracks, as best tracks start at depression stage). ``psl_min`` is the field's
value at the centre (environment plus every vortex), ``vmax`` the largest wind speed of the full field
on rings 0.3-3 Rmax around the centre.

Everything random comes from ``numpy.random.default_rng`` seeded by ``seed``: the same seed gives the
same values, byte for byte. CANDIDATES tracks are integrated per storm and the first that is tracked
long enough and keeps SEPARATION from the storms before it is kept; fields are computed one file at a
time, so memory does not grow with the number of storms.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ClimodeError, cli

EARTH_RADIUS = 6.371e6  # m
OMEGA = 7.292e-5  # s-1
RHO = 1.15  # kg m-3, air density in the gradient-wind balance and in PSL = P_BASE + RHO f psi
P_REF = 101325.0  # Pa
P_BASE = P_REF - 300.0  # Pa: PSL where the environment's streamfunction is zero
F_FLOOR = 2 * OMEGA * math.sin(math.radians(10.0))  # s-1: |f| used for PSL is never below its 10N value
STEP = timedelta(hours=3)
STEPS_PER_DAY = 8
SUB = 3  # storm states per 3-hour step: integrated hourly
DT = STEP.total_seconds() / SUB  # s
TRACK_DP = 1500.0  # Pa: a storm is listed in tracks.csv while its pressure deficit is at least this
DP_END = 150.0  # Pa: a storm ends when its deficit falls below this (after its first 12 hours)
INFLOW = math.radians(10.0)
MARGIN = 3.0  # degrees: tracks.csv lists centres at least this far inside the domain's edges
SEPARATION = 1.0e6  # m: least distance between coexisting storms
RING = (400e3, 600e3)  # m: radii sampling the steering annulus (300-700 km), 8 azimuths each
PI_MAX = 8500.0  # Pa: potential pressure deficit at 30 C
SST_PI = 26.0  # C: no potential intensity below this
TAU_LAND = 12 * 3600.0  # s: e-folding of dp over land
TAU_FORCED = 6 * 3600.0  # s: e-folding of dp outside the domain and after the lifetime cap
TAU_ET = 18 * 3600.0  # s: time scale of extratropical transition
SHEAR = (7.5, 25.0)  # m s-1: vertical shear from which PI falls, and at which it is gone
BETA_LAT = 20.0  # degrees: latitude at which a storm's beta-drift speed is drawn
NOISE = (0.6, 12 * 3600.0)  # motion noise: m s-1 rms, s correlation time
CANDIDATES = 4  # candidate tracks per storm: half at its genesis time, half 6 hours later
BLOCK = 32  # storms whose candidates are integrated together
ZONAL = ((0.9e7, 27.0, 16.0), (-1.0e7, 58.0, 12.0))  # zonal-mean psi: Gaussians (m2 s-1, centre, width deg)
# Semi-permanent cells: centre (degrees), PSL amplitude (Pa), e-folding widths (degrees): north-south, west, east
HIGHS = (
    (31.0, 330.0, 500.0, 10.0, 25.0, 15.0),  # Azores-Bermuda high
    (34.0, 218.0, 450.0, 9.0, 20.0, 18.0),  # North Pacific high
    (38.0, 282.0, -400.0, 9.0, 12.0, 12.0),
)  # trough off the North American east coast
TIME_UNITS = "days since 2000-01-01 00:00:00"
CALENDAR = "noleap"
START = cftime.DatetimeNoLeap(2000, 8, 1)
PREFIX = "cam5_synthetic.h2."
VARIABLES = ("U850", "V850", "PSL", "TS", "LANDFRAC")
FILL = np.float32(1e36)
TITLE = "synthetic CAM5-like tropical cyclones generated by climode"
DEG = math.pi / 180.0

# Land: polygons (lon degrees east in 180..540, lat degrees north), combined by the even-odd rule (Hudson Bay
# is a hole). Idealised coasts from a few well-known points; only 185E-6E is mapped.
LAND = (
    (
        (190, 66),
        (196, 60),
        (200, 58.5),
        (197, 55.5),
        (204, 57.5),
        (210, 59.5),
        (214, 60.3),
        (220, 59.7),
        (224, 58),
        (228, 55),
        (231, 52),
        (235.5, 48.5),
        (236, 46),
        (235.8, 42),
        (236.3, 40),
        (237.5, 38),
        (239.4, 34.5),
        (242.8, 32.6),
        (244.2, 30),
        (245.8, 27.5),
        (247.6, 25),
        (250.1, 22.9),
        (249.7, 24.2),
        (248.7, 26),
        (247.7, 27.3),
        (246.5, 28.9),
        (245.2, 31.7),
        (246.5, 31.3),
        (249.1, 27.9),
        (251, 25.6),
        (253.6, 23.2),
        (254.7, 21.5),
        (254.8, 20.6),
        (255.7, 19.1),
        (257.8, 17.9),
        (260.1, 16.8),
        (263.5, 15.7),
        (264.8, 16.2),
        (267.7, 14.6),
        (270.8, 13.3),
        (272.3, 13),
        (273.3, 12),
        (274.3, 11),
        (274.4, 9.8),
        (276, 8.5),
        (277.9, 8),
        (279.7, 7.3),
        (280.5, 8.9),
        (282, 8.2),
        (282.5, 6.5),
        (282.9, 3.9),
        (281.2, 1.8),
        (279.9, 0),
        (279, -2.2),
        (278.7, -8),
        (325, -8),
        (325.2, -5.3),
        (321.5, -3.7),
        (315.7, -2.5),
        (310.5, -0.3),
        (309.2, 2),
        (307.7, 4.9),
        (304.8, 5.8),
        (301.8, 6.8),
        (299.4, 8.6),
        (298.4, 10),
        (298.2, 10.7),
        (295.5, 10.6),
        (293, 10.6),
        (289.8, 11.9),
        (288.5, 11),
        (287.8, 12.4),
        (285.2, 11),
        (284.5, 10.4),
        (283.3, 9),
        (283.1, 8),
        (282.3, 8.9),
        (280.1, 9.4),
        (277.8, 9.3),
        (277, 10),
        (276.3, 11),
        (276.4, 12.5),
        (276.6, 14),
        (276.8, 15),
        (275, 15.9),
        (273.2, 15.8),
        (271.4, 15.7),
        (271.8, 17.5),
        (272.6, 20.2),
        (273.2, 21.2),
        (272.9, 21.6),
        (270.3, 21.3),
        (269.5, 19.8),
        (268.2, 18.6),
        (265.6, 18.2),
        (263.9, 19.2),
        (262.6, 21),
        (262.1, 22.3),
        (262.5, 25),
        (262.9, 25.9),
        (262.6, 27.7),
        (264, 28.6),
        (265.2, 29.3),
        (266.7, 29.7),
        (268.5, 29.5),
        (270.8, 29),
        (271.1, 30.4),
        (272, 30.3),
        (272.8, 30.4),
        (275, 29.7),
        (276, 30),
        (277, 29.1),
        (277.4, 27.8),
        (278.1, 26.5),
        (278.9, 25.2),
        (279.6, 25.3),
        (279.8, 25.8),
        (280, 27),
        (279.4, 28.4),
        (278.6, 30.3),
        (279, 32),
        (280.1, 32.8),
        (282, 33.85),
        (283.5, 34.6),
        (284.5, 35.2),
        (284, 36.9),
        (284.9, 38),
        (285.1, 38.9),
        (285.9, 39.5),
        (286, 40.5),
        (288, 41.3),
        (290, 41.6),
        (289.2, 42.4),
        (289.8, 43.7),
        (292.7, 44.6),
        (294.4, 43.5),
        (296.4, 44.6),
        (299.6, 46),
        (300.7, 47.6),
        (304.8, 46.8),
        (307.3, 46.7),
        (307.3, 47.6),
        (306.5, 49.5),
        (304.5, 51.4),
        (304, 53.2),
        (300, 55.5),
        (297, 58),
        (295.4, 60.4),
        (295, 66),
    ),
    (
        (265, 66),
        (265.8, 58.8),
        (267.6, 57),
        (272, 55.5),
        (277.7, 55.1),
        (278.5, 53),
        (280, 51.3),
        (281.2, 52.5),
        (281, 54.5),
        (282.3, 58.5),
        (282, 62),
        (282, 66),
    ),  # Hudson Bay
    ((310, 66), (312.5, 61), (316.1, 59.8), (317.5, 60.5), (322, 66)),  # Greenland
    (
        (275.05, 21.87),
        (277, 22.9),
        (277.6, 23.13),
        (278.4, 23.05),
        (281.6, 22.5),
        (282.7, 21.55),
        (283.9, 21.1),
        (285.9, 20.2),
        (284.8, 19.9),
        (282.3, 19.85),
        (282, 20.7),
        (281.2, 21.6),
        (280, 21.8),
        (279.4, 22.1),
        (277.6, 22.7),
        (276.5, 22.3),
    ),  # Cuba
    (
        (285.55, 18.35),
        (286.3, 18.65),
        (287.6, 18.6),
        (287.3, 19.1),
        (286.6, 19.8),
        (287.8, 19.8),
        (289.3, 19.85),
        (290.8, 19.3),
        (291.7, 18.6),
        (290.1, 18.45),
        (288.9, 18.2),
        (288.6, 17.6),
        (287.5, 18.2),
        (286.25, 18.15),
    ),  # Hispaniola
    (
        (281.65, 18.27),
        (282.1, 18.47),
        (283.55, 18.18),
        (283.8, 17.92),
        (283.2, 17.97),
        (282.8, 17.7),
        (282.15, 18.03),
    ),  # Jamaica
    ((292.75, 18.5), (294.4, 18.45), (294.3, 18), (292.8, 17.95)),  # Puerto Rico
    ((203.9, 19.7), (204.3, 20.25), (205, 19.9), (205.2, 19.5), (204.3, 18.9)),  # Hawaii
    ((203.5, 20.9), (204, 21), (204, 20.6), (203.6, 20.6)),
    ((201.7, 21.5), (202.1, 21.7), (202.4, 21.3), (201.9, 21.25)),
    ((200.2, 22.1), (200.6, 22.2), (200.7, 21.95), (200.3, 21.9)),
    (
        (354.2, 35.8),
        (353.2, 34),
        (352.4, 33.6),
        (350.2, 31.5),
        (350.4, 30.4),
        (347.1, 27.9),
        (345.5, 26.1),
        (344.1, 23.7),
        (342.95, 20.8),
        (344.05, 18.1),
        (343.5, 16),
        (342.5, 14.7),
        (343.4, 13.45),
        (344.4, 11.85),
        (346.3, 9.5),
        (346.8, 8.5),
        (349.2, 6.3),
        (352.3, 4.4),
        (356, 5.2),
        (357.9, 4.75),
        (359.8, 5.55),
        (361.2, 6.1),
        (366, 6.3),
        (366, 37),
        (363, 36.8),
        (359.4, 35.7),
        (357.1, 35.3),
        (354.7, 35.9),
    ),  # Africa
    (
        (354.4, 36),
        (353.7, 36.5),
        (353.05, 37.2),
        (351, 37),
        (350.5, 38.8),
        (351.3, 41.15),
        (350.7, 42.9),
        (351.6, 43.4),
        (352.1, 43.8),
        (354.3, 43.55),
        (356.2, 43.45),
        (358.4, 43.5),
        (358.8, 44.6),
        (358.85, 46.15),
        (357.8, 47.3),
        (355.3, 48),
        (355.2, 48.4),
        (356, 48.7),
        (358, 48.65),
        (358.4, 49.65),
        (360.1, 49.5),
        (361.85, 50.95),
        (366, 53.5),
        (366, 43),
        (363, 43.3),
        (362.2, 41.4),
        (359.6, 39.5),
        (359, 37.6),
        (357.5, 36.8),
    ),  # Iberia and France
    (
        (354.3, 50.05),
        (355.9, 50.35),
        (357.55, 50.55),
        (361.3, 51.1),
        (361.45, 51.4),
        (361.75, 52.6),
        (360.3, 52.9),
        (359.9, 54.1),
        (358.6, 55),
        (357.9, 57.15),
        (357, 58.65),
        (355, 58.6),
        (354.2, 56.5),
        (354.2, 55.3),
        (356.5, 54.9),
        (357, 53.4),
        (355.4, 53.3),
        (354.7, 51.9),
        (356.8, 51.4),
        (355.5, 51.1),
    ),  # Great Britain
    (
        (350.2, 51.45),
        (351.7, 51.8),
        (353.6, 52.2),
        (353.9, 53.35),
        (354, 55.2),
        (352.6, 55.4),
        (351.7, 55.1),
        (350, 54.3),
        (349.8, 53.4),
        (350.1, 52.55),
        (349.7, 52),
    ),  # Ireland
)


@dataclass(frozen=True)
class Domain:
    """A regular lat-lon grid: edges in degrees (lat ascending, lon in 0..360 east), spacing ``res`` degrees."""

    lat_min: float = 0.0
    lat_max: float = 60.0
    lon_min: float = 200.0
    lon_max: float = 359.75
    res: float = 0.25

    @property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes (degrees_north), ascending, both edges included."""
        return self.lat_min + self.res * np.arange(round((self.lat_max - self.lat_min) / self.res) + 1)

    @property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes (degrees_east, 0..360), ascending, both edges included."""
        return self.lon_min + self.res * np.arange(round((self.lon_max - self.lon_min) / self.res) + 1)

    def check(self) -> None:
        """Raise ClimodeError unless the domain is a sensible grid that leaves room for storms."""
        if not (-90 <= self.lat_min < self.lat_max <= 90 and 0 <= self.lon_min < self.lon_max <= 360 and self.res > 0):
            raise ClimodeError(
                f"bad domain {self}: need -90 <= lat_min < lat_max <= 90, 0 <= lon_min < lon_max <= 360 and res > 0"
            )
        if self.lat_max - self.lat_min < 4 * MARGIN or self.lon_max - self.lon_min < 4 * MARGIN:
            raise ClimodeError(f"domain {self} is too small for storms: need at least {4 * MARGIN:g} degrees each way")
        if self.lat_max <= 5 + MARGIN:
            raise ClimodeError(f"domain {self} holds no latitudes north of 5N for storms")

    def inside(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Whether points (degrees) lie at least MARGIN inside the domain (and north of 5N)."""
        lon = np.asarray(lon) % 360.0
        return (
            (lat >= max(self.lat_min + MARGIN, 5.0))
            & (lat <= self.lat_max - MARGIN)
            & (lon >= self.lon_min + MARGIN)
            & (lon <= self.lon_max - MARGIN)
        )


FULL = Domain()
SMALL = Domain(0.0, 60.0, 199.5, 359.5, 1.0)  # points on the 1-degree tile centres


@dataclass(frozen=True)
class _Setup:
    domain: Domain
    stagger_days: float  # mean spacing of genesis times
    life_days: tuple[float, float]  # least tracked life of a kept storm; lifetime cap (then it decays)
    file_days: int  # days per file


@dataclass(frozen=True)
class _Modes:
    """Travelling modes psi_j = amp_j env_j(t) G_j(lat) cos(m_j lon + n_j lat + phase_j - omega_j t), lon and
    lat in radians, G a Gaussian in latitude, env = sin^2 over the mode's life (1 when life is infinite)."""

    lat0: np.ndarray  # degrees: centre of G
    width: np.ndarray  # degrees: e-folding half-width of G (inf: G = 1)
    m: np.ndarray  # per radian of longitude
    n: np.ndarray  # per radian of latitude
    omega: np.ndarray  # rad s-1 (positive: moves east)
    phase: np.ndarray  # rad
    amp: np.ndarray  # m2 s-1 (streamfunction) or K (temperature)
    t0: np.ndarray  # s since START: start of life
    life: np.ndarray  # s (inf: for ever)


@dataclass(frozen=True)
class _High:
    """A semi-permanent high (a trough when psi0 < 0): psi = psi0 s(t) exp(-((lat - lat0) / sy)^2 - (dlon / sx)^2),
    sx the western extent west of the centre and ``east`` east of it; strength, western extent and centre
    longitude vary sinusoidally."""

    lat0: float  # degrees
    lon0: float  # degrees east
    psi0: float  # m2 s-1
    sy: float  # degrees
    west: float  # degrees
    east: float  # degrees
    swing: tuple[float, float, float]  # amplitudes: relative strength, western extent (deg), centre longitude (deg)
    period: tuple[float, float, float]  # s
    phase: tuple[float, float, float]  # rad


@dataclass(frozen=True)
class _World:
    highs: tuple[_High, ...]
    troughs: _Modes  # mid-latitude troughs and ridges, moving east
    waves: _Modes  # tropical easterly waves, moving west
    noise: _Modes
    sst: _Modes  # SST anomalies, K


@dataclass(frozen=True)
class _Storm:
    name: str
    first: int  # global 3-hour step of its first state
    lat: np.ndarray  # degrees_north, per hour (SUB per step) of its life
    lon: np.ndarray  # degrees_east (continuous, may pass 360)
    cu: np.ndarray  # motion, m s-1
    cv: np.ndarray
    dp: np.ndarray  # pressure deficit, Pa
    rmax: np.ndarray  # radius of maximum wind, m
    ax: np.ndarray  # wavenumber-1 asymmetry: relative amplitude times the unit vector of its maximum
    ay: np.ndarray
    b: float  # Holland B
    beta: tuple[float, float]  # beta drift: speed at BETA_LAT (m s-1), direction (degrees west of north)

    @property
    def last(self) -> float:
        """Local step (3-hour units) of its last state."""
        return (len(self.lat) - 1) / SUB

    def local(self, step: float) -> float | None:
        """The storm's own (fractional) step at global ``step``, None while it does not exist."""
        k = step - self.first
        return k if -1 < k < self.last + 1 else None

    def at(self, k: float) -> tuple[float, ...]:
        """(lat, lon, cu, cv, dp, rmax, ax, ay) at local step ``k`` in (-1, last + 1), linear between the
        hourly states (so the fields are continuous in time); before the first and after the last state dp
        fades to zero over one step."""
        n, x = len(self.lat), k * SUB
        i = min(max(int(math.floor(x)), 0), n - 1)
        j, w = (i + 1, x - i) if 0 <= x < n - 1 else (i, 0.0)
        fade = 1.0 + k if k < 0 else (1.0 - (k - self.last) if k > self.last else 1.0)
        lerp = lambda a: (1 - w) * a[i] + w * a[j]
        return (
            lerp(self.lat),
            lerp(self.lon) % 360.0,
            lerp(self.cu),
            lerp(self.cv),
            fade * lerp(self.dp),
            lerp(self.rmax),
            lerp(self.ax),
            lerp(self.ay),
        )


@dataclass(frozen=True)
class _Plan:
    setup: _Setup
    seed: int
    n_steps: int
    storms: tuple[_Storm, ...]
    world: _World

    def time(self, step: float) -> cftime.DatetimeNoLeap:
        return START + timedelta(seconds=round(step * STEP.total_seconds()))


def _setup(small: bool, domain: Domain | None) -> _Setup:
    if small:
        setup = _Setup(domain or SMALL, 1.0, (3.0, 5.0), 2)
    else:
        setup = _Setup(domain or FULL, 1.5, (3.0, 9.0), 5)
    setup.domain.check()
    return setup


def _check_args(storms: int, seed: int) -> None:
    if isinstance(storms, bool) or not isinstance(storms, (int, np.integer)) or storms < 1:
        raise ClimodeError(f"--storms must be an integer >= 1, got {storms!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ClimodeError(f"--seed must be an integer >= 0, got {seed!r}")


# ------------------------------------------------------------------------------------------ environment


def _coriolis(lat) -> np.ndarray:
    """f (s-1) for PSL = P_BASE + RHO f psi: 2 Omega sin(lat), never below F_FLOOR in magnitude."""
    s = np.sin(np.radians(lat))
    return np.where(np.asarray(lat) < 0, -1.0, 1.0) * np.maximum(2 * OMEGA * np.abs(s), F_FLOOR)


def _contract(lat_parts: list[np.ndarray], lon_parts: list[np.ndarray]) -> np.ndarray:
    """sum_j lat_j * lon_j over the modes (first axis) of [mode, lat, 1] and [mode, 1, lon] factors."""
    return np.concatenate(lat_parts)[:, :, 0].T @ np.concatenate(lon_parts)[:, 0, :]


def _modes(md: _Modes, seconds: float, lat, lon, winds: bool = True) -> tuple:
    """psi (or temperature), and with ``winds`` u = -dpsi/dy, v = dpsi/dx (m s-1), of the modes alive at
    ``seconds`` on broadcastable lat, lon (degrees): separably on a grid (lat a column, lon a row)."""
    shape = np.broadcast_shapes(np.shape(lat), np.shape(lon))
    env = np.where(np.isinf(md.life), 1.0, np.sin(np.pi * np.clip((seconds - md.t0) / md.life, 0.0, 1.0)) ** 2)
    on = env > 0
    if not on.any():
        return (np.zeros(shape),) * (3 if winds else 1)
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    grid = lat.ndim == 2 and lat.shape[1] == 1 and lon.ndim == 2 and lon.shape[0] == 1
    col = (-1,) + (1,) * lat.ndim
    row = (-1,) + (1,) * lon.ndim
    a, n, m, width = (md.amp * env)[on].reshape(col), md.n[on].reshape(col), md.m[on].reshape(row), md.width[on]
    phi = np.radians(lat)
    if np.isinf(width).all():
        g, dg = a, 0.0
    else:
        y = (lat - md.lat0[on].reshape(col)) / width.reshape(col)
        g = a * np.exp(-(y**2))
        dg = g * (-2.0 * y / width.reshape(col)) / DEG  # dG/dlat per radian
    beta = n * phi
    alpha = m * np.radians(lon) + (md.phase - md.omega * seconds)[on].reshape(row)
    gm = g * m / (EARTH_RADIUS * np.cos(phi)) if winds else 0.0
    if grid:  # cos(alpha + beta) = cos a cos b - sin a sin b: sums of products of 1-D factors
        ca, sa, cb, sb = np.cos(alpha), np.sin(alpha), np.cos(beta), np.sin(beta)
        psi = _contract([g * cb, -g * sb], [ca, sa])
        if not winds:
            return (psi,)
        u = _contract([g * n * sb - dg * cb, dg * sb + g * n * cb], [ca, sa]) / EARTH_RADIUS
        v = _contract([-gm * sb, -gm * cb], [ca, sa])
        return psi, u, v
    theta = alpha + beta
    cos = np.cos(theta)
    psi = np.broadcast_to((g * cos).sum(axis=0), shape)
    if not winds:
        return (psi,)
    sin = np.sin(theta)
    u = ((g * n * sin - dg * cos).sum(axis=0)) / EARTH_RADIUS
    v = -(gm * sin).sum(axis=0)
    return psi, np.broadcast_to(u, shape), np.broadcast_to(v, shape)


def _highs(highs: tuple[_High, ...], seconds: float, lat, lon) -> tuple[np.ndarray, ...]:
    """psi (m2 s-1), u, v (m s-1) of the semi-permanent highs and troughs."""
    psi = u = v = 0.0
    for h in highs:
        s, west, centre = (math.sin(2 * math.pi * seconds / p + ph) for p, ph in zip(h.period, h.phase))
        a = h.psi0 * (1.0 + h.swing[0] * s)
        dl = (np.asarray(lon) - (h.lon0 + h.swing[2] * centre) + 180.0) % 360.0 - 180.0
        sx = np.where(dl < 0, h.west + h.swing[1] * west, h.east)
        y = (np.asarray(lat) - h.lat0) / h.sy
        g, e = np.exp(-(y**2)), np.exp(-((dl / sx) ** 2))
        psi = psi + a * g * e
        u = u + a * (2.0 * y / h.sy / DEG) * g * e / EARTH_RADIUS
        v = v - a * g * e * (2.0 * dl / sx**2 / DEG) / (EARTH_RADIUS * np.cos(np.radians(lat)))
    return psi, u, v


def _zonal(lat) -> tuple[np.ndarray, np.ndarray]:
    """Zonal-mean psi (m2 s-1) and u (m s-1)."""
    psi = u = 0.0
    for c, lat0, width in ZONAL:
        y = (np.asarray(lat) - lat0) / width
        g = c * np.exp(-(y**2))
        psi, u = psi + g, u + g * 2.0 * y / width / DEG / EARTH_RADIUS
    return psi, u


def _flow(world: _World, seconds: float, lat, lon) -> tuple[np.ndarray, ...]:
    """The environment (everything but the vortices) on broadcastable lat, lon (degrees): PSL (Pa), u, v
    (m s-1), and the troughs' own u, v (m s-1, for the shear)."""
    shape = np.broadcast_shapes(np.shape(lat), np.shape(lon))
    psi, u = _zonal(lat)
    hp, hu, hv = _highs(world.highs, seconds, lat, lon)
    tp, tu, tv = _modes(world.troughs, seconds, lat, lon)
    wp, wu, wv = _modes(world.waves, seconds, lat, lon)
    npsi, nu, nv = _modes(world.noise, seconds, lat, lon)
    psl = P_BASE + RHO * _coriolis(lat) * (psi + hp + tp + wp + npsi)
    return tuple(np.broadcast_to(x, shape) for x in (psl, u + hu + tu + wu + nu, hv + tv + wv + nv, tu, tv))


def _shear(lat, tu, tv) -> tuple[np.ndarray, np.ndarray]:
    """Proxy 200-850 hPa shear (m s-1): upper westerlies rising through 28N plus 1.5 times the trough winds."""
    return -3.0 + 17.0 / (1.0 + np.exp(-(np.asarray(lat) - 28.0) / 4.0)) + 1.5 * tu, 1.5 * tv


def _sst_base(lat, lon) -> np.ndarray:
    """Climatological SST (C): latitude profile, warm pools, a Gulf-Stream tongue, cool eastern currents."""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float) % 360.0
    bump = lambda a, la, wa, lo, wo: a * np.exp(-(((lat - la) / wa) ** 2) - ((lon - lo) / wo) ** 2)
    stream = 35.0 + 6.0 * np.tanh((lon - 285.0) / 10.0)  # the Gulf Stream's axis, degrees north
    return (
        8.0
        + 20.5 / (1.0 + np.exp((lat - 42.0) / 6.0))
        + bump(1.3, 24.0, 9.0, 285.0, 22.0)
        + bump(1.5, 13.0, 6.0, 255.0, 15.0)  # west Atlantic, east Pacific
        - bump(4.0, 25.0, 10.0, 235.0, 15.0)
        - bump(2.5, 22.0, 8.0, 340.0, 8.0)  # California, Canary currents
        + 3.0 * np.exp(-(((lat - stream) / 4.0) ** 2) - ((lon - 292.0) / 20.0) ** 2)
    )


def _land_temperature(lat, lon, seconds: float) -> np.ndarray:
    """Land surface temperature (C) with a 5 K diurnal cycle peaking at 15 local solar time."""
    lat = np.asarray(lat, float)
    hour = seconds / 3600.0 + np.asarray(lon) / 15.0
    return (
        22.0
        + 8.0 * np.exp(-(((lat - 28.0) / 14.0) ** 2))
        - 0.3 * np.maximum(lat - 40.0, 0.0)
        + 5.0 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
    )


def _sst(world: _World, seconds: float, lat, lon) -> np.ndarray:
    """SST (C) on broadcastable lat, lon (degrees)."""
    return _sst_base(lat, lon) + _modes(world.sst, seconds, lat, lon, winds=False)[0]


def _potential(sst) -> np.ndarray:
    """Potential pressure deficit (Pa) over SST (C): 0 below SST_PI, PI_MAX at 30 C."""
    return PI_MAX * np.clip((np.asarray(sst) - SST_PI) / 4.0, 0.0, 1.1) ** 0.7


@functools.cache
def _edges() -> tuple[np.ndarray, ...]:
    """The coastline's edges as arrays x1, y1, x2, y2 (degrees)."""
    p = [np.asarray(poly, float) for poly in LAND]
    q = [np.roll(a, -1, axis=0) for a in p]
    return tuple(np.concatenate([a[:, c] for a in arrays]) for arrays, c in ((p, 0), (p, 1), (q, 0), (q, 1)))


def _inside_land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Whether each point of the grid lat (1-D) x lon (1-D), degrees, is on land (even-odd rule, row by row)."""
    x1, y1, x2, y2 = _edges()
    lon = (np.asarray(lon, float) - 180.0) % 360.0 + 180.0
    y = np.asarray(lat, float)[:, None]
    cross = (y1 <= y) != (y2 <= y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    out = np.zeros((y.size, lon.size), bool)
    for i in range(y.size):
        out[i] = np.searchsorted(np.sort(x[i, cross[i]]), lon, side="right") % 2 == 1
    return out


def _land_fraction(lat: np.ndarray, lon: np.ndarray, res: float) -> np.ndarray:
    """Land fraction of cells of ``res`` degrees centred on the grid lat x lon (sampled 2-8 times each way)."""
    n = max(2, math.ceil(res / 0.125 - 1e-9))
    off = ((np.arange(n) + 0.5) / n - 0.5) * res
    inside = _inside_land((lat[:, None] + off).ravel(), (lon[:, None] + off).ravel())
    return inside.reshape(lat.size, n, lon.size, n).mean(axis=(1, 3))


@functools.cache
def _land_map() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Land fraction on a 0.25-degree grid over 10S-80N, 170-400E, for the storms' centres."""
    lat, lon = np.arange(-10.0, 80.01, 0.25), np.arange(170.0, 400.01, 0.25)
    return lat, lon, _land_fraction(lat, lon, 0.25)


def _bilinear(
    field: np.ndarray, lat0: float, lon0: float, res: float, lat: np.ndarray, lon: np.ndarray, outside: float = np.nan
) -> np.ndarray:
    """``field`` on the grid lat0 + res i, lon0 + res j (degrees), interpolated bilinearly to points."""
    y, x = (np.asarray(lat) - lat0) / res, (np.asarray(lon) - lon0) / res
    on = (y >= 0) & (y <= field.shape[0] - 1) & (x >= 0) & (x <= field.shape[1] - 1)
    i = np.minimum(np.where(on, y, 0).astype(int), field.shape[0] - 2)
    j = np.minimum(np.where(on, x, 0).astype(int), field.shape[1] - 2)
    wy, wx = np.where(on, y - i, 0), np.where(on, x - j, 0)
    value = (1 - wy) * ((1 - wx) * field[i, j] + wx * field[i, j + 1]) + wy * (
        (1 - wx) * field[i + 1, j] + wx * field[i + 1, j + 1]
    )
    return np.where(on, value, outside)


def _land_at(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Land fraction (0..1) at points (degrees), bilinear in the 0.25-degree map (0 off the map)."""
    glat, glon, frac = _land_map()
    return _bilinear(frac, glat[0], glon[0], 0.25, lat, (np.asarray(lon) - 180.0) % 360.0 + 180.0, 0.0)


@functools.cache
def _static(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """LANDFRAC (0..1) and climatological SST (C) on the domain's grid."""
    lat, lon = domain.lat, domain.lon
    return _land_fraction(lat, lon, domain.res), _sst_base(lat[:, None], lon[None, :])


# ------------------------------------------------------------------------------------------ drawing the world


def _travelling(
    rng: np.random.Generator,
    horizon: float,
    every: tuple[float, float],
    life: tuple[float, float],
    lat0: tuple[float, float],
    width: tuple[float, float],
    wavelength: tuple[float, float],
    speed: tuple[float, float],
    tilt: tuple[float, float],
    amplitude: tuple[float, float],
    by_wind: bool,
) -> _Modes:
    """Modes born every ``every`` days (the first up to 8 days before START) until ``horizon`` seconds, each
    living ``life`` days; wavelength (m) and phase speed (m s-1, positive east) at their central latitude,
    ``tilt`` dlon/dlat of their phase lines; ``amplitude`` in PSL (Pa) or, ``by_wind``, in meridional wind
    (m s-1). Drawn one mode at a time: a longer horizon adds modes and leaves the earlier ones as they were."""
    rows, t0 = [], -rng.uniform(0.0, 8.0) * 86400.0
    while t0 < horizon:
        la, wd, lam, c, tl, amp, days = (
            rng.uniform(*r) for r in (lat0, width, wavelength, speed, tilt, amplitude, life)
        )
        scale = EARTH_RADIUS * math.cos(la * DEG)
        m = 2 * np.pi * scale / lam  # per radian of longitude
        psi = amp * scale / m if by_wind else amp / (RHO * float(_coriolis(la)))
        rows.append((la, wd, m, -m * tl, c * m / scale, rng.uniform(0, 2 * np.pi), psi, t0, days * 86400.0))
        t0 += rng.uniform(*every) * 86400.0
    return _Modes(*map(np.array, zip(*rows)))


def _draw_noise(rng: np.random.Generator, modes: int, rms: float, drift: tuple[float, float], winds: bool) -> _Modes:
    """Lasting modes of wavelength 1500-4000 km in random directions, drifting at ``drift`` m s-1 along their
    x component; ``rms`` m s-1 of wind (``winds``) or K."""
    wavelength = rng.uniform(1.5e6, 4.0e6, modes)
    angle = rng.uniform(0.0, 2 * np.pi, modes)
    k = 2 * np.pi / wavelength
    kx, ky = k * np.cos(angle), k * np.sin(angle)
    omega = rng.uniform(*drift, modes) * kx
    phase = rng.uniform(0.0, 2 * np.pi, modes)
    amp = rng.uniform(0.5, 1.5, modes) / (k if winds else 1.0)
    amp *= rms / math.sqrt(0.5 * np.sum((amp * (k if winds else 1.0)) ** 2))
    return _Modes(
        np.zeros(modes),
        np.full(modes, np.inf),
        kx * EARTH_RADIUS * math.cos(25.0 * DEG),
        ky * EARTH_RADIUS,
        omega,
        phase,
        amp,
        np.zeros(modes),
        np.full(modes, np.inf),
    )


def _draw_high(
    rng: np.random.Generator, lat0: float, lon0: float, psl: float, sy: float, west: float, east: float
) -> _High:
    """A cell of ``psl`` Pa at (lat0, lon0) whose strength varies by 25 %, western extent by 9 degrees and
    centre by 5 degrees of longitude, with periods of 8-20 days."""
    return _High(
        lat0,
        lon0,
        psl / (RHO * float(_coriolis(lat0))),
        sy,
        west,
        east,
        (0.25, 9.0, 5.0),
        tuple(rng.uniform(8.0, 20.0, 3) * 86400.0),
        tuple(rng.uniform(0.0, 2 * np.pi, 3)),
    )


def _draw_world(seq: np.random.SeedSequence, horizon: float) -> _World:
    """The environment's random parts, each from its own stream, up to ``horizon`` seconds after START."""
    highs, troughs, waves, noise, sst = (np.random.default_rng(s) for s in seq.spawn(5))
    return _World(
        tuple(_draw_high(highs, *spec) for spec in HIGHS),
        _travelling(
            troughs,
            horizon,
            (1.0, 2.5),
            (4.0, 8.0),
            (34.0, 48.0),
            (7.0, 12.0),
            (3.0e6, 6.0e6),
            (5.0, 12.0),
            (0.3, 1.0),
            (300.0, 700.0),
            by_wind=False,
        ),
        _travelling(
            waves,
            horizon,
            (2.0, 4.0),
            (5.0, 10.0),
            (10.0, 16.0),
            (4.0, 7.0),
            (2.0e6, 3.5e6),
            (-9.0, -6.0),
            (-0.3, 0.3),
            (1.5, 3.0),
            by_wind=True,
        ),
        _draw_noise(noise, 12, 1.5, (-6.0, 1.0), winds=True),
        _draw_noise(sst, 6, 0.5, (-1.0, 1.0), winds=False),
    )


# ------------------------------------------------------------------------------------------ storms


def _ring() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """East and north offsets (m) of the steering annulus's points and their (area) weights."""
    az = np.radians(np.arange(8) * 45.0)
    x = np.concatenate([r * np.cos(az + i * np.pi / 8) for i, r in enumerate(RING)])
    y = np.concatenate([r * np.sin(az + i * np.pi / 8) for i, r in enumerate(RING)])
    w = np.repeat(RING, 8)
    return x, y, w / w.sum()


RING_X, RING_Y, RING_W = _ring()


def _steering(world: _World, seconds: float, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, ...]:
    """Steering u, v (m s-1): the environment's wind averaged over the 300-700 km annulus around each centre
    (degrees); and the troughs' u, v at the centre."""
    rlat = np.concatenate([lat[:, None] + RING_Y / EARTH_RADIUS / DEG, lat[:, None]], axis=1)
    rlon = np.concatenate(
        [lon[:, None] + RING_X / (EARTH_RADIUS * np.cos(lat[:, None] * DEG)) / DEG, lon[:, None]], axis=1
    )
    _, u, v, tu, tv = _flow(world, seconds, rlat, rlon)
    return u[:, :-1] @ RING_W, v[:, :-1] @ RING_W, tu[:, -1], tv[:, -1]


def _beta(speed: np.ndarray, angle: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beta drift u, v (m s-1): ``speed`` at BETA_LAT times cos(lat) / cos(BETA_LAT), towards ``angle`` degrees
    west of north."""
    s = speed * np.cos(lat * DEG) / math.cos(BETA_LAT * DEG)
    return -s * np.sin(angle * DEG), s * np.cos(angle * DEG)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _boxes(dom: Domain) -> list[tuple[float, float, float, float]]:
    """Genesis boxes (lat_lo, lat_hi, lon_lo, lon_hi) inside the domain: the Atlantic main development region,
    then the east Pacific; when neither fits, the domain less MARGIN."""
    lat_lo, lat_hi = max(dom.lat_min + MARGIN, 5.0), dom.lat_max - MARGIN
    lon_lo, lon_hi = dom.lon_min + MARGIN, dom.lon_max - MARGIN
    boxes = [
        (max(a, lat_lo), min(b, lat_hi), max(c, lon_lo), min(d, lon_hi))
        for a, b, c, d in ((8.0, 20.0, 300.0, 340.0), (10.0, 16.0, 240.0, 265.0))
    ]
    boxes = [b for b in boxes if b[0] < b[1] and b[2] < b[3]]
    return boxes or [(lat_lo, lat_hi, lon_lo, lon_hi)]


def _draw_candidates(rng: np.random.Generator, setup: _Setup, firsts: list[int], n_max: int) -> dict:
    """CANDIDATES genesis states and storm parameters per genesis step in ``firsts``: over the ocean in a
    genesis box (the Atlantic 3 times in 4 when both fit), half of them 6 hours late."""
    boxes, rows = _boxes(setup.domain), []
    for first in firsts:
        for j in range(CANDIDATES):
            box = boxes[0] if len(boxes) == 1 or rng.random() < 0.75 else boxes[1]
            lat = rng.uniform(box[0], box[1], 16)
            lon = rng.uniform(box[2], box[3], 16)
            k = int(np.argmax(_land_at(lat, lon) < 0.01))  # the first over the ocean (rarely none: the first)
            size = rng.random()
            rows.append(
                (
                    first + 2 * (j // (CANDIDATES // 2)),
                    lat[k],
                    lon[k],
                    rng.uniform(300.0, 600.0),
                    rng.uniform(1.0, 2.0) * 86400.0,
                    rng.uniform(0.55, 1.0),
                    34e3 + 26e3 * min(max(size + rng.normal(0.0, 0.2), 0.0), 1.0),
                    rng.uniform(1.0, 2.0),
                    1.5 + 1.5 * size,
                    rng.uniform(20.0, 50.0),
                )
            )
    cand = dict(zip(("first", "lat", "lon", "dp", "tau", "eff", "r0", "b", "beta", "angle"), map(np.array, zip(*rows))))
    xi = rng.standard_normal((len(rows), n_max, 2))
    rho = math.exp(-DT / NOISE[1])
    for i in range(1, n_max):  # AR(1) motion noise, stationary from the start
        xi[:, i] = rho * xi[:, i - 1] + math.sqrt(1 - rho**2) * xi[:, i]
    cand["noise"] = NOISE[0] * xi
    return cand


def _integrate(world: _World, setup: _Setup, cand: dict, n_max: int) -> tuple[dict, np.ndarray]:
    """Hourly states of all candidates (arrays [candidate, hour]) and their lengths (hours)."""
    keys = ("lat", "lon", "cu", "cv", "dp", "rmax", "ax", "ay")
    out = {k: np.zeros((len(cand["lat"]), n_max)) for k in keys}
    g0 = cand["first"].astype(int) * SUB
    length = np.zeros(len(g0), int)
    lat, lon, dp, et = cand["lat"].copy(), cand["lon"].copy(), cand["dp"].copy(), np.zeros(len(g0))
    cap = round(setup.life_days[1] * 86400.0 / DT)
    res = setup.domain.res
    floor = 1.5 * res * DEG * EARTH_RADIUS if res > 0.25 + 1e-9 else 0.0  # coarse grids cannot resolve the core
    decay_et = 1.0 - math.exp(-DT / TAU_ET)
    for g in range(int(g0.min()), int(g0.max()) + n_max):
        idx = np.flatnonzero((g0 <= g) & (length == 0))
        if idx.size == 0:
            continue
        age, t = g - g0[idx], g * DT
        la, lo, d, e = lat[idx], lon[idx], dp[idx], et[idx]
        su, sv, tu, tv = _steering(world, t, la, lo)
        bu, bv = _beta(cand["beta"][idx], cand["angle"][idx], la)
        nu, nv = cand["noise"][idx, age, 0], cand["noise"][idx, age, 1]
        cu, cv = su + bu + nu, sv + bv + nv
        mid_lat = la + cv * 0.5 * DT / EARTH_RADIUS / DEG  # midpoint (RK2) step
        mid_lon = lo + cu * 0.5 * DT / (EARTH_RADIUS * np.cos(la * DEG)) / DEG
        su, sv = _steering(world, t + 0.5 * DT, mid_lat, mid_lon)[:2]
        bu, bv = _beta(cand["beta"][idx], cand["angle"][idx], mid_lat)
        sst, land = _sst(world, t, la, lo), _land_at(la, lo)
        sx, sy = _shear(la, tu, tv)
        shear = np.hypot(sx, sy)
        forced = ~setup.domain.inside(la, lo) | (age >= cap)
        pi = (
            cand["eff"][idx]
            * _potential(sst)
            * (1.0 - e)
            * ~forced
            * np.clip(1.0 - (shear - SHEAR[0]) / (SHEAR[1] - SHEAR[0]), 0.0, 1.0)
        )
        tau = cand["tau"][idx]
        rate = (1.0 - land) / tau + land / TAU_LAND + forced / TAU_FORCED
        target = (1.0 - land) * pi / tau / rate
        rmax = cand["r0"][idx] * (1.5 - 0.6 * np.minimum(d / 7000.0, 1.0)) * (1.0 + 1.5 * e)
        eps = 0.2 * np.minimum(shear / 15.0, 1.0)
        left = np.arctan2(sy, sx) + np.pi / 4  # strongest 45 degrees left of downshear
        for k, value in zip(keys, (la, lo, cu, cv, d, np.maximum(rmax, floor), eps * np.cos(left), eps * np.sin(left))):
            out[k][idx, age] = value
        lat[idx] = la + (sv + bv + nv) * DT / EARTH_RADIUS / DEG
        lon[idx] = lo + (su + bu + nu) * DT / (EARTH_RADIUS * np.cos(mid_lat * DEG)) / DEG
        dp[idx] = target + (d - target) * np.exp(-rate * DT)
        goal = np.maximum(_sigmoid((la - 35.0) / 2.0), _sigmoid((25.0 - sst) / 0.7) * _sigmoid((la - 28.0) / 2.0))
        et[idx] = e + np.maximum(goal - e, 0.0) * decay_et
        end = ((dp[idx] < DP_END) & (age * DT >= 12 * 3600.0)) | (age + 1 >= n_max)
        length[idx[end]] = age[end] + 1
    return out, length


def _tracked(dp: np.ndarray, lat: np.ndarray, lon: np.ndarray, domain: Domain) -> np.ndarray:
    """Local steps (3-hour) of a storm's tracks.csv rows: its first stretch of whole steps with dp >= TRACK_DP
    inside the domain less MARGIN."""
    ok = (dp[::SUB] >= TRACK_DP) & domain.inside(lat[::SUB], lon[::SUB])
    if not ok.any():
        return np.zeros(0, int)
    start = int(np.argmax(ok))
    stop = start + (int(np.argmin(ok[start:])) if not ok[start:].all() else len(ok) - start)
    return np.arange(start, stop)


def _separation(lat: np.ndarray, lon: np.ndarray, first: int, others: list[_Storm]) -> float:
    """Smallest distance (m) between a candidate's 3-hourly centres and the other storms' at their common steps."""
    best = np.inf
    for st in others:
        olat, olon = st.lat[::SUB], st.lon[::SUB]
        lo, hi = max(first, st.first), min(first + len(lat), st.first + len(olat))
        if lo < hi:
            a, b = slice(lo - first, hi - first), slice(lo - st.first, hi - st.first)
            p1, p2 = np.radians(lat[a]), np.radians(olat[b])
            dlon = np.radians(lon[a] - olon[b])
            h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
            best = min(best, float((2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0, 1)))).min()))
    return best


def _draw_storms(rng: np.random.Generator, world: _World, setup: _Setup, storms: int) -> list[_Storm]:
    """Storms in blocks of BLOCK: genesis steps about ``stagger_days`` apart, CANDIDATES integrated per storm,
    the first that is tracked for 3/4 of the shortest lifetime and keeps SEPARATION from the storms before it
    kept (else the one closest to both)."""
    n_max = round((setup.life_days[1] + 2.0) * 86400.0 / DT)
    need = 0.75 * setup.life_days[0] * STEPS_PER_DAY
    drawn: list[_Storm] = []
    for block in range(0, storms, BLOCK):
        firsts = [
            round((i + rng.uniform(0.0, 0.5)) * setup.stagger_days * STEPS_PER_DAY)
            for i in range(block, min(block + BLOCK, storms))
        ]
        cand = _draw_candidates(rng, setup, firsts, n_max)
        out, length = _integrate(world, setup, cand, n_max)
        for s in range(len(firsts)):
            best, score = 0, -1.0
            for c in range(s * CANDIDATES, (s + 1) * CANDIDATES):
                n, first = length[c], int(cand["first"][c])
                lat, lon = out["lat"][c, :n], out["lon"][c, :n]
                run = len(_tracked(out["dp"][c, :n], lat, lon, setup.domain))
                sep = _separation(lat[::SUB], lon[::SUB], first, drawn)
                value = min(run / need, sep / SEPARATION)
                if value >= 1.0 or value > score:
                    best, score = c, value
                if value >= 1.0:
                    break
            n = length[best]
            drawn.append(
                _Storm(
                    f"SYN{block + s + 1:04d}",
                    int(cand["first"][best]),
                    *(out[k][best, :n].copy() for k in ("lat", "lon", "cu", "cv", "dp", "rmax", "ax", "ay")),
                    float(cand["b"][best]),
                    (float(cand["beta"][best]), float(cand["angle"][best])),
                )
            )
    return drawn


def _plan(storms: int, seed: int, small: bool, domain: Domain | None) -> _Plan:
    _check_args(storms, seed)
    setup = _setup(small, domain)
    storm_seq, world_seq = np.random.SeedSequence(seed).spawn(2)
    horizon = (setup.stagger_days * storms + setup.life_days[1] + 3.0) * 86400.0
    world = _draw_world(world_seq, horizon)
    drawn = _draw_storms(np.random.default_rng(storm_seq), world, setup, storms)
    n_steps = max(
        math.ceil((setup.stagger_days * storms + setup.life_days[1]) * STEPS_PER_DAY),
        max(math.ceil(st.first + st.last) + 2 for st in drawn),
    )
    return _Plan(setup, int(seed), n_steps, tuple(drawn), world)


# ------------------------------------------------------------------------------------------ fields


def _vortex(st: _Storm, k: float, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, ...]:
    """PSL anomaly (Pa), u, v (m/s) and distance from the centre (m) of storm ``st`` at its local step ``k``."""
    clat, clon, cu, cv, dp, rmax, ax, ay = st.at(k)
    b = st.b
    dx = EARTH_RADIUS * np.cos(np.radians(0.5 * (lat + clat))) * np.radians((lon - clon + 180.0) % 360.0 - 180.0)
    dy = EARTH_RADIUS * np.radians(lat - clat)
    r = np.maximum(np.hypot(dx, dy), 1e-3 * rmax)
    x = (rmax / r) ** b
    ex = np.exp(-x)
    f = abs(2 * OMEGA * math.sin(math.radians(clat)))
    half = 0.5 * f * r
    vt = np.sqrt(b / RHO * x * dp * ex + half**2) - half
    vm = math.sqrt(b / RHO * dp / math.e + (0.5 * f * rmax) ** 2) - 0.5 * f * rmax
    turn = 1.0 if clat >= 0 else -1.0  # cyclonic: anticlockwise in the NH
    ux, uy = dx / r, dy / r
    ca, sa = math.cos(INFLOW), math.sin(INFLOW)
    va = vt * (1.0 + ax * ux + ay * uy)  # wavenumber-1 asymmetry
    carry = min(dp / TRACK_DP, 1.0) * vt / max(vm, 1e-9)  # the motion, faded in as the storm forms
    u = va * (-ca * turn * uy - sa * ux) + cu * carry
    v = va * (ca * turn * ux - sa * uy) + cv * carry
    return -dp * (1.0 - ex), u, v, r


def _parts(plan: _Plan, step: float, lat: np.ndarray, lon: np.ndarray) -> tuple:
    """Environment PSL, u, v and each active storm's (PSL anomaly, u, v, r)."""
    psl, u, v, _, _ = _flow(plan.world, step * STEP.total_seconds(), lat, lon)
    active = [(st, k) for st in plan.storms if (k := st.local(step)) is not None]
    return psl, u, v, active, [_vortex(st, k, lat, lon) for st, k in active]


def _evaluate(plan: _Plan, step: float, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, ...]:
    """PSL (Pa), U850, V850 (m/s) at ``step`` (3-hour steps, any real number) on points given by
    broadcastable lat, lon (degrees).

    Within about 2 Rmax of each centre the storm's environment (everything but its own vortex) is
    flattened to its value at the centre, so the PSL minimum sits at the centre and equals
    environment - dp there (as a deep vortex's own gradient swamps the environment's); the flattening
    grows with dp up to TRACK_DP, so it comes and goes smoothly with the storm.
    """
    psl, u, v, active, vortices = _parts(plan, step, lat, lon)
    total = psl + sum(d[0] for d in vortices)
    if active:
        clat = np.array([st.at(k)[0] for st, k in active])
        clon = np.array([st.at(k)[1] for st, k in active])
        cpsl, _, _, _, cvort = _parts(plan, step, clat, clon)
        at_centres = np.array([d[0] for d in cvort])  # [storm, centre]: each vortex's anomaly at each centre
        env_c = cpsl + at_centres.sum(axis=0) - np.diag(at_centres)
        flat = 0.0
        for j, ((st, k), (dpsl, _, _, r)) in enumerate(zip(active, vortices)):
            state = st.at(k)
            w = min(state[4] / TRACK_DP, 1.0) * np.exp(-((r / (2.0 * state[5])) ** 4))
            flat = flat + w * (env_c[j] - (total - dpsl))
        total = total + flat
        u = u + sum(d[1] for d in vortices)
        v = v + sum(d[2] for d in vortices)
    shape = np.broadcast_shapes(np.shape(lat), np.shape(lon))
    return tuple(np.broadcast_to(a, shape) for a in (total, u, v))


def _surface(plan: _Plan, step: float) -> np.ndarray:
    """TS (K) on the domain's grid at ``step``: SST over the ocean, land temperature over land."""
    dom = plan.setup.domain
    land, sst = _static(dom)
    seconds = step * STEP.total_seconds()
    sst = sst + _modes(plan.world.sst, seconds, dom.lat[:, None], dom.lon[None, :], winds=False)[0]
    return 273.15 + (1.0 - land) * sst + land * _land_temperature(dom.lat[:, None], dom.lon[None, :], seconds)


def _winds_near(plan: _Plan, step: float, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Wind speed (m s-1) of the full field at points (degrees) [centre, ...] near each of a few centres:
    every vortex exactly, the environment interpolated from a 0.25-degree patch around each centre (its
    scales are 1500 km and more)."""
    res, u, v = 0.25, np.empty(lat.shape), np.empty(lat.shape)
    for c in range(len(lat)):
        lat0, lon0 = math.floor(lat[c].min() / res) * res, math.floor(lon[c].min() / res) * res
        glat = lat0 + res * np.arange(math.ceil((lat[c].max() - lat0) / res) + 2)
        glon = lon0 + res * np.arange(math.ceil((lon[c].max() - lon0) / res) + 2)
        _, gu, gv, _, _ = _flow(plan.world, step * STEP.total_seconds(), glat[:, None], glon[None, :])
        u[c], v[c] = _bilinear(gu, lat0, lon0, res, lat[c], lon[c]), _bilinear(gv, lat0, lon0, res, lat[c], lon[c])
    for st in plan.storms:
        if (k := st.local(step)) is not None:
            _, du, dv, _ = _vortex(st, k, lat, lon)
            u, v = u + du, v + dv
    return np.hypot(u, v)


def _tracks(plan: _Plan) -> pd.DataFrame:
    by_step: dict[int, list] = {}
    for st in plan.storms:
        for k in _tracked(st.dp, st.lat, st.lon, plan.setup.domain):
            by_step.setdefault(st.first + int(k), []).append((st, SUB * int(k)))
    rows = []
    frac = np.geomspace(0.3, 3.0, 40)[None, :, None]
    az = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)[None, None, :]
    for step, items in sorted(by_step.items()):
        clat = np.array([st.lat[i] for st, i in items])
        clon = np.array([st.lon[i] for st, i in items]) % 360.0
        psl = _evaluate(plan, step, clat, clon)[0]
        r = np.array([st.rmax[i] for st, i in items])[:, None, None] * frac
        lat = clat[:, None, None] + np.degrees(r * np.sin(az) / EARTH_RADIUS)
        across = EARTH_RADIUS * np.cos(np.radians(clat[:, None, None]))
        lon = clon[:, None, None] + np.degrees(r * np.cos(az) / across)
        vmax = _winds_near(plan, step, lat, lon).reshape(len(items), -1).max(axis=1)
        rows += [
            (
                st.name,
                str(plan.time(step)),
                round(float(a), 4),
                round(float(b), 4),
                round(float(p), 1),
                round(float(w), 2),
            )
            for (st, _), a, b, p, w in zip(items, clat, clon, psl, vmax)
        ]
    tracks = pd.DataFrame(rows, columns=["storm", "time", "lat", "lon", "psl_min", "vmax"])
    return tracks.sort_values(["time", "storm"], kind="stable", ignore_index=True)


def _attrs(plan: _Plan, small: bool) -> dict:
    dom = plan.setup.domain
    return {
        "title": TITLE,
        "comment": f"{TITLE}: Holland (1980) vortices in gradient-wind balance, steered by an evolving background "
        "flow, deepening towards an SST-based potential intensity, decaying over land; not model output. "
        "tracks.csv beside these files holds the true tracks.",
        "synthetic": "true",
        "source": "climode.data.synthetic (synthetic data, no model run)",
        "Conventions": "CF-1.8",
        "history": f"python -m climode.data.synthetic --storms {len(plan.storms)} --seed {plan.seed}"
        + (" --small" if small else ""),
        "seed": plan.seed,
        "storms": len(plan.storms),
        "small": "true" if small else "false",
        "domain": ", ".join(f"{k}={v:g}" for k, v in asdict(dom).items()),
        "time_step": "3 hours (instantaneous)",
    }


def _frames(plan: _Plan, hours_per_frame: float) -> np.ndarray:
    """The (fractional) 3-hour steps of a corpus written every ``hours_per_frame`` hours."""
    if not 0 < hours_per_frame <= 24 or (24 / hours_per_frame) % 1:
        raise ClimodeError(f"--hours-per-frame {hours_per_frame:g} must divide a day (e.g. 1, 3 or 6)")
    per_step = STEP.total_seconds() / 3600.0 / hours_per_frame
    return np.arange(math.ceil(plan.n_steps * per_step)) / per_step


def _dataset(plan: _Plan, steps, small: bool, hours_per_frame: float = 3.0) -> xr.Dataset:
    """The fields at ``steps`` (3-hour steps, any real numbers; time as cftime noleap objects), each the
    instantaneous value ending an interval of ``hours_per_frame`` hours."""
    dom = plan.setup.domain
    lat, lon = dom.lat, dom.lon
    out = {name: np.empty((len(steps), lat.size, lon.size), np.float32) for name in VARIABLES[:4]}
    for j, step in enumerate(steps):
        psl, u, v = _evaluate(plan, step, lat[:, None], lon[None, :])
        out["PSL"][j], out["U850"][j], out["V850"][j] = psl, u, v
        out["TS"][j] = _surface(plan, step)
    times = [plan.time(s) for s in steps]
    dims = ("time", "lat", "lon")
    wind = {"units": "m s-1"}
    ds = xr.Dataset(
        {
            "U850": (
                dims,
                out["U850"],
                {"long_name": "Zonal wind at 850 mbar", "standard_name": "eastward_wind", **wind},
            ),
            "V850": (
                dims,
                out["V850"],
                {"long_name": "Meridional wind at 850 mbar", "standard_name": "northward_wind", **wind},
            ),
            "PSL": (
                dims,
                out["PSL"],
                {"long_name": "Sea level pressure", "standard_name": "air_pressure_at_mean_sea_level", "units": "Pa"},
            ),
            "TS": (
                dims,
                out["TS"],
                {"long_name": "Surface temperature (radiative)", "standard_name": "surface_temperature", "units": "K"},
            ),
            "LANDFRAC": (
                ("lat", "lon"),
                _static(dom)[0].astype(np.float32),
                {
                    "long_name": "Fraction of sfc area covered by land",
                    "standard_name": "land_area_fraction",
                    "units": "1",
                },
            ),
            "time_bnds": (
                ("time", "nbnd"),
                np.array([[t - timedelta(hours=hours_per_frame), t] for t in times], dtype=object).reshape(-1, 2),
                {"long_name": "time interval endpoints"},
            ),
            "plev": (
                (),
                85000.0,
                {"long_name": "pressure", "standard_name": "air_pressure", "units": "Pa", "positive": "down"},
            ),
        },
        coords={
            "time": ("time", np.array(times, dtype=object), {"long_name": "time", "bounds": "time_bnds"}),
            "lat": ("lat", lat, {"long_name": "latitude", "standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"long_name": "longitude", "standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={**_attrs(plan, small), "time_step": f"{hours_per_frame:g} hours (instantaneous)"},
    )
    return ds.set_coords("plev")


def make_corpus(
    storms: int, seed: int, small: bool = False, *, domain: Domain | None = None, hours_per_frame: float = 3.0
) -> tuple[xr.Dataset, pd.DataFrame]:
    """The whole corpus in memory: fields and true tracks.

    Returns ``(ds, tracks)``: ``ds`` holds U850, V850 (m s-1), PSL (Pa) and TS (K), float32 with dims
    (time, lat, lon), and LANDFRAC (1, float32, dims lat, lon); time as cftime noleap objects every
    ``hours_per_frame`` hours (the storms move continuously; the tracks stay 3-hourly), lat ascending
    (degrees_north), lon 0..360 (degrees_east); ``tracks`` has columns storm, time ("YYYY-MM-DD HH:MM:SS", noleap),
    lat, lon (degrees), psl_min (Pa), vmax (m s-1). ``domain`` overrides the grid (default
    ``FULL``, or ``SMALL`` when ``small``). Memory grows with the number of steps: use
    ``write_corpus`` for big corpora.
    """
    plan = _plan(storms, seed, small, domain)
    return _dataset(plan, _frames(plan, hours_per_frame), small, hours_per_frame), _tracks(plan)


def encode(ds: xr.Dataset) -> tuple[xr.Dataset, dict]:
    """Times as float64 ``days since 2000-01-01 00:00:00`` (noleap), written verbatim; compression settings."""
    ds = ds.reset_coords("plev")  # a data variable that only the winds name in their coordinates attribute
    for name in ("U850", "V850"):
        ds[name] = ds[name].assign_attrs(coordinates="plev")
    num = cftime.date2num(ds["time"].values, TIME_UNITS, CALENDAR)
    bnds = cftime.date2num(ds["time_bnds"].values, TIME_UNITS, CALENDAR)
    cal = {"units": TIME_UNITS, "calendar": CALENDAR}
    ds = ds.assign_coords(time=("time", np.asarray(num, np.float64), {**ds["time"].attrs, **cal}))
    ds["time_bnds"] = (("time", "nbnd"), np.asarray(bnds, np.float64), {**ds["time_bnds"].attrs, **cal})
    nlat, nlon = ds.sizes["lat"], ds.sizes["lon"]
    encoding = {
        name: {
            "dtype": "float32",
            "zlib": True,
            "complevel": 4,
            "shuffle": True,
            "_FillValue": FILL,
            "chunksizes": (1, nlat, nlon) if "time" in ds[name].dims else (nlat, nlon),
        }
        for name in VARIABLES
        if name in ds
    }
    encoding.update({name: {"_FillValue": None} for name in ("time", "time_bnds", "lat", "lon", "plev")})
    return ds, encoding


def _existing(out: Path) -> list[Path]:
    return sorted(out.glob("*.nc")) if out.is_dir() else []


def write_corpus(
    out_dir: str | os.PathLike,
    storms: int,
    seed: int,
    small: bool = False,
    *,
    overwrite: bool = False,
    domain: Domain | None = None,
    hours_per_frame: float = 3.0,
) -> list[Path]:
    """Write the corpus to ``out_dir``: NetCDF files of ``file_days`` days each and ``tracks.csv``.

    Files are named ``cam5_synthetic.h2.YYYY-MM-DD-SSSSS.nc`` after their first time (sorted by name =
    sorted by time) and hold what ``make_corpus`` returns, computed one file at a time. Refuses
    (ClimodeError) a directory that already holds .nc files unless ``overwrite``, which first removes
    the ``cam5_synthetic.h2.*.nc`` files there. Returns the NetCDF paths, then the tracks.csv path.
    """
    plan = _plan(storms, seed, small, domain)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ClimodeError(f"--out {out} exists and is not a directory")
    existing = _existing(out)
    if existing and not overwrite:
        raise ClimodeError(f"--out {out} already holds {len(existing)} .nc file(s); pass --overwrite to replace them")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{PREFIX}*.nc"):
        old.unlink()
    paths = []
    frames = _frames(plan, hours_per_frame)
    per_file = round(plan.setup.file_days * 24 / hours_per_frame)
    for start in range(0, len(frames), per_file):
        steps = frames[start : start + per_file]
        t = plan.time(steps[0])
        path = out / f"{PREFIX}{t.year:04d}-{t.month:02d}-{t.day:02d}-{t.hour * 3600 + t.minute * 60:05d}.nc"
        ds, encoding = encode(_dataset(plan, steps, small, hours_per_frame))
        tmp = path.with_name(f".{path.name}.tmp")
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding, unlimited_dims=["time"])
        os.replace(tmp, path)
        paths.append(path)
    csv = out / "tracks.csv"
    tmp = csv.with_name(".tracks.csv.tmp")
    _tracks(plan).to_csv(tmp, index=False)
    os.replace(tmp, csv)
    return paths + [csv]


@cli
def main(argv: list[str] | None = None) -> None:
    """``python -m climode.data.synthetic --out DIR --storms N --seed S [--small] [--overwrite]``."""
    parser = argparse.ArgumentParser(
        prog="python -m climode.data.synthetic",
        description="Write synthetic CAM5-like tropical cyclones (U850, V850, PSL, "
        "TS, LANDFRAC; 3-hourly, noleap) and their true tracks (tracks.csv).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--storms", type=int, default=8, help="number of storms (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--small", action="store_true", help="coarse 1-degree grid over 0-60N, 200-359E, short-lived storms"
    )
    parser.add_argument(
        "--hours-per-frame",
        type=float,
        default=3.0,
        help="time between frames, hours (default 3, CAM5's; e.g. 1 for leads off the 3-hour grid)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")
    args = parser.parse_args(argv)
    paths = write_corpus(
        args.out, args.storms, args.seed, args.small, overwrite=args.overwrite, hours_per_frame=args.hours_per_frame
    )
    tracks = pd.read_csv(paths[-1])
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {len(paths) - 1} NetCDF files and tracks.csv ({tracks['storm'].nunique()} storms, "
        f"{len(tracks)} track points; {size / 1e6:.1f} MB) to {args.out}"
    )


if __name__ == "__main__":
    sys.exit(main())
