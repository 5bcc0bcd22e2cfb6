"""``python -m climode.evaluate --forecast F --truth T`` on truths (and forecasts) that are wrong as a class:
another calendar, part of the domain, another grid, zarr stores, no common times or variables. One real
forecast (``climode.data.cases`` + ``climode.forecast``, as ``make demo``) per module; the variants are
derived from it with xarray."""

import datetime
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import assert_user_error, run_module

from climode.cli.evaluate import main as evaluate_main
from climode.geo.storms import INTENSITY_KM, KM_PER_DEG
from climode.io.write import lead_layout, write_netcdf

pytestmark = pytest.mark.slow  # one forecast for the module, then commands
DECODE = {"decode_times": xr.coders.CFDatetimeCoder(use_cftime=True), "decode_timedelta": False}
TIME = {"time": {"units": "hours since 2000-01-01", "dtype": "float64"}}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """The demo's forecast (NetCDF and zarr, 3 leads from 2000-08-04 09:00 noleap), its truth from the
    reference time on (truth.nc) and the scores against it."""
    folder = tmp_path_factory.mktemp("evaluate_inputs")
    made = run_module("climode.data.cases", "--out", folder, "--inputs", "0,9,21,42,57", "--until", "72")
    assert made.returncode == 0, made.stderr
    args = ("--input", "storm.nc", "--times", "60,63,66", "--zarr", "storm_forecast.zarr")
    made = run_module("climode.forecast", *args, cwd=folder)
    assert made.returncode == 0, made.stderr
    with xr.open_dataset(folder / "storm_truth.nc", **DECODE) as full:
        truth = full[["U850", "V850", "PSL"]].isel(time=slice(19, None)).load()  # 57 h (the reference) on
    truth.to_netcdf(folder / "truth.nc", encoding=TIME)
    paths = {
        "forecast": folder / "storm_forecast.nc",
        "zarr": folder / "storm_forecast.zarr",
        "truth": folder / "truth.nc",
    }
    scores = evaluate(paths["forecast"], paths["truth"], folder / "scores.json")
    assert scores.returncode == 0 and "warning" not in scores.stderr, scores.stderr
    return {**paths, "folder": folder, "fields": truth, "scores": json.loads((folder / "scores.json").read_text())}


def evaluate(forecast: Path, truth: Path, target: Path | None = None) -> subprocess.CompletedProcess:
    """The command, as a user runs it (its warnings are printed)."""
    return run_module(
        "climode.evaluate", "--forecast", forecast, "--truth", truth, *(("--json", target) if target else ())
    )


def in_process(capsys, forecast: Path, truth: Path) -> subprocess.CompletedProcess:
    """The command run in this process: quicker, for refusals (pytest records warnings, so none print)."""
    code = evaluate_main(["--forecast", str(forecast), "--truth", str(truth)])
    out = capsys.readouterr()
    return subprocess.CompletedProcess([], code, out.out, out.err)


def variant(demo: dict, name: str, ds: xr.Dataset) -> Path:
    path = demo["folder"] / name
    ds.to_netcdf(path, encoding=TIME)
    return path


