"""The ensemble maps: track plume, spaghetti, probability maps and the page that holds them."""

import math
import re

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cartopy.mpl.feature_artist import FeatureArtist
from cartopy.mpl.geoaxes import GeoAxes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from PIL import Image
from test_maps import offline  # noqa: F401  (the fixture: no network, no cartopy downloads)

from climode.maps import draw_plume, draw_probability, draw_spaghetti, ensemble_mean_track, plot_ensemble

MEMBERS, TIMES = 6, 4
PATH = [(20.0, 310.0), (22.0, 306.0), (24.5, 302.0), (27.5, 299.0)]  # (lat, lon) of the low, every 6 h
KM_PER_DEG = 111.2


def offsets(member: int, k: int) -> tuple[float, float]:
    """Member ``member``'s displacement (lat, lon) degrees from PATH at time ``k``: spreading with lead."""
    angle = 2 * math.pi * member / MEMBERS
    return 0.6 * k * math.sin(angle), 0.9 * k * math.cos(angle)


def ensemble() -> tuple[xr.Dataset, pd.DataFrame]:
    """A 6-member ensemble of a Gaussian low moving north-west on a 1-degree grid (10..40 N, 270..330 E),
    with cyclonic 850 hPa winds, and its member tracks."""
    lat, lon = np.arange(10.0, 41.0), np.arange(270.0, 331.0)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    times = [cftime.DatetimeGregorian(2005, 8, 27, 6 * k) for k in range(TIMES)]
    psl, u, v = (np.zeros((MEMBERS, TIMES, lat.size, lon.size)) for _ in range(3))
    rows = []
    for m in range(MEMBERS):
        for k, (clat, clon) in enumerate(PATH):
            dlat, dlon = offsets(m, k)
            clat, clon = clat + dlat, clon + dlon
            dy, dx = la - clat, (lo - clon) * math.cos(math.radians(clat))
            r2 = dx**2 + dy**2
            depth = 2500.0 + 400.0 * k + 150.0 * m
            psl[m, k] = 101300.0 - depth * np.exp(-r2 / 18.0)
            speed = 60.0 * np.exp(-r2 / 30.0) / np.sqrt(r2 + 1.0)
            u[m, k], v[m, k] = -speed * dy, speed * dx
            rows.append({"realization": m, "time": times[k], "lat": clat, "lon": clon, "psl_min": psl[m, k].min()})
    dims = ("realization", "time", "lat", "lon")
    ens = xr.Dataset(
        {
            "U850": (dims, u, {"units": "m s-1"}),
            "V850": (dims, v, {"units": "m s-1"}),
            "PSL": (dims, psl, {"units": "Pa"}),
        },
        coords={
            "realization": np.arange(MEMBERS),
            "time": times,
            "lat": lat,
            "lon": lon,
            "lead_time": ("time", [6.0, 12.0, 18.0, 24.0]),
        },
    )
    return ens, pd.DataFrame(rows)


def wind_probability(ens: xr.Dataset, threshold: float = 17.0) -> xr.DataArray:
    speed = np.hypot(ens.U850, ens.V850)
    return (
        (speed >= threshold)
        .mean("realization")
        .assign_attrs(long_name=f"probability of 850 hPa wind speed >= {threshold:g} m s-1")
    )


def strike_probability(ens: xr.Dataset, tracks: pd.DataFrame, km: float = 120.0) -> xr.DataArray:
    la, lo = np.meshgrid(ens.lat.values, ens.lon.values, indexing="ij")
    hit = np.zeros((MEMBERS, *la.shape), bool)
    for row in tracks.itertuples():
        dy = (la - row.lat) * KM_PER_DEG
        dx = (lo - row.lon) * KM_PER_DEG * np.cos(np.radians(row.lat))
        hit[row.realization] |= np.hypot(dx, dy) <= km
    return xr.DataArray(
        hit.mean(0),
        dims=("lat", "lon"),
        coords={"lat": ens.lat, "lon": ens.lon},
        attrs={"long_name": f"strike probability (centre within {km:g} km in 24 h)"},
    )


