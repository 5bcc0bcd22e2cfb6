"""Training shards in zarr: fixed-size irregular samples cut from tiles, one chunk per sample.

Layout (one zarr group, dims ``sample``, ``step``, ``variable``, ``y``, ``x``):
  frames (sample, step, variable, y, x) float32, physical units, NaN = missing; chunked
         one sample per chunk; the first ``n_in`` steps are inputs, the rest targets;
  hours  (sample, step) float64: valid time in hours since ``attrs["time_reference"]``
         on ``attrs["calendar"]``;
  lat (sample, y), lon (sample, x): cell centres of the sample's tile (lon may pass 360);
  storm, tile, split (sample,) strings; the splits are time blocks of the record (see
         ``climode.data.plan.plan_samples``), so no held-out target is a frame (same tile and
         time) of a training sample: ``open_store`` refuses a store where one is;
  track_storm, track_hours, track_lat, track_lon, track_psl_min, track_vmax (point,): the
         storm tracks, for storm-centred verification;
  attrs: variables, normalisation (JSON), n_in, n_out, calendar, time_reference, provenance.
``Shards`` streams one sample at a time, normalised, as the model's samples.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from torch.utils.data import Dataset

from ..errors import ClimodeError
from ..io.atomic import commit, staging_path, sweep
from ..normalise import Stats
from .contract import DatasetInfo, Sample

SPLITS = ("train", "val", "test")


@contextmanager
def staged(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A staging directory whose ``shards.zarr`` becomes ``path`` when the block succeeds; on
    failure nothing is left behind. An existing ``path`` is replaced only with ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ClimodeError(f"{path} exists; pass --overwrite to replace it")
    sweep(path)
    stage = staging_path(path)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        commit({path: stage / "shards.zarr"})
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def tracks_table(tracks: pd.DataFrame | None, hours: callable) -> dict:
    """Track columns as (point,) variables; ``hours`` converts the time column to hours."""
    if tracks is None or tracks.empty:
        return {}
    table = {
        "track_storm": ("point", tracks["storm"].astype(str).to_numpy()),
        "track_hours": ("point", hours(tracks["time"].to_numpy())),
        "track_lat": ("point", tracks["lat"].to_numpy(float)),
        "track_lon": ("point", tracks["lon"].to_numpy(float)),
    }
    for col in ("psl_min", "vmax"):
        values = tracks[col].to_numpy(float) if col in tracks else np.full(len(tracks), np.nan)
        table[f"track_{col}"] = ("point", values)
    return table


def read_tracks(store: xr.Dataset) -> pd.DataFrame:
    """The tracks stored with the shards (time as hours since the store's reference)."""
    names = ("storm", "hours", "lat", "lon", "psl_min", "vmax")
    if "track_storm" not in store:
        return pd.DataFrame(columns=names)
    return pd.DataFrame({n: store[f"track_{n}"].values for n in names})


def open_store(path: str | Path) -> xr.Dataset:
    """The shard store at ``path``, lazily; refused (ClimodeError) when it is not one, or when its held-out
    splits share frames with its training split (``check_no_leak``: a store prepared before time-block splits)."""
    path = Path(path)
    if not path.exists():
        raise ClimodeError(f"shards {path} not found")
    try:
        store = xr.open_zarr(path, consolidated=False)
    except Exception as exc:  # zarr raises many kinds for a non-store
        raise ClimodeError(f"{path} is not a zarr store of climode shards ({exc})") from None
    missing = [k for k in ("frames", "hours", "split", "tile") if k not in store]
    if missing:
        raise ClimodeError(f"{path} is not a climode shard store: it lacks {', '.join(missing)}")
    check_no_leak(leakage(store), str(path), "re-prepare it with this version of climode (time-block splits)")
    return store


def shared_frames(split: np.ndarray, tile: np.ndarray, times: np.ndarray, n_in: int) -> dict[str, float]:
    """Per held-out split ("val", "test") with targets, the share of its target frames whose (tile, time)
    is also a frame (input or target) of a training sample: what a model may have seen of the truth it is
    scored on. ``split``, ``tile``: (sample,); ``times``: (sample, step) valid times in any unit (hours,
    or step indices of the source record), NaN for none; the first ``n_in`` steps are inputs."""
    times = np.asarray(times, dtype=np.float64)
    steps = np.arange(times.shape[1])
    frames = pd.DataFrame(
        {
            "split": np.repeat(np.asarray(split, dtype=str), len(steps)),
            "tile": np.repeat(np.asarray(tile, dtype=str), len(steps)),
            "time": times.ravel(),
            "target": np.tile(steps >= n_in, len(times)),
        }
    )
    frames = frames[np.isfinite(frames.time.to_numpy())]
    train = frames[frames.split == "train"]
    seen = pd.MultiIndex.from_frame(train[["tile", "time"]])
    shares = {}
    for name in ("val", "test"):
        targets = frames[(frames.split == name) & frames.target]
        if len(targets):
            shares[name] = float(pd.MultiIndex.from_frame(targets[["tile", "time"]]).isin(seen).mean())
    return shares


def leakage(store: xr.Dataset) -> dict[str, float]:
    """``shared_frames`` of a shard store (``split``, ``tile``, ``hours`` and ``attrs["n_in"]``): 0 for each
    held-out split of a store split by time blocks; a split by storm inside one tile shared by coexisting
    storms leaks most of its targets."""
    return shared_frames(store["split"].values, store["tile"].values, store["hours"].values, int(store.attrs["n_in"]))


def check_no_leak(shares: dict[str, float], where: str, remedy: str) -> None:
    """Refuse (ClimodeError naming ``where`` and ``remedy``) held-out splits whose targets are frames of training
    samples; ``shares`` as ``shared_frames`` gives them."""
    leaked = {name: share for name, share in shares.items() if share > 0}
    if leaked:
        what = " and ".join(f"{100 * share:.3g} % of the {name} targets" for name, share in leaked.items())
        raise ClimodeError(f"{where}: {what} are frames (same tile and time) of training samples; {remedy}")


class Shards(Dataset):
    """Samples of one split of a shard store, read one chunk at a time and normalised with the
    store's statistics; times are hours relative to the sample's first input frame. Only the
    validation split may be empty (a short record); train and test may not. ``info.grid`` records
    what a forecast needs to put new fields on the model's grid: ``resolution`` (degrees, None
    for the native grid), ``tile_shape`` [y, x] in cells, ``calendar`` and physical ``units``.
    ``normalisation`` replaces the store's statistics (e.g. a model's, to score it on another store)."""

    def __init__(self, path: str | Path, split: str = "train", normalisation: Stats | None = None):
        store = open_store(path)
        self.path = Path(path)
        resolution = store.attrs.get("resolution", "native")
        self.info = DatasetInfo(
            variables=tuple(json.loads(store.attrs["variables"])),
            time_units="hours",
            n_in=int(store.attrs["n_in"]),
            n_out=int(store.attrs["n_out"]),
            time_step=float(json.loads(store.attrs.get("sampling", "{}")).get("step_h") or 1.0),
            normalisation=normalisation or Stats.from_dict(json.loads(store.attrs["normalisation"])),
            grid={
                "resolution": None if resolution == "native" else float(resolution),
                "tile_shape": [int(store.sizes["y"]), int(store.sizes["x"])],
                "calendar": store.attrs.get("calendar"),
                "units": json.loads(store.attrs.get("units", "{}")),
            },
            places=True,
        )
        self.index = np.nonzero(store["split"].values == split)[0]
        if not len(self.index) and split != "val":
            raise ClimodeError(f"shards {path} hold no {split} samples")
        self.frames, self.hours = store["frames"], store["hours"].values
        self.store = store

    @cached_property
    def _places(self) -> dict:
        """The store's tile coordinates, storm names and tracks, read once."""
        store = self.store
        return {
            **{name: store[name].values if name in store else None for name in ("lat", "lon", "storm")},
            "tracks": read_tracks(store),
        }

    def place(self, i: int) -> dict:
        """Where and when sample ``i`` is: ``lat`` (y,) and ``lon`` (x,) of its tile in degrees (None on a
        grid without them), ``hours`` (step,) since the store's reference, its ``storm`` and the storm's
        (``lat``, ``lon``) at the last input step from the stored track (None without one)."""
        j = int(self.index[i])
        table = self._places
        coords = {name: table[name][j] if table[name] is not None else None for name in ("lat", "lon")}
        storm = str(table["storm"][j]) if table["storm"] is not None else None
        track = table["tracks"][table["tracks"]["storm"] == storm]
        last = self.hours[j, self.info.n_in - 1]
        centre = None
        if len(track) and track["hours"].min() <= last <= track["hours"].max():
            order = np.argsort(track["hours"].to_numpy())
            hours = track["hours"].to_numpy()[order]
            centre = tuple(float(np.interp(last, hours, track[c].to_numpy()[order])) for c in ("lat", "lon"))
        return {**coords, "hours": self.hours[j], "storm": storm, "centre": centre}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Sample:
        j = int(self.index[i])
        info = self.info
        frames = info.normalisation.normalise(np.asarray(self.frames[j].values, dtype=np.float32), info.variables)
        hours = self.hours[j] - self.hours[j, 0]
        n = info.n_in
        return {"frames_in": frames[:n], "times_in": hours[:n], "frames_out": frames[n:], "times_out": hours[n:]}
