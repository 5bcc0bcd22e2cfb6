"""User-facing errors and the command-line wrapper that reports them in one line."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Collection


class ClimodeError(Exception):
    """A problem with what the user gave (file, option, data): reported in one line, no traceback."""


def check_choice(what: str, value: object, choices: Collection[str]) -> None:
    """Refuse a setting ``what`` whose ``value`` is not one of ``choices`` (ValueError naming them)."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def show_logs() -> None:
    """climode's own log records (INFO and up) on stderr, as a command's messages (the library only logs)."""
    logger = logging.getLogger("climode")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def cli(main: Callable[[list[str] | None], object]) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main`` so that climode's log messages show on stderr, user errors print
    ``error: ...`` and exit with status 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        show_logs()
        try:
            main(argv)
        except ClimodeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return 0

    return wrapper
