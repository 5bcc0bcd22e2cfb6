import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from climode.errors import ClimodeError
from climode.geo.detect import detect, match
from climode.geo.storms import great_circle_km, in_box, storm_periods
from climode.io.tracks import read_ibtracs, read_tempest, read_tracks

KNOT = 0.514444


def noleap(*args) -> cftime.datetime:
    return cftime.datetime(*args, calendar="noleap")


# ----------------------------------------------------------------------------------------- readers

IBTRACS = """\
SID,SEASON,NUMBER,BASIN,SUBBASIN,NAME,ISO_TIME,NATURE,LAT,LON,WMO_WIND,WMO_PRES,WMO_AGENCY,USA_WIND,USA_PRES
 ,Year, , , , , , ,degrees_north,degrees_east,kts,mb, ,kts,mb
2005236N23285,2005,61,NA,GM,KATRINA,2005-08-28 18:00:00,TS,26.3,-88.6,150,902,hurdat_atl,150,902
2005236N23285,2005,61,NA,GM,KATRINA,2005-08-29 00:00:00,TS,27.2,-89.2, , , ,140,905
2005236N23285,2005,61,NA,GM,KATRINA,2005-08-29 06:00:00,TS,28.2,-89.6, , , , ,
2005249N15125,2005,70,WP,MM,NABI,2005-09-06 00:00:00,TS,31.9,130.1,75,960,tokyo, ,
"""


def test_read_ibtracs_units_fallbacks_and_na_basin(tmp_path):
    path = tmp_path / "ibtracs.NA.list.v04r01.csv"
    path.write_text(IBTRACS)
    tracks = read_ibtracs(path)
    assert list(tracks["storm"]) == ["2005236N23285"] * 3 + ["2005249N15125"]
    assert tracks["lon"].to_numpy() == pytest.approx([271.4, 270.8, 270.4, 130.1])
    assert tracks["lat"].to_numpy() == pytest.approx([26.3, 27.2, 28.2, 31.9])
    assert tracks["vmax"].to_numpy()[[0, 1, 3]] == pytest.approx(np.array([150, 140, 75]) * KNOT)
    assert tracks["psl_min"].to_numpy()[[0, 1, 3]] == pytest.approx([90200.0, 90500.0, 96000.0])
    assert np.isnan(tracks.loc[2, "vmax"]) and np.isnan(tracks.loc[2, "psl_min"])
    assert tracks.loc[0, "time"] == cftime.datetime(2005, 8, 28, 18, calendar="standard")
    assert read_ibtracs(path, calendar="noleap").loc[1, "time"] == noleap(2005, 8, 29, 0)
    pd.testing.assert_frame_equal(read_tracks(path), tracks)


TEMPEST = """\
start   3   2001    09      01      00
\t120\t80\t280.50\t20.25\t9.950000e+04\t3.200000e+01\t2001\t09\t01\t00
\t118\t82\t279.75\t20.75\t9.900000e+04\t3.500000e+01\t2001\t09\t01\t06
\t116\t84\t279.00\t21.50\t9.850000e+04\t4.000000e+01\t2001\t09\t01\t12
start   2   2001    02      28      18
\t10\t40\t-170.00\t-12.00\t1.000000e+05\t1.500000e+01\t2001\t02\t28\t18
\t11\t40\t-169.50\t-12.50\t9.990000e+04\t1.700000e+01\t2001\t03\t01\t00
"""


def test_read_tempest_two_storms(tmp_path):
    path = tmp_path / "tracks.txt"
    path.write_text(TEMPEST)
    tracks = read_tempest(path)
    assert list(tracks["storm"]) == ["TE0001"] * 3 + ["TE0002"] * 2
    assert tracks["lon"].to_numpy() == pytest.approx([280.5, 279.75, 279.0, 190.0, 190.5])
    assert tracks["lat"].to_numpy() == pytest.approx([20.25, 20.75, 21.5, -12.0, -12.5])
    assert tracks["psl_min"].to_numpy() == pytest.approx([99500, 99000, 98500, 100000, 99900])
    assert tracks["vmax"].to_numpy() == pytest.approx([32, 35, 40, 15, 17])
    assert list(tracks["time"]) == [
        noleap(2001, 9, 1, 0),
        noleap(2001, 9, 1, 6),
        noleap(2001, 9, 1, 12),
        noleap(2001, 2, 28, 18),
        noleap(2001, 3, 1, 0),
    ]
    pd.testing.assert_frame_equal(read_tracks(path), tracks)


