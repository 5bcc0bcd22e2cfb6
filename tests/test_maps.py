import math
import socket
import warnings

import cartopy
import cartopy.crs as ccrs
import cftime
import numpy as np
import pytest
import xarray as xr
from cartopy.io import DownloadWarning
from cartopy.mpl.feature_artist import FeatureArtist
from cartopy.mpl.geoaxes import GeoAxes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver
from PIL import Image
from shapely.geometry import Point

from climode import maps
from climode.errors import ClimodeError
from climode.maps import animate_forecast, draw_forecast, plot_forecast

LOWS = [(25.0, 280.0), (27.0, 283.0), (30.0, 286.0)]  # (lat, lon) of the low at each time


def forecast(lon=None, lows=LOWS, leads=(3.0, 6.0, 9.0)) -> xr.Dataset:
    """A deepening low moving north-east, with cyclonic wind around it, every 3 h on a 1-degree grid
    (longitudes ``lon``, default 200..359 E)."""
    lon = np.arange(200.0, 360.0) if lon is None else lon
    lat = np.arange(0.0, 60.0)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    psl, u, v = [], [], []
    for k, (clat, clon) in enumerate(lows):
        dy, dx = la - clat, (lo - clon) * math.cos(math.radians(clat))
        r2 = dx**2 + dy**2
        psl.append(101000.0 - (4000.0 + 500 * k) * np.exp(-r2 / 50.0))
        speed = 30.0 * np.exp(-r2 / 80.0) / np.sqrt(r2 + 1.0)
        u.append(-speed * dy)
        v.append(speed * dx)
    dims = ("time", "lat", "lon")
    times = [cftime.DatetimeNoLeap(2000, 8, 3, 3 * k) for k in range(len(lows))]
    return xr.Dataset(
        {"U850": (dims, np.array(u)), "V850": (dims, np.array(v)), "PSL": (dims, np.array(psl))},
        coords={"time": times, "lat": lat, "lon": lon, "lead_time": ("time", list(leads))},
    )


def panels(fig: Figure) -> list[GeoAxes]:
    return [ax for ax in fig.axes if isinstance(ax, GeoAxes)]


def marker(ax) -> tuple[float, float] | None:
    lines = [line for line in ax.lines if line.get_gid() == "centre"]
    assert len(lines) <= 1
    return tuple(lines[0].get_xydata()[0]) if lines else None


