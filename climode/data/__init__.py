"""The data: datasets by name (``DATASETS`` of ``DatasetSpec``, ``open_dataset``; ``climode.data.datasets``
tells the opener's call contract), what each declares and yields (``DatasetInfo``, ``Sample``:
``climode.data.contract``), the samples' batches and query sets (``climode.data.samples``), and the corpora and
cases climode makes (``synthetic``, ``cases``). Names are imported on first use, so that the commands
under this package (``python -m climode.data.cases``) answer ``--help`` without loading torch."""

from .._lazy import lazy_getattr

_HOMES = {  # public name -> the module that defines it
    "DATASETS": ".datasets",
    "DatasetSpec": ".datasets",
    "open_dataset": ".datasets",
    "DatasetInfo": ".contract",
    "Sample": ".contract",
    "BouncingBall": ".bouncing_ball",
    "Clips": ".clips",
    "Shards": ".shards",
    "QuerySampler": ".samples",
    "collate": ".samples",
}


__getattr__ = lazy_getattr(globals(), _HOMES)


__all__ = sorted(_HOMES)
