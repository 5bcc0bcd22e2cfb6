"""Real files as they come: one frame per file with a scalar time (radar archives), short records,
the model's time unit from the data, and training spans chosen by date."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import command_error, run_module

import climode
from climode.cli.train import main as train_main
from climode.data.gridded import fit_record
from climode.data.shards import Shards
from climode.times import to_hours


def _frames(folder, times, shape=(24, 32), shift=0.0):
    """One NetCDF file per time, a rain cell moving east 1.5 cells per 10 min, scalar ``time``."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    for t in times:
        cx = 6 + 1.5 * (t - times[0]) / pd.Timedelta("10min") + shift
        rain = 10 * np.exp(-((x - cx) ** 2 + (y - shape[0] / 2) ** 2) / 12.0)
        ds = xr.Dataset({"rain": (("y", "x"), rain.astype("float32"), {"units": "mm h-1"})}, coords={"time": t})
        ds.to_netcdf(folder / f"radar_{t:%Y%m%d_%H%M}.nc")
    return folder


def test_one_frame_files_are_stacked_in_time_order_with_gaps_kept(tmp_path):
    times = pd.date_range("2024-06-01", periods=13, freq="10min").delete(6)
    folder = _frames(tmp_path / "radar", times[::-1])  # written newest first: the order comes from the times
    ds = climode.open_fields(folder / "*.nc", ["rain"])
    assert ds["rain"].dims == ("time", "y", "x") and ds.sizes["time"] == 12
    steps = np.round(np.diff(to_hours(ds.time.values, "standard")) * 60, 6)
    assert steps.tolist() == [10] * 5 + [20] + [10] * 5  # the missing frame stays a gap


def test_a_folder_of_mixed_grids_or_repeated_times_is_one_error(tmp_path):
    times = pd.date_range("2024-06-01", periods=3, freq="10min")
    mixed = _frames(tmp_path / "mixed", times[:2])
    _frames(mixed, times[2:], shape=(20, 32))
    repeated = _frames(tmp_path / "repeated", times)
    _frames(tmp_path / "again", times[1:2], shift=3.0)
    (tmp_path / "again" / f"radar_{times[1]:%Y%m%d_%H%M}.nc").rename(repeated / "copy.nc")
    for folder, message in ((mixed, "different grids"), (repeated, "repeated")):
        with pytest.raises(climode.ClimodeError, match=message):
            climode.open_fields(folder / "*.nc", ["rain"])


def test_a_short_record_shrinks_gaps_then_gives_up_held_out_blocks():
    assert fit_record(2000, 5, 5, 16) == (16, (0.8, 0.1, 0.1))  # a long record: the defaults
    assert fit_record(12, 5, 5, 16) == (1, (1.0, 0.0, 0.0))  # 12 frames: all of it trains
    gap, split = fit_record(400, 5, 5, 16)
    assert split == (0.8, 0.1, 0.1) and 1 <= gap < 16  # gaps shrink before a held-out block is given up
    assert fit_record(120, 5, 5, 16)[1] == (0.9, 0.1, 0.0)
    with pytest.raises(climode.ClimodeError, match="at least 10"):
        fit_record(8, 5, 5, 16)


@pytest.mark.slow
def test_twelve_one_frame_files_train_and_forecast_with_no_stacking(tmp_path):
    times = pd.date_range("2024-06-01", periods=13, freq="10min").delete(6)
    folder = _frames(tmp_path / "radar", times)
    run = run_module(
        "climode.train", "--dataset", "gridded", "--data", folder / "*.nc", "--vars", "rain",
        "--out", tmp_path / "run", "--max-steps", 2,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "model time unit: 0.166667 h" in run.stderr and "time blocks train 100 %" in run.stderr
    model = climode.load_model(tmp_path / "run" / "model.safetensors")
    assert model.model.config.time_scale == pytest.approx(1 / 6)
    out = climode.forecast(climode.open_fields(folder / "*.nc", ["rain"]), "2.0,2.25", checkpoint=model)
    assert out["rain"].shape == (2, 24, 32) and np.isfinite(out["rain"].values).all()


@pytest.mark.slow
def test_train_times_keep_every_later_time_out_of_training(tmp_path):
    times = pd.date_range("2024-06-01", periods=60, freq="10min")
    folder = _frames(tmp_path / "radar", times)
    end = times[29]
    run = run_module(
        "climode.train", "--dataset", "gridded", "--data", folder / "*.nc", "--vars", "rain", "--out", tmp_path / "run",
        "--max-steps", 1, "--train-times", f"{times[0]:%Y-%m-%d %H:%M}:{end:%Y-%m-%d %H:%M}",
        "--val-times", f"{times[30]:%Y-%m-%d %H:%M}:{times[44]:%Y-%m-%d %H:%M}",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    store = xr.open_zarr(tmp_path / "run" / "data.zarr", consolidated=False)
    hours, split = store["hours"].values, store["split"].values
    last = climode.open_fields(folder / "*.nc", ["rain"]).time.values[29]
    limit = to_hours([last], last.calendar)[0]
    assert (split == "train").any() and hours[split == "train"].max() <= limit + 1e-6
    assert hours[split != "train"].min() > limit  # validation and test lie after the training span
    assert len(Shards(tmp_path / "run" / "data.zarr", "val")) > 0


@pytest.mark.slow
def test_overlapping_train_and_val_times_are_one_error_and_write_nothing(tmp_path, capsys):
    times = pd.date_range("2024-06-01", periods=30, freq="10min")
    folder = _frames(tmp_path / "radar", times)
    argv = [
        "--dataset", "gridded", "--data", folder / "*.nc", "--vars", "rain", "--out", tmp_path / "run",
        "--train-times", "2024-06-01 00:00:2024-06-01 03:00", "--val-times", "2024-06-01 02:00:2024-06-01 04:00",
    ]  # fmt: skip
    command_error(capsys, train_main, argv, "--train-times and --val-times overlap")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_training_on_a_folder_of_mixed_grids_is_one_error_and_writes_nothing(tmp_path, capsys):
    times = pd.date_range("2024-06-01", periods=12, freq="10min")
    mixed = _frames(tmp_path / "mixed", times[:6])
    _frames(mixed, times[6:], shape=(20, 32))
    argv = ["--dataset", "gridded", "--data", mixed / "*.nc", "--vars", "rain", "--out", tmp_path / "run"]
    command_error(capsys, train_main, argv, "different grids")
    assert not (tmp_path / "run").exists()


def test_rain_forecasts_stay_at_or_above_zero(tmp_path, monkeypatch):
    """A model free to forecast any value (random output layers) forecasts negative rain; the forecast
    clamps it to the physical bound, by the variable's name or units (``conventions.bounds``)."""
    from conftest import state_dependent

    from climode.checkpoint import Card, save_model
    from climode.model import ModelConfig, build

    times = pd.date_range("2024-06-01", periods=5, freq="10min")
    ds = climode.open_fields(_frames(tmp_path / "radar", times) / "*.nc", ["rain"])
    card = Card(
        variables=("rain",), time_units="hours", normalisation={"rain": {"method": "minmax", "min": 0.0, "max": 10.0}}
    )
    path = save_model(tmp_path / "rain.safetensors", state_dependent(build(ModelConfig(channels=1, width=4))), card)
    out = climode.forecast(ds, "1.0,2.0", checkpoint=path)["rain"]
    assert float(out.min()) >= 0.0
    monkeypatch.setattr("climode.forecasting.bounds", lambda name, attrs: (None, None))
    assert float(climode.forecast(ds, "1.0,2.0", checkpoint=path)["rain"].min()) < 0.0  # what it would have been
