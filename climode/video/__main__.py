"""``python -m climode.video``: the video command (``climode.cli.video``)."""

from ..cli import forward

forward(__name__, "video")
