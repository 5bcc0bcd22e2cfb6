import numpy as np
import pytest
import xarray as xr

from climode import ClimodeError
from climode.io.write import write_netcdf, write_zarr

DECODE = xr.coders.CFDatetimeCoder(use_cftime=True)


def forecast(start_hour=60, steps=3, calendar="noleap"):
    times = xr.date_range("2001-09-01", periods=steps, freq="3h", use_cftime=True, calendar=calendar)
    times = times.shift(start_hour // 3, "3h")
    rng = np.random.default_rng(start_hour)
    lat, lon = np.arange(4) + 10.5, np.arange(5) + 300.5
    data = {v: (("time", "lat", "lon"), rng.normal(size=(steps, 4, 5))) for v in ("U850", "PSL", "t")}
    ds = xr.Dataset(data, coords={"time": times, "lat": lat, "lon": lon})
    ds["U850"][0, 0, 0] = np.nan
    ds["t"].attrs = {"units": "K", "standard_name": "air_temperature"}
    return ds


def test_netcdf_is_cf_float32_compressed_and_keeps_the_calendar(tmp_path):
    path = write_netcdf(forecast(), tmp_path / "f.nc", calendar="noleap")
    back = xr.open_dataset(path, decode_times=DECODE)
    assert back.time.dt.calendar == "noleap" and back.time.encoding["calendar"] == "noleap"
    assert back.U850.attrs["standard_name"] == "eastward_wind" and back.U850.attrs["units"] == "m s-1"
    assert back.PSL.attrs["standard_name"] == "air_pressure_at_mean_sea_level"
    assert back.t.attrs == {"units": "K", "standard_name": "air_temperature"}
    assert back.lat.attrs["units"] == "degrees_north" and back.lon.attrs["units"] == "degrees_east"
    assert back.U850.dtype == np.float32 and back.U850.encoding["zlib"] and "_FillValue" in back.U850.encoding
    assert np.isnan(back.U850.values[0, 0, 0]) and back.attrs["Conventions"] == "CF-1.8"
    assert [p.name for p in tmp_path.iterdir()] == ["f.nc"]


def test_netcdf_refuses_to_overwrite_or_write_nowhere(tmp_path):
    path = write_netcdf(forecast(), tmp_path / "f.nc")
    before = path.read_bytes()
    with pytest.raises(ClimodeError, match="exists"):
        write_netcdf(forecast(63), path)
    assert path.read_bytes() == before
    with pytest.raises(ClimodeError, match="not writable"):
        write_netcdf(forecast(), tmp_path / "missing" / "f.nc")


def test_zarr_appends_along_time(tmp_path):
    path = write_zarr(forecast(60), tmp_path / "f.zarr", calendar="noleap")
    write_zarr(forecast(69), path, append=True)
    back = xr.open_zarr(path, consolidated=False, decode_times=DECODE)
    assert back.sizes["time"] == 6 and back.time.dt.calendar == "noleap"
    assert np.allclose(back.PSL.values[3:], forecast(69).PSL.values.astype(np.float32))
    assert back.U850.attrs["standard_name"] == "eastward_wind"


@pytest.mark.parametrize(
    "bad,message",
    [
        (lambda: forecast(63), "not after"),
        (lambda: forecast(90).drop_vars("t"), "holds"),
        (lambda: forecast(90).assign_coords(lat=np.arange(4) + 20.5), "grid"),
        (lambda: forecast(90, calendar="360_day"), "calendar"),
    ],
)
@pytest.mark.slow
def test_bad_append_leaves_the_store_as_it_was(tmp_path, bad, message):
    path = write_zarr(forecast(60), tmp_path / "f.zarr", calendar="noleap")
    before = xr.open_zarr(path, consolidated=False, decode_times=DECODE).load()
    with pytest.raises(ClimodeError, match=message):
        write_zarr(bad(), path, append=True)
    assert xr.open_zarr(path, consolidated=False, decode_times=DECODE).load().identical(before)


def test_append_interrupted_midway_does_not_corrupt(tmp_path, monkeypatch):
    path = write_zarr(forecast(60), tmp_path / "f.zarr", calendar="noleap")
    before = xr.open_zarr(path, consolidated=False, decode_times=DECODE).load()

    write = xr.Dataset.to_zarr

    def crash(self, *args, **kwargs):  # the data lands, then the process fails
        write(self, *args, **kwargs)
        raise OSError("killed after writing")

    monkeypatch.setattr(xr.Dataset, "to_zarr", crash)
    with pytest.raises(OSError):
        write_zarr(forecast(69), path, append=True)
    monkeypatch.undo()
    assert xr.open_zarr(path, consolidated=False, decode_times=DECODE).load().identical(before)
    assert [p.name for p in tmp_path.iterdir()] == ["f.zarr"]
