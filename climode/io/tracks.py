"""Track files read into one table: IBTrACS v04 CSV, TempestExtremes StitchNodes output, plain CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import KNOT
from ..errors import ClimodeError
from ..times import parse_stamps

COLUMNS = ["storm", "time", "lat", "lon", "psl_min", "vmax"]

_IBTRACS = "an IBTrACS v04 CSV (columns SID, ISO_TIME, LAT, LON, ...)"
_PLAIN = "a CSV with columns storm, time, lat, lon[, psl_min, vmax]"
_TEMPEST = "TempestExtremes StitchNodes output ('start N YYYY MM DD HH' then N lines 'i j lon lat ... YYYY MM DD HH')"


def read_tracks(path: str | Path, calendar: str | None = None) -> pd.DataFrame:
    """Read IBTrACS CSV, TempestExtremes StitchNodes output or a plain storm,time,lat,lon CSV.

    The format is recognised from the content. ``calendar`` is that of the returned cftime
    datetimes; None takes the format's usual one: "standard" for IBTrACS, "noleap" (CAM5)
    for TempestExtremes and plain CSV files.
    """
    path = Path(path)
    first = _first_line(path)
    if first.split()[:1] == ["start"]:
        return read_tempest(path, calendar or "noleap")
    header = {name.strip() for name in first.split(",")}
    if {"SID", "ISO_TIME"} <= header:
        return read_ibtracs(path, calendar or "standard")
    if {"storm", "time", "lat", "lon"} <= header:
        return _read_plain(path, calendar or "noleap")
    raise ClimodeError(f"{path}: not a track file; expected {_IBTRACS}, {_TEMPEST} or {_PLAIN}")


def read_ibtracs(path: str | Path, calendar: str = "standard") -> pd.DataFrame:
    """Read an IBTrACS v04 CSV: lon to 0..360, winds knots -> m/s, pressure hPa -> Pa, blanks -> NaN.

    WMO_WIND/WMO_PRES are used where given, else USA_WIND/USA_PRES.
    """
    path = Path(path)
    table = _read_csv(path, _IBTRACS, skiprows=[1], dtype=str, keep_default_na=False)
    _require_columns(table, ["SID", "ISO_TIME", "LAT", "LON"], path, _IBTRACS)
    return _frame(
        path,
        storm=table["SID"].str.strip(),
        time=parse_stamps(table["ISO_TIME"], calendar, path),
        lat=_coordinate(table, "LAT", path),
        lon=_coordinate(table, "LON", path),
        psl_min=_first_given(table, ["WMO_PRES", "USA_PRES"]) * 100.0,
        vmax=_first_given(table, ["WMO_WIND", "USA_WIND"]) * KNOT,
    )


def read_tempest(path: str | Path, calendar: str = "noleap") -> pd.DataFrame:
    """Read TempestExtremes StitchNodes text output; storms are named TE0001, TE0002, ...

    Node lines are ``i j lon lat [psl wind ...] YYYY MM DD HH``: the first extra column is
    taken as psl_min (Pa), the second as vmax (m/s).
    """
    path = Path(path)
    storms, rows = _tempest_blocks(path)
    if not rows:
        raise ClimodeError(f"{path}: no track points")
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise ClimodeError(f"{path}: node lines have different numbers of columns {sorted(widths)}")
    values = np.array(rows, dtype=float).reshape(len(rows), -1)
    date = values[:, -4:].astype(int)
    stamps = [f"{y:04d}-{m:02d}-{d:02d} {h:02d}:00" for y, m, d, h in date]
    extras = values[:, 4:-4]
    return _frame(
        path,
        storm=storms,
        time=parse_stamps(stamps, calendar, path),
        lat=values[:, 3],
        lon=values[:, 2],
        psl_min=extras[:, 0] if extras.shape[1] > 0 else None,
        vmax=extras[:, 1] if extras.shape[1] > 1 else None,
    )


def _read_plain(path: Path, calendar: str) -> pd.DataFrame:
    """Read a CSV with columns storm, time ("YYYY-MM-DD HH:MM:SS"), lat, lon[, psl_min, vmax]."""
    table = _read_csv(path, _PLAIN, dtype={"storm": str, "time": str})
    _require_columns(table, ["storm", "time", "lat", "lon"], path, _PLAIN)
    optional = {name: pd.to_numeric(table[name], errors="coerce") for name in ("psl_min", "vmax") if name in table}
    return _frame(
        path,
        storm=table["storm"],
        time=parse_stamps(table["time"], calendar, path),
        lat=_coordinate(table, "lat", path),
        lon=_coordinate(table, "lon", path),
        **optional,
    )


def _first_line(path: Path) -> str:
    """The first non-empty line of a text file (empty string when there is none)."""
    try:
        with path.open(encoding="utf-8") as stream:
            return next((line.strip() for line in stream if line.strip()), "")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClimodeError(f"{path}: cannot read track file ({exc})") from None


def _read_csv(path: Path, expected: str, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(path, skipinitialspace=True, **options)
    except (OSError, ValueError) as exc:
        raise ClimodeError(f"{path}: cannot read {expected} ({exc})") from None


def _require_columns(table: pd.DataFrame, names: Sequence[str], path: Path, expected: str) -> None:
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise ClimodeError(f"{path}: missing columns {', '.join(missing)}; expected {expected}")


def _coordinate(table: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    """A numeric lat/lon column; blank or non-numeric values are an error."""
    values = pd.to_numeric(table[name], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ClimodeError(f"{path}: column {name} has non-numeric value {table[name].iloc[bad[0]]!r}")
    return values


def _first_given(table: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Numeric values of the first of ``names`` that is not blank, row by row (NaN if none is)."""
    result = pd.Series(np.nan, index=table.index)
    for name in names:
        if name in table:
            result = result.fillna(pd.to_numeric(table[name].str.strip(), errors="coerce"))
    return result.to_numpy(float)


