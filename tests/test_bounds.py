"""Bounds on what a forecast may ask for: its memory and time estimated over the whole path and
refused before anything is read, every form of times counted before it is expanded, and written
times exact at the input's time resolution."""

from datetime import timedelta

import cftime
import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import Persist, assert_user_error, run_module

from climode.checkpoint import Card, Checkpoint
from climode.cli.forecast import main as forecast_main
from climode.errors import ClimodeError
from climode.forecasting import forecast, forecast_model
from climode.io import checks
from climode.io.write import lead_layout
from climode.times import as_hours, hours_between, resolution_us

VARIABLES = ["U850", "V850", "PSL"]
GIB = 2**30


@pytest.fixture(scope="module")
def bundled():
    return forecast_model(None, "cpu")


def _unread():
    raise AssertionError("the inputs were read")


def unreadable(res: float, height: float, width: float, frames: int = 5, calendar: str = "noleap") -> xr.Dataset:
    """Fields on a ``res``-degree grid of ``height`` x ``width`` degrees that fail the test if read."""
    lat = -height / 2 + res * (np.arange(round(height / res)) + 0.5)
    lon = res * (np.arange(round(width / res)) + 0.5)
    shape = (frames, lat.size, lon.size)
    times = [cftime.datetime(2000, 8, 2, 3 * k, calendar=calendar) for k in range(frames)]
    data = {v: (("time", "lat", "lon"), da.from_delayed(dask.delayed(_unread)(), shape, np.float32)) for v in VARIABLES}
    return xr.Dataset(data, coords={"time": times, "lat": lat, "lon": lon})


# ------------------------------------------------------------------ 1. memory and time


# the calibration runs behind climode.io.checks' constants: peak RSS of forecast() above the process's
# before the fields were built (VmHWM after /proc/self/clear_refs 5), bundled model, 5 input frames, one
# torch thread, a 2-core Xeon, 2026-12-07: (grid step, height, width (degrees), times, lead h, bytes)
CALIBRATION = [
    (0.25, 60, 160, 3, 0, 216_567_808),  # NaN in the inputs: the dependence probe ran
    (0.25, 120, 320, 3, 0, 763_301_888),
    (0.25, 60, 160, 12, 0, 560_312_320),  # NaN, times between the inputs
    (0.05, 20, 40, 3, 0, 426_647_552),  # NaN
    (0.05, 20, 40, 12, 0, 802_279_424),
    (1.0, 60, 160, 48, 0, 494_174_208),  # times between the inputs
    (1.0, 60, 160, 3, 9000, 1_428_717_568),  # and a fourth time 9000 h on (--allow-long-leads): 3000 steps
]


@pytest.mark.parametrize("res, height, width, times, lead, peak", CALIBRATION)
def test_the_estimate_covers_the_measured_peaks(bundled, res, height, width, times, lead, peak):
    steps = lead / bundled.model.config.time_scale  # rk4 steps of one time unit
    need, _ = checks.forecast_cost(
        unreadable(res, height, width), VARIABLES, times + bool(lead), 1.0, (60, 160), 16, steps
    )
    assert peak < need < 2 * peak


def test_finer_grids_more_times_and_longer_leads_cost_more():
    cost = lambda res, times=3, steps=0.0: checks.forecast_cost(
        unreadable(res, 20, 40), VARIABLES, times, 1.0, (60, 160), 16, steps
    )
    fine, coarse, more_times, long_lead = cost(0.05), cost(0.25), cost(0.25, 30), cost(0.25, steps=1e5)
    assert fine[1] > 20 * coarse[1]  # 25x the input cells (the box mean costs the same whatever its width)
    assert more_times[0] > 2 * coarse[0] and more_times[1] > 4 * coarse[1]
    assert long_lead[0] > 10 * coarse[0]  # a decoder state per step


def test_a_fine_global_grid_is_refused_before_anything_is_read(bundled, monkeypatch):
    """0.05 degrees (3600 x 7200) passed the estimate of 24 bytes per cell and time (7 GB) and grew past
    7.6 GB; its path takes about 35 GiB."""
    monkeypatch.setattr(checks, "available_memory", lambda: 16 * GIB)
    with pytest.raises(ClimodeError, match=r"3600 x 7200 grid takes about 3\d\.\d GiB, more than the 12\.8 GiB"):
        forecast(unreadable(0.05, 180, 360), "60,63,66", checkpoint=bundled)


