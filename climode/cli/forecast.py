"""Forecasts at any times from irregularly timed frames: ``python -m climode.forecast --input storm.nc
--times 60,63,66``, the command over ``climode.forecast(ds, times)`` (``climode.forecasting``).

The path is a straight line: fields (any grid the pipeline reads) -> the model's grid (regridded
when the checkpoint was trained on another resolution) -> windows of the model's tile size
(stitched with cross-faded overlaps) -> Vid-ODE -> back onto the input grid -> CF NetCDF / zarr /
maps. Without ``--checkpoint`` the model bundled with climode is used (U850, V850, PSL; see
docs/forecast.md for how it was trained and how it scores).
"""

from __future__ import annotations

import argparse
import glob
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..conventions import DEFAULT_EVENTS, OUTPUT_LAYOUTS, STRIKE_KM
from ..errors import ClimodeError, cli
from .options import add_input_options

if TYPE_CHECKING:
    import xarray as xr

    from ..outputs import Output


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m climode.forecast", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", nargs="+", required=True, help="NetCDF files (or globs, or a zarr store) with the fields")
    p.add_argument(
        "--times",
        required=True,
        help="hours after the first input frame (60,63,66), ranges (60:72:3, inclusive) or dates in "
        "the file's calendar ('2000-08-03 12:00')",
    )
    p.add_argument(
        "--input-times", help="use only these frames as inputs (same forms, relative to the file's first frame)"
    )
    p.add_argument(
        "--output",
        help="the forecast file (default: <input stem>_forecast.nc in the current directory), in the format its "
        "suffix names: .nc NetCDF (also for a suffix no format claims), .zarr a zarr store, .png a map, "
        ".gif or .mp4 an animation (climode.outputs.WRITERS)",
    )
    p.add_argument("--zarr", help="also write the forecast to this zarr store")
    p.add_argument(
        "--append", action="store_true", help="append along time to an existing --zarr store (or --output store)"
    )
    p.add_argument(
        "--layout",
        default="valid",
        help="valid: dims (time, lat, lon), the CF valid-time layout (default); lead: (init_time, lead_time, "
        "lat, lon) with timedelta lead times, as WeatherBench 2 and earth2studio write, for many "
        "initialisations in one --zarr store (--append)",
    )
    p.add_argument("--plot", help="PNG map, one panel per time")
    p.add_argument("--animate", help="GIF (or .mp4, H.264) animating the forecast times")
    p.add_argument(
        "--map-region",
        default="storm",
        help="what --plot/--animate show: 'storm' (a 24 x 36 degree box around the deepest low, "
        "default), 'full', or LAT0:LAT1,LON0:LON1",
    )
    p.add_argument("--checkpoint", help="model (.safetensors or training .ckpt); default: the bundled model")
    add_input_options(p)
    p.add_argument(
        "--mask-filled",
        action="store_true",
        help="NaN wherever the forecast derives from missing input cells (always flagged in 'filled')",
    )
    p.add_argument(
        "--members",
        type=int,
        help="an ensemble of this many members (a realization dim); adds the exceedance probabilities of "
        "--probability and, where PSL is forecast, the strike probability",
    )
    p.add_argument("--seed", type=int, default=0, help="the ensemble's seed (default 0): same seed, same members")
    p.add_argument(
        "--probability",
        help="events whose probability is written with --members, e.g. 'wind>=17,wind>=33,PSL<=980hPa' "
        f"(wind: the 850 hPa speed; units optional; default '{DEFAULT_EVENTS}' where U850 and V850 are)",
    )
    p.add_argument(
        "--strike-radius",
        type=float,
        default=STRIKE_KM,
        help=f"km: the strike probability is the chance that the storm centre passes within it (default {STRIKE_KM:g})",
    )
    p.add_argument("--ensemble-stats", action="store_true", help="also write each variable's ensemble mean and spread")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument(
        "--allow-long-leads",
        action="store_true",
        help="forecast leads beyond 4x the longest the model was trained for (refused otherwise)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def _attached(argv: list[str]) -> list[str]:
    """``--map-region -60:-30,0:40`` as ``--map-region=-60:-30,0:40``: a southern region starts with a
    minus sign, which argparse would take for an option."""
    out = list(argv)
    for i in range(len(out) - 1):
        if out[i] == "--map-region" and out[i + 1].startswith("-") and out[i + 1][1:2].isdigit():
            out[i : i + 2] = [f"--map-region={out[i + 1]}", ""]
    return [a for a in out if a != ""]


def _inputs(args) -> list[Path]:
    """The input files, as ``io.fields`` reads them: each glob expanded, else the path given."""
    given = [str(Path(text).expanduser()) for text in args.input]
    return [Path(path) for text in given for path in sorted(glob.glob(text)) or [text]]


def _options(args, tracks=None) -> dict:
    """What every output's writer is given (``climode.outputs``)."""
    return {
        "overwrite": args.overwrite,
        "append": args.append,
        "inputs": _inputs(args),
        "layout": args.layout,
        "region": args.map_region,
        "tracks": tracks,
    }


def _outputs(args) -> list[Output]:
    """Every output and its format, checked before any work so that a bad one leaves nothing behind
    (``climode.outputs.check_outputs``): none may replace an input, and what killed runs left in
    the outputs' folders is cleared first. --output's format is the one its suffix names (NetCDF for
    a suffix no format claims), --plot's a PNG map, --animate's a GIF or, by its suffix, an MP4."""
    from ..outputs import check_outputs, choose

    stem = _inputs(args)[0].name.split(".")[0] or "forecast"
    output = Path(args.output or f"{stem}_forecast.nc")
    outputs = [(output, choose(output, default="netcdf"))]
    if args.zarr:
        outputs.append((Path(args.zarr), choose(args.zarr, "zarr")))
    if args.plot:
        outputs.append((Path(args.plot), choose(args.plot, "png")))
    if args.animate:
        outputs.append((Path(args.animate), choose(args.animate, among=("gif", "mp4"), default="gif")))
    check_outputs(outputs, **_options(args))
    return outputs


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(_attached(sys.argv[1:] if argv is None else argv))
    from ..forecasting import forecast, forecast_model
    from ..io.fields import open_fields
    from ..io.write import FLAG
    from ..outputs import write_outputs
    from ..times import stamp  # the stack loads after the options are read

    if args.layout not in OUTPUT_LAYOUTS:
        raise ClimodeError(f"unknown --layout {args.layout!r}; choose one of {', '.join(OUTPUT_LAYOUTS)}")
    _check_ensemble(args)
    outputs = _outputs(args)  # a bad one, or a bad --map-region, is refused before any work
    ckpt = forecast_model(args.checkpoint, args.device)
    try:
        ds = open_fields(
            args.input, ckpt.variables, args.vars, bool(args.time_in_hours), args.reference_time, args.calendar
        )
    except ClimodeError as exc:
        raise ClimodeError(f"{exc} (checkpoint {ckpt.path.name} forecasts {', '.join(ckpt.variables)})") from None
    events = _events(args, ckpt)
    print(
        f"input: {len(ds.time)} frames of {', '.join(ckpt.variables)} on a {ds.sizes.get('lat', ds.sizes.get('y'))} x "
        f"{ds.sizes.get('lon', ds.sizes.get('x'))} grid; model {ckpt.path}",
        flush=True,
    )
    out = forecast(
        ds,  # lazy: forecast reads the inputs it uses, once the memory they take is known to fit
        args.times,
        checkpoint=ckpt,
        input_times=args.input_times,
        device=args.device,
        mask_filled=args.mask_filled,
        allow_long_leads=args.allow_long_leads,
        members=args.members,
        seed=args.seed,
    )
    tracks = None
    if args.members is not None:
        out, tracks = _ensemble_products(out, events, args)
    out.attrs["history"] = f"{out.attrs['date_created']}: python -m climode.forecast {shlex.join(argv or sys.argv[1:])}"
    for t, lead, flag in zip(out.time.values, out.lead_time.values, out[FLAG].values):
        filled = f"  ({flag.mean():.0%} of cells from filled missing input)" if flag.any() else ""
        print(f"  {stamp(t)}  lead {lead:+g} h{filled}", flush=True)
    waiting = partial(print, flush=True)  # told which output another forecast is writing
    for path in write_outputs(out, outputs, waiting=waiting, **_options(args, tracks)):
        print(f"wrote {path}", flush=True)


def _check_ensemble(args) -> None:
    """Refuse ensemble options that cannot work, before anything is read."""
    if args.members is not None and args.members < 1:
        raise ClimodeError(f"--members must be at least 1, got {args.members}")
    if args.members is None:
        given = [
            name for name, on in (("--probability", args.probability), ("--ensemble-stats", args.ensemble_stats)) if on
        ]
        if given:
            raise ClimodeError(f"{' and '.join(given)} need an ensemble: add --members N")
    if not args.strike_radius > 0:
        raise ClimodeError(f"--strike-radius must be a positive number of km, got {args.strike_radius:g}")


def _events(args, ckpt) -> list:
    """The --probability events, read against the model's variables (refused in one line if unknown)."""
    if args.members is None:
        return []
    from ..ensemble import parse_events

    variables = list(ckpt.variables)
    spec = args.probability or (DEFAULT_EVENTS if {"U850", "V850"} <= set(variables) else "")
    units = (ckpt.card.grid or {}).get("units") or {}
    return parse_events(spec, variables, units) if spec else []


def _ensemble_products(out: xr.Dataset, events: list, args):
    """``out`` with the probabilities (and with --ensemble-stats the mean and spread), each printed, and
    the members' storm tracks (None without PSL)."""
    from ..ensemble import products, storm_tracks, summary

    tracks = storm_tracks(out)
    extra = products(out, events, args.strike_radius, tracks)
    print(f"{args.members} members (seed {args.seed}); {out.attrs['climode_ensemble_method']}", flush=True)
    for da in extra.data_vars.values():
        peak = ", ".join(f"{v:.0%}" for v in da.max(("lat", "lon")).values)
        print(f"  {da.attrs['long_name']}: highest {peak} at the forecast times", flush=True)
    out = out.merge(extra, combine_attrs="override")
    return (out.merge(summary(out), combine_attrs="override") if args.ensemble_stats else out), tracks


if __name__ == "__main__":
    sys.exit(main())
