"""The time axis: hours since climode's origin (``conventions.HOURS_SINCE``) and back, and
forecast times as users write them, turned into hours since the first input frame.

A time list is comma-separated; each item is a number of hours since the first input frame
(``60``), an inclusive range ``START:STOP:STEP`` in such hours (``60:72:3`` is 60, 63, 66, 69,
72; STEP defaults to 3), or a timestamp ``YYYY-MM-DD[ HH:MM[:SS]]`` (also ``T`` between date and
time) read in the input file's own calendar. Ranges are counted before they are expanded (``as_hours``'s
``check``), so that a refusal of too many times costs nothing.

Also here: the frames and query times a forecast uses (``select_frames``, ``query_times``), a file's
numeric time axis read as hours (``hours_axis``), and times compared across calendars by their date
stamps (``date_key``, ``relabel_times``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import cftime
import numpy as np
import pandas as pd

from .conventions import HOUR_UNITS, HOURS_SINCE, REFTIME_NAMES, TIME_ORIGIN
from .errors import ClimodeError

if TYPE_CHECKING:
    import xarray as xr

DEFAULT_STEP_H = 3.0
HOUR_US = 3_600_000_000  # microseconds in an hour
SECOND_US = 1_000_000
MATCH_H = 0.02  # hours: an --input-times entry matches a frame this close
GREGORIAN = {"standard", "gregorian", "proleptic_gregorian"}  # one calendar for dates after 1582
Run = tuple[float, float, int]  # (first hour, step, count): one item of a time list, a range unexpanded
_STAMP = re.compile(
    r"^\s*(\d{1,4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?\s*$"
)  # a track file's time stamp
_DATE = re.compile(r"\s*(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*")


def stamp(time) -> str:
    """A date (cftime, or numpy datetime64) as ``YYYY-MM-DD HH:MM:SS``, in its own calendar."""
    if isinstance(time, np.datetime64):
        time = pd.Timestamp(time)
    return time.strftime("%Y-%m-%d %H:%M:%S")


def describe_times(times: Sequence) -> str:
    """``times`` in words for a message: "FIRST to LAST (N times)", or "no times"."""
    return f"{stamp(times[0])} to {stamp(times[-1])} ({len(times)} times)" if len(times) else "no times"


def date_key(time) -> tuple[int, ...]:
    """A calendar-free label (year, month, day, hour, minute, second) of a time (cftime or numpy
    datetime64), to match times across files and calendars by their date stamps."""
    t = pd.Timestamp(time) if isinstance(time, np.datetime64) else time
    return t.year, t.month, t.day, t.hour, t.minute, t.second


def calendar_of(time) -> str:
    """The calendar of a time: a cftime date's own; numpy datetime64 is proleptic Gregorian."""
    return getattr(time, "calendar", None) or "proleptic_gregorian"


def axis_calendar(ds: xr.Dataset) -> str:
    """The calendar of ``ds``'s time axis, refused unless it is decoded to cftime dates."""
    first = ds.time.values[0]
    if not isinstance(first, cftime.datetime):
        raise ClimodeError("input time axis is not decoded to dates; open it with climode.io.fields.open_fields")
    return first.calendar


def hours_after(time, origin) -> float:
    """Hours from ``origin`` to ``time`` (both cftime dates of one calendar, or both datetime64)."""
    return pd.Timedelta(time - origin).total_seconds() / 3600.0


def to_hours(times: Sequence, calendar: str) -> np.ndarray:
    """cftime datetimes on ``calendar`` -> float64 hours since ``conventions.TIME_ORIGIN``."""
    return np.asarray(cftime.date2num(list(times), HOURS_SINCE, calendar=calendar), dtype=np.float64)


def from_hours(hours: Sequence[float] | np.ndarray, calendar: str = "standard") -> np.ndarray:
    """Hours since ``conventions.TIME_ORIGIN`` -> cftime datetimes on ``calendar`` (object array)."""
    return np.asarray(cftime.num2date(np.asarray(hours, dtype=np.float64), HOURS_SINCE, calendar=calendar))


def hours_between(times: Sequence, origin, calendar: str) -> np.ndarray:
    """Hours from ``origin`` to each of ``times`` (cftime datetimes on ``calendar``), float64."""
    units = f"hours since {origin.isoformat(' ')}"  # with its microseconds, if any
    return np.asarray(cftime.date2num(list(times), units, calendar=calendar), dtype=np.float64)


