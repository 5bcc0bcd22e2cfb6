"""Field and storm metrics of climode.verification.metrics, each against values computed by hand on tiny arrays."""

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from climode.geo import storms
from climode.geo.storms import KM_PER_DEG, great_circle_km
from climode.verification import truth as verify_truth
from climode.verification.intervals import bootstrap, separated
from climode.verification.metrics import (
    csi,
    fss,
    intensity_errors,
    psl_deficit,
    rmse,
    sharpness,
    track_errors,
    wind_speed,
)

NAN = np.nan


def field(values, lat=None, lon=None) -> xr.DataArray:
    """(lat, lon) or (time, lat, lon) values as a DataArray on a 1-degree grid."""
    values = np.asarray(values, float)
    ny, nx = values.shape[-2:]
    coords = {
        "lat": np.arange(ny, dtype=float) if lat is None else lat,
        "lon": np.arange(nx, dtype=float) if lon is None else lon,
    }
    dims = ("lat", "lon")
    if values.ndim == 3:
        coords["time"], dims = np.arange(values.shape[0]), ("time", *dims)
    return xr.DataArray(values, dims=dims, coords=coords)


def box_blur(values: np.ndarray) -> np.ndarray:
    """3x3 mean over the interior cells, edges kept."""
    out = values.copy()
    out[1:-1, 1:-1] = (
        sum(
            values[1 + di : values.shape[0] - 1 + di, 1 + dj : values.shape[1] - 1 + dj]
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
        )
        / 9
    )
    return out


# ------------------------------------------------------------------------------------ fields


def test_rmse_is_verify_lat_weighted_rmse_and_reduces_given_dims():
    assert verify_truth.lat_weighted_rmse is rmse
    truth = field(np.zeros((2, 3)), lat=[0.0, 60.0])
    error = np.array([[1.0, 3.0, NAN], [2.0, 2.0, 4.0]])  # weights 1 (lat 0) and 0.5 (lat 60)
    np.testing.assert_allclose(float(rmse(truth + error, truth)), np.sqrt((1 + 9 + 0.5 * (4 + 4 + 16)) / 3.5))
    per_lat = rmse(truth + error, truth, dims=("lon",))
    assert per_lat.dims == ("lat",)
    np.testing.assert_allclose(per_lat.values, [np.sqrt(5), np.sqrt(8)])


