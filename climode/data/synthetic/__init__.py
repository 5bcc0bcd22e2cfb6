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

from ..._lazy import lazy_getattr

_HOMES = {  # public name -> the module that defines it; imported on first use (the command's --help is light)
    **dict.fromkeys(("encode", "make_corpus", "write_corpus"), ".files"),
    **dict.fromkeys(("FULL", "PREFIX", "SMALL", "STEP", "SUB", "TITLE", "VARIABLES", "Domain"), ".world"),
}


__getattr__ = lazy_getattr(globals(), _HOMES)


__all__ = sorted(_HOMES)
