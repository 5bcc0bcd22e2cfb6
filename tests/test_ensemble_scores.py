"""Ensemble verification (``climode.verification.ensemble``): fair CRPS and Brier scores against hand-computed
values, spread-skill ratio and rank histogram of calibrated and under-dispersive synthetic ensembles,
reliability, missing cells, and the ensemble scores of ``climode.verify`` and ``climode evaluate``."""

import json

import cftime
import numpy as np
import pytest
import scores.probability
import xarray as xr
from scipy.stats import chisquare

import climode  # noqa: F401 (the ds.climode accessor)
from climode.cli.evaluate import main as evaluate_main
from climode.io.write import FLAG_ATTRS, write_netcdf
from climode.verification.ensemble import brier, crps, ensemble_scores, rank_histogram, reliability, spread_skill
from climode.verification.metrics import rmse
from climode.verification.tables import format_table
from climode.verification.truth import verify

MEMBERS = 20


def grid(values: np.ndarray, lat=None, lon=None) -> xr.DataArray:
    """``values`` (..., time, lat, lon) as a DataArray; a leading fourth axis is ``realization``."""
    *_, n_time, n_lat, n_lon = values.shape
    coords = {
        "time": np.arange(n_time),
        "lat": np.linspace(-40.0, 40.0, n_lat) if lat is None else lat,
        "lon": np.linspace(0.0, 120.0, n_lon) if lon is None else lon,
    }
    if values.ndim == 4:
        coords["realization"] = np.arange(values.shape[0])
    return xr.DataArray(values, dims=("realization", "time", "lat", "lon")[4 - values.ndim :], coords=coords)