def test_csi_counts_hits_misses_false_alarms():
    truth = field([[[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, NAN, 0]], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    forecast = field(
        [
            [[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]],  # 2 hits, 1 miss, 1 false alarm; NaN cell ignored
            [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
        ]
    )  # no event anywhere
    score = csi(forecast * 20, truth * 20, 17.0)
    assert score.dims == ("time",)
    assert score.values[0] == pytest.approx(2 / 4)
    assert np.isnan(score.values[1])
    assert float(csi(forecast.isel(time=0), forecast.isel(time=0), 0.5)) == 1.0
    below = csi(-forecast.isel(time=0), -truth.isel(time=0), -0.5, below=True)  # the same events, as lows
    assert float(below) == pytest.approx(2 / 4)
    # FSS with window 1: 1 - (misses + false alarms) / (forecast events + observed events) = 1 - 2 / (3 + 3)
    assert float(fss(forecast.isel(time=0), truth.isel(time=0), 0.5, 1)) == pytest.approx(2 / 3)
    assert float(csi(forecast.isel(time=0), truth.isel(time=0), 0.5, dims=("lon",)).sel(lat=0)) == pytest.approx(1 / 3)


def test_fss_by_hand():
    grid = np.zeros((5, 6))
    truth, forecast = grid.copy(), grid.copy()
    truth[2, 2], forecast[2, 3] = 1.0, 1.0  # one event, displaced by one cell
    assert float(fss(field(truth), field(truth), 0.5, 3)) == 1.0
    assert float(fss(field(forecast), field(truth), 0.5, 1)) == 0.0
    # window 3: each fraction field is 1/9 on 9 cells, 6 of them shared -> 1 - (6/81) / (18/81)
    assert float(fss(field(forecast), field(truth), 0.5, 3)) == pytest.approx(2 / 3)
    wide_truth, wide_forecast = np.pad(truth, 3), np.pad(forecast, 3)  # the 5x5 boxes inside the grid
    assert float(fss(field(wide_forecast), field(wide_truth), 0.5, 5)) > 2 / 3  # larger windows forgive more
    assert np.isnan(float(fss(field(grid), field(grid), 0.5, 3)))
    with pytest.raises(ValueError, match="odd"):
        fss(field(forecast), field(truth), 0.5, 4)


def test_fss_counts_only_cells_on_the_grid_and_finite():
    truth, forecast = np.zeros((3, 4)), np.zeros((3, 4))
    truth[0, 0], forecast[0, 1] = 1.0, 1.0
    # valid cells in the 3x3 box: rows 2, 3, 2 times columns 2, 3, 3, 2
    po = {(0, 0): 1 / 4, (0, 1): 1 / 6, (1, 0): 1 / 6, (1, 1): 1 / 9}
    pf = {(0, 0): 1 / 4, (0, 1): 1 / 6, (0, 2): 1 / 6, (1, 0): 1 / 6, (1, 1): 1 / 9, (1, 2): 1 / 9}

    def by_hand(pf: dict, po: dict) -> float:
        cells = set(pf) | set(po)
        error = sum((pf.get(c, 0) - po.get(c, 0)) ** 2 for c in cells)
        return 1 - error / (sum(p**2 for p in pf.values()) + sum(p**2 for p in po.values()))

    assert float(fss(field(forecast), field(truth), 0.5, 3)) == pytest.approx(by_hand(pf, po))
    truth[2, 3] = NAN  # missing: out of the box of (1, 2), which then holds 8 valid cells
    assert float(fss(field(forecast), field(truth), 0.5, 3)) == pytest.approx(by_hand({**pf, (1, 2): 1 / 8}, po))
    forecast[2, 3] = 1.0  # an event where the truth is missing does not count
    assert float(fss(field(forecast), field(truth), 0.5, 3)) == pytest.approx(by_hand({**pf, (1, 2): 1 / 8}, po))


def test_fss_wraps_longitude_when_asked():
    truth, forecast = np.zeros((5, 8)), np.zeros((5, 8))
    truth[2, 0], forecast[2, 7] = 1.0, 1.0  # neighbours across the seam of a global grid
    lon = np.arange(0.0, 360.0, 45.0)
    assert float(fss(field(forecast, lon=lon), field(truth, lon=lon), 0.5, 3)) == 0.0
    wrapped = float(fss(field(forecast, lon=lon), field(truth, lon=lon), 0.5, 3, wrap_lon=True))
    rolled = fss(field(np.roll(forecast, 1, 1), lon=lon), field(np.roll(truth, 1, 1), lon=lon), 0.5, 3, wrap_lon=True)
    assert wrapped == pytest.approx(float(rolled))  # a global grid has no seam
    assert wrapped == pytest.approx(2 / 3)


def test_fss_and_sharpness_penalise_blur():
    values = np.random.default_rng(0).normal(size=(12, 14))
    blurred = box_blur(values)
    assert float(fss(field(blurred), field(values), 1.0, 3)) < 1.0
    assert float(sharpness(field(values), field(values))) == 1.0
    assert float(sharpness(field(blurred), field(values))) < 0.7
    noisy = values + np.random.default_rng(1).normal(size=values.shape)
    assert float(sharpness(field(noisy), field(values))) > 1.0


def test_sharpness_by_hand():
    truth = np.tile(np.arange(4.0), (3, 1))  # x = column: centred gradient 1 at the interior cells (1, 1), (1, 2)
    forecast = truth.copy()
    forecast[0, 1] = 3.0  # gradient at (1, 1) becomes (d/dlat, d/dlon) = ((1 - 3) / 2, 1): magnitude sqrt(2)
    assert float(sharpness(field(forecast), field(truth))) == pytest.approx((np.sqrt(2) + 1) / 2)
    truth[1, 3] = NAN  # (1, 2) loses its gradient: only (1, 1) counts
    assert float(sharpness(field(forecast), field(truth))) == pytest.approx(np.sqrt(2))
    assert np.isnan(float(sharpness(field(forecast), field(np.ones((3, 4))))))
    stack = sharpness(field(np.stack([truth, 2 * truth])), field(np.stack([truth, truth])))
    assert stack.dims == ("time",)
    np.testing.assert_allclose(stack.values, [1.0, 2.0])


def test_wind_speed_and_psl_deficit():
    speed = wind_speed(field([[3.0, 0.0]]), field([[4.0, -2.0]]))
    np.testing.assert_allclose(speed.values, [[5.0, 2.0]])
    assert speed.attrs["units"] == "m s-1"
    truth = field([[[100000.0, 101000.0], [99000.0, 100500.0]]])  # median 100250 Pa
    deficit = psl_deficit(truth)
    assert deficit.dims == ("time", "lat", "lon") and deficit.attrs["units"] == "hPa"
    np.testing.assert_allclose(deficit.values[0], [[2.5, -7.5], [12.5, -2.5]])
    forecast = truth + 1000.0  # a forecast scored on the truth's environment
    on_truth = psl_deficit(forecast, reference=truth.median(("lat", "lon")))
    np.testing.assert_allclose(on_truth.values[0], [[-7.5, -17.5], [2.5, -12.5]])
    np.testing.assert_allclose(psl_deficit(forecast).values, deficit.values)  # its own median: no change


# ------------------------------------------------------------------------------------ storms


def test_intensity_errors_tables_and_datasets():
    times = pd.date_range("2000-08-01", periods=3, freq="3h")
    truth = pd.DataFrame({"time": times, "psl_min_hpa": [990.0, 985.0, 980.0], "wind_max_ms": [20.0, 25.0, NAN]})
    forecast = pd.DataFrame({"time": times, "psl_min_hpa": [992.0, 984.0, 990.0], "wind_max_ms": [18.0, 27.0, 30.0]})
    errors = intensity_errors(forecast, truth)
    assert list(errors.columns) == [
        "time",
        "psl_min_bias_hpa",
        "psl_min_abs_hpa",
        "wind_max_bias_ms",
        "wind_max_abs_ms",
    ]
    np.testing.assert_allclose(errors["psl_min_bias_hpa"], [2.0, -1.0, 10.0])  # forecast - truth
    np.testing.assert_allclose(errors["psl_min_abs_hpa"], [2.0, 1.0, 10.0])
    np.testing.assert_allclose(errors["wind_max_bias_ms"], [-2.0, 2.0, NAN])
    np.testing.assert_allclose(errors["wind_max_abs_ms"], [2.0, 2.0, NAN])
    assert list(intensity_errors(forecast.drop(columns="wind_max_ms"), truth).columns) == [
        "time",
        "psl_min_bias_hpa",
        "psl_min_abs_hpa",
    ]
    with pytest.raises(ValueError, match="same times"):
        intensity_errors(forecast.iloc[:2], truth)
    ds = intensity_errors(forecast.set_index("time").to_xarray(), truth.set_index("time").to_xarray())
    np.testing.assert_allclose(ds["psl_min_bias_hpa"].values, [2.0, -1.0, 10.0])
    assert ds["wind_max_abs_ms"].attrs["units"] == "m s-1"


def test_intensity_errors_of_verify_intensity():
    lat, lon = np.arange(0.0, 5.0), np.arange(100.0, 105.0)
    psl = np.full((2, 5, 5), 101000.0)
    psl[0, 2, 2], psl[1, 2, 2] = 99000.0, 98000.0
    ds = xr.Dataset({"PSL": (("time", "lat", "lon"), psl)}, coords={"time": [0, 1], "lat": lat, "lon": lon})
    found = storms.intensity(ds, 2.0, 102.0)
    errors = intensity_errors(found, storms.intensity(ds.isel(time=[0, 0]).assign_coords(time=[0, 1]), 2.0, 102.0))
    np.testing.assert_allclose(errors["psl_min_bias_hpa"], [0.0, -10.0])


def test_track_errors_north_of_eastward_motion():
    north = 20.0 + 100.0 / KM_PER_DEG  # 100 km due north
    out = track_errors([north], [150.0], [20.0], [150.0], [20.0], [149.0])
    assert out["track_km"].dims == ("case",)
    np.testing.assert_allclose(out["track_km"].values, [100.0])
    np.testing.assert_allclose(out["along_km"].values, [0.0], atol=1e-9)
    np.testing.assert_allclose(out["cross_km"].values, [-100.0])  # left of the motion
    assert out["hit"].values.tolist() == [True]


def test_track_errors_signs_wrap_and_misses():
    east = KM_PER_DEG * np.cos(np.deg2rad(10.0))  # km per degree of longitude at 10N
    forecast_lat = [10.0, 10.0, 0.0, NAN, 10.0, 10.0, 10.0]
    forecast_lon = [0.5, 358.5, 1.0, 0.0, 5.0, 0.5, 0.0]
    truth_lat = [10.0, 10.0, 0.0, 10.0, 10.0, 10.0, 10.0]
    truth_lon = [359.5, 359.5, 0.0, 0.0, 0.0, 359.5, 0.0]
    prev_lat = [10.0, 10.0, -1.0, 10.0, 10.0, 10.0, 10.0]
    prev_lon = [358.5, 0.5, 0.0, 359.0, 359.0, 359.5, NAN]
    # eastward across 0/360 with the forecast 1 degree ahead; westward across it, ahead too; moving north
    # with the forecast to the east (right); no forecast; far ahead (miss); truth did not move; no previous position
    out = track_errors(forecast_lat, forecast_lon, truth_lat, truth_lon, prev_lat, prev_lon, hit_km=300.0)
    np.testing.assert_allclose(out["along_km"].values, [east, east, 0.0, NAN, 5 * east, NAN, NAN], atol=1e-9)
    np.testing.assert_allclose(out["cross_km"].values, [0.0, 0.0, KM_PER_DEG, NAN, 0.0, NAN, NAN], atol=1e-9)
    np.testing.assert_allclose(out["track_km"].values[:3], [great_circle_km(10, 0.5, 10, 359.5)] * 2 + [KM_PER_DEG])
    assert out["hit"].values.tolist() == [True, True, True, False, False, True, True]


def test_track_errors_keeps_dataarray_dims():
    lead = xr.DataArray([6.0, 12.0], dims="lead", name="lead")
    lat = xr.DataArray([10.0, 11.0], dims="lead", coords={"lead": lead})
    out = track_errors(lat, 100.0, 10.0, 100.0, 9.0, 100.0)
    assert out["cross_km"].dims == ("lead",) and out["lead"].values.tolist() == [6.0, 12.0]
    np.testing.assert_allclose(out["along_km"].values, [0.0, KM_PER_DEG])


# ------------------------------------------------------------------------------------ intervals


def test_bootstrap_resamples_storms_by_hand():
    frame = pd.DataFrame({"storm": ["a", "a", "a", "b"], "value": [1.0, 2.0, 3.0, 10.0]})
    out = bootstrap(frame, "value", [])
    # mean over rows 4 (not over storms, 6); resamples aa (mean 2), ab (4), bb (10), each a quarter or more
    assert out.to_dict("records") == [{"mean": 4.0, "lo": 2.0, "hi": 10.0, "n_cases": 4, "n_clusters": 2}]


def test_bootstrap_groups_seed_and_pairing():
    rng = np.random.default_rng(3)
    rows = [
        {"model": m, "lead": lead, "storm": f"s{s}", "value": rng.normal() + 5 * (m == "b")}
        for m in ("a", "b")
        for lead in (6, 12)
        for s in range(8)
        for _ in range(1 + s % 3)
    ]
    frame = pd.DataFrame(rows)
    frame.loc[0, "value"] = NAN  # left out
    out = bootstrap(frame, "value", ["model", "lead"], n=500, seed=1)
    assert out[["model", "lead"]].values.tolist() == [["a", 6], ["a", 12], ["b", 6], ["b", 12]]
    assert out["n_clusters"].tolist() == [7, 8, 8, 8]  # storm s0 of (a, 6) has one row, missing
    assert out["n_cases"].tolist() == [14, 15, 15, 15]
    expected = frame.groupby(["model", "lead"])["value"].mean().to_numpy()
    np.testing.assert_allclose(out["mean"], expected)
    assert (out["lo"] < out["mean"]).all() and (out["mean"] < out["hi"]).all()
    pd.testing.assert_frame_equal(out, bootstrap(frame, "value", ["model", "lead"], n=500, seed=1))
    assert not np.allclose(out["lo"], bootstrap(frame, "value", ["model", "lead"], n=500, seed=2)["lo"])
    # b is a shifted by 5 on the same storms (lead 12): the same storms are drawn, so the interval shifts by 5
    shifted = frame[frame["model"] == "a"].assign(model="b", value=lambda f: f["value"] + 5)
    paired = bootstrap(pd.concat([frame[frame["model"] == "a"], shifted]), "value", ["model"], n=500)
    np.testing.assert_allclose(
        paired.loc[1, ["mean", "lo", "hi"]].astype(float), paired.loc[0, ["mean", "lo", "hi"]].astype(float) + 5
    )


def test_bootstrap_interval_narrows_with_more_storms():
    values = np.random.default_rng(4).normal(size=10)
    few = pd.DataFrame({"storm": np.arange(10), "value": values})
    many = pd.DataFrame({"storm": np.arange(100), "value": np.tile(values, 10)})
    width = [float((b["hi"] - b["lo"]).iloc[0]) for b in (bootstrap(few, "value", []), bootstrap(many, "value", []))]
    assert width[1] < width[0] / 2  # about 1 / sqrt(10)


def test_bootstrap_by_storm_is_wider_than_by_row():
    # one storm of 20 rows at 10 among 9 storms of 2 rows at 0 +- 1: rows of a storm are not independent cases
    frame = pd.DataFrame(
        {"storm": ["big"] * 20 + [f"s{s}" for s in range(9) for _ in range(2)], "value": [10.0] * 20 + [1.0, -1.0] * 9}
    )
    by_storm = bootstrap(frame, "value", [])
    by_row = bootstrap(frame.assign(row=np.arange(len(frame))), "value", [], cluster="row")
    assert by_storm["mean"].iloc[0] == by_row["mean"].iloc[0] == pytest.approx(200 / 38)
    assert (by_storm["hi"] - by_storm["lo"]).iloc[0] > 2 * (by_row["hi"] - by_row["lo"]).iloc[0]
    assert by_storm["lo"].iloc[0] == pytest.approx(0.0)  # a third of the resamples miss the big storm


def test_bootstrap_is_fast():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "model": rng.integers(0, 2, 5000),
            "lead": rng.integers(0, 5, 5000),
            "storm": rng.integers(0, 50, 5000),
            "value": rng.normal(size=5000),
        }
    )
    start = time.perf_counter()
    out = bootstrap(frame, "value", ["model", "lead"])
    assert len(out) == 10 and time.perf_counter() - start < 1.0


def test_separated():
    assert separated(0.0, 1.0, 1.5, 2.0) and separated(1.5, 2.0, 0.0, 1.0)
    assert not separated(0.0, 1.0, 0.5, 2.0)
    apart = separated(np.array([0.0, 0.0]), np.array([1.0, 1.0]), np.array([2.0, 0.5]), np.array([3.0, 3.0]))
    assert apart.tolist() == [True, False]