def observed_track() -> pd.DataFrame:
    times = [cftime.DatetimeGregorian(2005, 8, 27, 6 * k) for k in range(TIMES)]
    return pd.DataFrame({"time": times, "lat": [p[0] + 0.4 for p in PATH], "lon": [p[1] - 0.7 for p in PATH]})


def lines(ax, gid: str) -> list:
    """The lines with that gid; for "member", every member's."""
    return [
        ln for ln in ax.lines if str(ln.get_gid()) == gid or gid == "member" and str(ln.get_gid()).startswith("member ")
    ]


def contours(ax, prefix: str) -> list[ContourSet]:
    return [c for c in ax.collections if isinstance(c, ContourSet) and str(c.get_gid()).startswith(prefix)]


def the_map(fig: Figure) -> GeoAxes:
    (ax,) = [a for a in fig.axes if isinstance(a, GeoAxes)]
    return ax


@pytest.fixture(scope="module")
def data():
    return ensemble()


@pytest.mark.slow
@pytest.mark.usefixtures("offline")
def test_the_page_is_one_non_blank_png_written_offline_with_every_panel(data, tmp_path):
    ens, tracks = data
    out = tmp_path / "out"
    out.mkdir()
    probabilities = {"gales": wind_probability(ens), "strike": strike_probability(ens, tracks)}
    path = plot_ensemble(
        ens, out / "ensemble.png", tracks=tracks, observed=observed_track(), probabilities=probabilities
    )
    assert path == out / "ensemble.png"
    assert [p.name for p in out.iterdir()] == ["ensemble.png"]  # no temporary left beside it
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 400 and pixels.shape[1] > 1000  # four panels, not a stamp
    drawn = 1 - (pixels > 245).all(-1).mean()
    assert drawn > 0.05 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # drawn on, in colour
    r, g, b = pixels.astype(int).transpose(2, 0, 1)
    assert ((r < 60) & (b > r + 60)).sum() > 500  # navy, the colour map's top: where every member has a gale


def test_a_failed_save_keeps_the_old_page(data, tmp_path, monkeypatch):
    ens, _ = data
    path = tmp_path / "ensemble.png"
    path.write_bytes(b"old")

    def half_write(self, fname, **kwargs):
        fname.write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_ensemble(ens, path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["ensemble.png"]


def test_the_plume_has_a_line_per_member_the_mean_and_the_observed_track(data):
    _, tracks = data
    fig = draw_plume(tracks, observed=observed_track())
    FigureCanvasAgg(fig).draw()
    ax = the_map(fig)
    members = lines(ax, "member")
    assert sorted(ln.get_gid() for ln in members) == [f"member {m}" for m in range(MEMBERS)]
    assert len(lines(ax, "mean")) == 1 and len(lines(ax, "observed")) == 1
    (mean,), (observed,) = lines(ax, "mean"), lines(ax, "observed")
    assert mean.get_linewidth() > 2 * max(ln.get_linewidth() for ln in members)  # bold
    assert observed.get_marker() == "o" and len(observed.get_xdata()) == TIMES  # a marker at each time
    assert observed.get_color() not in {ln.get_color() for ln in members} | {mean.get_color()}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"members ({MEMBERS})", "ensemble mean", "observed"]
    assert any(isinstance(a, FeatureArtist) and a.get_gid() == "coastline" for a in ax.collections)
    assert "2005-08-27 00:00 to 2005-08-27 18:00 (UTC)" in ax.get_title(loc="left")
    x0, x1, y0, y1 = ax.get_extent()  # a box around every track
    for m, member in tracks.groupby("realization"):
        (line,) = lines(ax, f"member {m}")
        np.testing.assert_allclose(line.get_ydata(), member.lat)
        assert (
            x0 < line.get_xdata().min() and line.get_xdata().max() < x1 and y0 < min(member.lat) <= max(member.lat) < y1
        )


