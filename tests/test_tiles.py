import numpy as np
import pytest
import xarray as xr

from climode import ClimodeError
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
