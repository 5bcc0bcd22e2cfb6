"""Synthetic CAM5-like cyclones: CF files, true tracks that match the fields, reproducibility, CLI."""
import itertools

import cftime
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import assert_user_error, run_module

from climode.data.synthetic import PREFIX, SMALL, TITLE, Domain, main, make_corpus, write_corpus
from climode.errors import ClimodeError

CFT = xr.coders.CFDatetimeCoder(use_cftime=True)
STORMS, SEED = 3, 7


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(STORMS, SEED, small=True)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return out, write_corpus(out, STORMS, SEED, small=True)


def _open_all(paths):
    return xr.concat([xr.open_dataset(p, decode_times=CFT).load() for p in paths], dim="time", data_vars="minimal")


def test_files_are_cf_noleap_and_synthetic(written):
    out, paths = written
    ncs, csv = paths[:-1], paths[-1]
    assert csv == out / "tracks.csv" and len(ncs) >= 2
    assert ncs == sorted(out.glob("*.nc")) and all(p.name.startswith(PREFIX) for p in ncs)
    assert not list(out.glob(".*tmp"))
    with netCDF4.Dataset(ncs[0]) as raw:  # the attributes as written
        assert raw["time"].units == "days since 2000-01-01 00:00:00" and raw["time"].calendar == "noleap"
        assert raw["time"].dtype == np.float64 and raw["time"][1] - raw["time"][0] == 0.125
        assert raw["U850"].coordinates == "plev" and "coordinates" not in raw["PSL"].ncattrs()
        assert raw["PSL"].filters()["zlib"] and raw.dimensions["time"].isunlimited()
    previous_end = None
    for path in ncs:
        with xr.open_dataset(path, decode_times=CFT) as ds:
            assert ds.attrs["synthetic"] == "true" and ds.attrs["Conventions"] == "CF-1.8"
            assert TITLE in ds.attrs["title"] and ds.attrs["seed"] == SEED
            assert isinstance(ds.time.values[0], cftime.DatetimeNoLeap) and ds.indexes["time"].calendar == "noleap"
            for name, std, units in [("U850", "eastward_wind", "m s-1"), ("V850", "northward_wind", "m s-1"),
                                     ("PSL", "air_pressure_at_mean_sea_level", "Pa")]:
                assert ds[name].dims == ("time", "lat", "lon") and ds[name].dtype == np.float32
                assert ds[name].attrs["standard_name"] == std and ds[name].attrs["units"] == units
                assert ds[name].encoding["zlib"] and np.isfinite(ds[name].values).all()
            assert float(ds["plev"]) == 85000.0
            assert np.all(np.diff(ds.lat) > 0) and ds.lat.attrs["units"] == "degrees_north"
            assert ds.lon.min() >= 0 and ds.lon.max() <= 360 and ds.lon.attrs["units"] == "degrees_east"
            assert (ds.time_bnds.values[:, 1] == ds.time.values).all()
            if previous_end is not None:  # files continue each other every 3 hours
                assert ds.time.values[0] - previous_end == pd.Timedelta(hours=3)
            previous_end = ds.time.values[-1]


def test_files_hold_make_corpus(written, corpus):
    """Fields written file by file equal the in-memory corpus; tracks.csv equals its tracks."""
    ds, tracks = corpus
    _, paths = written
    disk = _open_all(paths[:-1])
    assert (disk.time.values == ds.time.values).all()
    for name in ("U850", "V850", "PSL"):
        np.testing.assert_array_equal(disk[name].values, ds[name].values)
    pd.testing.assert_frame_equal(pd.read_csv(paths[-1]), tracks)


def test_tracks_match_the_fields(corpus):
    ds, tracks = corpus
    assert list(tracks.columns) == ["storm", "time", "lat", "lon", "psl_min", "vmax"]
    assert sorted(tracks.storm.unique()) == [f"SYN{i:04d}" for i in range(1, STORMS + 1)]
    lat, lon, res = ds.lat.values, ds.lon.values, SMALL.res
    times = [str(t) for t in ds.time.values]
    dy = 6.371e6 * np.radians(res)
    dx = dy * np.cos(np.radians(lat))[:, None]
    for row in tracks.itertuples():
        i = times.index(row.time)
        near = (np.abs(lat[:, None] - row.lat) <= 2) & (np.abs(lon[None, :] - row.lon) <= 2)
        psl = np.where(near, ds.PSL.values[i], np.inf)
        j, k = np.unravel_index(np.argmin(psl), psl.shape)
        assert abs(lat[j] - row.lat) <= res and abs(lon[k] - row.lon) <= res, row
        deficit = 101325.0 - row.psl_min
        assert deficit > 1000 and -5 <= psl[j, k] - row.psl_min <= 0.1 * deficit, row
        u, v = ds.U850.values[i], ds.V850.values[i]
        wide = (np.abs(lat[:, None] - row.lat) <= 3) & (np.abs(lon[None, :] - row.lon) <= 3)
        speed = np.where(wide, np.hypot(u, v), 0.0).max()
        assert 0.85 * row.vmax <= speed <= 1.02 * row.vmax, (row, speed)
        vorticity = np.gradient(v, axis=1) / dx - np.gradient(u, axis=0) / dy
        core = (np.abs(lat[:, None] - row.lat) <= res) & (np.abs(lon[None, :] - row.lon) <= res)
        assert vorticity[core].min() > 5e-5, row  # cyclonic (NH): well above planetary-scale values


