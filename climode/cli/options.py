"""Options several commands share, declared once with one meaning."""

from __future__ import annotations

import argparse

VARS_HELP = (
    "the variables and their names in {whose}: NAME or NAME=NAME_IN_FILE, comma-separated, e.g. U850=u,V850=v,PSL=msl"
)


def add_input_options(
    parser: argparse.ArgumentParser, *, whose: str = "the files", role: str = "", calendar: bool = True
) -> argparse._ArgumentGroup:
    """``--vars``, ``--time-in-hours``, ``--reference-time`` (and ``--calendar``): how to read fields
    from files (``climode.open_fields``). ``whose`` names the files in the help, ``role`` prefixes it
    (``"with --forecast: "``). ``--time-in-hours`` is None unless given, so a config may decide."""
    group = parser.add_argument_group("reading the fields")
    group.add_argument("--vars", help=role + VARS_HELP.format(whose=whose))
    group.add_argument(
        "--time-in-hours",
        action="store_true",
        default=None,
        help=f"{role}a time axis in {whose} without units holds hours",
    )
    group.add_argument("--reference-time", help=f"{role}origin of such hours, e.g. '1996-01-05 00:00:00'")
    if calendar:
        group.add_argument("--calendar", help=f"{role}calendar of such hours (default standard)")
    return group
