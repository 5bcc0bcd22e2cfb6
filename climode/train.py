"""``python -m climode.train``: the train command (``climode.cli.train``). ``climode.train`` is the
function (``climode.training.train``): this module is run, never imported."""

from .cli import forward

forward(__name__, "train")
