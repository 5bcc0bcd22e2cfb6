"""Basin tiles: non-overlapping 60 x 160 degree lat/lon boxes cut from global fields.

A tile's longitudes run east from ``lon0`` and may cross the 0/360 meridian; the cut-out is
then contiguous, with longitudes continuing past 360 (e.g. 260 .. 420), so neighbouring
columns stay neighbours. ``to_native`` maps tile fields back onto the source grid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import ClimodeError
from .grid import box_mean_at, grid_step

HEIGHT, WIDTH = 60.0, 160.0


@dataclass(frozen=True)
class Tile:
    """A lat/lon box: southern edge ``lat0`` (deg N), western edge ``lon0`` (deg E, 0..360),
    ``height`` x ``width`` degrees."""

    name: str
    lat0: float
    lon0: float
    height: float = HEIGHT
    width: float = WIDTH

    @property
    def lat_range(self) -> tuple[float, float]:
        return self.lat0, self.lat0 + self.height

    @property
    def lon_range(self) -> tuple[float, float]:
        """West and east edges in 0..360; east < west when the tile crosses the meridian."""
        return self.lon0 % 360, (self.lon0 + self.width) % 360

    def grid(self, resolution: float) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres (lat (H,), lon (W,)) at ``resolution`` degrees; lon continues past 360."""
        ny, nx = round(self.height / resolution), round(self.width / resolution)
        lat = self.lat0 + resolution * (np.arange(ny) + 0.5)
        lon = self.lon0 % 360 + resolution * (np.arange(nx) + 0.5)
        return lat, lon


# Two bands over the tropical-cyclone belt, each cut into two non-overlapping tiles whose
# 40-degree seam lies where cyclones are rare (Africa and the Mediterranean; the South Atlantic).
BASINS = {
    "north-indian-west-pacific": Tile("north-indian-west-pacific", 0.0, 40.0),
    "east-pacific-atlantic": Tile("east-pacific-atlantic", 0.0, 200.0),
    "south-indian": Tile("south-indian", -60.0, 20.0),
    "south-pacific": Tile("south-pacific", -60.0, 180.0),
}


def regular_tiles(lat_bands: tuple[float, ...] = (-90.0, -30.0, 30.0), lon_start: float = 0.0) -> list[Tile]:
    """Non-overlapping tiles: rows starting at each of ``lat_bands``, two 160-degree tiles per row
    from ``lon_start`` (360 is not a multiple of 160: a 40-degree seam is left east of them)."""
    return [
        Tile(f"tile_{lat0:+03.0f}_{(lon_start + k * WIDTH) % 360:03.0f}", lat0, (lon_start + k * WIDTH) % 360)
        for lat0 in lat_bands
        for k in range(2)
    ]


def parse_tiles(spec: str) -> list[Tile]:
    """Tiles from a comma-separated list of basin names, ``regular``, or ``LAT0:LON0`` boxes."""
    tiles: list[Tile] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item in BASINS:
            tiles.append(BASINS[item])
        elif item == "regular":
            tiles.extend(regular_tiles())
        elif ":" in item:
            try:
                lat0, lon0 = (float(x) for x in item.split(":"))
            except ValueError:
                raise ClimodeError(f"tile {item!r} is not LAT0:LON0 (two numbers, degrees)") from None
            tiles.append(Tile(f"tile_{lat0:+03.0f}_{lon0 % 360:03.0f}", lat0, lon0 % 360))
        else:
            raise ClimodeError(f"unknown basin {item!r}; choose from {', '.join(BASINS)}, regular, or LAT0:LON0")
    if not tiles:
        raise ClimodeError("no tiles given")
    return tiles


def _contiguous_lon(ds: xr.Dataset, tile: Tile) -> xr.Dataset:
    """The source columns of the tile with longitudes made monotonic across the meridian."""
    west = tile.lon0 % 360
    east = west + tile.width
    lon = ds.lon.values % 360
    shifted = np.where(lon < west, lon + 360, lon)
    order = np.argsort(shifted, kind="stable")
    keep = order[(shifted[order] >= west - grid_step(ds.lon)) & (shifted[order] <= east + grid_step(ds.lon))]
    if len(keep) and np.array_equal(keep, np.arange(keep[0], keep[0] + len(keep))):
        keep = slice(int(keep[0]), int(keep[0]) + len(keep))  # a view, not a copy of the fields
    return ds.isel(lon=keep).assign_coords(lon=shifted[keep])


