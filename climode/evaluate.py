"""``python -m climode.evaluate``: the evaluate command (``climode.cli.evaluate``); run, never imported."""

from .cli import forward

forward(__name__, "evaluate")
