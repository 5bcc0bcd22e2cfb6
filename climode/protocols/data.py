"""The data a protocol runs on, built from scratch: seeded synthetic storms cut into basin tiles
and irregular samples (the pipeline of ``climode prepare``: ``climode.data.prepare.build_store``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..conventions import STORM_VARIABLES
from ..data.prepare import build_store
from ..data.synthetic import write_corpus
from ..geo.tiles import parse_tiles
from ..pipeline import BASINS
from .spec import Preset

log = logging.getLogger(__name__)


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
    log.info("writing the samples of %d storms to %s", preset.storms, store)
    build_store(
        sorted(str(p) for p in corpus.glob("*.nc")),
        store,
        list(STORM_VARIABLES),
        tiles=parse_tiles(BASINS),
        resolution=preset.resolution,
        n_in=5,
        n_out=5,
        max_gap_h=48.0,
        rate=rate,
        tracks=corpus / "tracks.csv",
        samples_per_storm=preset.samples_per_storm,
        seed=preset.seed,
        provenance={"source_files": str(corpus)},
    )
    return store
