"""The synthetic storms: candidates drawn in the genesis regions, integrated hourly (steering, beta
drift, noise; intensity towards the potential intensity, land and transition decay), and kept
when tracked long enough and apart from the others."""

from __future__ import annotations

import math

import numpy as np

from .environment import _draw_world, _flow, _land_at, _potential, _shear, _sst
from .world import (
    BETA_LAT,
    BLOCK,
    CANDIDATES,
    DEG,
    DP_END,
    DT,
    EARTH_RADIUS,
    MARGIN,
    NOISE,
    RING,
    SEPARATION,
    SHEAR,
    STEPS_PER_DAY,
    SUB,
    TAU_ET,
    TAU_FORCED,
    TAU_LAND,
    TRACK_DP,
    Domain,
    _check_args,
    _Plan,
    _Setup,
    _setup,
    _Storm,
    _World,
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