def test_the_mean_track_is_the_members_mean_position_at_each_time(data):
    _, tracks = data
    mean = ensemble_mean_track(tracks.sample(frac=1.0, random_state=0))  # in any row order
    expected = tracks.groupby("time")[["lat", "lon"]].mean()
    assert list(mean.time) == list(expected.index)
    np.testing.assert_allclose(mean.lat, expected.lat)
    np.testing.assert_allclose(mean.lon, expected.lon)
    assert list(mean.members) == [MEMBERS] * TIMES
    # drawn where it is: the bold line's points, shifted back by the map's central longitude
    ax = the_map(draw_plume(tracks))
    (line,) = lines(ax, "mean")
    np.testing.assert_allclose(line.get_ydata(), expected.lat)
    shift = line.get_xdata() - expected.lon.to_numpy()
    assert np.ptp(shift) == pytest.approx(0.0, abs=1e-9)
    (line0,) = lines(ax, "member 0")
    member0 = tracks[tracks.realization == 0].lon.to_numpy()
    np.testing.assert_allclose(line0.get_xdata() - member0, shift[0])  # the same shift for every line


def test_the_mean_track_across_the_meridian_is_near_0_not_180():
    t0, t1 = cftime.DatetimeGregorian(2005, 9, 1, 0), cftime.DatetimeGregorian(2005, 9, 1, 6)
    tracks = pd.DataFrame(
        {
            "realization": [0, 1, 2, 3, 0, 1, 2],
            "time": [t0, t0, t0, t0, t1, t1, t1],
            "lat": [40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0],
            "lon": [358.0, 359.0, 1.0, 2.0, 2.0, 3.0, 355.0],
        }
    )
    mean = ensemble_mean_track(tracks)
    np.testing.assert_allclose(mean.lat, [41.5, 45.0])
    wrapped = (mean.lon.to_numpy() + 180) % 360 - 180
    np.testing.assert_allclose(wrapped, [(-2 - 1 + 1 + 2) / 4, (2 + 3 - 5) / 3], atol=1e-9)
    assert list(mean.members) == [4, 3]
    # on the map, lines cross the meridian without a jump and the mean sits among the members
    ax = the_map(draw_plume(tracks))
    x0, x1, _, _ = ax.get_extent()
    for line in lines(ax, "member") + lines(ax, "mean"):
        x = line.get_xdata()
        assert np.all(np.abs(np.diff(x)) < 10) and x0 <= x.min() and x.max() <= x1
    (mean_line,) = lines(ax, "mean")
    member_x = np.concatenate([ln.get_xdata()[:1] for ln in lines(ax, "member")])
    assert member_x.min() < mean_line.get_xdata()[0] < member_x.max()
    assert x1 - x0 < 40  # a box around the tracks, not the whole globe


def test_the_spaghetti_draws_one_contour_per_member_and_the_mean_bold(data):
    ens, tracks = data
    fig = draw_spaghetti(ens)
    ax = the_map(fig)
    members, (mean,) = contours(ax, "member"), contours(ax, "mean")
    assert sorted(c.get_gid() for c in members) == [f"member {m}" for m in range(MEMBERS)]
    assert all(list(c.levels) == [100000.0] for c in members + [mean])  # 1000 hPa in Pa
    assert mean.get_linewidths()[0] > 2 * members[0].get_linewidths()[0]
    title = ax.get_title(loc="left")
    assert "PSL 1000 hPa" in title and "valid 2005-08-27 18:00   +24 h" in title  # the last time by default
    # each member's isobar rings that member's low at the last time, not another member's
    centre = 270.0 - ax.get_extent()[0]  # the map's central longitude: the grid's west edge is at x = 270 - centre
    last = tracks[tracks.time == ens.time.values[-1]].set_index("realization")
    for c in members:
        ring = np.concatenate([p.vertices for p in c.get_paths()])
        lat, lon = last.loc[int(c.get_gid().split()[1]), ["lat", "lon"]]
        assert abs(ring[:, 1].mean() - lat) < 0.6 and abs(ring[:, 0].mean() + centre - lon) < 0.6
    wind = the_map(draw_spaghetti(ens, "wind", time=1))
    assert all(list(c.levels) == [17.0] for c in contours(wind, "member")) and len(contours(wind, "member")) == 6
    assert "850 hPa wind speed 17 m/s" in wind.get_title(loc="left") and "+12 h" in wind.get_title(loc="left")
    with pytest.raises(ValueError, match="give level= for 'U850'"):
        draw_spaghetti(ens, "U850")