def warnings_of(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def test_truth_in_another_calendar(demo, tmp_path, capsys):
    """A 360_day truth against a noleap forecast: compared at the stamps both calendars have, with one
    warning; refused in one line naming both calendars when no stamp matches."""
    in_360 = demo["fields"].convert_calendar("360_day", align_on="date")
    result = evaluate(demo["forecast"], variant(demo, "t360.nc", in_360), tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    assert warnings_of(result) == [
        "warning: the truth's calendar (360_day) is not the forecast's (noleap): times matched by their date "
        "stamps (year to second), 3 forecast time(s) scored"
    ]
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["methods"] == demo["scores"]["methods"] and scores["storm"] == demo["scores"]["storm"]
    late = in_360.assign_coords(time=in_360["time"] + datetime.timedelta(days=1))  # a conversion off by a day
    result = in_process(capsys, demo["forecast"], variant(demo, "t360_late.nc", late))
    assert_user_error(result, "no forecast time is in the truth", "noleap", "360_day", "date stamps")


def test_truth_on_part_of_the_domain(demo, tmp_path):
    """lat 0-14 of a 0-60 forecast: one warning with the share, RMSE of that part; the storm (25N) is
    not in it, so the storm scores are left out with the reason, in the table and the JSON."""
    part = demo["fields"].sel(lat=slice(0.0, 14.0))
    result = evaluate(demo["forecast"], variant(demo, "t_part.nc", part), tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    covers, storm = warnings_of(result)
    assert "lat 0 to 14" in covers and "covers 28.3% of the forecast domain" in covers and "lat 0 to 60" in covers
    assert "left out (NaN) at 3 of 3 lead time(s)" in storm and "within 300 km of its edge" in storm
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["coverage"]["share"] == pytest.approx(0.283, abs=1e-3)
    assert scores["storm"]["left_out"]["lead_times"] == [3.0, 6.0, 9.0]
    for method in scores["methods"].values():
        assert all(v is None for name in ("track_km", "psl_min_abs_hpa", "wind_max_abs_ms") for v in method[name])
        assert all(v is not None for values in method["rmse"].values() for v in values)
    table = result.stdout.splitlines()[-4:]
    assert [row.split()[7:] for row in table] == [["-"] * 6] * 4  # the storm columns


def test_storm_leaving_the_covered_part(demo, tmp_path):
    """A truth that ends north of the storm: the lead time at which the forecast's storm comes within
    INTENSITY_KM of that edge loses its storm scores, for both methods; the others are as with the full truth."""
    full = demo["scores"]
    tracks = full["storm"]["tracks"]
    model_lat = [row["lat"] for row in tracks["vid-ode"]]
    clear = max([row["lat"] for row in tracks["truth"]] + model_lat[:-1])
    edge = np.ceil((clear + INTENSITY_KM / KM_PER_DEG + 0.05) * 4) / 4  # the first latitude the truth lacks
    assert (edge - model_lat[-1]) * KM_PER_DEG < INTENSITY_KM  # the forecast's storm nears the edge at the last lead
    result = evaluate(
        demo["forecast"],
        variant(demo, "t_north.nc", demo["fields"].sel(lat=slice(None, edge - 0.1))),
        tmp_path / "s.json",
    )
    assert result.returncode == 0, result.stderr
    assert len(warnings_of(result)) == 2 and "left out (NaN) at 1 of 3 lead time(s)" in warnings_of(result)[1]
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["storm"]["left_out"]["lead_times"] == [9.0]
    for name, method in scores["methods"].items():
        for score in ("track_km", "psl_min_abs_hpa", "wind_max_abs_ms"):
            assert method[score][:2] == pytest.approx(full["methods"][name][score][:2]) and method[score][2] is None


def test_truth_on_another_grid(demo, tmp_path):
    """A 1-degree truth against the 0.25-degree forecast: interpolated, one warning naming both grids
    (and one with the share its centres span)."""
    coarse = demo["fields"].coarsen(lat=4, lon=4, boundary="trim").mean()
    result = evaluate(demo["forecast"], variant(demo, "t_coarse.nc", coarse), tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    grid, covers = warnings_of(result)
    assert "60 x 160 cells of 1x1 degrees" in grid and "241 x 640 cells of 0.25x0.25 degrees" in grid
    assert "interpolated bilinearly" in grid and "covers 97.6%" in covers
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["methods"]["vid-ode"]["track_km"][0] < 100.0


def test_zarr_stores(demo, tmp_path):
    """The forecast's own zarr store as --forecast and a zarr truth: read as the NetCDF files are, with no
    warning about their metadata."""
    store = tmp_path / "truth.zarr"
    demo["fields"].to_zarr(store, consolidated=False, zarr_format=2)
    result = evaluate(demo["zarr"], store, tmp_path / "s.json")
    assert result.returncode == 0 and result.stderr.count("warning") == 0, result.stderr
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["methods"]["vid-ode"]["track_km"] == pytest.approx(demo["scores"]["methods"]["vid-ode"]["track_km"])
    assert scores["methods"]["vid-ode"]["rmse"]["PSL"] == pytest.approx(
        demo["scores"]["methods"]["vid-ode"]["rmse"]["PSL"]
    )


def test_refusals(demo, tmp_path, capsys):
    """What cannot be compared, each in one line: no overlap, no common time, no common variable, a
    directory that is no zarr store, a forecast in the lead layout, a truth without a time axis."""
    fields = demo["fields"]
    plain = fields.rename(U850="a", V850="b", PSL="c")
    for name in plain.data_vars:
        plain[name].attrs = {}
    with xr.open_dataset(demo["forecast"], **DECODE) as forecast:
        lead = write_netcdf(lead_layout(forecast.load()), tmp_path / "lead.nc", calendar="noleap")
    cases = [
        (
            "south.nc",
            fields.assign_coords(lat=fields["lat"] - 90.0),
            ("does not overlap", "lat -90 to -30", "lat 0 to 60"),
        ),
        ("ref_only.nc", fields.isel(time=[0]), ("no forecast time is in the truth", "2000-08-04 09:00:00 (1 times)")),
        ("other_names.nc", plain, ("variable 'U850' not found", "data variables there: a, b, c")),
        (
            "static.nc",
            fields.isel(time=0, drop=True).drop_encoding(),
            ("the truth's U850 has dims (lat, lon)", "(time, lat, lon)"),
        ),
    ]
    for name, ds, fragments in cases:
        path = demo["folder"] / name
        ds.to_netcdf(path, encoding=TIME if "time" in ds.dims else None)
        assert_user_error(in_process(capsys, demo["forecast"], path), *fragments)
    assert_user_error(in_process(capsys, tmp_path, demo["truth"]), "is a directory but not a zarr store", "zarr")
    assert_user_error(in_process(capsys, demo["forecast"], tmp_path), "is a directory but not a zarr store")
    assert_user_error(in_process(capsys, lead, demo["truth"]), "lead layout (init_time, lead_time)")
