"""The dask.distributed cluster a shard store is written on: started for the work, shut down cleanly."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


def _stop_heartbeat(dask_worker) -> None:
    """Run on each worker of our own cluster once the work is done (``Client.run``)."""
    dask_worker.periodic_callbacks["heartbeat"].stop()


def _shut_down(client, cluster) -> None:
    """Close the client, then the workers and scheduler it started.

    A worker's heartbeat that races the scheduler's closing is logged by the worker's own process
    as a CommClosedError traceback, which says nothing about the work (done by then): so our own
    workers stop their heartbeats first, and dask's and tornado's loggers here are raised to
    CRITICAL meanwhile. Workers of a cluster given with --scheduler are left as they are."""
    if cluster is not None:
        with contextlib.suppress(Exception):  # a worker already gone has no heartbeat to stop
            client.run(_stop_heartbeat)
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[object | None]:
    """A dask.distributed client for the block: of the scheduler at ``scheduler``, else of a LocalCluster of
    ``workers`` single-threaded worker processes, shut down cleanly at the end (``_shut_down``); with
    neither, None (dask's own threads in this process). Logs the workers and the scheduler's address."""
    if scheduler is None and not workers:
        yield None
        return
    from dask.distributed import Client, LocalCluster  # loaded only where a cluster is asked for

    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        log.info("dask: %d workers at %s", len(client.scheduler_info()["workers"]), client.scheduler.address)
        yield client
    finally:
        _shut_down(client, cluster)


__all__ = ["dask_client"]
