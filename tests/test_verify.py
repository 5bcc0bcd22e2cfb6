"""Forecast verification: each metric against hand-computed values, verify() on synthetic storms,
and ``python -m climode.evaluate --forecast F --truth T``."""

import json
import subprocess

import cftime
import numpy as np
import pytest
import xarray as xr
from conftest import assert_user_error, run_module

from climode.cli.evaluate import main as evaluate_main
from climode.data.synthetic import make_corpus
from climode.errors import ClimodeError
from climode.geo.storms import follow_storm, great_circle_km, intensity, storm_centre
from climode.io.write import write_netcdf
from climode.verification.tables import format_table
from climode.verification.truth import lat_weighted_rmse, verify

REF = 8  # index of the forecast reference time in the synthetic corpus (the storm exists from index 4)
LEADS = 8  # forecast times REF + 1 ... REF + LEADS, every 3 hours
TIME_ENCODING = {"units": "hours since 2000-08-01 00:00:00", "calendar": "noleap", "dtype": "float64"}


@pytest.fixture(scope="module")
def corpus():
    ds, tracks = make_corpus(1, 0, small=True)
    # south of 40N: further north the deepest PSL minimum (verify's default start) can be a mid-latitude low
    return ds[["U850", "V850", "PSL"]].sel(lat=slice(None, 40.0)), tracks


def as_forecast(fields: xr.Dataset, reference) -> xr.Dataset:
    """``fields`` in the forecast file convention: lead_time and forecast_reference_time coordinates."""
    lead = [(t - reference).total_seconds() / 3600 for t in fields["time"].values]
    return fields.assign_coords(
        lead_time=("time", np.float32(lead), {"standard_name": "forecast_period", "units": "hours"}),
        forecast_reference_time=reference,
    )


def perfect(truth: xr.Dataset) -> xr.Dataset:
    return as_forecast(truth.isel(time=slice(REF + 1, REF + 1 + LEADS)), truth["time"].values[REF])


def grid(lat0=0.0, lat1=30.0, lon0=280.0, lon1=320.0):
    return np.arange(lat0, lat1 + 0.5), np.arange(lon0, lon1 + 0.5)


# ------------------------------------------------------------------------------------ metrics


def test_lat_weighted_rmse_by_hand():
    lat, lon = [0.0, 60.0], [0.0, 90.0]  # weights cos(lat): 1 and 0.5
    truth = xr.DataArray(
        np.zeros((3, 2, 2)), dims=("time", "lat", "lon"), coords={"time": [0, 1, 2], "lat": lat, "lon": lon}
    )
    errors = np.array(
        [
            [[1.0, 3.0], [2.0, np.nan]],  # the NaN cell does not count
            [[2.0, 2.0], [2.0, 2.0]],
            [[np.nan] * 2] * 2,
        ]
    )
    rmse = lat_weighted_rmse(truth + errors, truth)
    assert rmse.dims == ("time",)
    np.testing.assert_allclose(rmse.values[:2], [np.sqrt((1 + 9 + 0.5 * 4) / 2.5), 2.0])
    assert np.isnan(rmse.values[2])
    truth_nan = truth.where(truth["lat"] < 30)  # missing in the truth counts as missing too
    np.testing.assert_allclose(lat_weighted_rmse(truth + errors, truth_nan).values[:2], [np.sqrt(5), 2.0])
    with pytest.raises(ValueError):
        lat_weighted_rmse(truth.assign_coords(lat=[0.0, 61.0]), truth)


def test_storm_centre_recovers_subgrid_position():
    lat, lon = grid()
    y, x = np.meshgrid(lat - 15.3, lon - 300.7, indexing="ij")
    bowl = 100000.0 + 50 * y**2 + 20 * x * y + 80 * x**2  # quadratic: the 3x3 fit is exact
    np.testing.assert_allclose(storm_centre(bowl, lat, lon), (15.3, 300.7, 100000.0), atol=1e-6)
    bowl[16, 21] = np.nan  # a missing neighbour is left out of the fit
    np.testing.assert_allclose(storm_centre(bowl, lat, lon), (15.3, 300.7, 100000.0), atol=1e-6)
    for lat0, lon0 in [(15.3, 300.4), (15.5, 300.5), (14.8, 299.9)]:
        y, x = np.meshgrid(lat - lat0, lon - lon0, indexing="ij")
        low = 101000.0 - 3000.0 * np.exp(-(x**2 + y**2) / (2 * 2.0**2))
        c_lat, c_lon, c_psl = storm_centre(low, lat, lon)
        assert abs(c_lat - lat0) < 0.1 and abs(c_lon - lon0) < 0.1
        assert 98000.0 <= c_psl <= low.min()  # never above the lowest cell
    assert np.isnan(storm_centre(np.full((31, 41), np.nan), lat, lon)).all()


