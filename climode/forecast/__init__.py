"""The forecast command, ``python -m climode.forecast`` (``__main__``); the library function is
``climode.forecast`` (``climode.forecasting.forecast``)."""