def test_read_plain_csv_in_noleap_calendar(tmp_path):
    path = tmp_path / "synthetic.csv"
    path.write_text(
        "storm,time,lat,lon,psl_min,vmax\n"
        "SYN0001,2000-02-28 18:00:00,15.5,-60.0,97000,31.5\n"
        "SYN0001,2000-03-01 00:00:00,16.0,299.0,,\n"
    )
    tracks = read_tracks(path)
    assert list(tracks["time"]) == [noleap(2000, 2, 28, 18), noleap(2000, 3, 1, 0)]
    assert tracks["lon"].to_numpy() == pytest.approx([300.0, 299.0])
    assert tracks.loc[0, "psl_min"] == 97000 and np.isnan(tracks.loc[1, "vmax"])


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("hello,world\n1,2\n", "not a track file"),
        ("", "not a track file"),
        ("storm,time,lat,lon\n", "no track points"),
        ("storm,time,lat,lon\nA,2000-02-29 00:00:00,1,2\n", "not a valid date"),
        ("storm,time,lat,lon\nA,yesterday,1,2\n", "'yesterday'"),
        ("start 3 2001 09 01 00\n 1 2 280.0 20.0 2001 09 01 00\n", "file ends first"),
        ("start 1 2001 09 01 00\n 1 2 280.0 twenty 2001 09 01 00\n", "line 2"),
        ("SID,ISO_TIME,LAT\n ,,\nX,2001-01-01 00:00:00,1\n", "missing columns LON"),
    ],
)
def test_malformed_files_raise_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad_tracks.txt"
    path.write_text(content)
    with pytest.raises(ClimodeError, match="bad_tracks.txt") as error:
        read_tracks(path)
    assert fragment in str(error.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ClimodeError, match="nowhere.csv"):
        read_tracks(tmp_path / "nowhere.csv")


# ------------------------------------------------------------------------- geometry and verification


def test_great_circle_km():
    assert great_circle_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(111.19, abs=0.01)
    assert great_circle_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343.5, abs=1.0)
    assert great_circle_km(0.0, 359.5, 0.0, 0.5) == pytest.approx(111.19, abs=0.01)
    assert great_circle_km(np.zeros((3, 1)), 0.0, np.zeros((1, 4)), np.arange(4.0)).shape == (3, 4)


def test_match_tiny_case():
    times = [noleap(2001, 9, 1, h) for h in (0, 6, 12)]
    truth = pd.DataFrame({"storm": "T", "time": times, "lat": [20.0, 21.0, 22.0], "lon": [280.0, 279.0, 278.0]})
    found = pd.DataFrame(
        {
            "storm": ["D", "D", "X"],
            "time": [times[0], times[1], times[1]],
            "lat": [20.0, 21.0 + 50 / 111.19, 40.0],
            "lon": [280.0, 279.0, 200.0],
        }
    )
    scores = match(truth, found)
    assert scores["hit_rate"] == pytest.approx(2 / 3)
    assert scores["mean_error_km"] == pytest.approx(25.0, abs=0.1)
    assert scores["median_error_km"] == pytest.approx(25.0, abs=0.1)
    assert scores["false_alarm_rate"] == pytest.approx(1 / 3)
    assert match(truth, found, max_km=10.0)["hit_rate"] == pytest.approx(1 / 3)