def extract(ds: xr.Dataset, tile: Tile, resolution: float | None = None) -> xr.Dataset:
    """Cut ``tile`` out of ``ds`` (dims time, lat, lon; lat ascending, lon 0..360).

    With ``resolution`` (degrees) the tile is put on its regular grid of cell centres
    (``Tile.grid``) bilinearly, after a centred box mean over about one target cell when that
    is coarser than the source (no aliasing). Parts of the tile outside the source grid are NaN (a warning says
    so); a tile that does not overlap the grid at all is an error.
    """
    lat_lo, lat_hi = tile.lat_range
    step = grid_step(ds.lat)
    sub = _contiguous_lon(ds.sel(lat=slice(lat_lo - step, lat_hi + step)), tile)
    if sub.sizes["lat"] < 2 or sub.sizes["lon"] < 2:
        raise ClimodeError(
            f"tile {tile.name} (lat {lat_lo:g}..{lat_hi:g}, lon {tile.lon0:g}..{tile.lon0 + tile.width:g}) "
            "lies outside "
            f"the grid (lat {float(ds.lat.min()):g}..{float(ds.lat.max()):g}, "
            f"lon {float(ds.lon.min()):g}..{float(ds.lon.max()):g})"
        )
    if resolution is None:
        west = tile.lon0 % 360
        return sub.isel(
            lat=(sub.lat >= lat_lo) & (sub.lat < lat_hi), lon=(sub.lon >= west) & (sub.lon < west + tile.width)
        )
    lat, lon = tile.grid(resolution)
    out = box_mean_at(sub, resolution / step, lat, lon)
    covered = (
        (lat.min() >= float(sub.lat.min()) - step)
        & (lat.max() <= float(sub.lat.max()) + step)
        & (lon.min() >= float(sub.lon.min()) - step)
        & (lon.max() <= float(sub.lon.max()) + step)
    )
    if not covered:
        warnings.warn(f"tile {tile.name} extends beyond the grid; cells outside it are NaN", stacklevel=2)
    return out


def to_native(tile_ds: xr.Dataset, like: xr.Dataset) -> xr.Dataset:
    """Map tile fields (lon possibly past 360) back onto ``like``'s lat/lon grid, bilinearly;
    cells of ``like`` outside the tile are NaN."""
    lon = like.lon.values % 360
    west = float(tile_ds.lon.min()) - grid_step(tile_ds.lon) / 2
    target = np.where(lon < west, lon + 360, lon)
    out = tile_ds.interp(lat=like.lat.values, lon=target)
    return out.assign_coords(lon=like.lon.values)


def windows(n: int, size: int, overlap: int) -> list[int]:
    """Start indices of windows of ``size`` cells that cover ``n`` cells, neighbours sharing at
    least ``overlap`` cells (evenly spread); a single window at 0 when ``n <= size``."""
    if n <= size:
        return [0]
    stride = max(size - overlap, 1)
    count = int(np.ceil((n - size) / stride)) + 1
    return [round(k * (n - size) / (count - 1)) for k in range(count)]


def blend_weights(size: int, overlap: int) -> np.ndarray:
    """Weights (size,) for stitching overlapping windows: 1 in the interior, ramping down linearly
    over ``overlap`` cells to each edge (never zero), so that overlaps cross-fade."""
    if overlap < 1:
        return np.ones(size)
    i = np.arange(size)
    return np.clip(np.minimum(i + 0.5, size - i - 0.5) / overlap, 1e-3, 1.0)


def domain(ds: xr.Dataset) -> Tile:
    """The box of ``ds``'s cell centres as a Tile, contiguous across the 0/360 meridian."""
    lat, lon = ds.lat.values, np.sort(ds.lon.values % 360)
    gaps = np.diff(np.r_[lon, lon[0] + 360])
    west = int(np.argmax(gaps)) + 1  # the domain starts east of its largest gap
    lon0 = lon[west % lon.size]
    span = 360.0 - gaps.max()
    return Tile("domain", float(lat[0]), float(lon0), float(lat[-1] - lat[0]), float(span))


def model_grids(ds: xr.Dataset, resolution: float | None):
    """``(model, native, to_input)``: ``ds`` on the model's grid, ``ds`` on its own grid laid out
    contiguously (lon continuing past 360 across the meridian), and the function that puts
    results on that contiguous grid back into ``ds``'s layout. ``model is native`` when no
    regridding is needed."""
    if not {"lat", "lon"} <= set(ds.dims):
        if resolution is not None:
            raise ClimodeError(
                f"the checkpoint works on a {resolution:g}-degree lat/lon grid, but the input has "
                f"no lat/lon coordinates (dims {', '.join(map(str, ds.dims))})"
            )
        return ds, ds, lambda out: out
    box = domain(ds)
    step = grid_step(ds.lat.values), grid_step(np.sort(ds.lon.values))
    native = extract(ds, Tile("domain", box.lat0, box.lon0, box.height + step[0] / 2, box.width + step[1] / 2))

    def to_input(out: xr.Dataset) -> xr.Dataset:
        out = out.assign_coords(lon=out.lon % 360)
        if np.array_equal(out.lat.values, ds.lat.values) and np.array_equal(out.lon.values, ds.lon.values):
            return out  # the input's own layout already
        return out.sortby("lon").reindex_like(ds[["lat", "lon"]], method="nearest", tolerance=1e-6)

    if resolution is None or all(abs(s - resolution) <= 0.01 * resolution for s in step):
        return native, native, to_input
    return extract(ds, box, resolution), native, to_input
