"""Synthetic CAM5-like cyclones: CF files, true tracks that match the fields, the world's physics (steering,
intensity, size, an evolving background), reproducibility, continuity in time, CLI."""

import itertools
import math

import cftime
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import assert_user_error, run_module

from climode.cli.synthetic import main
from climode.data.synthetic import (
    PREFIX,
    SMALL,
    SUB,
    TITLE,
    Domain,
    environment,
    files,
    make_corpus,
    storms,
    world,
    write_corpus,
)
from climode.errors import ClimodeError

CFT = xr.coders.CFDatetimeCoder(use_cftime=True)
STORMS, SEED = 3, 7
R = 6.371e6  # m


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(STORMS, SEED, small=True)


@pytest.fixture(scope="module")
def plan():
    """The storms and environment of a 0.25-degree corpus (no fields computed)."""
    return storms._plan(20, 1, False, None)


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
            for name, std, units in [
                ("U850", "eastward_wind", "m s-1"),
                ("V850", "northward_wind", "m s-1"),
                ("PSL", "air_pressure_at_mean_sea_level", "Pa"),
                ("TS", "surface_temperature", "K"),
            ]:
                assert ds[name].dims == ("time", "lat", "lon") and ds[name].dtype == np.float32
                assert ds[name].attrs["standard_name"] == std and ds[name].attrs["units"] == units
                assert ds[name].encoding["zlib"] and np.isfinite(ds[name].values).all()
            land = ds["LANDFRAC"]
            assert land.dims == ("lat", "lon") and land.attrs["standard_name"] == "land_area_fraction"
            assert land.attrs["units"] == "1" and 0 <= land.min() and land.max() <= 1
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
    for name in ("U850", "V850", "PSL", "TS"):
        np.testing.assert_array_equal(disk[name].values, ds[name].values)
    for path in paths[:-1]:  # every file holds the same time-invariant land fraction
        with xr.open_dataset(path) as one:
            np.testing.assert_array_equal(one["LANDFRAC"].values, ds["LANDFRAC"].values)
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


@pytest.mark.slow
def test_reproducible_by_seed(corpus):
    ds, tracks = corpus
    again, tracks_again = make_corpus(STORMS, SEED, small=True)
    for name in ("U850", "V850", "PSL", "TS", "LANDFRAC"):
        assert ds[name].values.tobytes() == again[name].values.tobytes()
    pd.testing.assert_frame_equal(tracks, tracks_again)
    other, tracks_other = make_corpus(STORMS, SEED + 1, small=True)
    assert not np.array_equal(other.PSL.values, ds.PSL.values)
    assert not tracks_other[["lat", "lon"]].equals(tracks[["lat", "lon"]])


@pytest.mark.slow
def test_domain_parameter():
    ds, tracks = make_corpus(1, 0, domain=Domain(0.0, 30.0, 290.0, 340.0, 2.0))
    assert ds.sizes["lat"] == 16 and ds.sizes["lon"] == 26
    assert tracks.lon.between(293, 337).all()
    with pytest.raises(ClimodeError, match="too small"):
        make_corpus(1, 0, domain=Domain(0.0, 5.0, 290.0, 340.0, 1.0))
    with pytest.raises(ClimodeError, match="storms"):
        make_corpus(0, 0, small=True)