def test_in_box_and_storm_periods_across_the_meridian():
    times = [noleap(2001, 9, 1, 0) + pd.Timedelta(hours=6 * k).to_pytimedelta() for k in range(6)]
    tracks = pd.DataFrame(
        {
            "storm": ["S1"] * 6 + ["S2"] * 2,
            "time": times + times[:2],
            "lat": [20.0, 20.0, 21.0, 22.0, 23.0, 45.0] + [10.0, 10.0],
            "lon": [290.0, 305.0, 359.0, 10.0, 70.0, 50.0] + [200.0, 210.0],
        }
    ).sample(frac=1.0, random_state=0)
    inside = in_box(tracks, (0.0, 40.0), (300.0, 60.0))
    assert sorted(inside["lon"]) == [10.0, 305.0, 359.0]
    periods = storm_periods(tracks, (0.0, 50.0), (300.0, 60.0))
    assert list(periods.columns) == ["storm", "start", "end"]
    assert periods.to_dict("records") == [
        {"storm": "S1", "start": times[1], "end": times[3]},
        {"storm": "S1", "start": times[5], "end": times[5]},
    ]
    assert len(in_box(tracks, (0.0, 40.0), (0.0, 360.0))) == 7


# ---------------------------------------------------------------------------------------- detector


def storm_fields(lat, lon, times, storms, seed=0, noise_pa=20.0) -> tuple[xr.Dataset, pd.DataFrame]:
    """PSL/U850/V850 with Gaussian lows (e-folding 300 km) and cyclonic winds peaking at 150 km, plus noise.

    Each storm is (name, lat0, lon0, dlat, dlon per step, depth Pa, vmax m/s, steps present).
    """
    rng = np.random.default_rng(seed)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    psl = 101000.0 + 800.0 * np.sin(np.radians(glat)) ** 2 + rng.normal(0, noise_pa, (len(times), *glat.shape))
    u, v = rng.normal(0, 1, (2, len(times), *glat.shape))
    truth = []
    for name, lat0, lon0, dlat, dlon, depth, vmax, steps in storms:
        for t in steps:
            clat, clon = lat0 + dlat * t, (lon0 + dlon * t) % 360
            r = great_circle_km(glat, glon, clat, clon)
            psl[t] -= depth * np.exp(-0.5 * (r / 300.0) ** 2)
            speed = vmax * (r / 150.0) * np.exp(1 - r / 150.0)
            east = ((glon - clon + 180) % 360 - 180) * np.cos(np.radians(clat)) * 111.19
            north = (glat - clat) * 111.19
            u[t] -= speed * north / np.maximum(r, 1e-6)
            v[t] += speed * east / np.maximum(r, 1e-6)
            truth.append({"storm": name, "time": times[t], "lat": clat, "lon": clon})
    coords = {"time": times, "lat": lat, "lon": lon}
    dims = ("time", "lat", "lon")
    ds = xr.Dataset({"PSL": (dims, psl), "U850": (dims, u), "V850": (dims, v)}, coords=coords)
    return ds, pd.DataFrame(truth)


@pytest.mark.slow
def test_detect_follows_storms_on_global_noleap_dask_grid():
    times = xr.date_range("2000-02-27", periods=13, freq="6h", calendar="noleap", use_cftime=True).values
    everywhere = range(13)
    ds, truth = storm_fields(
        np.arange(-90.0, 90.5, 1.0),
        np.arange(0.0, 360.0, 1.0),
        times,
        [
            ("A", 15.3, 5.6, 0.3, -0.95, 3000.0, 30.0, everywhere),  # crosses the meridian westward
            ("B", 20.7, 290.2, 0.6, -0.8, 3000.0, 30.0, everywhere),
            ("shallow", 10.0, 200.0, 0.0, -1.0, 50.0, 30.0, everywhere),
            ("calm", -15.0, 100.0, 0.0, -1.0, 3000.0, 4.0, everywhere),
        ],
    )
    found = detect(ds.chunk({"time": 1}))
    assert sorted(found["storm"].unique()) == ["DET0001", "DET0002"]
    real = truth[truth["storm"].isin(["A", "B"])]
    scores = match(real, found)
    assert scores["hit_rate"] >= 0.9
    assert scores["mean_error_km"] < 30.0
    assert scores["false_alarm_rate"] == 0.0
    assert match(real, found, max_km=100.0)["hit_rate"] >= 0.9
    assert found["psl_min"].to_numpy() == pytest.approx(
        101000 - 3000 + 800 * np.sin(np.radians(found["lat"])) ** 2, abs=100
    )
    assert found["vmax"].between(28.0, 36.0).all()
    assert isinstance(found.loc[0, "time"], cftime.datetime) and found.loc[0, "time"].calendar == "noleap"