@pytest.mark.parametrize("free", [2**60, None])  # more memory than any machine, or a machine that cannot tell
def test_unbounded_work_is_refused_with_memory_to_spare(bundled, monkeypatch, free):
    monkeypatch.setattr(checks, "available_memory", lambda: free)
    with pytest.raises(ClimodeError, match=r"90000 x 180000 grid would run for about [\d,]+ hours on one core"):
        forecast(unreadable(0.002, 180, 360), "60,63,66", checkpoint=bundled)


def test_a_long_lead_counts_the_decoder_states(bundled, monkeypatch):
    """--allow-long-leads keeps every decoder ODE state to the furthest lead: a lead of 10^6 h is
    refused for its memory before anything is read."""
    monkeypatch.setattr(checks, "available_memory", lambda: 16 * GIB)
    ds = unreadable(1.0, 60, 160)
    with pytest.raises(ClimodeError, match="takes about"):
        forecast(ds, "1000000", checkpoint=bundled, allow_long_leads=True)
    with pytest.raises(ClimodeError, match="--allow-long-leads"):  # without it: the lead itself, also unread
        forecast(ds, "1000000", checkpoint=bundled)


# ------------------------------------------------------------------ 2. counts of times


@pytest.mark.parametrize(
    "given, count, latest",
    [
        ("60,63,66", 3, 66.0),
        ("60:72:3", 5, 72.0),
        ("0:1e12:1", 10**12 + 1, 1e12),  # expanded first, it would take 8 TB
        ("2000-08-02 06:00, 2000-08-02 12:30, 3", 3, 12.5),
        ([60, 90.5], 2, 90.5),
        (np.arange(12_000.0), 12_000, 11_999.0),
        ([cftime.datetime(2000, 8, 3, 1, calendar="360_day")], 1, 25.0),
    ],
)
def test_every_form_of_times_is_counted_before_it_is_expanded(given, count, latest):
    seen = []

    def refuse(n, last):
        seen.append((n, last))
        raise ClimodeError("refused")

    calendar = "360_day" if isinstance(given, list) and isinstance(given[0], cftime.datetime) else "noleap"
    with pytest.raises(ClimodeError, match="refused"):
        as_hours(given, cftime.datetime(2000, 8, 2, calendar=calendar), calendar, "--times", refuse)
    assert seen == [(count, latest)]


