"""``ds.climode``: climode's verbs on an xarray Dataset (registered when climode is imported
where xarray is installed).

    ds = climode.open_fields("storm.nc")
    out = ds.climode.forecast("60,63,66")                 # == climode.forecast(ds, "60,63,66")
    tiles = ds.climode.tiles("atlantic", resolution=1.0)  # {name: Dataset}
    scores = out.climode.verify(truth)                    # == climode.verify(out, truth)
"""

from __future__ import annotations

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
        model: str | Path | object | None = None,
        *,
        input_times=None,
        device: str = "cpu",
        mask_filled: bool = False,
        members: int | None = None,
        seed: int = 0,
    ) -> xr.Dataset:
        """Forecast this Dataset's variables at ``times`` from its frames (with ``members``, an ensemble).

        Parameters
        ----------
        times : hours after the first frame (numbers), cftime dates, or text such as "60,63,66",
            "60:72:3" or "2000-08-03 12:00" (the Dataset's calendar).
        model : a checkpoint path or a loaded ``climode.Checkpoint`` (default: the bundled model).
        input_times, device, mask_filled, members, seed : as ``climode.forecast``.

        Returns
        -------
        xarray.Dataset
            dims (time, lat, lon) on this grid: the forecast variables (float32, physical units),
            ``filled`` (int8 status flag), coordinates ``lead_time`` (hours after the last input)
            and ``forecast_reference_time``; with ``members`` the variables are (realization, time,
            lat, lon); see ``climode.forecast``.
        """
        from .forecasting import forecast

        return forecast(
            self._ds,
            times,
            checkpoint=model,
            input_times=input_times,
            device=device,
            mask_filled=mask_filled,
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

    def verify(self, truth: xr.Dataset, start: tuple[float, float] | None = None) -> dict:
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

        Returns
        -------
        dict
            per lead time (hours): RMSE per variable (physical units), track error (km) and
            intensity errors (hPa, m s-1), and for an ensemble ``"ensemble"``: {"members": m,
            metric: {variable: [per lead]}}; see ``climode.verify``.
        """
        from .verification.truth import verify

        return verify(self._ds, truth, start)
