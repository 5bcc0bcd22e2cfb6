"""The time axis: hours since climode's origin (``conventions.HOURS_SINCE``) and back, and
forecast times as users write them, turned into hours since the first input frame.

A time list is comma-separated; each item is a number of hours since the first input frame
(``60``), an inclusive range ``START:STOP:STEP`` in such hours (``60:72:3`` is 60, 63, 66, 69,
72; STEP defaults to 3), or a timestamp ``YYYY-MM-DD[ HH:MM[:SS]]`` (also ``T`` between date and
time) read in the input file's own calendar. Ranges are counted before they are expanded (``as_hours``'s
``check``), so that a refusal of too many times costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import cftime
import numpy as np
import pandas as pd

from .conventions import HOURS_SINCE
from .errors import ClimodeError

DEFAULT_STEP_H = 3.0
HOUR_US = 3_600_000_000  # microseconds in an hour
SECOND_US = 1_000_000
Run = tuple[float, float, int]  # (first hour, step, count): one item of a time list, a range unexpanded
_STAMP = re.compile(
    r"^\s*(\d{1,4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?\s*$"
)  # a track file's time stamp
_DATE = re.compile(r"\s*(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*")


def stamp(time) -> str:
    """A date as ``YYYY-MM-DD HH:MM:SS``, in its own calendar."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


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