def test_detect_bridges_a_missing_step_and_applies_duration_on_datetime64_regional_grid():
    times = np.arange("2005-08-25T00", "2005-08-28T06", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    lat, lon = np.arange(0.0, 45.5, 1.0), np.arange(250.0, 340.5, 1.0)
    gap = [t for t in range(len(times)) if t != 6]
    ds, truth = storm_fields(lat, lon, times, [("A", 18.2, 300.4, 0.7, -0.7, 3000.0, 30.0, gap)], seed=1)
    found = detect(ds)
    assert list(found["storm"].unique()) == ["DET0001"] and len(found) == len(gap)
    assert match(truth, found, max_km=100.0)["hit_rate"] == 1.0
    assert detect(ds, min_duration_h=80.0).empty
    assert detect(ds, max_gap_steps=0, min_wind_steps=5, min_duration_h=24).groupby("storm").size().tolist() == [6, 6]


@pytest.mark.parametrize(
    "depth, vmax, option", [(50.0, 30.0, {"closed_contour_pa": 15.0}), (3000.0, 4.0, {"min_wind": 3.0})]
)
def test_detect_rejects_shallow_or_calm_lows_by_its_thresholds(depth, vmax, option):
    times = np.arange("2005-08-25T00", "2005-08-28T06", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    lat, lon = np.arange(0.0, 40.5, 1.0), np.arange(260.0, 340.5, 1.0)
    ds, truth = storm_fields(
        lat, lon, times, [("A", 8.2, 300.4, 0.0, -0.5, depth, vmax, range(13))], seed=2, noise_pa=2.0
    )
    assert detect(ds).empty
    assert match(truth, detect(ds, **option))["hit_rate"] >= 0.9


def test_detect_rejects_missing_variables():
    ds = xr.Dataset({"PSL": (("time", "lat", "lon"), np.zeros((1, 3, 3)))})
    with pytest.raises(ClimodeError, match="U850"):
        detect(ds)


def test_the_centre_fit_recovers_a_quadratic_minimum_between_cells():
    """One fit for the detector and verification: exact on a quadratic bowl, also with a missing
    cell in the window; not used where the window is cut by the grid's edge."""
    from climode.geo.storms import quadratic_minima

    i, j = np.mgrid[0:20, 0:30].astype(float)
    bowl = 100000.0 + 50.0 * (i - 10.3) ** 2 + 30.0 * (j - 20.6) ** 2 + 10.0 * (i - 10.3) * (j - 20.6)
    di, dj, value = quadratic_minima(bowl, np.array([10, 10]), np.array([21, 21]), 1, False)
    np.testing.assert_allclose(di, 0.3, atol=1e-6) and np.testing.assert_allclose(dj, -0.4, atol=1e-6)
    np.testing.assert_allclose(value, 100000.0, atol=1e-4)
    holed = bowl.copy()
    holed[11, 22] = np.nan
    di, dj, value = quadratic_minima(holed, np.array([10]), np.array([21]), 1, False)
    np.testing.assert_allclose([di[0], dj[0], value[0]], [0.3, -0.4, 100000.0], atol=1e-4)
    di, dj, value = quadratic_minima(bowl, np.array([0]), np.array([29]), 1, False)  # corner: the cell itself
    assert di[0] == dj[0] == 0.0 and value[0] == bowl[0, 29]
