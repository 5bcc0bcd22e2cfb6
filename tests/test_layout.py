"""Forecast layouts: the CF valid-time layout and the lead layout (init_time x lead_time, as WeatherBench 2
and earth2studio write), a scalar plev on the 850 hPa winds only, and the CF attributes that matter."""

import numpy as np
import pytest
import xarray as xr
from cfcheck import cf_problems
from conftest import assert_user_error, run_module

import climode
from climode.data.cases import first_case, write_case
from climode.data.synthetic import make_corpus
from climode.io.write import lead_layout, write_netcdf, write_zarr


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    out = tmp_path_factory.mktemp("case")
    ds, tracks = make_corpus(1, 3)
    write_case(out, first_case(ds, tracks, (0, 9, 21, 42, 57), 72))
    return climode.open_fields(out / "storm.nc").load()


@pytest.mark.slow
def test_the_lead_layout_round_trips_through_zarr_with_many_initialisations(storm, tmp_path):
    """Three forecasts initialised at 21, 42 and 57 h, each at leads 3, 6 and 9 h, appended to one store."""
    store = tmp_path / "leads.zarr"
    forecasts = []
    for k, last in enumerate((21, 42, 57)):
        inputs = [h for h in (0, 9, 21, 42, 57) if h <= last]
        valid = climode.forecast(storm, [last + 3, last + 6, last + 9], input_times=inputs)
        forecasts.append(valid)
        write_zarr(lead_layout(valid), store, valid.time.values[0].calendar, append=k > 0)
    back = xr.open_zarr(
        store, consolidated=False, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True), decode_timedelta=True
    )
    assert back["lead_time"].dtype == np.dtype("timedelta64[ns]")
    assert (back["lead_time"].values / np.timedelta64(1, "h")).tolist() == [3, 6, 9]
    assert [t.hour for t in back["init_time"].values] == [
        f.forecast_reference_time.values.item().hour for f in forecasts
    ]
    assert back["PSL"].dims == ("init_time", "lead_time", "lat", "lon") and back.sizes["init_time"] == 3
    for i, valid in enumerate(forecasts):
        np.testing.assert_array_equal(back["PSL"].isel(init_time=i).values, valid["PSL"].values)
        assert list(back["valid_time"].values[i]) == list(valid.time.values)
    later = climode.forecast(storm, [60, 63], input_times=[0, 9, 21, 42, 57])  # other leads: refused
    with pytest.raises(climode.ClimodeError, match="lead times differ"):
        write_zarr(lead_layout(later), store, later.time.values[0].calendar, append=True)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["valid", "lead"])
def test_written_forecasts_pass_the_cf_check_with_plev_on_the_winds_only(storm, tmp_path, layout):
    out = climode.forecast(storm, "60,63,66")
    path = write_netcdf(out if layout == "valid" else lead_layout(out), tmp_path / "f.nc", out.time.values[0].calendar)
    assert cf_problems(path) == []
    back = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert float(back["plev"]) == 85000.0 and back["plev"].attrs["units"] == "Pa"
    assert "plev" in back["U850"].encoding["coordinates"] and "plev" in back["V850"].encoding["coordinates"]
    assert "plev" not in back["PSL"].encoding.get("coordinates", "")


def test_the_cf_check_finds_what_it_checks(tmp_path):
    ds = xr.Dataset({"x": (("lat",), np.zeros(3))}, coords={"lat": [0.0, 1.0, 2.0]})
    ds.to_netcdf(tmp_path / "bare.nc")
    problems = cf_problems(tmp_path / "bare.nc")
    assert any("Conventions" in p for p in problems) and any("x: no units" in p for p in problems)


@pytest.mark.slow
def test_an_unknown_layout_is_one_error_and_writes_nothing(tmp_path):
    result = run_module(
        "climode.forecast", "--input", tmp_path / "none.nc", "--times", "3", "--layout", "init", cwd=tmp_path
    )
    assert_user_error(result, "unknown --layout 'init'", "valid, lead")
    assert list(tmp_path.iterdir()) == []
