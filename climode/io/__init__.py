"""Files in and out: gridded fields opened lazily in one convention (``fields``, with ``coords``
bringing coordinates, time axis and units to it), forecasts written as CF NetCDF and zarr, never
half-written (``write``), and storm track tables read from IBTrACS, TempestExtremes or CSV
(``tracks``)."""
