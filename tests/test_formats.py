"""Output formats as a registry (``climode.outputs.WRITERS``): ``climode.write`` chooses by name or
suffix, refuses an unknown one naming the choices, and a format added to the registry alone is
written by the library and by ``climode forecast --output``."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import climode
from climode import ClimodeError
from climode.cli.forecast import main as forecast_main
from climode.outputs import WRITERS, Format

DECODE = xr.coders.CFDatetimeCoder(use_cftime=True)


@pytest.fixture(scope="module")
def storm(storm: Path) -> Path:
    """storm.nc of the synthetic storm (conftest's ``storm``)."""
    return storm / "storm.nc"


def _forecast(start_hour: int = 60) -> xr.Dataset:
    """A small forecast as ``climode.forecast`` returns it: 2 times 3 h apart, 4 x 5 grid, noleap."""
    times = xr.date_range("2001-09-01", periods=2, freq="3h", use_cftime=True, calendar="noleap")
    times = times.shift(start_hour // 3, "3h")
    rng = np.random.default_rng(start_hour)
    data = {v: (("time", "lat", "lon"), rng.normal(size=(2, 4, 5))) for v in ("U850", "PSL")}
    coords = {
        "time": times,
        "lat": np.arange(4.0),
        "lon": np.arange(5.0),
        "lead_time": ("time", [3.0, 6.0]),
        "forecast_reference_time": times[0] - (times[1] - times[0]),
    }
    return xr.Dataset(data, coords=coords)


def _write_csv(ds: xr.Dataset, path: Path, *, overwrite: bool, **options) -> None:
    """The toy format: the fields as a table, one row per time and cell."""
    ds[["U850", "PSL"]].to_dataframe().to_csv(path)


@pytest.fixture
def csv(monkeypatch) -> Format:
    """A ".csv" format in the registry for the test, gone after it."""
    fmt = Format("csv", (".csv",), _write_csv)
    monkeypatch.setitem(WRITERS, "csv", fmt)
    return fmt


def test_write_chooses_netcdf_and_zarr_by_suffix(tmp_path):
    ds = _forecast()
    assert climode.write(ds, tmp_path / "f.nc") == tmp_path / "f.nc"
    assert climode.write(ds, tmp_path / "f.zarr") == tmp_path / "f.zarr"
    with xr.open_dataset(tmp_path / "f.nc", decode_times=DECODE) as back:
        assert back.U850.dtype == np.float32 and back.time.dt.calendar == "noleap"  # the data's calendar
    assert (tmp_path / "f.zarr" / ".zmetadata").is_file()
    climode.write(_forecast(66), tmp_path / "f.zarr", append=True)
    assert xr.open_zarr(tmp_path / "f.zarr", decode_times=DECODE).sizes["time"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nc", "f.zarr"]  # nothing left beside


def test_write_by_name_whatever_the_suffix(tmp_path):
    path = climode.write(_forecast(), tmp_path / "runs.store", "zarr-lead")
    back = xr.open_zarr(path, decode_times=DECODE, decode_timedelta=True)
    assert dict(back.sizes) == {"init_time": 1, "lead_time": 2, "lat": 4, "lon": 5}


def test_an_existing_output_is_refused_unless_overwrite(tmp_path):
    path = climode.write(_forecast(), tmp_path / "f.nc")
    with pytest.raises(ClimodeError, match="exists"):
        climode.write(_forecast(63), path)
    climode.write(_forecast(63), path, overwrite=True)


def test_an_unknown_suffix_or_name_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ClimodeError) as caught:
        climode.write(_forecast(), tmp_path / "f.txt")
    message = str(caught.value)
    assert "f.txt" in message and ".nc (netcdf)" in message and ".zarr (zarr)" in message and ".png (png)" in message
    with pytest.raises(ClimodeError, match="unknown output format 'grib'; choose one of netcdf, zarr"):
        climode.write(_forecast(), tmp_path / "f.nc", "grib")
    assert list(tmp_path.iterdir()) == []


def test_a_format_added_to_the_registry_is_written_by_write(tmp_path, csv):
    assert climode.write(_forecast(), tmp_path / "f.csv") == tmp_path / "f.csv"
    table = pd.read_csv(tmp_path / "f.csv")
    assert list(table.columns)[:3] == ["time", "lat", "lon"] and {"U850", "PSL"} <= set(table.columns)
    assert len(table) == 2 * 4 * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]  # built beside, swapped in


@pytest.mark.slow
def test_a_format_added_to_the_registry_is_the_commands_output(storm, tmp_path, csv, capsys):
    argv = ["--input", storm, "--times", "60,63", "--output", tmp_path / "f.csv", "--zarr", tmp_path / "f.zarr"]
    assert forecast_main([str(a) for a in argv]) == 0
    assert f"wrote {tmp_path / 'f.csv'}" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "f.csv")
    assert {"U850", "PSL"} <= set(table.columns) and table["time"].nunique() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.zarr"]


@pytest.mark.slow
def test_the_registry_loads_no_maps():
    code = "import sys, climode.outputs; print(any(m in sys.modules for m in ('cartopy', 'matplotlib')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
