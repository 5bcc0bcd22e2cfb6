import numpy as np
import pytest
import xarray as xr

from climode import ClimodeError
from climode.geo.grid import box_mean_at, upsample
from climode.geo.tiles import BASINS, Tile, extract, parse_tiles, regular_tiles, to_native


def global_field(step=0.25):
    lat = np.arange(-90, 90 + step / 2, step)
    lon = np.arange(0, 360, step)
    field = np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))[None, :]
    return xr.Dataset(
        {"PSL": (("time", "lat", "lon"), np.stack([field, 2 * field]).astype("float32"))},
        coords={"time": [0, 1], "lat": lat, "lon": lon},
    ).chunk({"time": 1})


def expected(lat, lon):
    return np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(lon))


def test_native_tile_is_240_by_640_and_crosses_the_meridian_contiguously():
    tile = Tile("across", 0.0, 220.0)  # 220E .. 20E
    out = extract(global_field(), tile)
    assert out.PSL.shape == (2, 240, 640)
    lon = out.lon.values
    assert lon[0] == 220.0 and np.all(np.diff(lon) == 0.25) and lon[-1] == 379.75
    assert float(out.PSL[0].sel(lat=10.0, lon=370.0)) == pytest.approx(expected(10.0, 10.0), abs=1e-6)


def test_regridded_tile_matches_the_field_and_maps_back():
    ds = global_field()
    tile = Tile("across", 0.0, 220.0)
    coarse = extract(ds, tile, 1.0)
    assert coarse.PSL.shape == (2, 60, 160)
    assert coarse.lat.values[0] == 0.5 and coarse.lon.values[-1] == 379.5
    assert float(coarse.PSL[1].sel(lat=30.5, lon=370.5)) == pytest.approx(2 * expected(30.5, 10.5), abs=1e-4)
    native = ds.isel(lat=slice(400, 440), lon=slice(0, 60))  # 10..19.75N, 0..14.75E: past the meridian
    back = to_native(coarse, native)
    assert np.abs(back.PSL.values - native.PSL.values).max() < 1e-3


def test_tiles_do_not_overlap():
    for tiles in (list(BASINS.values()), regular_tiles()):
        for i, a in enumerate(tiles):
            for b in tiles[i + 1 :]:
                lat_overlap = min(a.lat0 + a.height, b.lat0 + b.height) - max(a.lat0, b.lat0)
                lon_overlap = ((b.lon0 - a.lon0) % 360 < a.width) or ((a.lon0 - b.lon0) % 360 < b.width)
                assert lat_overlap <= 0 or not lon_overlap, (a, b)


def test_parse_tiles_and_errors():
    assert [t.name for t in parse_tiles("south-indian,10:300")] == ["south-indian", "tile_+10_300"]
    assert len(parse_tiles("regular")) == 6
    with pytest.raises(ClimodeError, match="unknown basin 'atlantis'"):
        parse_tiles("atlantis")
    with pytest.raises(ClimodeError, match="LAT0:LON0"):
        parse_tiles("10:east")


def test_tile_outside_the_grid_is_refused():
    ds = global_field(1.0).sel(lat=slice(0, 40), lon=slice(260, 340))
    with pytest.raises(ClimodeError, match="outside the grid"):
        extract(ds, Tile("far", -60.0, 60.0))
    with pytest.warns(UserWarning, match="beyond the grid"):
        partial = extract(ds, Tile("part", 0.0, 220.0), 1.0)
    assert np.isnan(partial.PSL.values).any() and np.isfinite(partial.PSL.values).any()


@pytest.mark.parametrize("factor", [4.0, 5.0, 1.2])
def test_the_box_mean_at_coarse_centres_is_the_rolling_mean_sampled_there(factor):
    """The running-sum box mean, computed only where bilinear sampling reads it, equals xarray's
    rolling mean (NaN-aware, truncated at the edges) interpolated at the coarse centres, with holes and
    lazily (dask) alike; NaN outside the source grid."""
    rng = np.random.default_rng(0)
    lat, lon = np.arange(0, 20, 0.25), np.arange(100, 130, 0.25)
    values = rng.normal(1000.0, 50.0, (2, lat.size, lon.size)).astype(np.float32)
    values[0, 10:14, 30:50] = np.nan  # a hole
    values[1, :, :3] = np.nan  # a missing edge
    da = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"lat": lat, "lon": lon})
    step = 0.25 * factor
    target_lat, target_lon = np.arange(-1.0, 21.0, step), np.arange(99.3, 131.0, step)
    width = int(np.ceil(factor)) // 2 * 2 + 1 if factor > 1.5 else 1
    reference = (
        da.rolling(lat=width, lon=width, center=True, min_periods=1).mean().interp(lat=target_lat, lon=target_lon)
    )
    for source in (da, da.chunk({"time": 1})):
        out = box_mean_at(source, factor, target_lat, target_lon).compute()
        assert out.dims == ("time", "lat", "lon") and out.shape == reference.shape
        np.testing.assert_array_equal(np.isnan(out.values), np.isnan(reference.values))
        np.testing.assert_allclose(out.values, reference.values, rtol=0, atol=1e-3)  # float32 sums of ~1000
    assert np.isnan(out.values[:, 0]).all() and np.isfinite(out.values[0, 5, 5])  # -1 N lies outside


def test_upsampling_is_bilinear_with_edge_values_one_coarse_cell_out():
    coarse = xr.Dataset(coords={"lat": np.arange(0.5, 5.0), "lon": np.arange(10.5, 16.0)})
    native = xr.Dataset(coords={"lat": np.arange(0.125, 5.0, 0.25), "lon": np.arange(10.125, 16.0, 0.25)})
    values = np.random.default_rng(1).normal(size=(3, 5, 6)).astype(np.float32)
    padded = (
        xr.DataArray(values, dims=("t", "lat", "lon"))
        .pad(lat=1, lon=1, mode="edge")
        .assign_coords(lat=np.r_[-0.5, coarse.lat.values, 5.5], lon=np.r_[9.5, coarse.lon.values, 16.5])
    )
    reference = padded.interp(lat=native.lat.values, lon=native.lon.values).values
    np.testing.assert_allclose(upsample(values, coarse, native), reference, rtol=0, atol=1e-6)
