"""``climode COMMAND [options]``: every climode tool behind one command.

    climode forecast  --input storm.nc --times 60,63,66      forecasts at any times
    climode train     --dataset cam5 --data tiles.zarr        train a model
    climode evaluate  --checkpoint MODEL | --forecast F --truth T | --protocol NAME
    climode prepare   --input 'cam5/*.nc' --out tiles.zarr    fields -> tiles -> samples -> shards
    climode video     --input clip.mp4 --checkpoint MODEL --fps 8,11,14
    climode synthetic --out storms/ --storms 20               CAM5-like synthetic storms
    climode case      --out runs/demo                         one synthetic storm to forecast

``climode COMMAND --help`` tells each command's options; ``python -m climode.<module>`` runs the
same code. Exit status: 0 done, 2 a problem with what was given (one ``error:`` line), 130
interrupted, 1 an internal error.
"""

from __future__ import annotations

import importlib
import sys

from ._version import __version__

COMMANDS = {  # name -> the module whose main(argv) runs it
    "forecast": "climode.forecast.__main__",
    "train": "climode.training.__main__",
    "evaluate": "climode.evaluate",
    "prepare": "climode.prepare",
    "video": "climode.video.__main__",
    "synthetic": "climode.data.synthetic.__main__",
    "case": "climode.data.cases",
}


def main(argv: list[str] | None = None) -> int:
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
    status = importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
