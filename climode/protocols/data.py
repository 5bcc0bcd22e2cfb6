"""The data a protocol runs on, built from scratch: seeded synthetic storms cut into basin tiles
and irregular samples (the same pipeline as ``pipelines/prepare_cam5.py``), or bouncing balls."""

from __future__ import annotations

import logging
from pathlib import Path

from ..conventions import STORM_VARIABLES
from ..data.prepare import prepare_shards, sampling_for
from ..data.synthetic import write_corpus
from ..geo.tiles import parse_tiles
from ..io.fields import open_fields
from ..io.tracks import read_tracks
from .spec import Preset

log = logging.getLogger(__name__)
BASINS = "east-pacific-atlantic"


def storm_shards(out: Path, preset: Preset, rate: float | None) -> Path:
    """Shards of the preset's synthetic storms (written once to ``out/corpus``) sampled with
    irregular gaps (``rate`` None) or at a sampling rate; reused when already written."""
    store = out / ("shards.zarr" if rate is None else f"shards-rate{round(rate * 100)}.zarr")
    if store.exists():
        return store
    corpus = out / "corpus"
    if not (corpus / "tracks.csv").is_file():
        log.info("writing %d synthetic storms to %s", preset.storms, corpus)
        write_corpus(corpus, preset.storms, preset.seed, small=True, overwrite=True)
    ds = open_fields(sorted(str(p) for p in corpus.glob("*.nc")), STORM_VARIABLES)
    sampling = sampling_for(ds, n_in=5, n_out=5, max_gap_h=48.0, rate=rate)
    tracks = read_tracks(corpus / "tracks.csv", calendar=ds.time.values[0].calendar)
    log.info("writing the samples of %d storms to %s", tracks["storm"].nunique(), store)
    prepare_shards(
        store,
        ds,
        list(STORM_VARIABLES),
        sampling,
        tiles=parse_tiles(BASINS),
        tracks=tracks,
        samples_per_storm=preset.samples_per_storm,
        seed=preset.seed,
        resolution=preset.resolution,
        provenance={"source_files": str(corpus), "tracks_file": str(corpus / "tracks.csv")},
    )
    return store
