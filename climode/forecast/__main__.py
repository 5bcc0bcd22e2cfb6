"""``python -m climode.forecast --input storm.nc --times 60,63,66``: see ``climode.forecasting.forecast``."""

from __future__ import annotations

import argparse
import glob
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..conventions import DEFAULT_EVENTS, LAYOUTS, STRIKE_KM
from ..errors import ClimodeError, cli
from . import __doc__ as DOC

if TYPE_CHECKING:
    import xarray as xr


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m climode.forecast", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter
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
    p.add_argument("--output", help="forecast NetCDF (default: <input stem>_forecast.nc in the current directory)")
    p.add_argument("--zarr", help="also write the forecast to this zarr store")
    p.add_argument("--append", action="store_true", help="append along time to an existing --zarr store")
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
    p.add_argument("--vars", help="names in the files, e.g. U850=u,V850=v,PSL=msl")
    p.add_argument("--time-in-hours", action="store_true", help="a time axis without units holds hours")
    p.add_argument("--reference-time", help="origin of such hours, e.g. '1996-01-05 00:00:00'")
    p.add_argument("--calendar", help="calendar of such hours (default standard)")
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


def _outputs(args) -> dict[str, Path]:
    """Every output path, checked before any work so that a bad one leaves nothing behind: none may
    replace an input, and what killed runs left in the outputs' folders is cleared first."""
    from ..io.write import check_not_inputs, check_writable, sweep_folder

    given = [str(Path(text).expanduser()) for text in args.input]
    inputs = [Path(path) for text in given for path in sorted(glob.glob(text)) or [text]]  # as io.fields reads them
    stem = inputs[0].name.split(".")[0] or "forecast"
    paths = {"netcdf": Path(args.output or f"{stem}_forecast.nc")}
    for key in ("zarr", "plot", "animate"):
        if getattr(args, key):
            paths[key] = Path(getattr(args, key))
    if len(set(map(Path.resolve, paths.values()))) != len(paths):
        raise ClimodeError("two outputs name the same path")
    check_not_inputs(paths.values(), inputs)
    for folder in sorted({path.parent.resolve() for path in paths.values()}):
        sweep_folder(folder)  # what killed runs left: their temporaries cleared, a set being swapped in put back
    for key, path in paths.items():
        zarr = key == "zarr"
        check_writable(path, args.overwrite or (zarr and args.append), " or --append" if zarr else "", store=zarr)
    return paths


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(_attached(sys.argv[1:] if argv is None else argv))
    from ..forecasting import forecast, forecast_model
    from ..io.fields import open_fields
    from ..io.write import FLAG
    from ..times import stamp  # the stack loads after the options are read

    if args.layout not in LAYOUTS:
        raise ClimodeError(f"unknown --layout {args.layout!r}; choose one of {', '.join(LAYOUTS)}")
    _check_ensemble(args)
    paths = _outputs(args)
    if "plot" in paths or "animate" in paths:
        _maps().parse_region(args.map_region)  # a bad region is refused before any work
    ckpt = forecast_model(args.checkpoint, args.device)
    try:
        ds = open_fields(args.input, ckpt.variables, args.vars, args.time_in_hours, args.reference_time, args.calendar)
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
    _write_all(out, paths, args, tracks)


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


def _animated(out: xr.Dataset) -> xr.Dataset:
    """What --animate shows: the forecast, or an ensemble's mean (its members are in the files)."""
    if "realization" not in out.dims:
        return out
    return out.mean("realization", keep_attrs=True).assign_attrs(title="climode ensemble mean")


def _maps():
    from .. import maps  # cartopy and matplotlib load only when a map is asked for

    return maps


def _plot(out: xr.Dataset, path: Path, args, tracks) -> None:
    """The map: one panel per time, or for an ensemble its track plume, PSL spaghetti and probability maps."""
    maps = _maps()
    shown = maps.region(out, args.map_region)
    if "realization" not in out.dims:
        maps.plot_forecast(shown, path)
        return
    probabilities = {
        da.attrs["long_name"]: da
        for name, da in shown.data_vars.items()
        if name.startswith(("probability_", "strike_"))
    }
    members = [name for name in shown.data_vars if "realization" in shown[name].dims]
    maps.plot_ensemble(shown[members], path, tracks=tracks, probabilities=probabilities)


def _write_all(out: xr.Dataset, paths: dict[str, Path], args, tracks=None) -> None:
    """Every output is first written beside its path (``staging_path``), then all are swapped in as
    one set (``commit``): a failure or a kill leaves every output as it was or every one new (what a
    killed run left is cleared by the next, whose ``_outputs`` sweeps them), and a zarr append is part
    of the set. The outputs' locks (``locked``) are held from checking them through the swap: another
    forecast writing any of them waits, then finds them as this one left them (a store appended)."""
    from ..io.write import commit, lead_layout, locked, stage_zarr, staging_path, write_netcdf

    calendar = out.time.values[0].calendar
    stored = lead_layout(out) if args.layout == "lead" else out
    writers = {
        "zarr": lambda p, s: stage_zarr(stored, p, s, calendar, append=args.append, overwrite=args.overwrite),
        "netcdf": lambda p, s: write_netcdf(stored, s, calendar, overwrite=True),
        "plot": lambda p, s: _plot(out, s, args, tracks),
        "animate": lambda p, s: _maps().animate_forecast(_maps().region(_animated(out), args.map_region), s),
    }
    staged: dict[str, Path] = {}
    writing: Path | None = None  # the output being staged, named if that fails
    try:
        with locked(paths.values(), waiting=lambda line: print(line, flush=True)):
            _outputs(args)  # checked again now that no other forecast can change them
            for key in ("zarr", "netcdf", "plot", "animate"):
                if key in paths:
                    writing, staged[key] = paths[key], staging_path(paths[key])
                    writers[key](paths[key], staged[key])
            writing = None
            commit({paths[key]: stage for key, stage in staged.items()})
        for key in staged:
            print(f"wrote {paths[key]}", flush=True)
    except OSError as exc:  # e.g. a full disk, or a file system that refuses despite its permissions
        raise ClimodeError(f"cannot write {writing or exc.filename or 'the outputs'}: {exc.strerror or exc}") from None
    finally:
        for stage in staged.values():
            if stage.exists():
                shutil.rmtree(stage) if stage.is_dir() else stage.unlink()


if __name__ == "__main__":
    sys.exit(main())
