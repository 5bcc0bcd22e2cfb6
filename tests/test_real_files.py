"""Files as climate scientists have them: ERA5 as the Copernicus data store delivers it (levels,
``valid_time``, a second file for ``msl``), variables on grids of their own, WRF and other
curvilinear grids, radar archives whose time is a data variable, and the units, levels and
sources that must be refused in one line. Each layout is built from the same storm written flat,
and the forecast from it must be the flat file's."""

import datetime
import warnings

import cftime
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from climode.cli.forecast import main as forecast_main
from climode.errors import ClimodeError
from climode.io.fields import open_fields

VARS = ("U850", "V850", "PSL")


@pytest.fixture(scope="module")
def flat(storm):
    """The storm's fields, loaded with numeric time (days since, noleap) as written."""
    return xr.open_dataset(storm / "storm.nc", decode_times=False)[list(VARS)].load()


def _forecast(capsys, inputs, out, *extra) -> xr.Dataset:
    assert forecast_main(["--input", *map(str, inputs), "--times", "60,63", "--output", str(out), *extra]) == 0
    capsys.readouterr()
    with xr.open_dataset(out) as ds:
        return ds.load()


@pytest.fixture(scope="module")
def reference(storm, tmp_path_factory):
    """The forecast from the flat file, as a user makes it."""
    out = tmp_path_factory.mktemp("reference") / "flat.nc"
    assert forecast_main(["--input", str(storm / "storm.nc"), "--times", "60,63", "--output", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        return ds.load()


def _same_forecast(got: xr.Dataset, want: xr.Dataset, atol=(1e-3, 1e-3, 0.05)) -> None:
    for name, tol in zip(VARS, atol):
        np.testing.assert_allclose(got[name].values, want[name].values, atol=tol, err_msg=name)


# ---------------------------------------------------------------- ERA5 on pressure levels


def era5(flat: xr.Dataset, folder, levels=(1000.0, 850.0, 500.0)):
    """``flat`` as the CDS delivers ERA5 now: u, v on ``pressure_level`` (hPa) in one file, msl in another;
    ``valid_time`` in seconds since 1970 (proleptic_gregorian), ``latitude`` descending, ``number`` and
    ``expver`` coordinates. The 850 hPa level holds the flat fields, the others scaled copies."""
    folder.mkdir(exist_ok=True)
    dates = cftime.num2date(flat.time.values, flat.time.attrs["units"], flat.time.attrs["calendar"])
    seconds = np.array(
        [(datetime.datetime(*d.timetuple()[:6]) - datetime.datetime(1970, 1, 1)).total_seconds() for d in dates]
    )
    coords = {
        "valid_time": (
            "valid_time",
            seconds.astype("int64"),
            {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "standard_name": "time"},
        ),
        "latitude": ("latitude", flat.lat.values[::-1], {"units": "degrees_north", "standard_name": "latitude"}),
        "longitude": ("longitude", flat.lon.values, {"units": "degrees_east", "standard_name": "longitude"}),
        "number": 0,
        "expver": ("valid_time", np.array(["0001"] * len(seconds))),
    }
    scale = np.array([0.9 if p > 850 else 1.1 if p < 850 else 1.0 for p in levels], "f4")[None, :, None, None]
    dims = ("valid_time", "pressure_level", "latitude", "longitude")
    winds = xr.Dataset(
        {
            short: (dims, flat[name].values[:, None, ::-1] * scale, {"units": "m s**-1", "standard_name": standard})
            for short, name, standard in (("u", "U850", "eastward_wind"), ("v", "V850", "northward_wind"))
        },
        coords={
            **coords,
            "pressure_level": ("pressure_level", np.array(levels), {"units": "hPa", "long_name": "pressure"}),
        },
    )
    surface = xr.Dataset({"msl": (dims[:1] + dims[2:], flat.PSL.values[:, ::-1], {"units": "Pa"})}, coords=coords)
    winds.to_netcdf(folder / "era5_pressure_levels.nc")
    surface.to_netcdf(folder / "era5_single_levels.nc")
    return folder


@pytest.mark.slow
def test_era5_on_pressure_levels_forecasts_as_the_flat_file(flat, reference, tmp_path, capsys):
    folder = era5(flat, tmp_path / "era5")
    got = _forecast(capsys, [folder / "era5_*.nc"], tmp_path / "f.nc", "--vars", "U850=u@850,V850=v@850,PSL=msl")
    _same_forecast(got, reference)
    assert got.time.encoding["calendar"] == "proleptic_gregorian"  # the input's calendar kept
    # without --vars: the aliases find u, v and msl, and U850/V850 take their 850 hPa level
    _same_forecast(_forecast(capsys, [folder / "era5_*.nc"], tmp_path / "g.nc"), reference)


@pytest.mark.slow
def test_a_size_one_level_needs_no_name(flat, reference, tmp_path, capsys):
    folder = era5(flat, tmp_path / "era5", levels=(850.0,))
    _same_forecast(
        _forecast(capsys, [folder / "era5_*.nc"], tmp_path / "f.nc", "--vars", "U850=u,V850=v,PSL=msl"), reference
    )


def test_levels_are_chosen_by_value_or_refused_listing_them(flat, tmp_path):
    folder = era5(flat, tmp_path / "era5")
    files = str(folder / "era5_*.nc")
    upper = open_fields(files, VARS, "U850=u@500,V850=v,PSL=msl")  # any level, by its value in hPa
    np.testing.assert_allclose(upper.U850.values, 1.1 * flat.U850.values, rtol=1e-6)
    np.testing.assert_allclose(upper.V850.values, flat.V850.values)
    with pytest.raises(ClimodeError, match=r"no level 700 on pressure_level \(levels there: 1000, 850, 500 hPa\)"):
        open_fields(files, VARS, "U850=u@700,V850=v,PSL=msl")
    # a variable climode does not know has no level of its own: three levels and none named is one line
    with pytest.raises(
        ClimodeError, match=r"u has 3 values on pressure_level \(1000, 850, 500 hPa\).*--vars wind=u@LEVEL"
    ):
        open_fields(files, ["wind"], "wind=u")
    with pytest.raises(ClimodeError, match="malformed level"):
        open_fields(files, VARS, "U850=u@high,V850=v,PSL=msl")


def test_one_source_for_two_variables_is_refused(flat, tmp_path):
    folder = era5(flat, tmp_path / "era5")
    with pytest.raises(ClimodeError, match="u would be read as both U850 and V850"):
        open_fields(str(folder / "era5_*.nc"), VARS, "U850=u,V850=u,PSL=msl")
    with pytest.raises(ClimodeError, match="u@850 would be read as both"):
        open_fields(str(folder / "era5_*.nc"), VARS, "U850=u@850,V850=u@850,PSL=msl")
    # two levels of one variable are two sources
    assert open_fields(str(folder / "era5_*.nc"), VARS, "U850=u@850,V850=u@500,PSL=msl").sizes["time"] == 5


def test_a_bare_name_in_vars_means_itself_everywhere(flat, tmp_path):
    path = tmp_path / "f.nc"
    flat.to_netcdf(path)
    np.testing.assert_array_equal(open_fields(path, VARS, "U850,V850=V850,PSL").U850.values, flat.U850.values)
    with pytest.raises(ClimodeError, match="names precip, which is not among the variables asked for"):
        open_fields(path, VARS, "precip")


# ---------------------------------------------------------------- grids


def test_a_variable_on_a_half_cell_shifted_grid_is_put_on_the_first_ones(flat, tmp_path):
    lat, lon = flat.lat.values[:-1] + 0.5, flat.lon.values - 0.5  # lat_p/lon_p: cell corners, one row fewer
    plane = 100000.0 + 20.0 * (lat[:, None] - 30) + 5.0 * (lon[None] - 280)  # linear: bilinear is exact
    ds = xr.Dataset(
        {
            "U850": flat.U850,
            "V850": flat.V850,
            "PSL": (("time", "lat_p", "lon_p"), np.broadcast_to(plane, (5, *plane.shape)), {"units": "Pa"}),
        },
        coords={
            "lat_p": ("lat_p", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon_p": ("lon_p", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
    )
    ds.to_netcdf(tmp_path / "own.nc")
    with pytest.warns(UserWarning, match="PSL is on a grid of its own .* interpolated bilinearly onto U850's grid"):
        got = open_fields(tmp_path / "own.nc")
    assert got.PSL.shape == flat.PSL.shape
    want = 100000.0 + 20.0 * (got.lat - 30) + 5.0 * (got.lon - 280)  # edge rows and columns included
    np.testing.assert_allclose(got.PSL.isel(time=4).values, want.transpose("lat", "lon").values, atol=0.01)
    np.testing.assert_array_equal(got.U850.values, flat.U850.values)
    ds.isel(lat_p=slice(0, 30)).to_netcdf(tmp_path / "half.nc")  # covers only the south
    with pytest.raises(ClimodeError, match=r"PSL is on a grid \(30 x .*\) that does not cover U850's"):
        open_fields(tmp_path / "half.nc")


def wrf(flat: xr.Dataset, path):
    """``flat`` as WRF writes it: dims Time, south_north, west_east; 2-D XLAT/XLONG (-180..180) with a
    Time dim; XTIME in minutes; U10, V10, PSFC. The points are the flat grid's, so nothing moves."""
    lon2, lat2 = np.meshgrid((flat.lon.values + 180) % 360 - 180, flat.lat.values)
    nt = flat.sizes["time"]
    dims = ("Time", "south_north", "west_east")
    attrs = {"coordinates": "XLONG XLAT XTIME"}
    ds = xr.Dataset(
        {
            new: (dims, flat[old].values, {**flat[old].attrs, **attrs})
            for new, old in (("U10", "U850"), ("V10", "V850"), ("PSFC", "PSL"))
        },
        coords={
            "XLAT": (dims, np.broadcast_to(lat2, (nt, *lat2.shape)), {"units": "degree_north"}),
            "XLONG": (dims, np.broadcast_to(lon2, (nt, *lon2.shape)), {"units": "degree_east"}),
            "XTIME": (
                "Time",
                flat.time.values * 1440.0,
                {"units": flat.time.attrs["units"].replace("days", "minutes"), "calendar": "noleap"},
            ),
        },
    )
    ds.to_netcdf(path)
    return path


@pytest.mark.slow
def test_wrf_output_is_regridded_and_forecast(flat, reference, tmp_path, capsys):
    path = wrf(flat, tmp_path / "wrfout_d01_2000-08-02_00:00:00")
    got = _forecast(capsys, [path], tmp_path / "f.nc", "--vars", "U850=U10,V850=V10,PSL=PSFC")
    _same_forecast(got, reference)


@pytest.mark.slow
def test_curvilinear_grids_are_regridded_with_the_method_stated(flat, tmp_path):
    lon2, lat2 = np.meshgrid(flat.lon.values, flat.lat.values)
    tilt = 4.0 * (lat2 - lat2.mean()) / np.ptp(lat2)  # a sheared grid: 2-D lat/lon that no 1-D axis holds
    curvy = xr.Dataset(
        {name: (("time", "y", "x"), flat[name].values, flat[name].attrs) for name in VARS},
        coords={
            "lat": (("y", "x"), lat2, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("y", "x"), lon2 - 10 + tilt, {"standard_name": "longitude", "units": "degrees_east"}),
        },
    )
    curvy.to_netcdf(tmp_path / "curvilinear.nc")
    with pytest.warns(
        UserWarning, match="curvilinear grid .* regridded to a regular 1-degree grid.* linear interpolation"
    ) as record:
        got = open_fields(tmp_path / "curvilinear.nc")
    assert len([w for w in record if "curvilinear" in str(w.message)]) == 1  # said once, not per variable
    assert got.U850.dims == ("time", "lat", "lon") and got.attrs["climode_sources"].endswith("curvilinear.nc")
    # a linear field is reproduced exactly inside the source points, NaN outside them
    linear = curvy.assign(PSL=(curvy.PSL * 0 + 100000.0 + 10 * curvy.lat + 3 * curvy.lon).assign_attrs(units="Pa"))
    linear.to_netcdf(tmp_path / "linear.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psl = open_fields(tmp_path / "linear.nc").PSL.isel(time=0)
    want = 100000.0 + 10 * psl.lat + 3 * psl.lon
    inside = np.isfinite(psl.values)
    assert 0.9 < inside.mean() < 1.0
    np.testing.assert_allclose(psl.values[inside], want.broadcast_like(psl).values[inside], atol=0.05)


# ---------------------------------------------------------------- time, units, messages


def test_a_radar_archive_with_time_as_a_scalar_data_variable(tmp_path):
    times = pd.date_range("2024-06-01", periods=4, freq="10min")
    for i, t in enumerate(times[::-1]):
        seconds = (t - pd.Timestamp("1970-01-01")).total_seconds()
        ds = xr.Dataset(
            {
                "precip": (("y", "x"), np.full((20, 24), float(i), "f4"), {"units": "kg m-2"}),
                "valid_time": ((), seconds, {"standard_name": "time", "units": "seconds since 1970-01-01"}),
            },
            coords={"y": np.arange(20.0), "x": np.arange(24.0)},
        )
        ds.to_netcdf(tmp_path / f"radar_{i}.nc")
    got = open_fields(tmp_path / "radar_*.nc", ["precip"])
    assert got.precip.dims == ("time", "y", "x") and got.sizes["time"] == 4
    assert [str(t) for t in got.time.values] == [str(t) for t in times]
    np.testing.assert_array_equal(got.precip.values[:, 0, 0], [3, 2, 1, 0])  # in time order, not file order


@pytest.mark.parametrize(
    "units, factor",
    [("km h-1", 1 / 3.6), ("km/h", 1 / 3.6), ("kph", 1 / 3.6), ("mph", 0.44704), ("kt", 1852 / 3600), ("cm s-1", 0.01)],
)
def test_wind_units_are_converted(flat, tmp_path, units, factor):
    ds = flat.assign(U850=(flat.U850 / factor).assign_attrs(units=units))
    ds.to_netcdf(tmp_path / "f.nc")
    with pytest.warns(UserWarning, match="converting"):
        got = open_fields(tmp_path / "f.nc")
    np.testing.assert_allclose(got.U850.values, flat.U850.values, rtol=1e-5, atol=1e-4)
    assert got.U850.attrs["units"] == "m s-1"


def test_pressure_in_kpa_and_inhg_is_converted(flat, tmp_path):
    for i, (units, factor) in enumerate((("kPa", 1000.0), ("inHg", 3386.389), ("N m-2", 1.0))):
        flat.assign(PSL=(flat.PSL / factor).assign_attrs(units=units)).to_netcdf(tmp_path / f"f{i}.nc")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = open_fields(tmp_path / f"f{i}.nc")
        np.testing.assert_allclose(got.PSL.values, flat.PSL.values, rtol=1e-5)


@pytest.mark.parametrize(
    "units, message", [("K", "measure another quantity than m s-1"), ("furlongs/fortnight", "cannot be read as m s-1")]
)
def test_units_that_cannot_be_converted_are_refused(flat, tmp_path, units, message):
    flat.assign(U850=flat.U850.assign_attrs(units=units)).to_netcdf(tmp_path / "f.nc")
    with pytest.raises(ClimodeError, match=f"U850 has units '{units}', which {message}"):
        open_fields(tmp_path / "f.nc")


def test_missing_times_and_latitudes_are_named_as_such(flat, tmp_path):
    time = flat.time.values.copy()
    time[2] = np.nan
    flat.assign_coords(time=("time", time, flat.time.attrs)).to_netcdf(tmp_path / "t.nc")
    with pytest.raises(ClimodeError, match=r"time variable 'time' has 1 missing value\(s\) .* at position\(s\) 2"):
        open_fields(tmp_path / "t.nc")
    lat = flat.lat.values.copy()
    lat[3] = np.nan
    flat.assign_coords(lat=("lat", lat, flat.lat.attrs)).to_netcdf(tmp_path / "l.nc")
    with pytest.raises(ClimodeError, match=r"coordinate lat of U850 has 1 missing value\(s\)"):
        open_fields(tmp_path / "l.nc")


def test_netcdf4_groups_and_grib_are_named(tmp_path):
    with netCDF4.Dataset(tmp_path / "groups.nc", "w") as nc:
        for group in ("atmosphere", "ocean"):
            nc.createGroup(group).createDimension("x", 2)
    with pytest.raises(
        ClimodeError, match=r"NetCDF4 group\(s\) /atmosphere, /ocean, which climode does not read; flatten"
    ):
        open_fields(tmp_path / "groups.nc")
    (tmp_path / "era5.grib").write_bytes(b"GRIB" + bytes(100))
    with pytest.raises(ClimodeError, match="is GRIB, which needs cfgrib .* grib_to_netcdf"):
        open_fields(tmp_path / "era5.grib")


def test_an_accumulation_is_said_to_be_one_and_read_as_a_rate_when_asked(tmp_path):
    times = pd.date_range("2024-06-01", periods=4, freq="10min")
    for i, t in enumerate(times):
        amount = np.full((20, 24), 0.5 * i, "f4")  # kg m-2 in 10 min: 3 mm h-1 per 0.5
        attrs = {
            "units": "kg m-2",
            "standard_name": "precipitation_amount",
            "cell_methods": "time: sum (interval: 10 minutes)",
        }
        xr.Dataset({"precip": (("y", "x"), amount, attrs)}, coords={"time": t}).to_netcdf(tmp_path / f"r{i}.nc")
    files = tmp_path / "r*.nc"
    with pytest.warns(
        UserWarning, match=r"precip is an accumulation \(kg m-2 per 10 min\).* --vars precip=precip:rate"
    ):
        as_is = open_fields(files, ["precip"])
    np.testing.assert_allclose(as_is.precip.values[:, 0, 0], [0, 0.5, 1.0, 1.5])
    rate = open_fields(files, ["precip"], "precip=precip:rate")
    np.testing.assert_allclose(rate.precip.values[:, 0, 0], [0, 3.0, 6.0, 9.0], rtol=1e-6)
    assert rate.precip.attrs["units"] == "mm h-1" and "cell_methods" not in rate.precip.attrs
    # without cell_methods, the record's time step is what each value accumulates over
    for i in range(4):
        with xr.open_dataset(tmp_path / f"r{i}.nc") as ds:
            plain = ds.load()
        del plain.precip.attrs["cell_methods"], plain.precip.attrs["standard_name"]
        plain.to_netcdf(tmp_path / f"p{i}.nc")
    np.testing.assert_allclose(
        open_fields(tmp_path / "p*.nc", ["precip"], "precip=precip:rate").precip.values[:, 0, 0],
        [0, 3, 6, 9],
        rtol=1e-6,
    )
    with pytest.raises(ClimodeError, match="asks for an accumulation as a rate, but"):
        open_fields(tmp_path / "r*.nc", ["precip"], "precip=precip:rate").pipe(lambda ds: ds)  # fine
        xr.Dataset(
            {"rain": (("time", "y", "x"), np.zeros((2, 20, 20)), {"units": "mm h-1"})}, coords={"time": times[:2]}
        ).to_netcdf(tmp_path / "rate.nc")
        open_fields(tmp_path / "rate.nc", ["rain"], "rain=rain:rate")


@pytest.mark.parametrize(
    "case, vars_, fragment",
    [
        ("levels", "U850=u@700,V850=v,PSL=msl", "no level 700 on pressure_level"),
        ("levels", "U850=u,V850=u,PSL=msl", "u would be read as both U850 and V850"),
        ("levels", "precip", "names precip, which is not among"),
        ("kelvin", None, "measure another quantity than m s-1"),
        ("nan-time", None, "time variable 'time' has 1 missing value"),
        ("nan-lat", None, "coordinate lat of U850 has 1 missing value"),
        ("groups", None, "NetCDF4 group(s) /atmosphere"),
        ("grib", None, "is GRIB, which needs cfgrib"),
    ],
)
def test_each_refusal_is_one_line_exit_2_and_leaves_nothing(flat, tmp_path, capsys, case, vars_, fragment):
    inputs = tmp_path / "in"
    inputs.mkdir()
    if case == "levels":
        era5(flat, inputs)
    elif case == "kelvin":
        flat.assign(U850=flat.U850.assign_attrs(units="K")).to_netcdf(inputs / "f.nc")
    elif case == "nan-time":
        flat.assign_coords(
            time=("time", np.r_[flat.time.values[:2], np.nan, flat.time.values[3:]], flat.time.attrs)
        ).to_netcdf(inputs / "f.nc")
    elif case == "nan-lat":
        flat.assign_coords(lat=("lat", np.r_[np.nan, flat.lat.values[1:]], flat.lat.attrs)).to_netcdf(inputs / "f.nc")
    elif case == "groups":
        with netCDF4.Dataset(inputs / "f.nc", "w") as nc:
            nc.createGroup("atmosphere").createDimension("x", 2)
    else:
        (inputs / "f.grib").write_bytes(b"GRIB" + bytes(100))
    before = sorted(p.name for p in inputs.iterdir())
    out = tmp_path / "out" / "f.nc"
    out.parent.mkdir()
    argv = ["--input", str(inputs / "*"), "--times", "60", "--output", str(out), *(["--vars", vars_] if vars_ else [])]
    assert forecast_main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in err, err
    assert sorted(p.name for p in inputs.iterdir()) == before and not any(out.parent.iterdir())


@pytest.mark.slow
def test_prepare_reads_era5_as_it_reads_the_flat_file(storm, tmp_path):
    """The gridded path of ``prepare`` and ``train --dataset gridded`` (``data.gridded.prepare``) on ERA5's
    layout writes the same samples as on the same fields written flat."""
    from climode.data.gridded import prepare

    truth = xr.open_dataset(storm / "storm_truth.nc", decode_times=False)[list(VARS)].load()  # 25 frames, 3-hourly
    truth.to_netcdf(tmp_path / "flat.nc")
    era5(truth, tmp_path / "era5")
    stores = {}
    for name, source, mapping in (
        ("flat", tmp_path / "flat.nc", "U850,V850,PSL"),
        ("era5", tmp_path / "era5" / "era5_*.nc", "U850=u@850,V850=v@850,PSL=msl"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the short record's split, said as a warning
            stores[name] = xr.open_zarr(prepare(str(source), tmp_path / f"{name}.zarr", mapping, 2, 1)).load()
    assert stores["flat"].sizes["sample"] > 0
    np.testing.assert_allclose(stores["era5"].frames.values, stores["flat"].frames.values, atol=1e-3)
    hours = {name: store.hours.values - store.hours.values.min() for name, store in stores.items()}  # own calendars
    np.testing.assert_array_equal(hours["era5"], hours["flat"])
