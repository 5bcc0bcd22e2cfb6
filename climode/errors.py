"""User-facing errors and the command-line wrapper that reports them in one line."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Collection


class ClimodeError(Exception):
    """A problem with what the user gave (file, option, data): reported in one line, no traceback."""


def check_choice(what: str, value: object, choices: Collection[str]) -> None:
    """Refuse a setting ``what`` whose ``value`` is not one of ``choices`` (ValueError naming them)."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


class _Stderr(logging.StreamHandler):
    """A handler that writes to ``sys.stderr`` as it is at each record, not as it was when the handler
    was made: a command run again in the same process (a notebook, a test) with stderr redirected
    in between writes to the new stream, not to a closed one."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def show_logs() -> None:
    """climode's own log records (INFO and up) on stderr, as a command's messages (the library only logs)."""
    logger = logging.getLogger("climode")
    if not logger.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def set_threads() -> int:
    """torch's CPU threads for a command: ``OMP_NUM_THREADS`` when set, else the cores this process may
    use less the machine's load (at least 1): on a busy machine, threads that wait for a core cost
    more than they give (a training step took 56 s with two threads beside other work, 3.7 s with
    one). Says so in one line when it chooses fewer threads than cores. Returns the count. Before torch
    is imported the count goes to ``OMP_NUM_THREADS``, which torch reads on import (a command that only
    prints its help never loads torch), and to the processes the command starts."""
    torch = sys.modules.get("torch")
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads() if torch else int(os.environ["OMP_NUM_THREADS"].split(",")[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = max(1, min(cores, round(cores - load)))
    if torch:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    if threads < cores:
        logging.getLogger("climode").info(
            "torch threads: %d of %d cores (load %.1f; set OMP_NUM_THREADS to choose)", threads, cores, load
        )
    return threads


def _one_line(message, category, filename, lineno, line=None) -> str:
    """A warning as a command shows it: ``warning: ...``, without the source line of the call."""
    return f"warning: {message}\n"


def cli(main: Callable[[list[str] | None], object]) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main`` so that climode's log messages show on stderr, torch's threads suit the
    machine (``set_threads``), warnings print ``warning: ...``, user errors print ``error: ...`` and exit
    with status 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        show_logs()
        shown, warnings.formatwarning = warnings.formatwarning, _one_line
        try:
            if not {"-h", "--help"} & set(argv or ()):  # help runs no torch (climode.cli.run passes argv)
                set_threads()
            main(argv)
        except ClimodeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            warnings.formatwarning = shown
        return 0

    return wrapper
