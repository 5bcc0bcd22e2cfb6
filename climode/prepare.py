"""``python -m climode.prepare``: the prepare command (``climode.cli.prepare``). ``climode.prepare`` is
the function (``climode.pipeline.prepare``): this module is run, never imported."""

from .cli import forward

forward(__name__, "prepare")
