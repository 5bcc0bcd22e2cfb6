"""``python -m climode.forecast --members N``: the realization dim in NetCDF and zarr (both layouts,
appended), probabilities, reproducibility, and refusals before any work."""

from __future__ import annotations

import cftime
import numpy as np
import pytest
import xarray as xr

from climode.cli.evaluate import main as evaluate_main
from climode.cli.forecast import main as forecast_main
from climode.data.synthetic import make_corpus

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def storm_file(tmp_path_factory):
    """A synthetic storm on the 1-degree small domain, inputs at 0, 9, 21, 42 and 57 h."""
    ds, _ = make_corpus(1, 3, small=True)
    hours = np.arange(ds.sizes["time"]) * 3.0
    picks = [int(np.flatnonzero(hours == h)[0]) for h in (24, 33, 45, 66, 81)]
    path = tmp_path_factory.mktemp("storm") / "storm.nc"
    ds[["U850", "V850", "PSL"]].isel(time=picks).to_netcdf(path)
    truth = [int(np.flatnonzero(hours == h)[0]) for h in (81, 84, 87, 90)]  # 57 (the last input) to 66 h
    ds[["U850", "V850", "PSL"]].isel(time=truth).to_netcdf(path.with_name("truth.nc"))
    return path


def _run(tmp_path, storm_file, *args) -> int:
    return forecast_main(["--input", str(storm_file), *map(str, args)])


@pytest.mark.slow
def test_members_reach_netcdf_and_both_zarr_layouts(tmp_path, storm_file, capsys):
    out, store = tmp_path / "ens.nc", tmp_path / "ens.zarr"
    common = ["--members", 4, "--seed", 5, "--probability", "wind>=17,PSL<=1000hPa", "--ensemble-stats"]
    assert _run(tmp_path, storm_file, "--times", "60,63", *common, "--output", out, "--zarr", store) == 0
    printed = capsys.readouterr().out
    assert "4 members (seed 5)" in printed and "probability of 850 hPa wind speed >= 17 m s-1" in printed
    ds = xr.open_dataset(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert (
        ds.PSL.dims == ("realization", "time", "lat", "lon") and ds.realization.attrs["standard_name"] == "realization"
    )
    for name in ("probability_wind_ge_17", "probability_PSL_le_1000hPa", "strike_probability"):
        assert ds[name].dims == ("time", "lat", "lon") and 0 <= float(ds[name].min()) <= float(ds[name].max()) <= 1
    np.testing.assert_allclose(ds.PSL_mean.values, ds.PSL.mean("realization").values, rtol=1e-6)
    np.testing.assert_allclose(ds.probability_PSL_le_1000hPa.values, (ds.PSL <= 1e5).mean("realization").values)
    # evaluate scores the members (not the probabilities, mean and spread beside them)
    assert evaluate_main(["--forecast", str(out), "--truth", str(storm_file.with_name("truth.nc"))]) == 0
    printed = capsys.readouterr().out
    assert "an ensemble of 4 members" in printed and "CRPS" in printed
    # the same seed gives the same members, appended along time in the store
    again = tmp_path / "again.nc"
    assert _run(tmp_path, storm_file, "--times", "66", *common, "--output", again, "--zarr", store, "--append") == 0
    z = xr.open_zarr(store, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert z.sizes["time"] == 3 and z.sizes["realization"] == 4
    np.testing.assert_array_equal(z.PSL.isel(time=slice(0, 2)).values, ds.PSL.values)
    # the lead layout keeps the members, one init_time per run
    lead = tmp_path / "lead.zarr"
    assert _run(tmp_path, storm_file, "--input-times", "0,9,21,42", "--times", "45,48", "--members", 4, "--zarr", lead,
                "--layout", "lead", "--output", tmp_path / "l.nc") == 0  # fmt: skip
    assert _run(tmp_path, storm_file, "--times", "60,63", "--members", 4, "--zarr", lead, "--layout", "lead",
                "--append", "--output", tmp_path / "l2.nc") == 0  # fmt: skip
    z = xr.open_zarr(lead, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert z.PSL.dims == ("init_time", "lead_time", "realization", "lat", "lon") and z.sizes["init_time"] == 2


@pytest.fixture(scope="module")
def global_file(tmp_path_factory):
    """Five frames on a global 1-degree grid."""
    lat, lon = np.arange(-90.0, 91.0), np.arange(0.0, 360.0)
    times = [cftime.DatetimeNoLeap(2000, 8, 1, h) for h in (0, 3, 6, 9, 12)]
    shape = (len(times), lat.size, lon.size)
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "U850": (("time", "lat", "lon"), rng.normal(0, 5, shape).astype(np.float32), {"units": "m s-1"}),
            "V850": (("time", "lat", "lon"), rng.normal(0, 5, shape).astype(np.float32), {"units": "m s-1"}),
            "PSL": (("time", "lat", "lon"), rng.normal(101000, 500, shape).astype(np.float32), {"units": "Pa"}),
        },
        coords={"time": times, "lat": lat, "lon": lon},
    )
    path = tmp_path_factory.mktemp("global") / "global.nc"
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--members", 0], "--members must be at least 1"),
        (["--members", 3, "--probability", "wind>=17,rain>=3"], "unknown variable 'rain'"),
        (["--members", 3, "--probability", "PSL<=980 furlongs"], "not units of PSL"),
        (["--probability", "wind>=17"], "need an ensemble: add --members"),
        (["--members", 10000], "with 10,000 members takes about"),
    ],
)
def test_refused_in_one_line_before_any_work(tmp_path, global_file, capsys, args, fragment):
    out = tmp_path / "out.nc"
    assert (
        forecast_main(["--input", str(global_file), "--times", "15,18,21", "--output", str(out), *map(str, args)]) == 2
    )
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.iterdir())
