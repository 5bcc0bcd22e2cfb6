"""``python -m climode.forecast``: the forecast command (``climode.cli.forecast``). ``climode.forecast``
is the function (``climode.forecasting.forecast``): this module is run, never imported."""

from .cli import forward

forward(__name__, "forecast")