def parse_date(text: str, what: str) -> str:
    """``"YYYY-MM-DD[ HH:MM[:SS]]"`` (separators -, / or space) -> ``"YYYY-MM-DD HH:MM:SS"``."""
    match = re.fullmatch(r"\s*(\d{1,4})[-/ ](\d{1,2})[-/ ](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*", text)
    if match is None:
        raise ClimodeError(f"{what} {text!r} is not a date 'YYYY-MM-DD[ HH:MM:SS]'")
    y, m, d, hh, mm, ss = (int(g or 0) for g in match.groups())
    return f"{y:04d}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}"


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ClimodeError(
            f"{what}: {text!r} is not a number of hours, a range START:STOP:STEP or a date 'YYYY-MM-DD HH:MM'"
        ) from None
    if not np.isfinite(value):
        raise ClimodeError(f"{what}: {text!r} is not a finite number of hours")
    return value


def _range(text: str, what: str) -> Run:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ClimodeError(f"{what}: range {text!r} is not START:STOP or START:STOP:STEP (hours)")
    start, stop = (_number(p, what) for p in parts[:2])
    step = _number(parts[2], what) if len(parts) == 3 else DEFAULT_STEP_H
    if step <= 0 or stop < start:
        raise ClimodeError(f"{what}: range {text!r} needs STOP >= START and a positive STEP")
    count = np.floor((stop - start) / step + 1e-9) + 1
    if not count < 2**62:
        raise ClimodeError(f"{what}: range {text!r} gives {count:g} times, more than can be counted")
    return start, step, int(count)


def _date(match: re.Match, origin, calendar: str, what: str) -> float:
    y, m, d, hh, mm, ss = (int(g or 0) for g in match.groups())
    try:
        when = cftime.datetime(y, m, d, hh, mm, ss, calendar=calendar)
    except ValueError as exc:
        raise ClimodeError(
            f"{what}: {match.string.strip()!r} is not a valid date in the {calendar} calendar ({exc})"
        ) from None
    return float(hours_between([when], origin, calendar)[0])


def _runs(text: str, origin, calendar: str, what: str) -> list[Run]:
    """The items of ``text`` (see ``parse_times``) as runs, ranges unexpanded."""
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise ClimodeError(f"{what}: no times given")
    runs: list[Run] = []
    for item in items:
        if not item:
            raise ClimodeError(f"{what}: empty item in {text!r}")
        match = _DATE.fullmatch(item)
        if match:
            runs.append((_date(match, origin, calendar, what), 0.0, 1))
        elif ":" in item:
            runs.append(_range(item, what))
        else:
            runs.append((_number(item, what), 0.0, 1))
    return runs


def _expand(runs: list[Run]) -> np.ndarray:
    return np.concatenate([first + step * np.arange(count) for first, step, count in runs])


def parse_times(text: str, origin, calendar: str, what: str = "--times") -> list[float]:
    """Hours since ``origin`` (the first input frame, a cftime datetime on ``calendar``) for each
    item of ``text``, in the order given (ranges expanded)."""
    return list(_expand(_runs(text, origin, calendar, what)))


def as_hours(
    times, origin, calendar: str, what: str = "times", check: Callable[[int, float], object] | None = None
) -> np.ndarray:
    """``times`` given as text (see ``parse_times``), numbers (hours since ``origin``) or cftime
    datetimes -> hours since ``origin`` (float64, in the order given). ``check(count, latest)``, the one
    check of every form, sees how many times they are and the latest (hours) before any range is
    expanded or anything else grows with the count."""
    if isinstance(times, str):
        runs = _runs(times, origin, calendar, what)
    else:
        values = list(np.atleast_1d(np.asarray(times, dtype=object)))
        if values and all(isinstance(v, cftime.datetime) for v in values):
            runs = [(h, 0.0, 1) for h in hours_between(values, origin, calendar)]
        else:
            runs = [(_number(str(v), what), 0.0, 1) for v in values]
    if not runs:
        raise ClimodeError(f"{what}: no times given")
    if check is not None:
        check(sum(count for _, _, count in runs), max(first + step * (count - 1) for first, step, count in runs))
    return _expand(runs)


