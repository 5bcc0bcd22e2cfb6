"""Property test of the input path (hypothesis): small NetCDF files with random grids, coordinate
orders and names, calendars, time units, fill values, units and NaN patterns are either forecast
with finite values or refused with one ``error:`` line (exit 2); never a traceback, never a file
half-written."""

import contextlib
import io
import tempfile
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from climode.cli.forecast import main as forecast_main

CALENDARS = ("standard", "gregorian", "proleptic_gregorian", "noleap", "365_day", "all_leap", "360_day", "julian")


@st.composite
def netcdf_inputs(draw) -> dict:
    """The recipe of one input file (``_write`` makes it)."""
    ny, nx = draw(st.integers(4, 40)), draw(st.integers(4, 48))
    gaps = draw(st.lists(st.sampled_from([1, 3, 6, 9, 12]), min_size=0, max_size=5))
    return {
        "ny": ny,
        "nx": nx,
        "spacing": draw(st.sampled_from([0.5, 1.0, 1.25, 2.0])),
        "lat0": draw(st.floats(-70, 40)),
        "lon0": draw(st.floats(-180, 350)),
        "lat_descending": draw(st.booleans()),
        "lat_name": draw(st.sampled_from(["lat", "latitude"])),
        "lon_name": draw(st.sampled_from(["lon", "longitude"])),
        "order": draw(st.sampled_from(["time,lat,lon", "time,lon,lat", "lat,lon,time"])),
        "hours": np.cumsum([0, *gaps]).tolist(),
        "time_units": draw(st.sampled_from(["hours since 2000-01-01", "days since 1979-01-01 00:00", "none"])),
        "calendar": draw(st.sampled_from(CALENDARS)),
        "dtype": draw(st.sampled_from(["f4", "f8", "packed"])),
        "fill": draw(st.sampled_from([None, 1e20, -999.0])),
        "psl_units": draw(st.sampled_from(["Pa", "hPa", "none"])),
        "wind_units": draw(st.sampled_from(["m s-1", "m/s", "none", "km h-1", "knots", "K"])),
        "levels": draw(st.sampled_from([None, None, [850.0], [1000.0, 850.0, 500.0], [1000.0, 925.0]])),
        "time_name": draw(st.sampled_from(["time", "valid_time"])),
        "missing": draw(st.sampled_from(["none", "speckle", "block", "last-frame", "one-variable", "everything"])),
        "drop": draw(st.sampled_from([None, None, None, "V850"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _fields(r: dict) -> dict[str, np.ndarray]:
    """U850, V850 (m s-1) and PSL (Pa) as (time, lat, lon): a vortex drifting west on a random
    background, with the recipe's missing cells as NaN."""
    rng = np.random.default_rng(r["seed"])
    t, y, x = len(r["hours"]), r["ny"], r["nx"]
    yy, xx = np.mgrid[0:y, 0:x].astype(float)
    fields = {name: np.empty((t, y, x)) for name in ("U850", "V850", "PSL")}
    for i, hour in enumerate(r["hours"]):
        cy, cx = y / 2, x / 2 - hour / 24
        dy, dx = yy - cy, xx - cx
        r2 = (dx**2 + dy**2) / max(2.0, (min(x, y) / 6) ** 2)
        fields["PSL"][i] = 101000 - 3000 * np.exp(-r2) + rng.normal(0, 50, (y, x))
        fields["U850"][i] = -20 * dy * np.exp(-r2) / 3 + rng.normal(0, 1, (y, x))
        fields["V850"][i] = 20 * dx * np.exp(-r2) / 3 + rng.normal(0, 1, (y, x))
    mask = np.zeros((t, y, x), bool)
    if r["missing"] == "speckle":
        mask = rng.random((t, y, x)) < 0.1
    elif r["missing"] == "block":
        mask[:, : y // 3, : x // 3] = True
    elif r["missing"] in ("last-frame", "one-variable"):
        mask[-1, y // 4 : y // 2, x // 4 : x // 2] = True
    elif r["missing"] == "everything":
        mask[:] = True
    for name, values in fields.items():
        if r["missing"] != "one-variable" or name == "PSL":
            values[mask] = np.nan
    if r["drop"]:
        del fields[r["drop"]]
    return fields


def _write(r: dict, path: Path) -> None:
    """The recipe's file, written with netCDF4 (attributes as a user's tool would leave them)."""
    fields = _fields(r)
    lat = r["lat0"] + r["spacing"] * np.arange(r["ny"])
    lon = r["lon0"] + r["spacing"] * np.arange(r["nx"])
    if r["lat_descending"]:
        lat = lat[::-1]
        fields = {k: v[:, ::-1] for k, v in fields.items()}
    dims = {"time": r.get("time_name", "time"), "lat": r["lat_name"], "lon": r["lon_name"]}
    order = [dims[d] for d in r["order"].split(",")]
    levels = r.get("levels")
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension(dims["time"], None)
        nc.createDimension(dims["lat"], r["ny"])
        nc.createDimension(dims["lon"], r["nx"])
        if levels:  # winds on pressure levels (ERA5), 850 hPa holding the fields
            nc.createDimension("pressure_level", len(levels))
            nc.createVariable("pressure_level", "f8", ("pressure_level",))[:] = levels
            nc["pressure_level"].units = "hPa"
        time = nc.createVariable(dims["time"], "f8", (dims["time"],))
        per = 24.0 if r["time_units"].startswith("days") else 1.0
        time[:] = np.asarray(r["hours"], float) / per + (0 if r["time_units"] == "none" else 10)
        if r["time_units"] != "none":
            time.units = r["time_units"]
            time.calendar = r["calendar"]
        nc.createVariable(dims["lat"], "f8", (dims["lat"],))[:] = lat
        nc[dims["lat"]].units = "degrees_north"
        nc.createVariable(dims["lon"], "f8", (dims["lon"],))[:] = lon
        nc[dims["lon"]].units = "degrees_east"
        for name, values in fields.items():
            units = r["psl_units"] if name == "PSL" else r["wind_units"]
            if name == "PSL" and units == "hPa":
                values = values / 100
            data = np.moveaxis(values, (0, 1, 2), [order.index(d) for d in dims.values()])
            var_dims = order
            if levels and name != "PSL":
                var_dims = ["pressure_level", *order]
                data = np.stack([data * (1.0 if p == 850 else 1.1) for p in levels])
            packed = r["dtype"] == "packed"
            var = nc.createVariable(
                name, "i2" if packed else r["dtype"], var_dims, fill_value=-32767 if packed else r["fill"]
            )
            if packed:
                lo, hi = np.nanmin(values) if np.isfinite(values).any() else 0.0, np.nanmax(values)
                var.scale_factor = max(float(hi - lo), 1.0) / 60000 if np.isfinite(hi) else 1.0
                var.add_offset = float(lo + hi) / 2 if np.isfinite(hi) else 0.0
            var[:] = np.ma.masked_invalid(data)
            if units != "none":
                var.units = units
            if units in ("km h-1", "knots") and name != "PSL":
                var[:] = np.ma.masked_invalid(data * (3.6 if units == "km h-1" else 3600 / 1852))


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = forecast_main(argv)
    return code, err.getvalue()


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(netcdf_inputs())
def test_any_small_file_is_forecast_or_refused_in_one_line(recipe):
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "in.nc", Path(tmp) / "out.nc"
        _write(recipe, path)
        argv = ["--input", str(path), "--times", f"{recipe['hours'][-1] + 3:g}", "--output", str(out)]
        if recipe["time_units"] == "none":
            argv.append("--time-in-hours")
        code, err = _run(argv)  # an exception other than a user error fails the test with its traceback
        assert code in (0, 2), err
        event(f"exit {code}" + (f": {err.split('error: ')[-1][:60]}" if code else ""))
        if code == 2:
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, err
            assert [p.name for p in Path(tmp).iterdir()] == ["in.nc"]  # nothing written, nothing left
        else:
            with xr.open_dataset(out) as forecast:
                for name in ("U850", "V850", "PSL"):
                    assert np.isfinite(forecast[name].values).all(), name


def test_cells_at_netcdfs_default_fill_are_missing(tmp_path):
    """A float variable without ``_FillValue`` whose unset cells hold netCDF's default fill (9.97e36)
    reads those cells as NaN, not as winds of 1e36 m/s."""
    from climode.io.fields import open_fields

    recipe = {
        **dict(ny=12, nx=12, spacing=1.0, lat0=10.0, lon0=280.0, lat_descending=False, lat_name="lat"),
        **dict(lon_name="lon", order="time,lat,lon", hours=[0, 6], time_units="hours since 2000-01-01"),
        **dict(calendar="noleap", dtype="f4", fill=None, psl_units="Pa", wind_units="m s-1", missing="block"),
        **dict(drop=None, seed=0),
    }
    _write(recipe, tmp_path / "in.nc")
    with netCDF4.Dataset(tmp_path / "in.nc") as nc:
        assert "_FillValue" not in nc["U850"].ncattrs() and nc["U850"][:].mask.any()
    ds = open_fields(tmp_path / "in.nc").load()
    for name in ("U850", "V850", "PSL"):
        values = ds[name].values
        assert np.isnan(values).mean() == pytest.approx(1 / 9, abs=0.02) and np.nanmax(np.abs(values)) < 2e5