@pytest.mark.slow
def test_a_list_of_times_is_refused_as_its_range_and_dates_are(storm, tmp_path, capsys, monkeypatch):
    """12,000 explicit times grew past 4 GB; given as a list, a range or dates they are one estimate."""
    monkeypatch.setattr(checks, "available_memory", lambda: 4 * GIB)
    with xr.open_dataset(storm / "storm.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
        origin = ds.time.values[0]
    forms = [
        ",".join(f"{60 + 3 * k:g}" for k in range(12_000)),
        "60:36057:3",
        ",".join((origin + timedelta(hours=60 + 3 * k)).strftime("%Y-%m-%d %H:%M") for k in range(12_000)),
    ]
    lines = set()
    for times in forms:
        argv = ["--input", storm / "storm.nc", "--times", times, "--output", tmp_path / "f.nc", "--allow-long-leads"]
        assert forecast_main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        lines.add(next(line for line in err.splitlines() if line.startswith("error:")))
    assert len(lines) == 1 and "at 12,000 time(s)" in lines.pop()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_input_times_are_counted_against_the_frames(storm, tmp_path):
    result = run_module(
        "climode.forecast", "--input", storm / "storm.nc", "--times", "60", "--input-times", "0:1e12:1", cwd=tmp_path
    )
    assert_user_error(result, "--input-times gives 1,000,000,000,001 times", "5 frames")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_range_of_billions_of_times_is_one_error_line(storm, tmp_path):
    result = run_module("climode.forecast", "--input", storm / "storm.nc", "--times", "60:300:1e-7", cwd=tmp_path)
    assert_user_error(result, "2,400,000,00", "time(s)", "fewer times per call")  # not 19 GB of hours first
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 3. exact times


def persist(tmp_path) -> Checkpoint:
    path = tmp_path / "persist.bin"
    path.write_bytes(b"stand-in")
    stats = {v: {"method": "minmax", "min": -60.0, "max": 60.0} for v in VARIABLES[:2]}
    stats["PSL"] = {"method": "minmax", "min": 93000.0, "max": 103000.0}
    card = Card(variables=tuple(VARIABLES), normalisation=stats, time_units="hours", grid={"resolution": 1.0})
    return Checkpoint(Persist(), card, path)


def fields(times: list) -> xr.Dataset:
    lat, lon = np.arange(20.0) + 0.5, np.arange(200.0, 220.0) + 0.5
    rng = np.random.default_rng(0)
    base = {"U850": 0.0, "V850": 0.0, "PSL": 101000.0}
    data = {
        v: (("time", "lat", "lon"), (base[v] + rng.normal(0, 5, (len(times), 20, 20))).astype(np.float32))
        for v in VARIABLES
    }
    return xr.Dataset(data, coords={"time": times, "lat": lat, "lon": lon})


AXES = {  # first input, step, inputs, times asked, and the minutes after the first input they are
    "radar": ((2000, 8, 2, 7), timedelta(minutes=10), 4, "2000-08-02 07:50,0.8333333,2", [50, 50, 120]),
    "hourly": ((2000, 8, 2), timedelta(hours=1), 6, "5.1666667,7:8:0.5,2000-08-02 07:50", [310, 420, 450, 480, 470]),
}


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "standard"])
@pytest.mark.parametrize("axis", list(AXES))
def test_written_times_and_leads_are_exact_at_the_inputs_resolution(tmp_path, calendar, axis):
    start, step, count, asked, minutes = AXES[axis]
    first = cftime.datetime(*start, calendar=calendar)
    out = forecast(fields([first + k * step for k in range(count)]), asked, checkpoint=persist(tmp_path))
    wanted = [first + timedelta(minutes=m) for m in sorted(set(minutes))]
    assert list(out.time.values) == wanted  # whole seconds, none drifted (07:49:59.999996 before)
    for when in wanted:
        assert out.sel(time=when).time.values.item() == when
    reference = out.forecast_reference_time.values.item()
    micro = [(t - reference) // timedelta(microseconds=1) for t in wanted]
    assert out.lead_time.dtype == np.float64
    assert list(np.rint(out.lead_time.values * 3.6e9).astype(int)) == micro
    leads = lead_layout(out).lead_time.values  # float32 leads made 10 minutes 600,000,017,881 ns
    assert list(leads.astype("timedelta64[us]").astype(int)) == micro and not (leads % np.timedelta64(1, "s")).any()


def test_the_resolution_is_whole_seconds_or_the_inputs_finer_one():
    at = lambda *us: [cftime.datetime(2000, 1, 1, 0, 0, k, u, calendar="noleap") for k, u in enumerate(us)]
    assert resolution_us(at(0, 0, 0)) == 1_000_000
    assert resolution_us(at(0, 500_000)) == 500_000
    assert resolution_us(at(0, 250_000, 1_000)) == 1_000
    origin = cftime.datetime(2000, 1, 1, 0, 0, 0, 500_000, calendar="noleap")
    assert hours_between([origin + timedelta(minutes=50)], origin, "noleap")[0] == 50 / 60  # its microseconds kept


def test_times_read_back_from_the_netcdf_are_exact(tmp_path):
    from climode.io.write import write_netcdf

    first = cftime.datetime(2000, 8, 3, 7, 0, calendar="noleap")
    out = forecast(
        fields([first + k * timedelta(minutes=10) for k in range(4)]), "0.8333333", checkpoint=persist(tmp_path)
    )
    write_netcdf(out, tmp_path / "f.nc", "noleap")
    with xr.open_dataset(tmp_path / "f.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as back:
        assert back.time.values[0] == first + timedelta(minutes=50)
