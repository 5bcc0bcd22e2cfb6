"""Forecasts at any times from irregularly timed frames: ``python -m climode.forecast --input storm.nc
--times 60,63,66``, the command over ``climode.forecast(ds, times)`` (``climode.forecasting``).

The path is a straight line: fields (any grid the pipeline reads) -> the model's grid (regridded
when the checkpoint was trained on another resolution) -> windows of the model's tile size
(stitched with cross-faded overlaps) -> Vid-ODE -> back onto the input grid -> CF NetCDF / zarr /
maps. Without ``--checkpoint`` the model bundled with climode is used (U850, V850, PSL; see
docs/forecast.md for how it was trained and how it scores).
"""