def test_storm_centre_near_and_edges():
    lat, lon = grid()
    y, x = np.meshgrid(lat, lon, indexing="ij")
    two = (
        101000.0
        - 2000.0 * np.exp(-((y - 10) ** 2 + (x - 290) ** 2) / 8)
        - 5000.0 * np.exp(-((y - 20) ** 2 + (x - 310) ** 2) / 8)
    )
    assert storm_centre(two, lat, lon)[:2] == pytest.approx((20.0, 310.0), abs=0.05)
    assert storm_centre(two, lat, lon, near=(11.0, 291.0), radius_km=500)[:2] == pytest.approx((10.0, 290.0), abs=0.05)
    slope = 100000.0 + 10 * (x - 280) + 30 * (y - 15.2) ** 2  # lowest on the western edge: that cell, no fit
    assert storm_centre(slope, lat, lon, near=(15.0, 282.0), radius_km=300) == pytest.approx((15.0, 280.0, 100001.2))


def test_follow_storm_matches_true_track(corpus):
    ds, tracks = corpus
    first = int(np.flatnonzero([str(t) == tracks["time"][0] for t in ds["time"].values])[0])
    found = follow_storm(ds["PSL"].isel(time=slice(first, None)), (tracks["lat"][0] + 1, tracks["lon"][0] - 1))
    assert list(found.columns) == ["time", "lat", "lon", "psl_min"]
    found = found[found["time"].astype(str).isin(tracks["time"])]
    assert len(found) == len(tracks)
    km = great_circle_km(found["lat"], found["lon"], tracks["lat"], tracks["lon"])
    assert km.max() < 40.0 and km.mean() < 15.0  # a 1-degree grid: 111 km cells


def test_intensity_by_hand():
    lat, lon = grid()
    psl = np.full((2, lat.size, lon.size), 101000.0)
    u, v = np.zeros_like(psl), np.zeros_like(psl)
    psl[:, 10, 20], u[:, 11, 21], v[:, 11, 21] = 99000.0, 3.0, 4.0  # 5 m/s near (10N, 300E)
    psl[:, 20, 30], u[:, 20, 30] = 95000.0, 50.0  # deeper and windier, but 1500 km away
    psl[1, 10, 20] = np.nan  # missing: the next lowest cell in reach counts
    dims = ("time", "lat", "lon")
    ds = xr.Dataset(
        {"PSL": (dims, psl), "U850": (dims, u), "V850": (dims, v)}, coords={"time": [0, 1], "lat": lat, "lon": lon}
    )
    table = intensity(ds, 10.0, 300.0, radius_km=300.0)
    np.testing.assert_allclose(table["psl_min_hpa"], [990.0, 1010.0])
    np.testing.assert_allclose(table["wind_max_ms"], [5.0, 5.0])
    table = intensity(ds[["PSL"]], [np.nan, 20.0], [np.nan, 310.0])
    assert list(table.columns) == ["time", "psl_min_hpa"]
    assert np.isnan(table["psl_min_hpa"][0]) and table["psl_min_hpa"][1] == 950.0


# ------------------------------------------------------------------------------------ verify


def _bowls(centres: list[tuple[float, float]]) -> xr.Dataset:
    """PSL paraboloids (Pa) centred on ``centres``, one per 3-hourly time from 2000-08-01 00:00 (noleap)."""
    lat, lon = grid()
    times = [cftime.DatetimeNoLeap(2000, 8, 1, 3 * k) for k in range(len(centres))]
    psl = [100000.0 + 40 * (lat[:, None] - c[0]) ** 2 + 40 * (lon[None, :] - c[1]) ** 2 for c in centres]
    return xr.Dataset(
        {"PSL": (("time", "lat", "lon"), np.array(psl), {"units": "Pa"})},
        coords={"time": times, "lat": lat, "lon": lon},
    )


def test_track_error_of_known_displacement():
    truth_centres = [(15.3 + 0.4 * k, 300.2 - 0.5 * k) for k in range(5)]
    shifted = [(a + 0.7, b - 1.2) for a, b in truth_centres]
    truth = _bowls(truth_centres)
    forecast = as_forecast(_bowls(truth_centres[:1] + shifted[1:]).isel(time=slice(1, None)), truth["time"].values[0])
    scores = verify(forecast, truth)
    assert scores["lead_times"] == [3.0, 6.0, 9.0, 12.0]
    truth_lat, truth_lon = np.array(truth_centres[1:]).T
    expected = great_circle_km(truth_lat, truth_lon, *np.array(shifted[1:]).T)
    np.testing.assert_allclose(scores["methods"]["vid-ode"]["track_km"], expected, rtol=1e-6)
    still = great_circle_km(truth_lat, truth_lon, *truth_centres[0])
    np.testing.assert_allclose(scores["methods"]["persistence"]["track_km"], still, rtol=1e-6)
    assert scores["storm"]["start"] == pytest.approx(truth_centres[0])  # the deepest minimum at the reference
    assert "wind_max_abs_ms" not in scores["methods"]["vid-ode"]  # no winds in these files
    assert scores["units"]["rmse"] == {"PSL": "Pa"}


