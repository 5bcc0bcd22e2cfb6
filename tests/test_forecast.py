"""The forecast command and API: times, regridding, stitching, CF output, bad input."""

import importlib
from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr
from conftest import ROOT, Persist, assert_user_error, command_error, run_module
from torch import nn

import climode
from climode.checkpoint import Card, Checkpoint, save_model
from climode.cli.forecast import main as forecast_main
from climode.data.cases import first_case, write_case
from climode.data.synthetic import make_corpus
from climode.errors import ClimodeError
from climode.forecasting import bundled_checkpoint
from climode.geo.tiles import blend_weights, windows
from climode.model import ModelConfig, VidODE
from climode.normalise import Normalised
from climode.prediction import compose_native, predict
from climode.times import parse_times

GEOCAT = ROOT.parent / "shared" / "data" / "geocat_storm_500hPa"
VARIABLES = ["U850", "V850", "PSL"]
STATS = {
    "U850": {"method": "minmax", "min": -60.0, "max": 60.0},
    "V850": {"method": "minmax", "min": -60.0, "max": 60.0},
    "PSL": {"method": "minmax", "min": 93000.0, "max": 103000.0},
}
ORIGIN = cftime.DatetimeNoLeap(2000, 8, 1)


def persist_checkpoint(tmp_path, resolution=1.0, tile=(60, 160)) -> Checkpoint:
    path = tmp_path / "persist.bin"
    path.write_bytes(b"stand-in")
    card = Card(
        variables=tuple(VARIABLES),
        normalisation=STATS,
        time_units="hours",
        grid={"resolution": resolution, "tile_shape": list(tile)},
    )
    return Checkpoint(Persist(), card, path)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A synthetic storm at 0.25 degrees: inputs at 0, 9, 21, 42, 57 h, truth to 72 h."""
    ds, tracks = make_corpus(1, 3)
    found = first_case(ds, tracks, (0, 9, 21, 42, 57), 72)
    out = tmp_path_factory.mktemp("case")
    write_case(out, found)
    return out


# ------------------------------------------------------------------ times


def test_times_accept_hours_ranges_and_dates_in_the_files_calendar():
    assert parse_times("60,63,66", ORIGIN, "noleap") == [60, 63, 66]
    assert parse_times("60:72:3", ORIGIN, "noleap") == [60, 63, 66, 69, 72]
    assert parse_times("60:66", ORIGIN, "noleap") == [60, 63, 66]
    # 28 Feb -> 1 Mar is one day in noleap, two in the standard calendar
    feb = cftime.DatetimeNoLeap(2001, 2, 28)
    assert parse_times("2001-03-01 06:00", feb, "noleap") == [30.0]
    assert parse_times("2001-03-01T06:00", cftime.DatetimeGregorian(2000, 2, 28), "standard") == [(366 + 1) * 24 + 6.0]
    with pytest.raises(ClimodeError, match="not a valid date in the noleap calendar"):
        parse_times("2001-02-29", feb, "noleap")
    for bad in ("sixty", "60,,63", "72:60:3", "nan"):
        with pytest.raises(ClimodeError):
            parse_times(bad, ORIGIN, "noleap")


# ------------------------------------------------------------------ stitching


@pytest.mark.parametrize("n,size,overlap", [(10, 10, 2), (25, 10, 2), (160, 60, 7), (61, 60, 7)])
def test_windows_cover_the_grid_with_the_overlap(n, size, overlap):
    starts = windows(n, size, overlap)
    assert starts[0] == 0 and starts[-1] + min(size, n) == n
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))
    weights = blend_weights(size, overlap)
    assert weights.min() > 0 and weights.max() == 1


def test_stitched_windows_reproduce_a_field_exactly():
    """With a model that copies its last input, stitching many windows must give the input back."""
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(3, 2, 70, 150)).astype(np.float32)
    out = predict(Persist(), frames, np.array([0.0, 1, 2]), np.array([3.0, 4]), tile_shape=(32, 48))["frames"]
    assert out.shape == (2, 2, 70, 150)
    np.testing.assert_allclose(out[1], frames[-1], atol=1e-5)


def test_native_composition_moves_fine_detail_by_the_coarse_flow():
    """A 1-degree flow of one cell eastward: a 0.25-degree spike, finer than the model's grid, moves 4
    native cells on top of the model's own (here uniform) frame, unsmoothed; a missing native cell is
    filled (and flagged) as the model fills it."""
    coarse = xr.Dataset(coords={"lat": np.arange(10) + 0.5, "lon": np.arange(20) + 200.5})
    native = xr.Dataset(coords={"lat": np.arange(40) * 0.25 + 0.125, "lon": np.arange(80) * 0.25 + 200.125})
    frames = np.zeros((1, 1, 40, 80), np.float32)
    frames[0, 0, 20, 40] = 1.0
    frames[0, 0, 5, 5] = np.nan
    flows = np.zeros((2, 2, 2, 10, 20), np.float32)
    flows[:, 0, 0] = -1.0  # backward warp of the first source: each cell samples one coarse cell to its west
    parts = {
        "flows": flows,
        "weight": np.ones((2, 1, 10, 20), np.float32),
        "sources": np.array([[0, 0], [-1, -1]]),
        "frames": np.full((2, 1, 10, 20), 5.0, np.float32),  # the model's forecast on its grid
    }
    out, share = compose_native(Normalised(nn.Identity(), None, ["x"]), parts, frames, coarse, native)
    assert out.shape == (2, 1, 40, 80) and np.isfinite(out).all()
    assert np.unravel_index(out[0, 0].argmax(), (40, 80)) == (20, 44) and out[0, 0, 20, 44] > 5.9
    assert np.unravel_index(out[1, 0].argmax(), (40, 80)) == (20, 48)  # the second query composed from the first
    assert out[0, 0, 2:12, 60:] == pytest.approx(5.0, abs=1e-5)  # away from the spike: the model's frame
    assert share[0, 0, 5, 9] < 0.5 and share[0, 0, 30, 30] == pytest.approx(1.0)  # the filled cell, moved


# ------------------------------------------------------------------ API


@pytest.mark.slow
def test_forecast_regrids_to_the_model_grid_and_back(case, tmp_path):
    """0.25-degree input, 1-degree model: a persistence model gives back the last input, smoothed."""
    ds = climode.open_fields(case / "storm.nc").load()
    out = climode.forecast(ds, "60,63", checkpoint=persist_checkpoint(tmp_path))
    assert out.PSL.shape == (2, 241, 640) and np.array_equal(out.lat, ds.lat)
    assert out.time.values[0] == ds.time.values[0] + (ds.time.values[-1] - ds.time.values[0]) * 60 / 57
    np.testing.assert_allclose(out.lead_time, [3, 6])
    assert out.forecast_reference_time.values.item() == ds.time.values[-1]
    last = ds.PSL.isel(time=-1)
    error = np.abs(out.PSL.isel(time=0) - last)
    assert float(error.median()) < 20  # Pa: a smooth background survives the 1-degree round trip
    assert np.isfinite(out.PSL).all()  # border cells included
    assert out.PSL.attrs["units"] == "Pa" and out.attrs["climode_input_times"].startswith("2000-")


@pytest.mark.slow
def test_forecast_is_tiled_when_the_domain_is_larger_than_a_tile(case, tmp_path):
    ds = climode.open_fields(case / "storm.nc").load()
    small_tiles = climode.forecast(ds, [60], checkpoint=persist_checkpoint(tmp_path, tile=(24, 40)))
    one_tile = climode.forecast(ds, [60], checkpoint=persist_checkpoint(tmp_path))
    np.testing.assert_allclose(small_tiles.PSL, one_tile.PSL, atol=0.5)


def test_forecast_refuses_times_before_the_first_input_and_missing_variables(case, tmp_path):
    ds = climode.open_fields(case / "storm.nc").load()
    ckpt = persist_checkpoint(tmp_path)
    with pytest.raises(ClimodeError, match="before the first input frame"):
        climode.forecast(ds, "-3,60", checkpoint=ckpt)
    with pytest.raises(ClimodeError, match="lacks PSL"):
        climode.forecast(ds.drop_vars("PSL"), "60", checkpoint=ckpt)
    with pytest.raises(ClimodeError, match="not a frame of the input"):
        climode.forecast(ds, "60", checkpoint=ckpt, input_times="0,10")


def test_the_accessor_takes_what_forecast_takes(monkeypatch):
    """ds.climode.forecast has climode.forecast's parameters, names and defaults (checkpoint=,
    allow_long_leads=, ...) and passes them on; the old model= still works, with a FutureWarning
    naming checkpoint=."""
    import inspect
    import warnings

    from climode.accessor import ClimodeAccessor

    api = inspect.signature(climode.forecast).parameters
    method = inspect.signature(ClimodeAccessor.forecast).parameters
    assert [(n, p.default) for n, p in api.items() if n != "ds"] == [
        (n, p.default) for n, p in method.items() if n not in ("self", "model")
    ]
    calls = []
    monkeypatch.setattr("climode.forecasting.forecast", lambda ds, times, **kw: calls.append((ds, times, kw)))
    ds = xr.Dataset({"PSL": ("time", [1.0])})
    given = dict(input_times="0", device="cpu", mask_filled=True, allow_long_leads=True, members=3, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.climode.forecast("60", checkpoint="a.safetensors", **given)
        ds.climode.forecast("60", "a.safetensors", **given)  # positional, as model was
    with pytest.warns(FutureWarning, match="checkpoint="):
        ds.climode.forecast("60", model="a.safetensors", **given)
    assert all(c[0] is ds and c[1] == "60" and c[2] == {"checkpoint": "a.safetensors", **given} for c in calls)
    assert len(calls) == 3
    with pytest.raises(TypeError, match="not both"):
        ds.climode.forecast("60", checkpoint="a.safetensors", model="b.safetensors")


# ------------------------------------------------------------------ the command, with the bundled model


def _open(path: Path) -> xr.Dataset:
    return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


@pytest.mark.slow
def test_command_writes_cf_netcdf_zarr_and_appends(case, tmp_path):
    result = run_module(
        "climode.forecast",
        "--input",
        case / "storm.nc",
        "--times",
        "60,63,66",
        "--zarr",
        tmp_path / "f.zarr",
        "--plot",
        tmp_path / "map.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = _open(tmp_path / "storm_forecast.nc")
    assert out.time.values[0].calendar == "noleap" and list(out.lead_time.values) == [3, 6, 9]
    assert out.PSL.attrs["standard_name"] == "air_pressure_at_mean_sea_level" and out.PSL.dtype == np.float32
    assert out.lat.attrs["units"] == "degrees_north" and out.lead_time.attrs["standard_name"] == "forecast_period"
    assert out.attrs["climode_checkpoint"].endswith("cam5-synthetic.safetensors")
    assert len(out.attrs["climode_checkpoint_sha256"]) == 64 and out.attrs["climode_version"] == climode.__version__
    said = out.attrs["climode_model_training"]  # the bundled model's world, resolution, updates and hardware
    assert all(w in said for w in ("synthetic", "no real data", "1 degree", "1900", "no GPU")), said
    assert out.PSL.encoding["zlib"] and np.isfinite(out.PSL).all()
    assert (tmp_path / "map.png").stat().st_size > 10_000
    truth = _open(case / "storm_truth.nc").sel(time=out.time)
    assert float(np.abs(out.PSL - truth.PSL).mean()) < 300  # Pa: a forecast, not noise

    later = run_module(
        "climode.forecast",
        "--input",
        case / "storm.nc",
        "--times",
        "69:72",
        "--output",
        tmp_path / "later.nc",
        "--zarr",
        tmp_path / "f.zarr",
        "--append",
        cwd=tmp_path,
    )
    assert later.returncode == 0, later.stderr[-3000:]
    store = xr.open_zarr(
        tmp_path / "f.zarr", consolidated=False, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)
    )
    assert list(store.lead_time.values) == [3, 6, 9, 12, 15]
    np.testing.assert_allclose(store.PSL.isel(time=slice(0, 3)), out.PSL, rtol=1e-6)


@pytest.mark.slow
def test_bad_input_gives_one_clear_error_and_no_output(case, tmp_path, capsys, monkeypatch):
    storm = case / "storm.nc"
    result = run_module("climode.forecast", "--input", tmp_path / "nope.nc", "--times", "60", cwd=tmp_path)
    assert_user_error(result, "nope.nc")  # as a user runs it; the others in this process, without the start-up
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--input", storm, "--times", "60", "--vars", "PSL=slp"], "slp"),
        (["--input", storm, "--times", "sixty"], "'sixty' is not a number"),
        (["--input", storm, "--times=-6,60"], "before the first input frame"),
        (["--input", storm, "--times", "60", "--output", tmp_path / "no" / "dir" / "f.nc"], "cannot write"),
        (["--input", storm, "--times", "60", "--checkpoint", tmp_path / "missing.safetensors"], "not found"),
        (["--input", storm, "--times", "60", "--plot", tmp_path / "m.png", "--map-region", "north"], "map region"),
    ]
    for args, fragment in cases:
        command_error(capsys, forecast_main, args, fragment)
    assert not list(tmp_path.glob("*forecast*")) and not list(tmp_path.glob(".*"))


@pytest.mark.slow
def test_a_checkpoint_trained_on_other_variables_is_refused(case, tmp_path):
    model = VidODE(ModelConfig(channels=2, width=4))
    other = save_model(
        tmp_path / "other.safetensors",
        model,
        Card(variables=("u", "v"), normalisation={k: STATS["U850"] for k in "uv"}, time_units="hours"),
    )
    result = run_module(
        "climode.forecast", "--input", case / "storm.nc", "--times", "60", "--checkpoint", other, cwd=tmp_path
    )
    assert_user_error(result, "forecasts u, v", "U850")
    assert not list(tmp_path.glob("*_forecast.nc"))


def test_the_bundled_checkpoint_ships_with_the_package():
    ckpt = climode.load_model(bundled_checkpoint())
    assert ckpt.variables == VARIABLES and ckpt.card.grid["resolution"] == 1.0


def _training_range(ckpt) -> dict[str, tuple[float, float]]:
    return {v: (s.first, s.second) for v, s in ckpt.card.normalisation.variables.items()}


@pytest.mark.slow
def test_a_missing_patch_in_the_last_input_moves_the_forecast_little_and_stays_in_range(case):
    """The bundled model on a 0.25-degree storm with a 6 x 8 degree patch missing from the last input, away
    from the storm: outside a 4-degree halo the forecast moves by less than 4 hPa and 5 m/s, nowhere leaves
    the training range, and the patch and every cell that moved by more than 1 hPa or 1 m/s are flagged.
    (Missing cells filled with 0 made a 931-hPa "storm" and -78 m/s winds.) Measured with the bundled
    model: up to 2.4 hPa, 3.2 m/s (U850) and 6.3 m/s (V850) outside the halo, some of it more than 12
    degrees away (docs/forecast.md, "Limits"; 2.7 hPa and 3.2 m/s before the composition by scale, which
    carries the storm's core along flows the patch changes): not local, and the flag says where."""
    ds = climode.open_fields(case / "storm.nc").load()
    clean = climode.forecast(ds, "60,63,66")
    holed = ds.copy(deep=True)
    patch = {"lat": slice(40, 46), "lon": slice(290, 298)}
    for v in VARIABLES:
        holed[v].loc[{"time": holed.time[-1], **patch}] = np.nan
    out = climode.forecast(holed, "60,63,66")
    halo = {"lat": slice(36, 50), "lon": slice(286, 302)}
    outside = xr.ones_like(out.PSL, dtype=bool)
    outside.loc[{"time": outside.time, **halo}] = False
    change = {v: float(np.abs(out[v] - clean[v]).where(outside).max()) for v in VARIABLES}
    assert change["PSL"] < 400 and change["U850"] < 8 and change["V850"] < 8, change
    for v, (low, high) in _training_range(climode.load_model(bundled_checkpoint())).items():
        assert float(out[v].min()) >= low and float(out[v].max()) <= high, (v, float(out[v].min()), float(out[v].max()))
    moved = (abs(out.PSL - clean.PSL) > 100) | (abs(out.U850 - clean.U850) > 1) | (abs(out.V850 - clean.V850) > 1)
    assert (out.filled.sel(**patch) == 1).all() and bool((out.filled == 1).where(moved, True).all())


def _corner_file(case: Path, tmp_path: Path) -> tuple[Path, dict]:
    """The case's input as a real-format file (fill values in the NetCDF) with its north-west corner,
    a fifth of the cells, missing in every frame."""
    ds = xr.open_dataset(case / "storm.nc", decode_times=False)
    corner = {"lat": slice(ds.sizes["lat"] * 55 // 100, None), "lon": slice(0, ds.sizes["lon"] * 45 // 100)}
    for v in VARIABLES:
        ds[v][{**corner}] = np.nan
    assert 0.18 < float(np.isnan(ds.PSL.values).mean()) < 0.22
    ds.to_netcdf(tmp_path / "holed.nc", encoding={v: {"_FillValue": -9999.0} for v in VARIABLES})
    return tmp_path / "holed.nc", corner


@pytest.mark.slow
def test_a_file_with_a_fifth_of_its_cells_missing_in_a_corner_is_flagged_and_masked_on_request(case, tmp_path):
    """The corner flagged in `filled` and NaN with --mask-filled wherever flagged. (The bundled model's
    forecast depends on a never-valid corner far beyond it, so the flag is not asked to stay local.)"""
    path, corner = _corner_file(case, tmp_path)
    for flags in ([], ["--mask-filled"]):
        result = run_module(
            "climode.forecast", "--input", path, "--times", "60,63,66", "--overwrite", *flags, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr[-3000:]
        out = _open(tmp_path / "holed_forecast.nc")
        assert out.filled.isel(corner).values.mean() > 0.95
        assert bool(np.isnan(out.PSL.values).any()) == bool(flags)
        if flags:
            assert np.isnan(out.PSL.values[out.filled.values == 1]).all()


@pytest.mark.slow
def test_a_file_with_a_fifth_of_its_cells_missing_in_a_corner_forecasts_in_range(case, tmp_path):
    """Every forecast value within the training range when a fifth of the input is missing."""
    path, _ = _corner_file(case, tmp_path)
    out = climode.forecast(climode.open_fields(path).load(), "60,63,66")
    for v, (low, high) in _training_range(climode.load_model(bundled_checkpoint())).items():
        assert float(out[v].min()) >= low and float(out[v].max()) <= high, (v, float(out[v].min()), float(out[v].max()))


@pytest.mark.slow
@pytest.mark.skipif(not GEOCAT.is_dir(), reason="../shared/data/geocat_storm_500hPa is not beside the checkout")
def test_real_geocat_files_are_forecast_with_the_mapping_and_time_flags(tmp_path):
    """A model trained on the real 500 hPa u, v, t forecasts them from the messy files (no time
    units, one variable per file, negative longitudes, missing cells)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "model: {width: 4, time_scale: 6.0, encoder_solver: {method: euler, step_size: 1.0},\n"
        "        decoder_solver: {method: euler, step_size: 1.0}}\n"
        "data: {n_in: 5, n_out: 2}\ntrain: {batch_size: 8, adversarial: false}\n"
    )
    flags = ["--vars", "U500=u,V500=v,T500=t", "--time-in-hours", "--reference-time", "1996-01-05"]
    files = str(GEOCAT / "*storm.cdf")
    trained = run_module(
        "climode.train",
        "--config",
        config,
        "--dataset",
        "gridded",
        "--data",
        files,
        *flags,
        "--out",
        tmp_path / "run",
        "--max-steps",
        2,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_module(
        "climode.forecast",
        "--input",
        files,
        *flags,
        "--input-times",
        "0,12,30,36,48",
        "--times",
        "1996-01-07 06:00,54:60:6",
        "--checkpoint",
        tmp_path / "run" / "model.safetensors",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = _open(tmp_path / "Tstorm_forecast.nc")
    assert set(out.data_vars) == {"U500", "V500", "T500", "filled"} and out.T500.shape == (2, 33, 36)
    assert 0 < float(out.filled.mean()) < 1 and out.T500.attrs["ancillary_variables"] == "filled"  # ~20 % missing
    assert list(out.lead_time.values) == [6, 12] and out.time.values[0].calendar in ("standard", "gregorian")
    assert out.lon.min() == 220 and np.isfinite(out.T500).all()
    assert 200 < float(out.T500.mean()) < 300  # K, back in physical units


@pytest.mark.slow
def test_a_write_that_fails_midway_removes_what_this_run_wrote(case, tmp_path, monkeypatch, capsys):
    command = importlib.import_module("climode.cli.forecast")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "f.nc"))

    monkeypatch.setattr("climode.io.write.write_netcdf", refuse)  # the command imports it when it runs
    code = command.main(
        [
            "--input",
            str(case / "storm.nc"),
            "--times",
            "60",
            "--output",
            str(tmp_path / "f.nc"),
            "--zarr",
            str(tmp_path / "f.zarr"),
        ]
    )
    assert code == 2 and "error: cannot write" in capsys.readouterr().err
    assert not (tmp_path / "f.zarr").exists() and not list(tmp_path.glob("*.nc"))  # the zarr went first


def _without_cells(ds: xr.Dataset, where: dict) -> xr.Dataset:
    """``ds`` with the cells ``where`` (isel indexers, time included) missing in every variable."""
    holed = ds.copy(deep=True)
    for v in VARIABLES:
        holed[v][where] = np.nan
    return holed


@pytest.mark.slow
@pytest.mark.parametrize("share", [1.0, 0.95])
def test_an_all_or_nearly_all_missing_last_frame_is_a_missing_frame(case, share):
    """The forecast is exactly the one without that frame: lead times count from the last usable frame,
    one warning names it, and the output lists it as skipped, not as an input."""
    ds = climode.open_fields(case / "storm.nc").load()
    rows = int(round(ds.sizes["lat"] * share))
    holed = _without_cells(ds, {"time": -1, "lat": slice(0, rows)})
    with pytest.warns(UserWarning, match="treated as missing frames") as caught:
        out = climode.forecast(holed, "60,63,66")
    assert sum("treated as missing frames" in str(w.message) for w in caught) == 1
    without = climode.forecast(ds.isel(time=slice(0, 4)), "60,63,66")
    for v in VARIABLES:
        np.testing.assert_array_equal(out[v].values, without[v].values)
    assert out.lead_time.values.tolist() == [18.0, 21.0, 24.0] and out.forecast_reference_time == ds.time[3]
    assert out.attrs["climode_skipped_input_times"] == "2000-08-04 09:00:00"
    assert "2000-08-04 09:00:00" not in out.attrs["climode_input_times"]


def test_a_record_without_a_usable_frame_is_refused(case):
    ds = climode.open_fields(case / "storm.nc").load()
    holed = _without_cells(ds, {"lat": slice(0, ds.sizes["lat"] * 95 // 100)})
    with pytest.raises(ClimodeError, match="no input frame has 10% of its cells valid"):
        climode.forecast(holed, "60")


def _quarter(ds: xr.Dataset, corner: str) -> dict:
    H, W = ds.sizes["lat"], ds.sizes["lon"]
    lat = slice(0, H // 2) if corner[0] == "S" else slice(H // 2, H)
    lon = slice(0, W // 2) if corner[1] == "W" else slice(W // 2, W)
    return {"lat": lat, "lon": lon}


def _outside_halo(ds: xr.Dataset, box: dict, degrees: float = 4.0) -> np.ndarray:
    """(lat, lon) bool: cells farther than ``degrees`` (in lat and lon) from the cells of ``box``."""
    lat, lon = ds.lat.values, ds.lon.values
    inside_lat, inside_lon = lat[box["lat"]], lon[box["lon"]]
    near_lat = (lat >= inside_lat.min() - degrees) & (lat <= inside_lat.max() + degrees)
    near_lon = (lon >= inside_lon.min() - degrees) & (lon <= inside_lon.max() + degrees)
    return ~(near_lat[:, None] & near_lon[None, :])


@pytest.mark.slow
def test_the_flag_covers_every_value_a_missing_quarter_moved(case):
    """A NaN quarter (south-west) of the last input: the forecast values that moved by more than 1 hPa or
    1 m/s are flagged in `filled`, wherever they lie (issue 28: the flag covered 0.007-0.12 % of them).
    The flag is the response to a uniform shift of the filled cells, a first-order probe: 99.8 % of them
    measured, those left out answer the ghost of an older storm but hardly a shift."""
    ds = climode.open_fields(case / "storm.nc").load()
    clean = climode.forecast(ds, "60,66")
    out = climode.forecast(_without_cells(ds, {"time": -1, **_quarter(ds, "SW")}), "60,66")
    moved = (abs(out.PSL - clean.PSL) > 100) | (abs(out.U850 - clean.U850) > 1) | (abs(out.V850 - clean.V850) > 1)
    covered = float((out.filled == 1).values[moved.values].mean())
    assert int(moved.sum()) > 1000 and covered > 0.99, covered


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 28's target, not met by the bundled model: a missing quarter moves its forecast by 11-28 hPa "
    "and 12-55 m/s 20 degrees away (the network mixes the whole frame; locality needs a retrained model)",
)
@pytest.mark.parametrize("corner", ["SW", "NE"])
def test_a_missing_quarter_of_the_last_input_changes_the_forecast_only_near_it(case, corner):
    """Outside a 4-degree halo around a NaN quarter of the last input the forecast moves by less than
    1 hPa and 1 m/s (at +3 to +15 h)."""
    ds = climode.open_fields(case / "storm.nc").load()
    box = _quarter(ds, corner)
    clean = climode.forecast(ds, "60,66,72")
    out = climode.forecast(_without_cells(ds, {"time": -1, **box}), "60,66,72")
    outside = _outside_halo(ds, box)
    change = {v: float(abs(out[v] - clean[v]).values[:, outside].max()) for v in VARIABLES}
    assert change["PSL"] < 100 and change["U850"] < 1 and change["V850"] < 1, change
