"""Confidence intervals over independent cases: a cluster bootstrap (storms, not samples, are the
independent units) and the one test of separation a ranking may rest on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def bootstrap(
    frame: pd.DataFrame,
    value: str,
    by: list[str],
    cluster: str = "storm",
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean of ``value`` per group of ``by`` with a percentile bootstrap interval that resamples clusters.

    Each of the ``n`` resamples draws the group's clusters (e.g. storms) with replacement, as many
    as it has, and takes the mean over all rows of the drawn clusters (a cluster drawn twice counts
    twice); rows of one storm are not independent cases, so they are never drawn apart. The draws
    depend only on ``seed`` and on each cluster's rank among all clusters of ``frame``: groups over
    the same clusters (e.g. two models on the same storms) get the same draws. Rows with a missing
    ``value`` are left out.

    Parameters
    ----------
    frame : one row per case, with columns ``value``, ``by`` and ``cluster``.
    value : the column averaged, in its units.
    by : the columns that define the groups (e.g. ["model", "lead"]); empty for one group.
    cluster : the column of the resampled unit.
    n : number of resamples; ``seed``: the random generator's seed; ``level``: interval coverage.

    Returns
    -------
    DataFrame with the ``by`` columns, mean, lo, hi (the interval; ``value``'s units), n_cases and
    n_clusters, one row per group, sorted by ``by``.
    """
    data = frame.loc[np.isfinite(frame[value].to_numpy(float)), [*by, cluster, value]]
    codes, clusters = pd.factorize(data[cluster], sort=True)
    draws = np.random.default_rng(seed).random((n, len(clusters)))
    totals = data.assign(_cluster=codes).groupby([*by, "_cluster"], sort=True)[value].agg(["sum", "count"])
    groups = totals.groupby(level=list(range(len(by))), sort=True) if by else [((), totals)] * (len(totals) > 0)
    rows = []
    for key, group in groups:
        sums, counts = group["sum"].to_numpy(float), group["count"].to_numpy()
        size = len(sums)
        pick = (draws[:, :size] * size).astype(int)
        means = sums[pick].sum(1) / counts[pick].sum(1)
        lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
        key = key if isinstance(key, tuple) else (key,)
        rows.append([*key, sums.sum() / counts.sum(), lo, hi, int(counts.sum()), size])
    return pd.DataFrame(rows, columns=[*by, "mean", "lo", "hi", "n_cases", "n_clusters"])


def separated(a_lo: ArrayLike, a_hi: ArrayLike, b_lo: ArrayLike, b_hi: ArrayLike) -> bool | np.ndarray:
    """Whether the intervals [a_lo, a_hi] and [b_lo, b_hi] do not overlap; elementwise for arrays."""
    apart = (np.asarray(a_hi) < np.asarray(b_lo)) | (np.asarray(b_hi) < np.asarray(a_lo))
    return bool(apart) if apart.ndim == 0 else apart
