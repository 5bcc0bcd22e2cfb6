"""Ensembles at any time: members of a forecast, their storm tracks, and the probabilities a
forecaster issues (exceedance and strike).

A member is the deterministic forecast ``f(s)`` displaced and rescaled by a perturbation of its own,
fixed for the whole trajectory (docs/design.md, "Ensembles", has the measurement that chose it):

    x_m(s) = W(a(s) u_m, S f(s) + exp(a(s) g xi_m) (f(s) - S f(s)))

``u_m`` is a smooth random steering velocity (2, H, W; km h-1, standard deviation ``speed_kmh``,
correlation length ``length_km``), ``xi_m`` a standard normal intensity factor, ``g`` the intensity
growth per hour, ``S`` a Gaussian smoothing of ``length_km`` (so ``f - S f`` is the storm-scale anomaly,
scaled by a log-normal factor: a member's storm deepens or fills, never turns into a high) and
``W(d, x)`` moves ``x`` by ``d`` km. ``a(s)`` is how far ``s`` lies from what was observed: the lead
after the last input, ``(s - t_i)(t_j - s) / (t_j - t_i)`` between inputs ``t_i < s < t_j`` and 0 at
an input (``ages``). So each member is one continuous trajectory that passes through the inputs, its
spread grows with lead, it is as sharp as the forecast it moves (a displaced core stays a core), and
it depends only on the seed, its index and ``f(s)``: member m at 63 h is the same whether 63 h was
asked alone or with other times, and the first members of 20 are those of 10.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter, zoom

from .conventions import DEFAULT_EVENTS, STRIKE_KM, VARIABLES, conversion
from .errors import ClimodeError
from .geo.grid import grid_step, periodic
from .geo.storms import FOLLOW_KM, follow_storm, great_circle_km
from .model.warp import warp

KM_PER_DEGREE = 111.2
HORIZON_H = 24.0  # hours: where the growth's power pivots
REALIZATION = {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}


@dataclass(frozen=True)
class Perturbation:
    """How members differ (module docstring): steering ``speed_kmh`` (km h-1, standard deviation of
    each velocity component), intensity ``growth_per_h`` (h-1, standard deviation of the log of the
    anomaly's scale per hour of age), both smooth over ``length_km``; both grow with the age ``a``
    as ``24 h (a / 24 h) ** power`` (1: linearly, as a steering error displaces a storm; 0.5: as a
    random walk); ``calibrated_on`` says where they were fitted (``calibrate``)."""

    speed_kmh: float = 6.0
    growth_per_h: float = 0.01
    power: float = 1.0
    length_km: float = 1000.0
    calibrated_on: str = "not calibrated (climode's defaults)"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, card) -> Perturbation:
        """The perturbation a checkpoint's card records (``Card.ensemble``), else the defaults."""
        return cls(**(card.ensemble or {}))


def ages(query: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(K,) hours: how far each query time lies from what was observed (``query`` and ``observed``
    in hours, ``observed`` increasing): the lead after the last input, the bridge ``(s - t_i)(t_j - s)
    / (t_j - t_i)`` between two inputs, 0 at an input."""
    query, observed = np.asarray(query, float), np.asarray(observed, float)
    after = np.clip(np.searchsorted(observed, query, side="right"), 1, len(observed))
    before = observed[after - 1]
    inside = after < len(observed)
    following = observed[np.minimum(after, len(observed) - 1)]
    bridge = (query - before) * (following - query) / np.where(inside, following - before, 1.0)
    return np.maximum(np.where(inside, bridge, query - observed[-1]), 0.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """(H, W) Gaussian noise of unit standard deviation, correlated over ``cells`` cells: drawn on a
    grid about 4 cells per correlation length with a margin of the filter's reach, smoothed there and
    interpolated up (cheap on any grid)."""
    factor = max(cells / 4.0, 1.0)
    sigma = cells / factor
    margin = int(np.ceil(4 * sigma))
    inner = tuple(int(np.ceil(n / factor)) + 2 for n in shape)
    noise = gaussian_filter(rng.standard_normal(tuple(n + 2 * margin for n in inner)), sigma, mode="wrap")
    noise = noise[margin:-margin, margin:-margin] * (2.0 * np.sqrt(np.pi) * sigma)  # unit variance
    up = zoom(noise, factor, order=1, mode="nearest", grid_mode=False)
    return up[: shape[0], : shape[1]]


def _draws(seed: int, member: int, shape: tuple[int, int], cells: float) -> tuple[np.ndarray, float]:
    """Member ``member``'s steering velocity (2, H, W; unit standard deviation) and intensity factor:
    from a generator of (seed, member) alone, so a member does not depend on how many are drawn."""
    rng = np.random.default_rng([int(seed), int(member)])
    xi = float(rng.standard_normal())
    return np.stack([_smooth_noise(rng, shape, cells) for _ in range(2)]), xi


def perturb(
    frames: np.ndarray,
    age_h: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    perturbation: Perturbation,
    members: int | Sequence[int],
    seed: int = 0,
) -> np.ndarray:
    """Members of a forecast on a (lat, lon) grid (module docstring).

    Parameters
    ----------
    frames : (K, C, H, W) the forecast, any units, NaN missing.
    age_h : (K,) hours from what was observed (``ages``).
    lat, lon : (H,), (W,) degrees, increasing or decreasing.
    perturbation : how members differ.
    members : how many, or which (indices).
    seed : the ensemble's seed.

    Returns
    -------
    numpy.ndarray
        (M, K, C, H, W) float32.
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    dy = grid_step(lat) * KM_PER_DEGREE if lat.size > 1 else KM_PER_DEGREE
    dx = (grid_step(lon) if lon.size > 1 else 1.0) * KM_PER_DEGREE * np.maximum(np.cos(np.radians(lat)), 0.05)[:, None]
    return perturb_cells(frames, age_h, dy, dx, perturbation, members, seed, wrap=periodic(lon))


def perturb_cells(
    frames: np.ndarray,
    age: np.ndarray,
    dy: float,
    dx: float | np.ndarray,
    perturbation: Perturbation,
    members: int | Sequence[int],
    seed: int = 0,
    wrap: bool = False,
) -> np.ndarray:
    """``perturb`` on any grid: rows ``dy`` and columns ``dx`` (a number, or (H, 1) per row) apart,
    both in the units of ``perturbation.length_km`` (km on the Earth; pixels for video, where
    ``speed_kmh`` is then pixels per time unit of ``age``). Rows and columns increase northward and
    eastward for a positive ``dy`` / ``dx``; negative spacings flip them. ``wrap``: the columns are
    periodic (a global longitude)."""
    index = range(members) if isinstance(members, int) else members
    K, C, H, W = frames.shape
    dx = np.broadcast_to(np.asarray(dx, float), (H, 1)) if np.ndim(dx) else np.full((H, 1), float(dx))
    step_y, step_x = abs(float(dy)), float(np.abs(dx).max())  # the nominal spacing (a latitude grid's equatorward)
    cells = perturbation.length_km / min(step_y, step_x)
    sigma = (perturbation.length_km / step_y, perturbation.length_km / step_x)
    x = np.nan_to_num(np.asarray(frames, np.float32))
    edges = ("nearest", "nearest", "nearest", "wrap" if wrap else "nearest")
    anomaly = x - gaussian_filter(x, (0, 0, *sigma), mode=edges)
    age = (HORIZON_H * (np.asarray(age, float) / HORIZON_H) ** perturbation.power).astype(np.float32)
    age = age.reshape(K, 1, 1, 1)
    out = np.empty((len(index), K, C, H, W), np.float32)
    for n, m in enumerate(index):
        velocity, xi = _draws(seed, m, (H, W), cells)
        scaled = x + np.expm1(age * perturbation.growth_per_h * xi) * anomaly
        moved = age[:, :, 0, 0, None, None] * perturbation.speed_kmh * velocity[None]  # (K, 2, H, W): east, north
        flow = np.stack([-moved[:, 0] / dx, -moved[:, 1] / dy], 1)  # cells, backward warp
        out[n] = warp(torch.from_numpy(scaled), torch.from_numpy(flow.astype(np.float32))).numpy()
    return np.where(np.isnan(np.asarray(frames))[None], np.nan, out)


def summary(ens: xr.Dataset) -> xr.Dataset:
    """The ensemble mean and spread (standard deviation over members, ddof 1) of every variable with a
    ``realization`` dim, as ``{name}_mean`` and ``{name}_spread`` with CF cell_methods."""
    out = {}
    for name, da in ens.data_vars.items():
        if "realization" not in da.dims:
            continue
        attrs = {k: v for k, v in da.attrs.items() if k in ("standard_name", "long_name", "units")}
        out[f"{name}_mean"] = da.mean("realization").assign_attrs(attrs, cell_methods="realization: mean")
        spread = (
            da.std("realization", ddof=1) if ens.sizes["realization"] > 1 else xr.zeros_like(da.isel(realization=0))
        )
        out[f"{name}_spread"] = spread.assign_attrs(attrs, cell_methods="realization: standard_deviation")
    return xr.Dataset(out).drop_vars("realization", errors="ignore")


# ------------------------------------------------------------------------------------ probabilities


@dataclass(frozen=True)
class Event:
    """``variable op threshold`` in the variable's units (``wind``: the 850 hPa speed, m s-1)."""

    variable: str
    op: str
    threshold: float
    text: str

    @property
    def name(self) -> str:
        """A variable name for its probability, from the event as written: ``wind>=30kt`` ->
        ``probability_wind_ge_30kt``."""
        value = self.text.split(self.op, 1)[1].replace(".", "p").replace("-", "m")
        return f"probability_{self.variable}_{_OPS[self.op][1]}_{re.sub(r'[^0-9A-Za-z]', '', value)}"

    def occurs(self, fields: xr.Dataset) -> xr.DataArray:
        """0/1 where the event holds in ``fields`` (members or the truth), NaN where undefined."""
        value = _quantity(fields, self.variable)
        return _OPS[self.op][0](value, self.threshold).astype(np.float32).where(value.notnull())


_OPS = {">=": (operator.ge, "ge"), ">": (operator.gt, "gt"), "<=": (operator.le, "le"), "<": (operator.lt, "lt")}
_EVENT = re.compile(r"^\s*([A-Za-z_][\w@.]*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _quantity(fields: xr.Dataset, variable: str) -> xr.DataArray:
    if variable == "wind":
        return np.hypot(fields["U850"], fields["V850"])
    return fields[variable]


def _units(variable: str, units: dict[str, str]) -> str:
    if variable == "wind":
        return "m s-1"
    return units.get(variable) or (VARIABLES[variable].units if variable in VARIABLES else "")


def parse_events(spec: str, variables: Sequence[str], units: dict[str, str] | None = None) -> list[Event]:
    """The events of ``--probability`` (``"wind>=17,wind>=33kt,PSL<=980hPa"``): a variable of
    ``variables`` (or ``wind``, the 850 hPa speed, where U850 and V850 are), an operator and a
    threshold with optional units, converted to the variable's (``units``, else climode's canonical
    ones). ClimodeError naming the entry for anything else, before any work."""
    units = units or {}
    known = list(variables) + (["wind"] if {"U850", "V850"} <= set(variables) else [])
    events = []
    for text in [t for t in str(spec).split(",") if t.strip()] or [""]:
        match = _EVENT.match(text)
        if not match:
            raise ClimodeError(
                f"--probability: cannot read {text.strip()!r}; write VARIABLE OP THRESHOLD [UNITS] with OP one of "
                ">=, >, <=, <, e.g. 'wind>=17' or 'PSL<=980hPa'"
            )
        variable, op, value, given = match.groups()
        if variable not in known:
            raise ClimodeError(
                f"--probability: unknown variable {variable!r} in {text.strip()!r}; the forecast has {', '.join(known)}"
            )
        threshold = float(value)
        own = _units(variable, units)
        if given:
            factor = conversion(given, own) if own else None
            if factor is None:
                raise ClimodeError(
                    f"--probability: {text.strip()!r} gives units {given!r}, which are not units of {variable} "
                    f"({own or 'unknown units'})"
                )
            threshold *= factor
        events.append(Event(variable, op, threshold, text.strip()))
    return events


def probability(ens: xr.Dataset, event: Event) -> xr.DataArray:
    """(time, lat, lon) the share of members in which ``event`` holds (units 1)."""
    share = event.occurs(ens).mean("realization")
    units = _units(event.variable, {k: v.attrs.get("units", "") for k, v in ens.data_vars.items()})
    what = "850 hPa wind speed" if event.variable == "wind" else event.variable
    return share.rename(event.name).assign_attrs(
        long_name=f"probability of {what} {event.op} {event.threshold:g} {units}".strip(),
        units="1",
        threshold=event.threshold,
        threshold_units=units,
        comparison=event.op,
    )


def member_tracks(ens: xr.Dataset, start: tuple[float, float], radius_km: float = FOLLOW_KM) -> pd.DataFrame:
    """Each member's storm centre (``follow_storm`` through its PSL from ``start`` (lat, lon), the
    centre at the last input): columns realization, time, lat, lon (degrees), psl_min (Pa)."""
    tables = []
    for m in ens["realization"].values:
        table = follow_storm(ens["PSL"].sel(realization=m), start, radius_km)
        tables.append(table.assign(realization=int(m))[["realization", "time", "lat", "lon", "psl_min"]])
    return pd.concat(tables, ignore_index=True)


def strike_probability(
    tracks: pd.DataFrame, like: xr.DataArray, members: int, radius_km: float = STRIKE_KM
) -> xr.DataArray:
    """(time, lat, lon) the share of ``members`` whose centre (``member_tracks``) passed within
    ``radius_km`` of each cell at or before each time of ``like`` (a (time, lat, lon) field)."""
    lat, lon = like["lat"].values, like["lon"].values
    times = list(like["time"].values)
    hit = np.zeros((members, len(times), lat.size, lon.size), bool)
    for row in tracks.dropna(subset=["lat"]).itertuples():
        k = times.index(row.time)
        near = great_circle_km(lat[:, None], lon[None, :], row.lat, row.lon) <= radius_km
        hit[int(row.realization), k:] |= near
    share = hit.mean(0).astype(np.float32)
    return xr.DataArray(
        share,
        coords={"time": like["time"], "lat": like["lat"], "lon": like["lon"]},
        dims=("time", "lat", "lon"),
        name="strike_probability",
        attrs={
            "long_name": f"probability that the storm centre passes within {radius_km:g} km by this time",
            "units": "1",
            "radius_km": radius_km,
        },
    )


def storm_tracks(ens: xr.Dataset) -> pd.DataFrame | None:
    """``member_tracks`` from the storm centre the forecast recorded at its last input
    (``climode_storm_start``), or None where it has none (no PSL)."""
    start = ens.attrs.get("climode_storm_start")
    if "PSL" not in ens or start is None:
        return None
    return member_tracks(ens, (float(start[0]), float(start[1])))


def products(
    ens: xr.Dataset,
    events: Sequence[Event] | str = DEFAULT_EVENTS,
    strike_km: float | None = STRIKE_KM,
    tracks: pd.DataFrame | None = None,
) -> xr.Dataset:
    """The probabilities of an ensemble forecast (``climode.forecast(..., members=N)``): one
    (time, lat, lon) field per event (``parse_events``' specification or its events) and, where PSL is
    forecast and the forecast says where the storm was at the last input (``climode_storm_start``),
    the strike probability within ``strike_km`` (None: none), from the members' ``tracks`` (default
    ``storm_tracks``)."""
    if isinstance(events, str):
        units = {k: v.attrs.get("units", "") for k, v in ens.data_vars.items()}
        events = parse_events(events, [str(v) for v in ens.data_vars if "realization" in ens[v].dims], units)
    out = {event.name: probability(ens, event) for event in events}
    tracks = storm_tracks(ens) if tracks is None and strike_km is not None else tracks
    if strike_km is not None and tracks is not None:
        out["strike_probability"] = strike_probability(
            tracks, ens["PSL"].isel(realization=0), ens.sizes["realization"], strike_km
        )
    return xr.Dataset(out)


# ------------------------------------------------------------------------------------ calibration

SPEEDS_KMH = (0.0, 3.0, 6.0, 10.0, 15.0)
GROWTHS_PER_H = (0.0, 0.01, 0.02, 0.04, 0.07)
POWERS = (0.5, 1.0)
EXTEND = 4  # times the grid is extended past its edge


def calibrate(
    cases: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    lat: np.ndarray,
    lon: np.ndarray,
    label: str,
    members: int = 10,
    length_km: float = 1000.0,
    seed: int = 0,
    speeds: Sequence[float] = SPEEDS_KMH,
    growths: Sequence[float] = GROWTHS_PER_H,
    powers: Sequence[float] = POWERS,
) -> tuple[Perturbation, pd.DataFrame]:
    """The perturbation of least fair CRPS on ``cases``: a grid search over ``speeds`` (km h-1),
    ``growths`` (h-1) and ``powers``, extended outward (up to EXTEND times) while the best lies on the
    grid's largest speed or growth.

    Parameters
    ----------
    cases : per case ``(forecast, truth, age)``: (K, C, H, W) the deterministic forecast and the truth
        on the (``lat``, ``lon``) grid, and (K,) the queries' ages in hours (``ages``).
    label : where the cases come from, recorded in the result's ``calibrated_on``.
    members, seed : the ensemble drawn for each candidate.

    Returns
    -------
    (Perturbation, pandas.DataFrame)
        the best and every candidate's score: the fair CRPS summed over cases and times over the
        forecast's MAE summed alike, per variable, averaged over variables (below 1: the ensemble beats
        its own central forecast). A ratio of sums, not a mean of ratios, which would favour too little
        spread by weighting the cases with small errors most.
    """
    from .verification.ensemble import crps

    dims = ("lat", "lon")
    as_da = lambda x, *lead: xr.DataArray(x, dims=(*lead, "time", "var", *dims))
    error = sum(np.nansum(np.nanmean(np.abs(f - t), axis=(-2, -1)), 0) for f, t, _ in cases)

    def score(p: Perturbation) -> float:
        total = 0.0
        for n, (forecast, truth, age) in enumerate(cases):
            ens = perturb(forecast, age, lat, lon, p, members, seed + n)
            total = total + np.nansum(crps(as_da(ens, "realization"), as_da(truth), dims).values, 0)
        return float(np.mean(total / np.maximum(error, 1e-12)))

    rows: dict[tuple, float] = {}
    speeds, growths = list(speeds), list(growths)
    for _ in range(EXTEND):
        for speed in speeds:
            for growth in growths:
                for power in powers if speed or growth else powers[-1:]:
                    if (speed, growth, power) not in rows:
                        rows[speed, growth, power] = score(Perturbation(speed, growth, power, length_km))
        speed, growth, _ = min(rows, key=rows.get)
        out_speed, out_growth = 0 < speed == speeds[-1], 0 < growth == growths[-1]
        if not (out_speed or out_growth):
            break
        # the best lies on the grid's edge: search further out, where it may be better still
        speeds += [speeds[-1] * 1.5, speeds[-1] * 2] if out_speed else []
        growths += [growths[-1] * 1.5, growths[-1] * 2] if out_growth else []
    rows = [{"speed_kmh": k[0], "growth_per_h": k[1], "power": k[2], "crps_over_mae": v} for k, v in rows.items()]
    table = pd.DataFrame(rows).sort_values("crps_over_mae", ignore_index=True)
    best = table.iloc[0]
    chosen = Perturbation(
        float(best.speed_kmh),
        float(best.growth_per_h),
        float(best.power),
        length_km,
        f"calibrated on {label}: least fair CRPS ({best.crps_over_mae:.3f} of the forecast's MAE) over "
        f"{len(table)} candidates, {members} members",
    )
    return chosen, table
