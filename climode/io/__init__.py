"""Files in and out: gridded fields opened lazily in one convention (``fields``, with ``coords``
bringing coordinates and units to it and ``climode.times`` the time axis), forecasts written as CF
NetCDF and zarr, never half-written (``write``), and storm track tables read from IBTrACS,
TempestExtremes or CSV (``tracks``)."""
