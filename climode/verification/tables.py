"""``verify``'s scores as text tables (``format_table``): one row per lead time and a mean row."""

from __future__ import annotations

import warnings

import numpy as np


def _aligned(header: list[list[str]], leads: list[float], data: list[list[float]], digits: list[int]) -> list[str]:
    """Right-aligned text lines: the two ``header`` lines (one pair per column, the leads' first), a row per
    lead time and a mean row of the columns ``data``, each number with its column's ``digits``."""

    def cell(x: float, places: int) -> str:
        return f"{x:.{places}f}" if np.isfinite(x) else "-"

    rows = [list(line) for line in zip(*header)]
    rows += [[f"{lead:g}"] + [cell(col[i], d) for col, d in zip(data, digits)] for i, lead in enumerate(leads)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no mean
        rows.append(["mean"] + [cell(np.nanmean(col), d) for col, d in zip(data, digits)])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return ["  ".join(text.rjust(w) for text, w in zip(r, widths)).rstrip() for r in rows]


def _ensemble_table(scores: dict) -> str:
    """The ensemble scores of ``verify`` (``scores["ensemble"]``) as text: per lead time CRPS and spread-skill
    ratio of each variable, Brier score of each wind event; PSL CRPS in hPa."""
    ensemble, units = scores["ensemble"], scores["units"]["crps"]
    shown = {v: ("hPa", 0.01) if v == "PSL" and u == "Pa" else (u, 1.0) for v, u in units.items()}
    columns = [("CRPS", "crps", v, v, shown[v][1], 2) for v in ensemble.get("crps", {})]
    columns += [("ratio", "ratio", v, v, 1.0, 2) for v in ensemble.get("ratio", {})]
    columns += [("Brier", "brier", e, e.removeprefix("wind_speed"), 1.0, 3) for e in ensemble.get("brier", {})]
    header = [["", "lead (h)"]]
    header += [
        [group if k == 0 or columns[k - 1][0] != group else "", label]
        for k, (group, _, _, label, _, _) in enumerate(columns)
    ]
    data = [[np.nan if x is None else x * scale for x in ensemble[m][v]] for _, m, v, _, scale, _ in columns]
    legend = (
        f"ensemble of {ensemble['members']} members (the scores above are of its mean); CRPS: "
        + ", ".join(f"{v} {u}" for v, (u, _) in shown.items())
        + "; ratio = spread-skill ratio (1: calibrated, < 1: under-, > 1: over-dispersive)"
    )
    if ensemble.get("brier"):
        legend += (
            "; Brier score of 850 hPa wind speed "
            + ", ".join(e.removeprefix("wind_speed") for e in ensemble["brier"])
            + " m s-1"
        )
    lines = _aligned(header, scores["lead_times"], data, [c[5] for c in columns])
    return legend + "\n" + "\n".join(lines)


def format_table(scores: dict) -> str:
    """``verify``'s scores as a text table: one row per lead time and a mean row, each score for
    the model next to persistence; PSL RMSE in hPa. For an ensemble, a second table follows: CRPS and
    spread-skill ratio per variable and Brier score per wind event (``scores["ensemble"]``)."""
    methods = list(scores["methods"])
    first = scores["methods"][methods[0]]
    rmse_units = {v: "hPa" if v == "PSL" and u == "Pa" else u for v, u in scores["units"]["rmse"].items()}
    columns = [
        (f"{v}", ("rmse", v), 0.01 if rmse_units[v] != scores["units"]["rmse"][v] else 1.0) for v in first["rmse"]
    ]
    columns += [
        (label, (key,), 1.0)
        for key, label in (("track_km", "track"), ("psl_min_abs_hpa", "dPSLmin"), ("wind_max_abs_ms", "dVmax"))
        if key in first
    ]

    def series(method: str, path: tuple[str, ...], scale: float) -> list[float]:
        values = scores["methods"][method]
        for part in path:
            values = values[part]
        return [np.nan if x is None else x * scale for x in values]

    data = [series(m, path, scale) for _, path, scale in columns for m in methods]
    header = [["", "lead (h)"]] + [
        [label if k == 0 else "", m] for label, _, _ in columns for k, m in enumerate(methods)
    ]
    legend = "RMSE: " + ", ".join(f"{v} {u}" for v, u in rmse_units.items())
    if "track_km" in first:
        legend += "; track error km; dPSLmin = |error of minimum PSL| hPa"
    if "wind_max_abs_ms" in first:
        legend += "; dVmax = |error of maximum 850 hPa wind| m s-1"
    table = legend + "\n" + "\n".join(_aligned(header, scores["lead_times"], data, [2] * len(data)))
    return (table + "\n" + _ensemble_table(scores)) if "ensemble" in scores else table