def test_verify_perfect_forecast(corpus):
    truth, tracks = corpus
    scores = verify(perfect(truth), truth)
    assert scores["lead_times"] == [3.0 * k for k in range(1, LEADS + 1)]
    model, still = scores["methods"]["vid-ode"], scores["methods"]["persistence"]
    for name in ("U850", "V850", "PSL"):
        assert max(model["rmse"][name]) < 1e-6 and min(still["rmse"][name]) > 0.1
    for name in ("track_km", "psl_min_abs_hpa", "wind_max_abs_ms"):
        assert max(model[name]) < 1e-6 and min(still[name]) > 0.5
    assert still["track_km"][-1] > 300.0  # the storm moves ~55 km per 3 hours
    truth_track = scores["storm"]["tracks"]["truth"]
    assert [row["lead_time"] for row in truth_track] == [0.0] + scores["lead_times"]
    true = tracks.set_index("time").loc[[row["time"] for row in truth_track]]
    km = great_circle_km([r["lat"] for r in truth_track], [r["lon"] for r in truth_track], true["lat"], true["lon"])
    assert km.max() < 40.0
    assert scores["storm"]["tracks"]["vid-ode"] == truth_track[1:]


def test_verify_persistence_forecast_scores_as_persistence(corpus):
    truth, _ = corpus
    forecast = perfect(truth)
    held = xr.zeros_like(forecast) + truth.isel(time=REF, drop=True)
    scores = verify(held, truth)
    assert scores["methods"]["vid-ode"] == scores["methods"]["persistence"]
    assert min(scores["methods"]["persistence"]["track_km"]) > 10.0


def test_verify_interpolates_truth_to_forecast_grid(corpus):
    truth, _ = corpus
    offset = perfect(truth).interp(
        lat=np.arange(5.5, 40.0, 1.0), lon=np.arange(271.0, 330.0, 1.0)
    )  # between truth cells
    scores = verify(offset, truth)  # bilinear interpolation of the truth gives back the forecast
    for name in ("U850", "V850", "PSL"):
        assert max(scores["methods"]["vid-ode"]["rmse"][name]) < 1e-4
    nearest = offset.copy(
        data={
            v: truth[v].isel(time=slice(REF + 1, REF + 1 + LEADS), lat=slice(6, 41), lon=slice(72, 131)).values
            for v in offset.data_vars
        }
    )
    assert min(verify(nearest, truth)["methods"]["vid-ode"]["rmse"]["U850"]) > 0.01


def test_verify_times(corpus):
    truth, _ = corpus
    forecast = perfect(truth)
    with pytest.warns(UserWarning, match="1 forecast time.*not in the truth"):
        scores = verify(forecast, truth.isel(time=slice(0, REF + LEADS)))
    assert scores["lead_times"] == [3.0 * k for k in range(1, LEADS)]
    with pytest.raises(ClimodeError, match="no forecast time is in the truth.*2000-08-02 03:00:00.*2000-08-01 00"):
        verify(forecast, truth.isel(time=slice(0, REF)))
    with pytest.raises(ClimodeError, match="reference time 2000-08-02 00:00:00.*persistence"):
        verify(forecast, truth.isel(time=slice(REF + 1, None)))
    with pytest.raises(ClimodeError, match="no storm to follow"):
        verify(forecast, truth, start=(-60.0, 10.0))
    with pytest.raises(ClimodeError, match="lacks V850"):
        verify(forecast, truth[["U850", "PSL"]])


def test_format_table(corpus):
    truth, _ = corpus
    scores = verify(perfect(truth), truth)
    lines = format_table(scores).splitlines()
    assert len(lines) == 1 + 2 + LEADS + 1  # legend, two header lines, one row per lead time, mean
    assert "PSL hPa" in lines[0] and lines[2].split()[:3] == ["lead", "(h)", "vid-ode"]
    first = lines[3].split()
    assert first[0] == "3" and first[6] == f"{scores['methods']['persistence']['rmse']['PSL'][0] / 100:.2f}"
    assert first[8] == f"{scores['methods']['persistence']['track_km'][0]:.2f}"
    assert lines[-1].split()[0] == "mean"