def weighted_mean(values: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """cos(lat)-weighted mean over the last two axes (lat, lon) of a NaN-free array."""
    weight = np.broadcast_to(np.cos(np.deg2rad(lat))[:, None], values.shape[-2:])
    return (values * weight).sum((-2, -1)) / weight.sum()


def share_above(forecast: xr.DataArray, threshold: float) -> xr.DataArray:
    """Exceedance probability: the share of members >= threshold in each cell."""
    return (forecast >= threshold).mean("realization")


@pytest.fixture(scope="module")
def synthetic() -> dict:
    """Truth and ensembles of 20 members at 2 times x 40 x 50 cells: the cell means vary, the truth and
    the calibrated members are drawn from the same Gaussian about them, the under-dispersive members
    with half its spread."""
    rng = np.random.default_rng(30)
    centre = rng.normal(0.0, 5.0, (2, 40, 50))
    truth = grid(centre + rng.normal(size=centre.shape))
    noise = rng.normal(size=(MEMBERS, *centre.shape))
    return {"truth": truth, "calibrated": grid(centre + noise), "narrow": grid(centre + 0.5 * noise)}


# ------------------------------------------------------------------------------------ CRPS


def test_fair_crps_by_hand():
    """Fair CRPS = mean |x_i - y| - sum_ij |x_i - x_j| / (2 m (m - 1)): members (1, 2, 4), truth 3:
    4/3 - 12/12 = 1/3 (the ECDF form would give 2/3); members (0, 0, 3), truth -1: 2 - 12/12 = 1;
    the mean over cells weights them by cos(lat), 1 and 0.5."""
    members = np.array([[1.0, 0.0], [2.0, 0.0], [4.0, 3.0]])  # (member, lat)
    forecast = grid(members[:, None, :, None], lat=[0.0, 60.0], lon=[0.0])
    truth = grid(np.array([3.0, -1.0])[None, :, None], lat=[0.0, 60.0], lon=[0.0])
    np.testing.assert_allclose(crps(forecast, truth).values, [(1 / 3 + 0.5 * 1.0) / 1.5])
    cells = crps(forecast, truth, dims=())
    np.testing.assert_allclose(cells.values.ravel(), [1 / 3, 1.0])
    ds = xr.Dataset({"U850": forecast, "filled": truth.astype(np.int8).assign_attrs(FLAG_ATTRS)})
    both = crps(ds, xr.Dataset({"U850": truth}))
    assert list(both.data_vars) == ["U850"] and both["U850"].values == pytest.approx((1 / 3 + 0.5) / 1.5)


def test_fair_crps_is_the_scores_packages(synthetic):
    """climode computes the fair CRPS from sorted members; the scores package's pairwise form agrees."""
    import scores.probability

    forecast, truth = synthetic["calibrated"], synthetic["truth"]
    theirs = scores.probability.crps_for_ensemble(forecast, truth, "realization", method="fair", preserve_dims="all")
    np.testing.assert_allclose(crps(forecast, truth, dims=()).values, theirs.transpose(*truth.dims).values, rtol=1e-10)


def test_one_member_crps_is_the_mean_absolute_error():
    rng = np.random.default_rng(1)
    truth, forecast = grid(rng.normal(size=(3, 6, 7))), grid(rng.normal(size=(3, 6, 7)))
    expected = weighted_mean(np.abs(forecast.values - truth.values), truth["lat"].values)
    np.testing.assert_allclose(crps(forecast, truth).values, expected)
    one = forecast.expand_dims(realization=[0])
    np.testing.assert_allclose(crps(one, truth).values, expected)


def test_crps_rewards_calibration(synthetic):
    """Fair CRPS of a calibrated ensemble of N(0, 1) errors: E|X - Y| - E|X - X'| / 2 = 2/sqrt(pi) -
    1/sqrt(pi) = 0.564; the under-dispersive ensemble scores worse."""
    calibrated = crps(synthetic["calibrated"], synthetic["truth"]).values
    np.testing.assert_allclose(calibrated, 1 / np.sqrt(np.pi), rtol=0.05)
    assert (crps(synthetic["narrow"], synthetic["truth"]).values > calibrated * 1.05).all()


# ------------------------------------------------------------------------------------ spread, ranks


def test_spread_skill_ratio(synthetic):
    truth = synthetic["truth"]
    calibrated = spread_skill(synthetic["calibrated"], truth)
    assert calibrated["ratio"].dims == ("time",)
    assert ((calibrated["ratio"] > 0.9) & (calibrated["ratio"] < 1.1)).all()
    np.testing.assert_allclose(calibrated["spread"], 1.0, rtol=0.05)  # the members' standard deviation
    mean = synthetic["calibrated"].mean("realization")
    np.testing.assert_allclose(calibrated["skill"], rmse(mean, truth))
    expected = np.sqrt(21 / 20) * calibrated["spread"] / calibrated["skill"]
    np.testing.assert_allclose(calibrated["ratio"], expected)
    narrow = spread_skill(synthetic["narrow"], truth)
    assert (narrow["ratio"] < 0.7).all()
    np.testing.assert_allclose(narrow["spread"], 0.5, rtol=0.05)


def test_rank_histogram_flat_when_calibrated_u_shaped_when_narrow(synthetic):
    truth, cells = synthetic["truth"], 2 * 40 * 50
    flat = rank_histogram(synthetic["calibrated"], truth, pooled=True)
    assert flat.dims == ("rank",) and list(flat["rank"].values) == list(range(MEMBERS + 1))
    assert flat.sum() == cells
    assert chisquare(flat.values).pvalue > 0.01  # not significant at 1 % (p-values over seeds are uniform)
    per_time = rank_histogram(synthetic["calibrated"], truth)
    assert per_time.dims == ("time", "rank") and (per_time.sum("rank") == cells // 2).all()
    np.testing.assert_array_equal(per_time.sum("time"), rank_histogram(synthetic["calibrated"], truth, pooled=True))
    u = rank_histogram(synthetic["narrow"], truth, pooled=True).values
    assert chisquare(u).pvalue < 1e-6
    assert min(u[0], u[-1]) > 3 * u[3:-3].mean()  # the truth outside the members far too often
    assert u[MEMBERS // 2] < u[1] and u[MEMBERS // 2] < u[-2]


def test_rank_histogram_agrees_with_scores(synthetic):
    """Without ties, the counts are scores' rank histogram (relative frequencies) times the cells."""
    if not hasattr(scores.probability, "rank_histogram"):
        pytest.skip("scores < 2.5 has no rank_histogram")
    ours = rank_histogram(synthetic["narrow"], synthetic["truth"], pooled=True)
    theirs = scores.probability.rank_histogram(synthetic["narrow"], synthetic["truth"], "realization")
    np.testing.assert_allclose(ours.values / ours.values.sum(), theirs.values)


def test_rank_histogram_breaks_ties_at_random():
    """A truth equal to all 4 members is given any of the 5 ranks, evenly, from the seed."""
    zeros = grid(np.zeros((4, 1, 100, 100)))
    truth = zeros.isel(realization=0, drop=True)
    counts = rank_histogram(zeros, truth, pooled=True, seed=5)
    assert counts.sum() == 10000 and chisquare(counts.values).pvalue > 0.01
    np.testing.assert_array_equal(counts, rank_histogram(zeros, truth, pooled=True, seed=5))
    assert not np.array_equal(counts, rank_histogram(zeros, truth, pooled=True, seed=6))
    below = rank_histogram(zeros, truth - 1.0, pooled=True)  # no tie: all in rank 0
    assert below.values[0] == 10000


# ------------------------------------------------------------------------------------ Brier, reliability


def test_brier_by_hand():
    rng = np.random.default_rng(2)
    event = grid((rng.random((2, 5, 6)) < 0.3).astype(float))
    assert (brier(event, event) == 0).all()
    assert (brier(event.astype(bool).astype(float), event.astype(bool)) == 0).all()
    np.testing.assert_allclose(brier(xr.full_like(event, 0.5), event), 0.25)
    wrong = 1.0 - event
    np.testing.assert_allclose(brier(wrong, event), 1.0)
    probability = xr.full_like(event, 0.2)
    expected = weighted_mean((0.2 - event.values) ** 2, event["lat"].values)
    np.testing.assert_allclose(brier(probability, event), expected)
    with pytest.raises(ValueError, match="range"):
        brier(probability + 1.0, event)


def test_brier_of_a_perfect_ensemble_is_zero(synthetic):
    truth = synthetic["truth"]
    perfect = truth.expand_dims(realization=range(5)).transpose("realization", ...)
    event = (truth >= 2.0).astype(float)
    assert (brier(share_above(perfect, 2.0), event) == 0).all()
    assert (brier(share_above(synthetic["calibrated"], 2.0), event) > 0.02).all()


def test_reliability_of_calibrated_probabilities():
    """Events drawn with the forecast probability lie on the diagonal; drawn with its square, below it."""
    rng = np.random.default_rng(3)
    probability = grid(rng.random((4, 100, 100)))
    happened = rng.random(probability.shape)
    table = reliability(probability, grid((happened < probability.values).astype(float)), bins=10)
    assert table["observed_frequency"].dims == ("probability",)
    np.testing.assert_allclose(table["probability"], np.arange(0.05, 1.0, 0.1))
    assert table["count"].sum() == 40000
    np.testing.assert_allclose(table["observed_frequency"], table["probability"], atol=0.03)
    np.testing.assert_allclose(table["mean_probability"], table["probability"], atol=0.01)
    overconfident = reliability(probability, grid((happened < probability.values**2).astype(float)))
    assert (table["probability"] - overconfident["observed_frequency"]).sel(probability=0.55) > 0.2
    per_time = reliability(probability, grid((happened < probability.values).astype(float)), dims=("lat", "lon"))
    assert per_time["count"].dims == ("time", "probability") and (per_time["count"].sum("probability") == 1e4).all()


# ------------------------------------------------------------------------------------ missing cells


def test_missing_cells_are_left_out(synthetic):
    """A NaN in the truth (latitude row 3) or in one member (row 7) leaves the cell out of every score:
    the same scores as without those rows, whatever the other members hold there."""
    truth, forecast = synthetic["truth"].copy(), synthetic["calibrated"].copy()
    truth[:, 3, :] = np.nan
    forecast[:, :, 3, :] = 1e6
    forecast[:5, :, 7, :] = -1e6
    forecast[4, :, 7, :] = np.nan
    truth[1, 7, :] = 1e6
    kept = [k for k in range(40) if k not in (3, 7)]
    clean_f, clean_t = synthetic["calibrated"].isel(lat=kept), synthetic["truth"].isel(lat=kept)
    np.testing.assert_allclose(crps(forecast, truth), crps(clean_f, clean_t))
    for name, values in spread_skill(forecast, truth).items():
        np.testing.assert_allclose(values, spread_skill(clean_f, clean_t)[name])
    np.testing.assert_array_equal(rank_histogram(forecast, truth), rank_histogram(clean_f, clean_t))
    probability = share_above(forecast, 1.0).where(forecast.notnull().all("realization"))
    np.testing.assert_allclose(
        brier(probability, (truth >= 1.0).where(truth.notnull())),
        brier(share_above(clean_f, 1.0), clean_t >= 1.0),
    )
    truth[1] = np.nan  # no cell at time 1
    assert np.isnan(crps(forecast, truth).values[1]) and np.isfinite(crps(forecast, truth).values[0])
    assert np.isnan(spread_skill(forecast, truth)["ratio"].values[1])
    assert rank_histogram(forecast, truth).sum("rank").values[1] == 0


# ------------------------------------------------------------------------------------ verify, evaluate


def storm(members: int = 0) -> xr.Dataset:
    """Truth (members=0) or an ensemble: a PSL bowl moving north-west over 5 times, 3-hourly from
    2000-08-01 00:00 (noleap), and winds of 5..45 m s-1; members are the truth plus Gaussian noise."""
    lat, lon = np.arange(0.0, 31.0), np.arange(280.0, 321.0)
    times = [cftime.DatetimeNoLeap(2000, 8, 1, 3 * k) for k in range(5)]
    centres = [(15.3 + 0.4 * k, 300.2 - 0.5 * k) for k in range(5)]
    psl = np.array([100000.0 + 40 * (lat[:, None] - a) ** 2 + 40 * (lon[None, :] - b) ** 2 for a, b in centres])
    u = np.broadcast_to(25.0 + 20.0 * np.sin(lat[:, None] / 4.0) * np.cos(lon[None, :] / 6.0), psl.shape)
    v = np.broadcast_to(5.0 * np.cos(lat[:, None] / 3.0), psl.shape)
    dims, coords = ("time", "lat", "lon"), {"time": times, "lat": lat, "lon": lon}
    ds = xr.Dataset(
        {
            "U850": (dims, u, {"units": "m s-1"}),
            "V850": (dims, v, {"units": "m s-1"}),
            "PSL": (dims, psl, {"units": "Pa"}),
        },
        coords=coords,
    )
    if not members:
        return ds
    rng = np.random.default_rng(4)
    noise = {"U850": 3.0, "V850": 3.0, "PSL": 30.0}
    ensemble = xr.Dataset(
        {
            name: ds[name].expand_dims(realization=np.arange(members))
            + rng.normal(0, noise[name], (members, *psl.shape))
            for name in ds.data_vars
        }
    )
    for name in ds.data_vars:
        ensemble[name].attrs = ds[name].attrs
    ensemble["realization"].attrs["standard_name"] = "realization"
    ensemble = ensemble.isel(time=slice(1, None))
    lead = ("time", np.float32([3, 6, 9, 12]), {"standard_name": "forecast_period", "units": "hours"})
    flags = xr.zeros_like(ensemble["PSL"].isel(realization=0, drop=True), dtype=np.int8).assign_attrs(FLAG_ATTRS)
    return ensemble.assign(filled=flags).assign_coords(lead_time=lead, forecast_reference_time=times[0])


@pytest.mark.slow
def test_verify_an_ensemble():
    """The deterministic scores are the ensemble mean's; the ensemble scores are ``ensemble_scores``'."""
    truth, ensemble = storm(), storm(members=5)
    result = verify(ensemble, truth)
    mean = ensemble.mean("realization", skipna=False, keep_attrs=True)
    as_deterministic = verify(mean, truth)
    assert result["methods"] == as_deterministic["methods"] and "ensemble" not in as_deterministic
    assert ensemble.climode.verify(truth)["ensemble"] == result["ensemble"]  # the accessor's verify
    assert result["storm"] == as_deterministic["storm"]
    members = result["ensemble"]
    assert members["members"] == 5 and set(members) == {"members", "crps", "spread", "skill", "ratio", "brier"}
    assert set(members["crps"]) == {"U850", "V850", "PSL"}
    assert set(members["brier"]) == {"wind_speed>=17", "wind_speed>=33"}
    at = truth.isel(time=slice(1, None))
    np.testing.assert_allclose(members["crps"]["U850"], crps(ensemble["U850"], at["U850"]))
    np.testing.assert_allclose(members["skill"]["PSL"], result["methods"]["vid-ode"]["rmse"]["PSL"], rtol=1e-5)
    # the truth is the members' centre: spread sigma, skill sigma / sqrt(m), ratio sqrt(m + 1) = 2.45
    assert all(2.0 < r < 3.0 for r in members["ratio"]["U850"])
    assert result["units"]["crps"] == {"U850": "m s-1", "V850": "m s-1", "PSL": "Pa"}
    table = ensemble_scores(ensemble, at)
    assert list(table.columns) == ["lead", "variable", "metric", "value"]
    assert list(table["lead"].unique()) == [3.0, 6.0, 9.0, 12.0]
    assert set(table["metric"]) == {"crps", "spread", "skill", "ratio", "brier"}
    brier_17 = table.query("variable == 'wind_speed>=17'")["value"]
    np.testing.assert_allclose(brier_17, members["brier"]["wind_speed>=17"])
    assert (brier_17 > 0).all() and (brier_17 < 0.1).all()
    lines = format_table(result).splitlines()
    assert len(lines) == len(format_table(as_deterministic).splitlines()) + 1 + 2 + 4 + 1
    assert lines[-8].startswith("ensemble of 5 members") and "CRPS" in lines[-7] and "Brier" in lines[-7]
    crps_row = lines[-5].split()
    assert crps_row[0] == "3" and crps_row[1] == f"{members['crps']['U850'][0]:.2f}"
    assert crps_row[3] == f"{members['crps']['PSL'][0] / 100:.2f}"  # hPa


def test_evaluate_an_ensemble_file(tmp_path, capsys):
    """``climode evaluate`` on an ensemble NetCDF file: the CRPS rows in its table, the ensemble in --json."""
    truth, ensemble = storm(), storm(members=5)
    truth.to_netcdf(tmp_path / "truth.nc", encoding={"time": {"units": "hours since 2000-08-01", "calendar": "noleap"}})
    write_netcdf(ensemble, tmp_path / "ensemble.nc", calendar="noleap")
    target = tmp_path / "scores.json"
    args = ["--forecast", str(tmp_path / "ensemble.nc"), "--truth", str(tmp_path / "truth.nc"), "--json", str(target)]
    assert evaluate_main(args) == 0
    out = capsys.readouterr().out
    assert "an ensemble of 5 members" in out.splitlines()[0]
    lines = out.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("ensemble of 5 members"))
    assert lines[at + 1].split()[:2] == ["CRPS", "ratio"] and lines[at + 2].split()[:3] == ["lead", "(h)", "U850"]
    assert [line.split()[0] for line in lines[at + 3 :]] == ["3", "6", "9", "12", "mean"]
    text = target.read_text()
    assert "NaN" not in text
    saved = json.loads(text)
    assert saved["ensemble"]["members"] == 5 and len(saved["ensemble"]["crps"]["PSL"]) == 4
    expected = crps(ensemble["PSL"], truth["PSL"].isel(time=slice(1, None))).values
    np.testing.assert_allclose(saved["ensemble"]["crps"]["PSL"], expected, rtol=1e-4)  # float32 in the file
    assert saved["units"]["ratio"] == "1" and saved["units"]["brier"] == "1"