def test_tracks_are_plausible(corpus):
    _, tracks = corpus
    for name, g in tracks.groupby("storm"):
        t = [cftime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S", calendar="noleap") for s in g.time]
        assert all(b - a == pd.Timedelta(hours=3) for a, b in itertools.pairwise(t)), name
        assert 5 <= g.lat.iloc[0] <= 20 and g.lon.iloc[1] < g.lon.iloc[0], name  # tropical genesis, moving west
        assert g.lat.between(SMALL.lat_min + 3, SMALL.lat_max - 3).all(), name
        assert g.lon.between(SMALL.lon_min + 3, SMALL.lon_max - 3).all(), name
        assert g.psl_min.min() < 99000 and (g.vmax > 17).all(), name
        peak = int(np.argmin(g.psl_min.values))  # deepens, then fills
        assert g.psl_min.iloc[0] > g.psl_min.iloc[peak] < g.psl_min.iloc[-1], name


def test_reproducible_by_seed(corpus):
    ds, tracks = corpus
    again, tracks_again = make_corpus(STORMS, SEED, small=True)
    for name in ("U850", "V850", "PSL"):
        assert ds[name].values.tobytes() == again[name].values.tobytes()
    pd.testing.assert_frame_equal(tracks, tracks_again)
    other, tracks_other = make_corpus(STORMS, SEED + 1, small=True)
    assert not np.array_equal(other.PSL.values, ds.PSL.values)
    assert not tracks_other[["lat", "lon"]].equals(tracks[["lat", "lon"]])


def test_domain_parameter():
    ds, tracks = make_corpus(1, 0, domain=Domain(0.0, 30.0, 290.0, 340.0, 2.0))
    assert ds.sizes["lat"] == 16 and ds.sizes["lon"] == 26
    assert tracks.lon.between(293, 337).all()
    with pytest.raises(ClimodeError, match="too small"):
        make_corpus(1, 0, domain=Domain(0.0, 5.0, 290.0, 340.0, 1.0))
    with pytest.raises(ClimodeError, match="storms"):
        make_corpus(0, 0, small=True)


def test_cli_refuses_existing_corpus(tmp_path, capsys):
    out = tmp_path / "corpus"
    result = run_module("climode.data.synthetic", "--out", out, "--storms", 3, "--seed", 1, "--small", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "wrote 4 NetCDF files" in result.stdout
    assert (out / "tracks.csv").exists() and len(list(out.glob("*.nc"))) == 4
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    result = run_module("climode.data.synthetic", "--out", out, "--storms", 2, "--seed", 1, "--small", timeout=60)
    assert result.returncode == 2
    assert_user_error(result, str(out), "--overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    assert main(["--out", str(out), "--storms", "1", "--seed", "2", "--small", "--overwrite"]) == 0
    tracks = pd.read_csv(out / "tracks.csv")
    assert list(tracks.storm.unique()) == ["SYN0001"]
    ncs = sorted(out.glob("*.nc"))
    assert len(ncs) == 3  # the first corpus's fourth file is gone
    for path in ncs:
        with xr.open_dataset(path) as ds:
            assert ds.attrs["seed"] == 2 and ds.attrs["storms"] == 1
    capsys.readouterr()

    assert main(["--out", str(tmp_path / "none"), "--storms", "0", "--small"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: --storms must be an integer >= 1, got 0"]
    assert not (tmp_path / "none").exists()


def test_frames_between_the_steps_continue_the_same_storms(corpus):
    """Written every hour, the world is the same at the 3-hour steps, byte for byte, and moves smoothly
    between them (a storm is not switched on or off between steps)."""
    ds, tracks = corpus
    hourly, hourly_tracks = make_corpus(STORMS, SEED, small=True, hours_per_frame=1.0)
    assert hourly.sizes["time"] == 3 * ds.sizes["time"]
    assert (hourly.time.values[1] - hourly.time.values[0]).total_seconds() == 3600
    for v in ("U850", "V850", "PSL"):
        assert np.array_equal(hourly[v].values[::3], ds[v].values)
    pd.testing.assert_frame_equal(hourly_tracks, tracks)
    psl = hourly.PSL.values.astype(np.float64)
    between = np.abs(psl[1::3][: len(psl[3::3])] - 0.5 * (psl[0:-3:3] + psl[3::3])).max(axis=(1, 2))
    jumps = np.abs(np.diff(psl, axis=0)).max(axis=(1, 2))
    assert between.max() < 0.5 * np.abs(psl[3::3] - psl[0:-3:3]).max()  # an hour in: near the mean of its steps
    assert jumps.max() < 0.5 * np.abs(np.diff(ds.PSL.values.astype(np.float64), axis=0)).max(axis=(1, 2)).max()
    with pytest.raises(ClimodeError, match="divide a day"):
        make_corpus(STORMS, SEED, small=True, hours_per_frame=7.0)
