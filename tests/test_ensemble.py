"""Ensembles (climode.ensemble, climode.forecast(..., members=N)): members are continuous, query
invariant and reproducible, sharp, and calibrated where the spread is known."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import climode
from climode import ensemble
from climode.data.synthetic import make_corpus
from climode.errors import ClimodeError
from climode.geo.storms import great_circle_km, storm_centre
from climode.verification.metrics import sharpness

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def storm():
    """A synthetic storm on the 1-degree small domain: five irregular inputs."""
    ds, _ = make_corpus(1, 3, small=True)
    hours = np.arange(ds.sizes["time"]) * 3.0
    picks = [int(np.flatnonzero(hours == h)[0]) for h in (24, 33, 45, 66, 81)]
    return ds[["U850", "V850", "PSL"]].isel(time=picks).load()


def test_ages_are_leads_after_the_inputs_a_bridge_between_them_and_zero_at_them():
    observed = np.array([0.0, 9.0, 21.0])
    got = ensemble.ages(np.array([0.0, 3.0, 9.0, 15.0, 21.0, 24.0, 33.0]), observed)
    np.testing.assert_allclose(got, [0, 3 * 6 / 9, 0, 6 * 6 / 12, 0, 3, 12])


@pytest.mark.slow
def test_members_are_query_invariant_reproducible_and_nested(storm):
    alone = climode.forecast(storm, [60.5], members=3, seed=7)
    many = climode.forecast(storm, [40.0, 60.5, 64.5, 70.0], members=5, seed=7)
    assert alone.sizes["realization"] == 3 and many["realization"].attrs["standard_name"] == "realization"
    for v in ("U850", "V850", "PSL"):
        # member m at 60.5 h is the same asked alone or with other times, and the first 3 of 5 are those of 3
        np.testing.assert_array_equal(alone[v].values[:, 0], many[v].sel(time=alone.time).values[:3, 0])
    again = climode.forecast(storm, [60.5], members=3, seed=7)
    np.testing.assert_array_equal(again.PSL.values, alone.PSL.values)
    other = climode.forecast(storm, [60.5], members=3, seed=8)
    assert np.abs(other.PSL.values - alone.PSL.values).max() > 10.0  # Pa: another seed, other members


@pytest.mark.slow
def test_members_pass_through_the_inputs_and_spread_with_lead(storm):
    det = climode.forecast(storm, [42.0, 60.0, 63.0, 75.0])  # inputs at 0, 9, 21, 42 and 57 h
    ens = climode.forecast(storm, [42.0, 60.0, 63.0, 75.0], members=6, seed=1)
    at_input = ens.PSL.sel(time=det.time[0]).values
    np.testing.assert_allclose(at_input, np.broadcast_to(det.PSL.values[0], at_input.shape), atol=0.5)
    spread = ens.PSL.std("realization").mean(("lat", "lon")).values
    assert spread[0] < 1.0 and 0 < spread[1] < spread[2] < spread[3]


@pytest.mark.slow
def test_members_are_as_sharp_as_the_forecast_they_move(storm):
    det = climode.forecast(storm, [66.0, 72.0, 81.0 + 12])
    ens = climode.forecast(storm, [66.0, 72.0, 81.0 + 12], members=6, seed=2)
    speed = lambda ds: np.hypot(ds.U850, ds.V850)
    ratio = sharpness(speed(ens), speed(det).broadcast_like(speed(ens))).values
    assert ratio.min() > 0.93, ratio  # a displaced core stays a core; the mean of members would blur it
    mean = ens.mean("realization")
    assert float(sharpness(speed(mean), speed(det)).values[-1]) < ratio[:, -1].mean()


def test_refusals_name_the_problem(storm):
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ClimodeError, match="--members"):
            climode.forecast(storm, [60.0], members=bad)
    variables = ["U850", "V850", "PSL"]
    with pytest.raises(ClimodeError, match="unknown variable 'rain'"):
        ensemble.parse_events("wind>=17,rain>=3", variables)
    with pytest.raises(ClimodeError, match="cannot read"):
        ensemble.parse_events("wind=>17", variables)
    with pytest.raises(ClimodeError, match="not units of PSL"):
        ensemble.parse_events("PSL<=980K", variables)


def test_thresholds_are_read_with_units():
    events = ensemble.parse_events("wind>=34kt, PSL<=980hPa, wind>17", ["U850", "V850", "PSL"])
    assert [e.variable for e in events] == ["wind", "PSL", "wind"]
    np.testing.assert_allclose([e.threshold for e in events], [34 * 1852 / 3600, 98000.0, 17.0])
    assert [e.op for e in events] == [">=", "<=", ">"]
    assert events[0].name == "probability_wind_ge_34kt"


@pytest.mark.slow
def test_probabilities_count_members(storm):
    ens = climode.forecast(storm, [66.0, 75.0], members=8, seed=3)
    out = ensemble.products(ens, "wind>=17,PSL<=1000hPa")
    wind = np.hypot(ens.U850, ens.V850)
    np.testing.assert_allclose(out["probability_wind_ge_17"].values, (wind >= 17).mean("realization").values)
    np.testing.assert_allclose(out["probability_PSL_le_1000hPa"].values, (ens.PSL <= 1e5).mean("realization").values)
    strike = out["strike_probability"]
    assert strike.attrs["units"] == "1" and float(strike.max()) >= 0.5  # the members' centres start together
    assert (strike.values[1] >= strike.values[0]).all()  # within the horizon: it never decreases
    tracks = ensemble.storm_tracks(ens)
    first = tracks[tracks.time == ens.time.values[0]]
    cell = strike.sel(lat=first.lat.iloc[0], lon=first.lon.iloc[0], method="nearest")
    near = great_circle_km(first.lat.values, first.lon.values, float(cell.lat), float(cell.lon)) <= 120
    assert float(cell.isel(time=0)) == pytest.approx(near.mean())


def test_strike_probability_is_the_share_of_members_within_the_radius():
    lat, lon = np.arange(0.0, 30.0), np.arange(280.0, 320.0)
    like = xr.DataArray(
        np.zeros((2, lat.size, lon.size)), dims=("time", "lat", "lon"), coords={"time": [0, 1], "lat": lat, "lon": lon}
    )
    import pandas as pd

    tracks = pd.DataFrame(
        {
            "realization": [0, 0, 1, 1],
            "time": [0, 1, 0, 1],
            "lat": [10.0, 12.0, 10.0, 20.0],
            "lon": [300.0, 300, 300, 300],
        }
    )
    got = ensemble.strike_probability(tracks, like, members=4, radius_km=120)
    near = great_circle_km(lat[:, None], lon[None, :], 20.0, 300.0) <= 120
    assert float(got.sel(lat=20, lon=300, time=1)) == 0.25 and float(got.sel(lat=20, lon=300, time=0)) == 0.0
    assert float(got.sel(lat=10, lon=300, time=1)) == 0.5  # reached at the first time, kept
    assert np.all(got.values[1][near] >= 0.25)


# ------------------------------------------------------------------------------- known spread


def _moved(low, c0, velocity, leads) -> np.ndarray:
    """(K, 1, H, W) the low starting at ``c0`` (lat, lon) moved by ``velocity`` (km h-1 east, north)."""
    kx = 111.2 * np.cos(np.radians(c0[0]))
    return np.stack([low(c0[0] + velocity[1] * h / 111.2, c0[1] + velocity[0] * h / kx) for h in leads])[
        :, None
    ].astype(np.float32)


def _world(cases: int, sigma_kmh: float, seed: int):
    """Lows steered by a uniform velocity of known mean and random part (standard deviation
    ``sigma_kmh`` per component): the forecast moves each with the mean, the truth with its own."""
    rng = np.random.default_rng(seed)
    lat, lon = np.arange(0.0, 41.0), np.arange(260.0, 341.0)
    leads = np.array([3.0, 6.0, 12.0, 18.0, 24.0])
    ky, kx = 111.2, 111.2 * np.cos(np.radians(lat))[:, None]

    def low(c_lat, c_lon):
        d2 = ((lat[:, None] - c_lat) * ky) ** 2 + ((lon[None, :] - c_lon) * kx) ** 2
        return 101000.0 - 3000.0 * np.exp(-d2 / (2 * 250.0**2))

    out = []
    for _ in range(cases):
        c0 = (rng.uniform(15, 25), rng.uniform(290, 310))
        mean, noise = np.array([-15.0, 8.0]), rng.normal(0, sigma_kmh, 2)  # km h-1 east, north
        out.append((_moved(low, c0, mean, leads), _moved(low, c0, mean + noise, leads), leads))
    return out, lat, lon


@pytest.mark.slow
def test_an_ensemble_with_the_known_steering_spread_is_calibrated():
    sigma = 8.0
    cases, lat, lon = _world(80, sigma, seed=0)
    p = ensemble.Perturbation(speed_kmh=sigma, growth_per_h=0.0, power=1.0, length_km=20000.0)
    spread2, error2, inside = np.zeros(5), np.zeros(5), []
    for n, (fc, truth, leads) in enumerate(cases):
        members = ensemble.perturb(fc, leads, lat, lon, p, 20, seed=n)[:, :, 0]
        spread2 += members.var(0, ddof=1).mean((-2, -1))
        error2 += ((members.mean(0) - truth[:, 0]) ** 2).mean((-2, -1))
        centres = np.array([[storm_centre(f, lat, lon)[:2] for f in m] for m in members])  # (M, K, 2)
        centre = centres.mean(0)
        radius = np.quantile(great_circle_km(centres[..., 0], centres[..., 1], centre[:, 0], centre[:, 1]), 0.9, axis=0)
        observed = np.array([storm_centre(f, lat, lon)[:2] for f in truth[:, 0]])
        inside.append(great_circle_km(observed[:, 0], observed[:, 1], centre[:, 0], centre[:, 1]) <= radius)
    ratio = np.sqrt(21 / 20) * np.sqrt(spread2 / error2)
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
    coverage = np.mean(inside)
    assert 0.82 < coverage < 0.97, coverage
    # too little spread is seen as such
    narrow = ensemble.Perturbation(speed_kmh=sigma / 3, growth_per_h=0.0, power=1.0, length_km=20000.0)
    fc, truth, leads = cases[0]
    under = np.mean(
        [
            ensemble.perturb(c[0], c[2], lat, lon, narrow, 20, seed=n)[:, -1, 0].var(0).mean()
            for n, c in enumerate(cases[:30])
        ]
    )
    assert np.sqrt(under) < 0.5 * np.sqrt(spread2[-1] / len(cases))


@pytest.mark.slow
def test_calibration_finds_the_known_steering_spread():
    cases, lat, lon = _world(16, 8.0, seed=1)
    chosen, table = ensemble.calibrate(
        cases,
        lat,
        lon,
        "a world of known spread",
        members=10,
        length_km=20000.0,
        speeds=(2.0, 8.0, 20.0),
        growths=(0.0, 0.02),
        powers=(1.0,),
    )
    assert chosen.speed_kmh == 8.0 and chosen.growth_per_h == 0.0, table
    assert "a world of known spread" in chosen.calibrated_on
    assert table.crps_over_mae.iloc[0] < 1.0  # the calibrated ensemble beats its own central forecast
    # a grid that stops short of the spread is searched further out
    far, table = ensemble.calibrate(
        cases, lat, lon, "", members=10, length_km=20000.0, speeds=(1.0, 2.0), growths=(0.0,), powers=(1.0,)
    )
    assert far.speed_kmh > 2.0 and {3.0, 4.0} <= set(table.speed_kmh), table
