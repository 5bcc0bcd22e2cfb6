"""``climode COMMAND [options]``: every climode tool behind one command.

    climode forecast  --input storm.nc --times 60,63,66      forecasts at any times
    climode train     --dataset cam5 --data tiles.zarr        train a model
    climode evaluate  --checkpoint MODEL | --forecast F --truth T | --protocol NAME
    climode prepare   --input 'cam5/*.nc' --out tiles.zarr    fields -> tiles -> samples -> shards
    climode video     --input clip.mp4 --fps 50,100 [--checkpoint MODEL]
    climode synthetic --out storms/ --storms 20               CAM5-like synthetic storms
    climode case      --out runs/demo                         one synthetic storm to forecast
    climode video-synthetic --layout folder --out videos/     moving shapes in a video layout

``climode COMMAND --help`` tells each command's options; ``python -m climode.forecast`` (and
``.train``, ``.evaluate``, ``.prepare``, ``.video``, ``.data.synthetic``, ``.data.cases``,
``.video.synthetic``) runs the same command. Exit status: 0 done, 2 a problem with what was given
(one ``error:`` line), 130 interrupted, 1 an internal error.

Each command is a module of this package that only reads options and prints; the work is done by
the library's functions (``climode.forecast``, ``climode.train``, ``climode.prepare``, ...).
"""

from __future__ import annotations

import importlib
import sys

from .._version import __version__

COMMANDS = {  # name -> the module of this package whose main(argv) runs it
    "forecast": "forecast",
    "train": "train",
    "evaluate": "evaluate",
    "prepare": "prepare",
    "video": "video",
    "synthetic": "synthetic",
    "case": "case",
    "video-synthetic": "video_synthetic",
}


def main(argv: list[str] | None = None) -> int:
    """Run ``climode COMMAND [options]``; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"climode {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])


def run(command: str, argv: list[str] | None = None) -> int:
    """Run one command on ``argv`` (default: the process's arguments); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    status = importlib.import_module(f"{__name__}.{COMMANDS[command]}").main(argv)
    return int(status or 0)


def forward(module: str, command: str) -> None:
    """The body of a module kept so that ``python -m climode.X`` runs ``command``: run it on the
    process's arguments and exit with its status. ``module`` is the caller's ``__name__``: imported
    rather than run, the module refuses, so that it never shadows a verb of the same name
    (``climode.train``, ``climode.forecast``, ``climode.prepare`` are functions)."""
    if module == "__mp_main__":  # a worker process (multiprocessing spawn) re-importing the main module
        return
    if module != "__main__":
        raise ImportError(
            f"{module} only runs the command 'climode {command}' (python -m {module}); "
            f"its code is climode.cli.{COMMANDS[command]}"
        )
    sys.exit(run(command))
