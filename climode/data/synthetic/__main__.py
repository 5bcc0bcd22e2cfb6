"""``python -m climode.data.synthetic``: the synthetic command (``climode.cli.synthetic``)."""

from ...cli import forward

forward(__name__, "synthetic")
