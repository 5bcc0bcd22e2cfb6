"""``python -m climode.train``: the train command. ``climode.train`` is the function
(``climode.training.train``): this module is run, never imported."""

import sys

if __name__ != "__main__":
    raise ImportError("climode.train is the function climode.training.train; run the command as python -m climode.train")

from .__main__ import main

sys.exit(main(["train", *sys.argv[1:]]))