def test_the_probability_map_is_labelled_with_its_long_name_and_blank_below_the_lowest_level(data):
    ens, tracks = data
    strike = strike_probability(ens, tracks)
    fig = draw_probability(strike)
    FigureCanvasAgg(fig).draw()
    ax = the_map(fig)
    (filled,) = contours(ax, "probability")
    assert filled.filled and filled.levels[0] == 0.05 and filled.levels[-1] == 1.0 and filled.extend == "neither"
    (bar,) = [a for a in fig.axes if a is not ax]
    assert bar.get_xlabel() == strike.attrs["long_name"]
    assert [t.get_text() for t in bar.get_xticklabels()][:3] == ["5%", "10%", "20%"]
    # a (time, lat, lon) probability: its last time, said so; or one panel per time asked for
    gales = wind_probability(ens)
    title = the_map(draw_probability(gales)).get_title(loc="left")
    assert "valid 2005-08-27 18:00   +24 h (last of 4 times)" in title
    row = draw_probability(gales, times=[0, 3], title="gales")
    panels = [a for a in row.axes if isinstance(a, GeoAxes)]
    assert len(panels) == 2 and "+6 h" in panels[0].get_title(loc="left") and row.get_suptitle() == "gales"
    assert [a.get_xlabel() for a in row.axes if a not in panels] == [gales.attrs["long_name"]]  # one shared bar


def test_a_probability_outside_0_to_1_is_refused_by_name(data):
    ens, tracks = data
    percent = strike_probability(ens, tracks) * 100
    percent.attrs["long_name"] = "strike probability"
    with pytest.raises(ValueError, match=re.escape("probability 'strike probability' has values outside 0..1")):
        draw_probability(percent)
    negative = wind_probability(ens) - 0.5
    negative.attrs["long_name"] = "gale probability"
    with pytest.raises(ValueError, match="'gale probability'.*outside 0..1"):
        plot_ensemble(ens, "never-written.png", probabilities=[negative])


def test_region_boxes_every_map_across_the_dateline(data):
    ens, tracks = data
    east = ens.assign_coords(lon=ens.lon + 40.0)  # 310..370 E: the grid crosses the meridian
    moved = tracks.assign(lon=(tracks.lon + 40.0) % 360)  # and the tracks with it, as 0..360
    fig = draw_plume(moved, region="15:35,330:370")
    ax = the_map(fig)
    x0, x1, y0, y1 = ax.get_extent()
    assert (x1 - x0, y1 - y0) == (pytest.approx(40.0), pytest.approx(20.0))
    for line in lines(ax, "member"):
        assert np.all(np.abs(np.diff(line.get_xdata())) < 10)
    spaghetti = the_map(draw_spaghetti(east, region=((15, 35), (330, 370))))
    assert spaghetti.get_extent()[:2] == pytest.approx(ax.get_extent()[:2])
    x0, x1, _, _ = spaghetti.get_extent()
    for c in contours(spaghetti, "member"):  # each member's isobar drawn whole inside the box
        ring = np.concatenate([p.vertices for p in c.get_paths()])
        assert len(ring) and x0 < ring[:, 0].min() and ring[:, 0].max() < x1