# ------------------------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def files(corpus, tmp_path_factory):
    """truth.nc (all 48 times), forecast.nc (U850 off by 1 m/s), and truths lacking V850 or the reference time."""
    truth, _ = corpus
    folder = tmp_path_factory.mktemp("verify")
    paths = {name: folder / f"{name}.nc" for name in ("truth", "forecast", "no_v", "late")}
    for name, ds in (
        ("truth", truth),
        ("no_v", truth[["U850", "PSL"]]),
        ("late", truth.isel(time=slice(REF + 1, None))),
    ):
        ds.to_netcdf(paths[name], encoding={"time": TIME_ENCODING})
    forecast = perfect(truth)
    write_netcdf(forecast.assign(U850=forecast["U850"] + 1.0), paths["forecast"], calendar="noleap")
    return paths


def in_process(capsys, *args) -> subprocess.CompletedProcess:
    """``python -m climode.evaluate args`` run in this process (saves the interpreter and torch start-up)."""
    code = evaluate_main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@pytest.mark.slow
def test_cli_end_to_end(files, tmp_path):
    target = tmp_path / "scores.json"
    result = run_module(
        "climode.evaluate",
        "--forecast",
        files["forecast"],
        "--truth",
        files["truth"],
        "--json",
        target,
        "--storm",
        "17.5,-45",
    )
    assert result.returncode == 0, result.stderr
    assert f"forecast {files['forecast']} vs truth {files['truth']}" in result.stdout
    assert "17.50N 315.00E (--storm)" in result.stdout
    assert len([line for line in result.stdout.splitlines() if line.split()[:1] in (["3"], ["24"], ["mean"])]) == 3
    text = target.read_text()
    assert "NaN" not in text
    scores = json.loads(text)
    assert set(scores) == {"reference_time", "times", "lead_times", "units", "methods", "storm", "files"}
    assert scores["reference_time"] == "2000-08-02 00:00:00" and scores["times"][0] == "2000-08-02 03:00:00"
    assert scores["lead_times"] == [3.0 * k for k in range(1, LEADS + 1)]
    assert scores["units"]["rmse"] == {"U850": "m s-1", "V850": "m s-1", "PSL": "Pa"}
    assert scores["units"]["track_km"] == "km" and scores["units"]["psl_min_abs_hpa"] == "hPa"
    assert set(scores["methods"]) == {"vid-ode", "persistence"}
    for method in scores["methods"].values():
        assert set(method) == {"rmse", "track_km", "psl_min_abs_hpa", "wind_max_abs_ms"}
        assert all(len(values) == LEADS for values in [*method["rmse"].values(), method["track_km"]])
    model = scores["methods"]["vid-ode"]
    np.testing.assert_allclose(model["rmse"]["U850"], 1.0, atol=1e-4)  # float32 in the file
    assert max(model["rmse"]["PSL"] + model["rmse"]["V850"] + model["track_km"]) < 1e-2
    assert scores["storm"]["start"] == [17.5, 315.0]
    assert set(scores["storm"]["tracks"]) == {"truth", "vid-ode"}
    assert set(scores["storm"]["tracks"]["truth"][0]) == {
        "time",
        "lead_time",
        "lat",
        "lon",
        "psl_min_hpa",
        "wind_max_ms",
    }
    assert scores["files"] == {"forecast": str(files["forecast"]), "truth": str(files["truth"])}


@pytest.mark.slow
def test_cli_truth_lacking_a_variable(files, tmp_path):
    target = tmp_path / "scores.json"
    result = run_module("climode.evaluate", "--forecast", files["forecast"], "--truth", files["no_v"], "--json", target)
    assert_user_error(result, "V850", "not found", str(files["no_v"]))
    assert not target.exists()


def test_cli_user_errors(files, tmp_path, capsys):
    forecast, truth, target = files["forecast"], files["truth"], tmp_path / "scores.json"
    cases = [
        ((), ("exactly one of --checkpoint", "--forecast")),
        (("--checkpoint", "m.safetensors", "--forecast", forecast), ("exactly one of",)),
        (("--forecast", forecast), ("--forecast needs --truth",)),
        (("--checkpoint", "m.safetensors", "--truth", truth), ("--truth only go(es) with --forecast",)),
        (("--forecast", tmp_path / "none.nc", "--truth", truth), ("forecast file", "none.nc", "not found")),
        (("--forecast", forecast, "--truth", tmp_path / "none.nc"), ("none.nc", "not found")),
        (("--forecast", forecast, "--truth", files["late"]), ("reference time 2000-08-02 00:00:00", "persistence")),
        (("--forecast", forecast, "--truth", truth, "--storm", "north"), ("--storm", "LAT,LON")),
        (("--forecast", forecast, "--truth", truth, "--json", tmp_path / "no" / "dir.json"), ("cannot write",)),
        (("--forecast", forecast, "--truth", truth, "--json", tmp_path), ("cannot write",)),
    ]
    for args, fragments in cases:
        result = in_process(capsys, *args, "--json", target) if "--json" not in args else in_process(capsys, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert_user_error(result, *fragments)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # no partial JSON, no temporary file left
