"""``ds.climode``: climode's verbs on an xarray Dataset (registered when climode is imported
where xarray is installed).

    ds = climode.open_fields("storm.nc")
    out = ds.climode.forecast("60,63,66")                 # == climode.forecast(ds, "60,63,66")
    tiles = ds.climode.tiles("atlantic", resolution=1.0)  # {name: Dataset}
    scores = out.climode.verify(truth)                    # == climode.verify(out, truth)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import xarray as xr


@xr.register_dataset_accessor("climode")
class ClimodeAccessor:
    """Thin methods over ``climode.forecast``, ``climode.geo.tiles`` and ``climode.verify``; the
    Dataset follows the toolkit's convention (``climode.open_fields``): dims (time, lat, lon), time
    as cftime dates, lat ascending in degrees_north, lon in [0, 360) degrees_east, U850/V850 in
    m s-1 and PSL in Pa, NaN where missing."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def forecast(
        self,
        times,
        checkpoint: str | Path | object | None = None,
        *,
        input_times=None,
        device: str = "cpu",
        mask_filled: bool = False,
        allow_long_leads: bool = False,
        members: int | None = None,
        seed: int = 0,
        model: str | Path | object | None = None,
    ) -> xr.Dataset:
        """Forecast this Dataset's variables at ``times`` from its frames (with ``members``, an ensemble):
        ``climode.forecast(ds, times, ...)``, with the same parameters.

        Parameters
        ----------
        times : hours after the first frame (numbers), cftime dates, or text such as "60,63,66",
            "60:72:3" or "2000-08-03 12:00" (the Dataset's calendar).
        checkpoint : a checkpoint path or a loaded ``climode.Checkpoint`` (default: the bundled model).
        input_times, device, mask_filled, allow_long_leads, members, seed : as ``climode.forecast``.
        model : deprecated name of ``checkpoint`` (a FutureWarning says so).

        Returns
        -------
        xarray.Dataset
            dims (time, lat, lon) on this grid: the forecast variables (float32, physical units),
            ``filled`` (int8 status flag), coordinates ``lead_time`` (hours after the last input)
            and ``forecast_reference_time``; with ``members`` the variables are (realization, time,
            lat, lon); see ``climode.forecast``.
        """
        from .forecasting import forecast

        if model is not None:
            if checkpoint is not None:
                raise TypeError("ds.climode.forecast takes checkpoint= or its old name model=, not both")
            warnings.warn(
                "ds.climode.forecast(model=...) is deprecated; pass checkpoint=... (as climode.forecast takes it)",
                FutureWarning,
                stacklevel=2,
            )
            checkpoint = model
        return forecast(
            self._ds,
            times,
            checkpoint=checkpoint,
            input_times=input_times,
            device=device,
            mask_filled=mask_filled,
            allow_long_leads=allow_long_leads,
            members=members,
            seed=seed,
        )

    def tiles(self, tiles: str = "east-pacific-atlantic", resolution: float | None = None) -> dict[str, xr.Dataset]:
        """Basin tiles cut from this Dataset.

        Parameters
        ----------
        tiles : basin names (``climode.geo.tiles.BASINS``), "regular", or LAT0:LON0 boxes,
            comma-separated (each 60 x 160 degrees).
        resolution : degrees of the tiles' regular grid (box mean, then bilinear); None keeps the
            native grid.

        Returns
        -------
        dict of str to xarray.Dataset
            each tile's fields, dims (time, lat, lon), longitudes contiguous across 0/360.
        """
        from .geo.tiles import extract, parse_tiles

        return {tile.name: extract(self._ds, tile, resolution) for tile in parse_tiles(tiles)}

    def verify(
        self, truth: xr.Dataset, start: tuple[float, float] | None = None, radius_km: float | None = None
    ) -> dict:
        """Score this forecast (``forecast`` output) and persistence against ``truth``.

        An ensemble forecast (dims (realization, time, lat, lon)) is scored by its ensemble mean, and
        its members by CRPS, spread, skill, spread-skill ratio and Brier scores of wind events
        (``climode.verification.ensemble.ensemble_scores``).

        Parameters
        ----------
        truth : the true fields, dims (time, lat, lon), holding every forecast variable and the
            forecast's reference time.
        start : (lat, lon) in degrees near the storm at the reference time (default: the deepest
            PSL minimum of the truth then).
        radius_km : how far a followed storm centre may move between frames (default:
            ``climode.geo.storms.FOLLOW_KM``, as ``climode.verify``).

        Returns
        -------
        dict
            per lead time (hours): RMSE per variable (physical units), track error (km) and
            intensity errors (hPa, m s-1), and for an ensemble ``"ensemble"``: {"members": m,
            metric: {variable: [per lead]}}; see ``climode.verify``.
        """
        from .verification.truth import verify

        return verify(self._ds, truth, start, **({} if radius_km is None else {"radius_km": radius_km}))
