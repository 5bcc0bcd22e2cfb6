"""The synthetic world as CAM5-like files: Holland vortices on the environment, the true tracks,
the NetCDF encoding, ``make_corpus`` (in memory) and ``write_corpus`` (files and tracks.csv)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import xarray as xr

from ...errors import ClimodeError
from .environment import _bilinear, _flow, _land_temperature, _modes, _static
from .storms import _plan, _tracked
from .world import (
    CALENDAR,
    EARTH_RADIUS,
    FILL,
    INFLOW,
    OMEGA,
    PREFIX,
    RHO,
    STEP,
    SUB,
    TIME_UNITS,
    TITLE,
    TRACK_DP,
    VARIABLES,
    Domain,
    _Plan,
    _Storm,
)

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