def resolution_us(times: Sequence) -> int:
    """The time resolution of ``times`` (cftime datetimes) in microseconds: whole seconds, or the finer
    step their sub-second parts need (1000 for milliseconds)."""
    return int(np.gcd.reduce([SECOND_US, *(t.microsecond for t in times)]))


def at_hours(origin, hours: Sequence[float] | np.ndarray, step_us: int) -> np.ndarray:
    """The cftime datetimes ``hours`` after ``origin``, each rounded to a whole number of ``step_us``
    microseconds after it, exactly (no float drift: 07:50 stays 07:50:00); an object array."""
    steps = np.rint(np.asarray(hours, np.float64) * (HOUR_US / step_us)).astype(np.int64)
    return np.array([origin + timedelta(microseconds=int(n) * step_us) for n in steps], dtype=object)


def parse_stamps(texts: Sequence[str], calendar: str, where: str | Path) -> np.ndarray:
    """Parse "YYYY-MM-DD HH:MM[:SS]" strings into cftime datetimes of ``calendar`` (object array)."""
    codes, uniques = pd.factorize(np.asarray(texts, dtype=str))
    parsed = np.empty(len(uniques), dtype=object)
    for k, text in enumerate(uniques):
        found = _STAMP.match(text)
        if found is None:
            raise ClimodeError(f"{where}: time {text!r} is not 'YYYY-MM-DD HH:MM:SS'")
        try:
            parsed[k] = cftime.datetime(*(int(part or 0) for part in found.groups()), calendar=calendar)
        except ValueError as exc:
            raise ClimodeError(f"{where}: time {text!r} is not a valid date ({exc})") from None
    return parsed[codes]


def elapsed_hours(times: np.ndarray) -> np.ndarray:
    """Hours since the first time, for datetime64 or cftime (or datetime) objects."""
    times = np.asarray(times)
    if times.size == 0:
        return np.zeros(0)
    if np.issubdtype(times.dtype, np.datetime64):
        return (times - times[0]) / np.timedelta64(1, "h")
    return np.array([(t - times[0]).total_seconds() for t in times]) / 3600.0


_SPAN = re.compile(r"\s*(\d{1,4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?)\s*:\s*(\S.*?)\s*")