@pytest.mark.slow
def test_cli_refuses_existing_corpus(tmp_path, capsys):
    out = tmp_path / "corpus"
    result = run_module("climode.data.synthetic", "--out", out, "--storms", 3, "--seed", 1, "--small")
    assert result.returncode == 0, result.stderr
    assert "wrote 5 NetCDF files" in result.stdout
    assert (out / "tracks.csv").exists() and len(list(out.glob("*.nc"))) == 5
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    result = run_module("climode.data.synthetic", "--out", out, "--storms", 2, "--seed", 1, "--small")
    assert result.returncode == 2
    assert_user_error(result, str(out), "--overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    assert main(["--out", str(out), "--storms", "1", "--seed", "2", "--small", "--overwrite"]) == 0
    tracks = pd.read_csv(out / "tracks.csv")
    assert list(tracks.storm.unique()) == ["SYN0001"]
    ncs = sorted(out.glob("*.nc"))
    assert len(ncs) == 4  # the first corpus's fifth file is gone
    for path in ncs:
        with xr.open_dataset(path) as ds:
            assert ds.attrs["seed"] == 2 and ds.attrs["storms"] == 1
    capsys.readouterr()

    assert main(["--out", str(tmp_path / "none"), "--storms", "0", "--small"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: --storms must be an integer >= 1, got 0"
    ]
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
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


# ------------------------------------------------------------------------------------------ physics


def _hours(st):
    """Seconds since the corpus start of each of a storm's hourly states."""
    return (st.first * SUB + np.arange(len(st.lat))) * world.DT


@pytest.mark.slow
def test_storms_move_with_the_environments_steering_plus_beta_drift(plan):
    """Over each 3-hour step a centre moves as the environment's wind (no vortex) averaged over the
    300-700 km annulus, evaluated here on a fine polar grid of its own, plus the storm's beta drift; the
    rest is the 0.6 m/s motion noise. Without the beta drift the motion is missed by about its 2 m/s."""
    r = np.arange(312.5e3, 700e3, 25e3)[:, None]
    az = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)[None, :]
    weight = np.broadcast_to(r, (r.size, az.size)) / (r.sum() * az.size)
    errors, without_beta = [], []
    for st in plan.storms[:8]:
        lat, lon = st.lat[::SUB], st.lon[::SUB]
        for k in range(0, len(lat) - 1, 2):
            mlat, mlon = 0.5 * (lat[k] + lat[k + 1]), 0.5 * (lon[k] + lon[k + 1])
            ring_lat = mlat + np.degrees(r * np.sin(az) / R)
            ring_lon = mlon + np.degrees(r * np.cos(az) / (R * math.cos(math.radians(mlat))))
            _, u, v, _, _ = environment._flow(plan.world, (st.first + k + 0.5) * 10800.0, ring_lat, ring_lon)
            steer = np.array([(u * weight).sum(), (v * weight).sum()])
            speed = st.beta[0] * math.cos(math.radians(mlat)) / math.cos(math.radians(20.0))
            beta = speed * np.array([-math.sin(math.radians(st.beta[1])), math.cos(math.radians(st.beta[1]))])
            motion = (
                np.array(
                    [
                        math.radians(lon[k + 1] - lon[k]) * R * math.cos(math.radians(mlat)),
                        math.radians(lat[k + 1] - lat[k]) * R,
                    ]
                )
                / 10800.0
            )
            errors.append(motion - steer - beta)
            without_beta.append(np.hypot(*(motion - steer)))
    errors = np.array(errors)
    miss = np.hypot(*errors.T)
    assert len(miss) > 100 and np.median(miss) < 1.0 and np.percentile(miss, 95) < 2.0, np.percentile(miss, [50, 95])
    assert np.abs(errors.mean(axis=0)).max() < 0.3  # no bias
    assert np.median(without_beta) > 1.5
    assert all(1.5 <= st.beta[0] <= 3.0 and 20 <= st.beta[1] <= 50 for st in plan.storms)  # north-westward


def test_storms_recurve_in_the_westerlies(plan):
    """Nothing prescribes recurvature: storms move west in the trades and east poleward of 32N."""
    tropics, north = [], []
    for st in plan.storms:
        tropics.extend(st.cu[st.lat < 18])
        north.extend(st.cu[st.lat > 32])
    assert np.mean(tropics) < -3.0 and np.mean(north) > 3.0
    recurving = [st.name for st in plan.storms if (st.cu[st.lat < 20] < 0).any() and (st.cu[st.lat > 30] > 2).any()]
    assert len(recurving) >= 3, recurving


@pytest.mark.slow
def test_intensity_relaxes_to_the_sst_potential_and_decays_over_land(plan):
    """Hour by hour: far below the potential intensity of the SST under it (as TS shows it), over open water
    and south of the westerlies' shear, a storm deepens; above it, it fills; over land (LANDFRAC 1) dp
    e-folds in 12 hours (and, outside the domain, with an extra 6-hour e-folding)."""
    deepen, fill, land_rates = [], [], []
    dom = plan.setup.domain
    for st in plan.storms:
        seconds = _hours(st)
        sst = np.array(
            [environment._sst(plan.world, t, st.lat[i : i + 1], st.lon[i : i + 1])[0] for i, t in enumerate(seconds)]
        )
        land = environment._land_at(st.lat, st.lon)
        pi = environment._potential(sst)
        ratio = st.dp[1:] / st.dp[:-1]
        ocean = (land[:-1] == 0) & dom.inside(st.lat[:-1], st.lon[:-1])
        young = np.arange(len(ratio)) < 24 * plan.setup.life_days[1]
        deepen.extend(ratio[ocean & young & (st.lat[:-1] < 24) & (st.dp[:-1] < 0.3 * pi[:-1])])
        fill.extend(ratio[(land[:-1] == 0) & (st.dp[:-1] > pi[:-1])])
        land_rates.extend(-np.log(ratio[(land[:-1] == 1.0)]) / world.DT)
    assert len(deepen) > 100 and min(deepen) > 1.0
    assert len(fill) > 100 and max(fill) < 1.0
    assert len(land_rates) > 10, len(land_rates)
    np.testing.assert_allclose(np.min(land_rates), 1 / (12 * 3600.0), rtol=1e-6)
    assert np.max(land_rates) <= 1 / (12 * 3600.0) + 1 / (6 * 3600.0) + 1e-12
    assert environment._potential(25.9) == 0 and 8000 < environment._potential(30.0) < 9000


def test_rmax_is_realistic_at_quarter_degree_and_floored_on_coarse_grids(plan):
    """0.25 degree: Rmax 30-100 km while tropical (south of 28N), smaller when deeper, larger in
    extratropical transition; the 1-degree grid floors it at 1.5 cells, its resolution limit."""
    tropical, all_rmax, corr = [], [], []
    for st in plan.storms:
        rows = SUB * storms._tracked(st.dp, st.lat, st.lon, plan.setup.domain)
        south = rows[st.lat[rows] < 28]
        tropical.extend(st.rmax[south])
        all_rmax.extend(st.rmax[rows])
        if len(south) > 10:
            corr.append(np.corrcoef(st.dp[south], st.rmax[south])[0, 1])
    assert 30e3 <= min(tropical) and max(tropical) <= 100e3
    assert max(all_rmax) > 110e3 and max(all_rmax) <= 300e3  # grown in transition
    assert np.median(corr) < -0.5  # contracts as it deepens
    coarse = storms._plan(3, 1, True, None)
    floor = 1.5 * SMALL.res * math.radians(1.0) * R
    assert min(st.rmax.min() for st in coarse.storms) == pytest.approx(floor)


def test_the_environment_evolves():
    """Two days apart the environment's winds differ by several m/s rms and its PSL by hundreds of Pa."""
    drawn = storms._plan(3, SEED, True, None).world
    lat, lon = SMALL.lat[:, None], SMALL.lon[None, :]
    for day in (1.0, 4.0):
        psl0, u0, v0, _, _ = environment._flow(drawn, day * 86400.0, lat, lon)
        psl1, u1, v1, _, _ = environment._flow(drawn, (day + 2.0) * 86400.0, lat, lon)
        assert np.sqrt(np.mean((u1 - u0) ** 2 + (v1 - v0) ** 2)) > 3.0
        assert np.sqrt(np.mean((psl1 - psl0) ** 2)) > 150.0


def test_land_and_surface_temperature_are_recognisable(corpus):
    ds, _ = corpus
    land = ds["LANDFRAC"]
    for lat, lon in [(35, 260), (28, 278.5), (40, 250), (8, 295), (15, 350), (40, 355)]:  # US, Florida, ...
        assert land.sel(lat=lat, lon=lon, method="nearest") == 1, (lat, lon)
    for lat, lon in [(25, 300), (15, 320), (25, 270), (15, 250), (40, 320)]:  # Atlantic, Gulf, Pacific
        assert land.sel(lat=lat, lon=lon, method="nearest") == 0, (lat, lon)
    ts = ds["TS"] - 273.15
    mdr = ts.sel(lat=slice(10, 20), lon=slice(300, 330))
    assert 26.5 < float(mdr.min()) and float(mdr.max()) < 30.0  # warm enough for hurricanes
    assert float(ts.sel(lat=55, lon=320, method="nearest").max()) < 15.0
    texas = ts.sel(lat=32, lon=262, method="nearest")
    assert float(texas.max() - texas.min()) > 8.0  # a diurnal cycle over land, none over the ocean
    assert float(ts.sel(lat=25, lon=300, method="nearest").std()) < 0.3


def test_fields_are_continuous_at_any_real_time(plan):
    """The fields at step s and s + 1e-6 (a tenth of a millisecond) agree, at random fractional steps and at
    the moments a storm is born, passes from one hourly state to the next, and ends."""
    lat, lon = SMALL.lat[::2, None], SMALL.lon[None, ::2]
    st = plan.storms[0]
    moments = [
        st.first - 1.0,
        st.first - 0.5,
        st.first + 1 / SUB,
        st.first + 2 / SUB,
        st.first + st.last,
        st.first + st.last + 0.5,
        st.first + st.last + 1.0,
    ]
    rng = np.random.default_rng(0)
    for step in moments + list(rng.uniform(0, plan.n_steps, 6)):
        a = files._evaluate(plan, step, lat, lon)
        b = files._evaluate(plan, step + 1e-6, lat, lon)
        for x, y in zip(a, b):
            assert np.abs(x - y).max() < 0.01, step
    assert st.local(st.first - 1.0) is None and st.local(st.first + st.last + 1.0) is None
    assert st.at(-1 + 1e-9)[4] < 1e-6 and st.at(st.last + 1 - 1e-9)[4] < 1e-6  # dp fades in and out


@pytest.mark.slow
def test_a_case_of_an_hourly_corpus_keeps_its_hours():
    """Inputs at the asked hours and the truth every frame, whatever the corpus's spacing."""
    from climode.data.cases import first_case

    ds, tracks = make_corpus(1, 3, small=True, hours_per_frame=1.0)
    case = first_case(ds, tracks, (0, 9, 21, 42, 57), 72)
    hours = lambda t: np.array([(v - case.inputs.time.values[0]).total_seconds() / 3600 for v in t.values])
    np.testing.assert_array_equal(hours(case.inputs.time), [0, 9, 21, 42, 57])
    np.testing.assert_array_equal(hours(case.truth.time), np.arange(73))
    assert len(case.track) == 25  # the 3-hourly true track over the 72 h
    with pytest.raises(ClimodeError, match="not on the corpus's 1-hourly frames"):
        first_case(ds, tracks, (0, 9.5), 72)