def assert_marker_at(ax: GeoAxes, lat: float, lon: float) -> None:
    expected = ax.projection.transform_point(lon, lat, ccrs.PlateCarree())
    assert np.allclose(marker(ax), expected, atol=1.0), (marker(ax), expected)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, no Natural Earth data on disk, and cartopy download warnings as errors."""

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setitem(cartopy.config, "data_dir", tmp_path / "no-cartopy-data")
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", tmp_path / "no-cartopy-data")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DownloadWarning)
        yield


@pytest.mark.slow
def test_png_is_written_offline_at_figure_size_with_no_temporary_left(tmp_path, offline):
    ds = forecast()
    out = plot_forecast(ds, tmp_path / "map.png", title="test")
    assert out == tmp_path / "map.png"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary, no cartopy download
    width, height = draw_forecast(ds, title="test").get_size_inches() * maps.DPI
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (round(width), round(height))


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    path.write_bytes(b"old")

    def half_write(self, fname, **kwargs):
        fname.write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_forecast(forecast(), path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


@pytest.mark.slow
def test_one_map_per_time_with_titles_levels_wind_coastline_and_centre(offline):
    fig = draw_forecast(forecast())
    FigureCanvasAgg(fig).draw()
    axes = panels(fig)
    assert len(axes) == 3
    for ax, hour, lead in zip(axes, ("00:00", "03:00", "06:00"), ("+3 h", "+6 h", "+9 h")):
        assert f"valid 2000-08-03 {hour}" in ax.get_title(loc="left") and lead in ax.get_title(loc="left")
    isobars = [next(c for c in ax.collections if c.get_gid() == "isobars") for ax in axes]
    levels = [c.levels for c in isobars]
    assert all(np.array_equal(lv, levels[0]) for lv in levels) and np.allclose(np.diff(levels[0]), 4.0)
    assert levels[0][0] <= 960.0 and 1009.0 <= levels[0][-1] < 1100.0  # hPa, covering the deepest low
    assert all(c.labelTexts for c in isobars)  # labelled
    assert any(ax.get_xlabel() == "850 hPa wind speed (m/s)" for ax in fig.axes)
    for ax, (lat, lon) in zip(axes, LOWS):
        assert_marker_at(ax, lat, lon)
        quiver = next(c for c in ax.collections if isinstance(c, Quiver))
        assert 15 <= np.unique(quiver.X).size <= 25
        coast = [a for a in ax.collections if isinstance(a, FeatureArtist) and a.get_gid() == "coastline"]
        assert len(coast) == 1
        florida = Point(-81.0, 25.5)
        assert min(line.distance(florida) for line in coast[0]._feature.geometries()) < 1.0  # Florida's coast


def test_given_centres_are_marked_and_nan_centres_skipped():
    fig = draw_forecast(forecast(), centres=[(10.0, 210.0), (math.nan, math.nan), (50.0, -20.0)])
    first, second, third = panels(fig)
    assert_marker_at(first, 10.0, 210.0)
    assert marker(second) is None
    assert_marker_at(third, 50.0, 340.0)
    with pytest.raises(ValueError, match="2 centres for 3 times"):
        draw_forecast(forecast(), centres=[(10.0, 210.0)] * 2)


@pytest.mark.slow
def test_domain_across_the_meridian_draws_contiguously(tmp_path, offline):
    lows = [(30.0, 370.0), (31.0, 372.0), (32.0, 374.0)]
    ds = forecast(lon=np.arange(300.0, 421.0), lows=lows, leads=(-3.0, 0.0, 3.0))
    fig = draw_forecast(ds)
    for ax, (lat, lon) in zip(panels(fig), lows):
        x0, x1, y0, y1 = ax.get_extent(ax.projection)
        assert x1 - x0 == pytest.approx(120.0, abs=1.0) and y1 - y0 == pytest.approx(59.0, abs=1.0)
        assert_marker_at(ax, lat, lon - 360.0)
    assert "-3 h" in panels(fig)[0].get_title(loc="left")
    assert plot_forecast(ds, tmp_path / "meridian.png").stat().st_size > 0


@pytest.mark.slow
def test_gif_has_one_frame_per_time(tmp_path, offline):
    out = animate_forecast(forecast(), tmp_path / "storm.gif", fps=4)
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 3
        assert gif.info["duration"] == 250
    assert [p.name for p in tmp_path.iterdir()] == ["storm.gif"]


def test_other_variables_draw_in_their_own_units():
    base = forecast()
    t = (base.PSL / 400.0).assign_attrs(units="K", long_name="air temperature")
    ds = xr.Dataset({"u": base.U850, "v": base.V850, "t": t})
    fig = draw_forecast(ds, wind=("u", "v"))
    assert any(ax.get_xlabel() == "air temperature (K)" for ax in fig.axes)
    ax = panels(fig)[0]
    levels = next(c for c in ax.collections if isinstance(c, ContourSet)).levels
    assert levels[0] <= float(t.min()) and float(t.max()) <= levels[-1] < 300.0
    assert any(isinstance(c, Quiver) for c in ax.collections)
    assert marker(ax) is None  # no pressure, no centre
    assert not any(isinstance(c, Quiver) for c in panels(draw_forecast(ds[["t"]]))[0].collections)


def test_projected_grid_draws_on_plain_axes():
    ds = forecast().rename(lat="y", lon="x").drop_vars(["x", "y"])
    fig = draw_forecast(ds)
    axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert len(axes) == 3 and not panels(fig)
    assert np.allclose(marker(axes[0]), (80.0, 25.0))  # (x, y) grid indices of the first low


def test_region_centres_the_map_on_the_storm_or_takes_a_box():
    from climode.maps import region

    ds = xr.Dataset(
        {"PSL": (("time", "lat", "lon"), np.full((1, 60, 160), 101000.0))},
        coords={"time": [0], "lat": np.arange(60) + 0.5, "lon": np.arange(160) + 200.5},
    )
    ds.PSL[0, 20, 100] = 97000.0  # the low at 20.5 N, 300.5 E
    storm = region(ds)
    assert storm.sizes["lat"] in (24, 25) and storm.sizes["lon"] in (36, 37)  # a 24 x 36 degree box
    assert float(storm.lat.mean()) == pytest.approx(20.5, abs=0.6) and float(storm.lon.mean()) == pytest.approx(
        300.5, abs=0.6
    )
    assert region(ds, "full").sizes == ds.sizes
    box = region(ds, "10:20,250:260")
    assert box.lat.min() >= 10 and box.lat.max() <= 20 and box.lon.min() >= 250 and box.lon.max() <= 260
    with pytest.raises(ClimodeError):
        region(ds, "0:10,100:110")  # off the grid


@pytest.mark.slow
def test_titles_carry_model_initial_valid_time_and_lead_and_a_wide_region_gets_an_inset(offline):
    ds = forecast().assign_coords(forecast_reference_time=cftime.DatetimeNoLeap(2000, 8, 2, 21))
    ds.attrs["climode_checkpoint"] = "/models/cam5-synthetic.safetensors"
    fig = draw_forecast(ds)
    FigureCanvasAgg(fig).draw()
    heading = fig.get_suptitle()
    assert "cam5-synthetic.safetensors" in heading and "initial time 2000-08-02 21:00" in heading
    assert "noleap calendar" in heading  # a model calendar is said, not passed off as UTC
    first = panels(fig)[0]
    assert first.get_title(loc="left") == "valid 2000-08-03 00:00   +3 h"
    insets = [child for child in first.child_axes if child.get_gid() == "inset"]
    assert len(insets) == 1  # 160 degrees wide: the storm is zoomed on
    x0, x1, y0, y1 = insets[0].get_extent()
    cx, cy = marker(first)
    assert x0 < cx < x1 and y0 < cy < y1  # centred on the storm
    rings = [c for c in insets[0].collections if c.get_gid() == "isobars"]
    closed = [p for p in rings[0].get_paths() if len(p.vertices) > 3 and np.allclose(p.vertices[0], p.vertices[-1])]
    assert closed  # closed isobars around the core
    narrow = draw_forecast(maps.region(ds, "15:35,270:290"))
    assert not [c for ax in panels(narrow) for c in ax.child_axes if c.get_gid() == "inset"]


@pytest.mark.slow
def test_an_mp4_animation_has_one_frame_per_time(tmp_path, offline):
    import imageio.v3 as iio

    path = animate_forecast(forecast(), tmp_path / "storm.mp4", fps=2)
    frames = iio.imread(path, index=None, plugin="FFMPEG")
    assert len(frames) == 3 and frames.shape[-1] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["storm.mp4"]


def test_a_lead_time_decoded_as_a_timedelta_is_shown_in_hours():
    ds = forecast().assign_coords(lead_time=("time", np.array([3, 6, 9], "timedelta64[h]").astype("timedelta64[ns]")))
    assert panels(draw_forecast(ds))[1].get_title(loc="left").endswith("+6 h")


def test_track_map_draws_one_line_per_storm_and_label_over_the_field_and_boxes(offline):
    import pandas as pd

    from climode.geo.tiles import parse_tiles

    true = pd.DataFrame(
        {"storm": ["A", "A", "A", "B", "B"], "lat": [12, 14, 16, 20, 22], "lon": [300, 297, 294, 250, 247]}
    )
    found = true.assign(lat=true.lat + 0.5)
    field = forecast().PSL.isel(time=0).assign_attrs(units="Pa")
    fig = maps.draw_tracks({"true": true, "detected": found}, field=field, boxes=parse_tiles("east-pacific-atlantic"))
    FigureCanvasAgg(fig).draw()
    (ax,) = [a for a in fig.axes if isinstance(a, GeoAxes)]
    lines = {label: [ln for ln in ax.lines if ln.get_gid() == f"track {label}"] for label in ("true", "detected")}
    assert [len(v) for v in lines.values()] == [2, 2]  # one per storm
    np.testing.assert_allclose(lines["detected"][0].get_ydata(), [12.5, 14.5, 16.5])
    assert lines["true"][0].get_linewidth() > lines["detected"][0].get_linewidth()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["true", "detected"]
    assert any(isinstance(a, FeatureArtist) for a in ax.artists + ax.collections)  # the bundled coastline
    assert [ln.get_gid() for ln in ax.lines if str(ln.get_gid()).startswith("box")] == ["box east-pacific-atlantic"]
    assert any(c.get_xlabel() == "PSL (hPa)" for c in fig.axes if c is not ax)
    with pytest.raises(ClimodeError, match="needs tracks, a field or boxes"):
        maps.draw_tracks({})