def _tempest_blocks(path: Path) -> tuple[list[str], list[list[str]]]:
    """Storm id and the whitespace-split fields of each node line of a StitchNodes file."""
    try:
        lines = [
            (n, line.split()) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise ClimodeError(f"{path}: cannot read {_TEMPEST} ({exc})") from None
    storms, rows, k, count = [], [], 0, 0
    while k < len(lines):
        number, head = lines[k]
        if head[0] != "start" or len(head) < 2 or not head[1].isdigit():
            raise ClimodeError(f"{path}, line {number}: expected 'start N YYYY MM DD HH' of {_TEMPEST}")
        block = lines[k + 1 : k + 1 + int(head[1])]
        for number, fields in block:
            if fields[0] == "start" or len(fields) < 8 or not all(map(_is_number, fields)):
                raise ClimodeError(f"{path}, line {number}: expected a node line 'i j lon lat ... YYYY MM DD HH'")
        if len(block) < int(head[1]):
            raise ClimodeError(f"{path}: storm at line {number} announces {head[1]} nodes, file ends first")
        count += 1
        storms += [f"TE{count:04d}"] * len(block)
        rows += [fields for _, fields in block]
        k += 1 + len(block)
    return storms, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _frame(path: Path, *, storm, time, lat, lon, psl_min=None, vmax=None) -> pd.DataFrame:
    """A track table from columns; lon wrapped to 0..360; optional columns kept only when given."""
    table = pd.DataFrame(
        {
            "storm": np.asarray(storm, dtype=str),
            "time": time,
            "lat": np.asarray(lat, float),
            "lon": np.asarray(lon, float) % 360.0,
        }
    )
    for name, values in (("psl_min", psl_min), ("vmax", vmax)):
        if values is not None:
            table[name] = np.asarray(values, float)
    if table.empty:
        raise ClimodeError(f"{path}: no track points")
    return table