def parse_span(text: str, calendar: str, what: str) -> tuple[float, float]:
    """``"START:END"`` (dates "YYYY-MM-DD[ HH:MM[:SS]]" in ``calendar``, both included) -> hours since
    ``conventions.TIME_ORIGIN`` of START and END; END must follow START."""
    found = _SPAN.fullmatch(text or "")
    if found is None:
        raise ClimodeError(f"{what} {text!r} is not START:END with dates 'YYYY-MM-DD[ HH:MM]'")
    start, end = (parse_date(part, what) for part in found.groups())
    try:
        first, last = (cftime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S", calendar=calendar) for s in (start, end))
    except ValueError as exc:
        raise ClimodeError(f"{what} {text!r}: not a date of the {calendar} calendar ({exc})") from None
    hours = to_hours([first, last], calendar)
    if not hours[1] > hours[0]:
        raise ClimodeError(f"{what} {text!r}: the end must follow the start")
    return float(hours[0]), float(hours[1])


def relabel_times(ds: xr.Dataset, like) -> tuple[xr.Dataset, str | None]:
    """``ds`` with its times relabelled into the calendar (and type) of the time ``like`` by their date
    stamps (``date_key``), when they differ; times whose stamp is no date of that calendar (30 February
    in noleap) are left out. Also ``ds``'s calendar when it is another than ``like``'s (Gregorian ones
    count as one)."""
    times = ds["time"].values
    if not len(times) or (
        isinstance(times[0], np.datetime64) == isinstance(like, np.datetime64)
        and calendar_of(times[0]) == calendar_of(like)
    ):
        return ds, None

    def relabel(time):
        try:
            if isinstance(like, np.datetime64):
                return np.datetime64(pd.Timestamp(*date_key(time)), "ns")
            return cftime.datetime(*date_key(time), calendar=like.calendar, has_year_zero=like.has_year_zero)
        except ValueError:
            return None

    labels = [relabel(t) for t in times]
    kept = [k for k, label in enumerate(labels) if label is not None]
    ds = ds.isel(time=kept).assign_coords(time=("time", np.array([labels[k] for k in kept]), ds["time"].attrs))
    calendar = calendar_of(times[0])
    return ds, None if {calendar, calendar_of(like)} <= GREGORIAN else calendar


# ---------------------------------------------------------------- a forecast's frames and query times


def select_frames(ds: xr.Dataset, input_times, calendar: str) -> xr.Dataset:
    """The frames of ``ds`` at ``input_times`` (hours since its first frame, dates or a time list; each
    within MATCH_H of a frame, none twice); all of them when None."""
    if input_times is None:
        return ds
    origin = ds.time.values[0]
    have = hours_between(ds.time.values, origin, calendar)
    wanted = as_hours(input_times, origin, calendar, "--input-times", lambda count, _: _check_frames(count, len(have)))
    picks = []
    for hours in wanted:
        nearest = int(np.argmin(np.abs(have - hours)))
        if abs(have[nearest] - hours) > MATCH_H:
            listed = ", ".join(f"{h:g}" for h in have[:12]) + (", ..." if len(have) > 12 else "")
            raise ClimodeError(
                f"--input-times: {hours:g} h after the first frame ({origin}) is not a frame of the "
                f"input; its frames are at {listed} h"
            )
        picks.append(nearest)
    if len(set(picks)) != len(picks):
        raise ClimodeError("--input-times names the same frame twice")
    return ds.isel(time=sorted(picks))


def _check_frames(count: int, frames: int) -> None:
    """Refuse more --input-times than there are frames, before they are expanded or matched."""
    if count > frames:
        raise ClimodeError(f"--input-times gives {count:,} times; the input has {frames:,} frames, each usable once")


def query_times(
    times, ds: xr.Dataset, calendar: str, last_h: float, check: Callable[[int, float], object]
) -> np.ndarray:
    """The times to forecast (cftime, sorted, each once), ``check``ed (``as_hours``) before they are
    expanded, rounded to the time resolution of ``ds``'s frames (``resolution_us``: whole seconds at
    least), so that an asked 07:50 is 07:50:00 exactly; none before the first frame (``last_h``: hours
    from it to the last, named in the refusal)."""
    origin = ds.time.values[0]
    hours = as_hours(times, origin, calendar, "--times", check)
    if hours.min() < 0:
        raise ClimodeError(
            f"--times: {hours.min():g} h falls before the first input frame ({origin}); forecasts are "
            f"made from the first input on (inside 0..{last_h:g} h interpolates, later extrapolates)"
        )
    return np.unique(at_hours(origin, hours, resolution_us(ds.time.values)))


# ---------------------------------------------------------------- a file's numeric time axis


def _file_reftime(ds: xr.Dataset, path: Path) -> str | None:
    """The reference date a file gives as text (e.g. the geocat ``reftime`` "1996 01 05 00:00")."""
    name = next((n for n in REFTIME_NAMES if n in ds.variables and ds[n].dtype.kind in "SUO"), None)
    if name is None:
        return None
    value = ds[name].values.item()
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return parse_date(text, f"{path}: reference time variable {name!r}")


def hours_axis(
    ds: xr.Dataset, path: Path, time_in_hours: bool, reference_time: str | None, calendar: str
) -> xr.Dataset:
    """Turn a numeric time axis without CF units into cftime objects (hours since a reference)."""
    if "time" not in ds.coords or ds["time"].dtype.kind not in "iuf":
        return ds
    time = ds["time"]
    units = time.attrs.get("units")
    if units is not None and str(units).strip().lower() not in HOUR_UNITS:
        raise ClimodeError(f"{path}: time axis has units {units!r}, not CF 'UNITS since YYYY-MM-DD'")
    if not time_in_hours:
        raise ClimodeError(
            f"{path}: the time axis has numbers and no units; if they are hours, pass "
            f"--time-in-hours (time_in_hours=True) with a reference time (default {TIME_ORIGIN})"
        )
    if reference_time is not None:
        ref = parse_date(reference_time, "reference_time")
    else:
        ref = _file_reftime(ds, path) or TIME_ORIGIN
    try:
        dates = cftime.num2date(time.values, f"hours since {ref}", calendar=calendar, only_use_cftime_datetimes=True)
    except ValueError as exc:
        raise ClimodeError(f"{path}: cannot read time as hours since {ref} ({calendar} calendar): {exc}") from None
    attrs = {k: v for k, v in time.attrs.items() if k != "units"}
    return ds.assign_coords(time=("time", np.asarray(dates), attrs))
