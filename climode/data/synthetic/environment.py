"""The synthetic world's environment: the streamfunction (zonal mean, semi-permanent highs, travelling
troughs and ridges, easterly waves, noise) giving the 850 hPa winds and PSL, SST and its potential
intensity, the land, and the random draw of one world."""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from .world import (
    DEG,
    EARTH_RADIUS,
    F_FLOOR,
    HIGHS,
    LAND_FILE,
    OMEGA,
    P_BASE,
    PI_MAX,
    RHO,
    SST_PI,
    ZONAL,
    Domain,
    _High,
    _Modes,
    _World,
)

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
    p = [np.asarray(poly["lonlat"], float) for poly in json.loads(LAND_FILE.read_text())["polygons"]]
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
