"""climode.io.fields and climode.io.variables: lazy opening, variable lookup, coordinate/time/unit normalisation."""

import datetime
import warnings
from pathlib import Path

import cftime
import dask.array
import netCDF4
import numpy as np
import pytest
import xarray as xr

from climode.errors import ClimodeError
from climode.io.coords import normalise_coords
from climode.io.fields import open_fields
from climode.io.variables import parse_mapping, parse_variables

GEOCAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "geocat_storm_500hPa"
LAT = np.array([-10.0, 0.0, 10.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])


def fields(
    names, nt=4, *, time=None, time_attrs=None, dims=("time", "lat", "lon"), lat=LAT, lon=LON, attrs=None, offset=0.0
) -> xr.Dataset:
    """A small undecoded dataset: each variable (nt, len(lat), len(lon)) float32 with distinct values."""
    time = np.arange(nt, dtype=float) if time is None else np.asarray(time)
    shape = (len(time), len(lat), len(lon))
    data = {
        name: (
            dims,
            (offset + 1000 * i + np.arange(np.prod(shape))).reshape(shape).astype("f4"),
            (attrs or {}).get(name, {}),
        )
        for i, name in enumerate(names)
    }
    coords = {
        dims[0]: (dims[0], time, time_attrs if time_attrs is not None else {"units": "days since 2000-01-01"}),
        dims[1]: lat,
        dims[2]: lon,
    }
    return xr.Dataset(data, coords)


def write(ds: xr.Dataset, path: Path, **encoding) -> Path:
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return path


CAM_UNITS = {"U850": {"units": "m/s"}, "V850": {"units": "m s-1"}, "PSL": {"units": "Pa"}}


def cam(nt=4, offset=100000.0, **kw) -> xr.Dataset:
    return fields(("U850", "V850", "PSL"), nt, attrs=CAM_UNITS, offset=offset, **kw)


def test_cam_noleap_calendar_kept(tmp_path):
    path = write(
        cam(time=[57.0, 58.0, 59.0], time_attrs={"units": "days since 2000-01-01", "calendar": "noleap"}),
        tmp_path / "cam.nc",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ds = open_fields(path)
    assert list(ds.data_vars) == ["U850", "V850", "PSL"]
    assert ds.time.dt.calendar == "noleap"
    assert isinstance(ds.time.values[0], cftime.DatetimeNoLeap)
    assert [str(t) for t in ds.time.values] == ["2000-02-27 00:00:00", "2000-02-28 00:00:00", "2000-03-01 00:00:00"]
    assert ds.PSL.dims == ("time", "lat", "lon") and ds.PSL.attrs["units"] == "Pa"
    assert ds.U850.attrs["units"] == "m s-1"
    assert isinstance(ds.PSL.data, dask.array.Array) and ds.PSL.data.chunks[0] == (1, 1, 1)
    assert ds.attrs["climode_sources"] == str(path)


def test_era5_names_flipped_lat_wrapped_lon_hpa(tmp_path):
    lat, lon = np.array([10.0, 0.0, -10.0]), np.array([-135.0, -45.0, 45.0, 135.0])
    era = fields(
        ("u", "v", "msl"),
        2,
        dims=("valid_time", "latitude", "longitude"),
        lat=lat,
        lon=lon,
        time_attrs={"units": "hours since 2020-01-01"},
        attrs={"msl": {"units": "hPa"}, "u": {"units": "m s**-1"}, "v": {"units": "m s**-1"}},
    )
    era["msl"][:] = 1000.0
    era["msl"][1, 0, 1] = 950.0  # latitude 10, longitude -45
    path = write(era, tmp_path / "era5.nc")
    with pytest.warns(UserWarning, match="hPa"):
        ds = open_fields(path)
    np.testing.assert_array_equal(ds.lat, [-10.0, 0.0, 10.0])
    np.testing.assert_array_equal(ds.lon, [45.0, 135.0, 225.0, 315.0])
    assert ds.PSL.attrs["units"] == "Pa" and ds.PSL.dtype == np.float32
    assert float(ds.PSL.isel(time=1).sel(lat=10, lon=315)) == 95000.0
    assert float(ds.PSL.min()) == 95000.0 and int((ds.PSL == 95000.0).sum()) == 1
    u = era["u"].values[0]  # (latitude, longitude) as written
    np.testing.assert_array_equal(ds.U850.isel(time=0), u[::-1][:, [2, 3, 0, 1]])
    assert ds.time.values[1] == cftime.DatetimeGregorian(2020, 1, 1, 1)


def test_variables_and_times_split_across_files_stay_lazy(tmp_path):
    full = cam(6, time_attrs={"units": "days since 2000-01-01", "calendar": "noleap"})
    for name in full.data_vars:
        for part, steps in (("b", slice(3, 6)), ("a", slice(0, 3))):
            write(full[[name]].isel(time=steps), tmp_path / f"{name}_{part}.nc")
    ds = open_fields(str(tmp_path / "*.nc"))
    assert ds.sizes == {"time": 6, "lat": 3, "lon": 4}
    assert all(isinstance(ds[name].data, dask.array.Array) for name in ds.data_vars)
    for name in full.data_vars:
        np.testing.assert_array_equal(ds[name].values, full[name].values)
    assert len(ds.attrs["climode_sources"].split(", ")) == 6
    assert ds.time.values[-1] == cftime.DatetimeNoLeap(2000, 1, 6)
    late_first = open_fields([tmp_path / "PSL_b.nc", tmp_path / "PSL_a.nc"], ("PSL",))
    np.testing.assert_array_equal(late_first.PSL.values, full.PSL.values)


def test_mapping_string_and_parse_errors(tmp_path):
    units = {"uu": {"units": "m s-1"}, "vv": {"units": "m s-1"}, "pp": {"units": "Pa"}}
    path = write(fields(("uu", "vv", "pp"), attrs=units, offset=1e5), tmp_path / "f.nc")
    ds = open_fields(path, mapping=" U850=uu, V850=vv,PSL=pp", variables=("U850", "V850", "PSL"))
    np.testing.assert_array_equal(ds.V850.values, xr.open_dataset(path).vv.values)
    assert parse_mapping("") == {}
    for bad in ("U850", "U850=", "=u", "U850=u,,V850=v", "U850=u=v", "U850=u,U850=w"):
        with pytest.raises(ClimodeError, match="malformed"):
            parse_mapping(bad)
    # the same reading for --vars, where a name alone is allowed
    assert parse_variables(" U850=u, precip ") == (["U850", "precip"], {"U850": "u"})
    for bad in ("U850=", "=u", "precip,,u", "precip,precip"):
        with pytest.raises(ClimodeError, match="malformed"):
            parse_variables(bad)


def test_standard_name_lookup(tmp_path):
    attrs = {
        "a": {"standard_name": "eastward_wind", "units": "m s-1"},
        "b": {"standard_name": "northward_wind", "units": "knots"},
        "c": {"standard_name": "air_pressure_at_mean_sea_level", "units": "Pa"},
    }
    path = write(fields(("a", "b", "c"), attrs=attrs, offset=1e5), tmp_path / "f.nc")
    with pytest.warns(UserWarning, match="knots"):
        ds = open_fields(path)
    np.testing.assert_allclose(ds.V850.values, xr.open_dataset(path).b.values * 0.514444, rtol=1e-5)
    assert ds.V850.attrs["units"] == "m s-1"


def test_psl_values_in_hpa_and_unreadable_wind_units(tmp_path):
    path = write(fields(("U850", "V850", "PSL"), attrs=CAM_UNITS | {"PSL": {}}, offset=-1000.0), tmp_path / "f.nc")
    with pytest.warns(UserWarning, match="look like hPa"):  # PSL ~1000 without units
        ds = open_fields(path)
    np.testing.assert_array_equal(ds.PSL.values, xr.open_dataset(path).PSL.values * 100)
    assert ds.PSL.attrs["units"] == "Pa"
    attrs = {"U850": {"units": "furlongs/fortnight"}, "V850": {"units": "m s-1"}}
    path = write(fields(("U850", "V850", "PSL"), attrs=attrs, offset=1e5), tmp_path / "g.nc")
    with pytest.raises(ClimodeError, match="U850 has units 'furlongs/fortnight', which cannot be read as m s-1"):
        open_fields(path)


def test_missing_variable_names_what_is_there(tmp_path):
    path = write(fields(("u", "v")), tmp_path / "winds.nc")
    with pytest.raises(ClimodeError, match="'PSL' not found") as err:
        open_fields(path)
    assert str(path) in str(err.value) and "data variables there: u, v" in str(err.value)


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(ClimodeError, match="nope.nc"):
        open_fields(tmp_path / "nope.nc")
    with pytest.raises(ClimodeError, match=r"no file matches .*\*\.nc"):
        open_fields(str(tmp_path / "*.nc"))


def test_times_must_increase(tmp_path):
    a = write(cam(3), tmp_path / "a.nc")
    b = write(cam(3, time=[2.0, 3.0, 4.0]), tmp_path / "b.nc")
    with pytest.raises(ClimodeError, match="repeated") as err:
        open_fields([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value) and "2000-01-03" in str(err.value)
    c = write(cam(3, time=[0.0, 2.0, 1.0]), tmp_path / "c.nc")
    with pytest.raises(ClimodeError, match="decreasing"):
        open_fields(c)


def test_all_nan_variable(tmp_path):
    ds = cam()
    ds["PSL"][:] = np.nan
    path = write(ds, tmp_path / "f.nc", PSL={"_FillValue": -9999.0})
    with pytest.raises(ClimodeError, match="PSL is all missing"):
        open_fields(path)


def test_numeric_time_without_units(tmp_path):
    path = write(cam(3, time=[0, 6, 12], time_attrs={}, dims=("timestep", "lat", "lon")), tmp_path / "f.nc")
    with pytest.raises(ClimodeError, match="time_in_hours"):
        open_fields(path)
    ds = open_fields(path, time_in_hours=True, reference_time="1996-01-05")
    assert ds.time.values[2] == cftime.DatetimeGregorian(1996, 1, 5, 12)
    ds = open_fields(path, time_in_hours=True, calendar="360_day")
    assert ds.time.dt.calendar == "360_day" and ds.time.values[1] == cftime.Datetime360Day(1, 1, 1, 6)


def test_projected_grid_any_variable(tmp_path):
    ds = fields(("precip",), 3, dims=("time", "y", "x"), lat=np.arange(5) * 1e3, lon=np.arange(6) * 1e3)
    path = write(ds, tmp_path / "proj.nc")
    out = open_fields(path, ("precip",))
    assert out.precip.dims == ("time", "y", "x") and out.precip.shape == (3, 5, 6)
    assert isinstance(out.precip.data, dask.array.Array)
    np.testing.assert_array_equal(out.precip.values, ds.precip.values)


def test_zarr_store(tmp_path):
    ds = cam(4, time_attrs={"units": "days since 2000-01-01", "calendar": "360_day"})
    ds.chunk({"time": 2}).to_zarr(tmp_path / "cam.zarr", zarr_format=2)
    out = open_fields(tmp_path / "cam.zarr")
    assert out.time.dt.calendar == "360_day" and out.PSL.data.chunks[0] == (2, 2)
    np.testing.assert_array_equal(out.U850.values, ds.U850.values)


def test_normalise_coords_alone():
    ds = xr.Dataset(
        {"z": (("t", "latitude", "nav_lon"), np.arange(12.0).reshape(1, 3, 4))},
        {"latitude": [5.0, 0.0, -5.0], "nav_lon": [-90.0, 0.0, 90.0, 180.0]},
    )
    out = normalise_coords(ds)
    assert out.z.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(out.lon, [0.0, 90.0, 180.0, 270.0])
    assert out.z.sel(lat=5.0, lon=270.0).item() == 0.0


@pytest.mark.slow
@pytest.mark.skipif(not GEOCAT.is_dir(), reason=f"real sample files not found at {GEOCAT}")
def test_real_geocat_storm_files():
    files = [GEOCAT / name for name in ("U500storm.cdf", "V500storm.cdf", "Tstorm.cdf")]
    ds = open_fields(files, ("u", "v", "t"), time_in_hours=True, reference_time="1996-01-05 00:00:00")
    assert ds.sizes == {"time": 64, "lat": 33, "lon": 36}
    times = ds.time.values
    assert times[0] == cftime.DatetimeGregorian(1996, 1, 5) and times[-1] == cftime.DatetimeGregorian(1996, 1, 20, 18)
    assert set(np.diff(times)) == {datetime.timedelta(hours=6)}
    lon = ds.lon.values
    assert lon[0] == 220.0 and lon[-1] == 307.5 and (np.diff(lon) > 0).all()
    assert isinstance(ds.t.data, dask.array.Array)
    for name, file in zip(("u", "v", "t"), files):
        with netCDF4.Dataset(file) as nc:
            nc.set_auto_mask(False)
            raw = nc[name][:]
        np.testing.assert_array_equal(np.isnan(ds[name].values), raw == -9999.0)
        assert 0.15 < float(ds[name].isnull().mean()) < 0.25
    # every step misses the same 224 cells; v and t each also lack one whole step
    assert bool(ds.v.isel(time=36).isnull().all()) and bool(ds.t.isel(time=17).isnull().all())
    with pytest.warns(UserWarning, match="no units"):
        mapped = open_fields(files[:2], ("U850", "V850"), {"U850": "u", "V850": "v"}, time_in_hours=True)
    assert mapped.time.values[0] == times[0]  # reference date read from the files' reftime text
    np.testing.assert_array_equal(mapped.U850.values, ds.u.values)
