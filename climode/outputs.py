"""Output formats chosen by name or by the path's suffix (``WRITERS``), and ``write``, which writes a
forecast in the one a path asks for: ``climode.write(out, "storm.zarr")``.

Each format is a ``Format``: its ``name``, the ``suffixes`` it claims (lower case, with the dot) and

``write(ds, path, *, overwrite, **options) -> None``
    writes the Dataset ``ds`` at ``path``, a file (a folder for a ``store`` format). ``path`` is
    where the output is built, beside it and with its suffix (``climode.io.atomic.staging_path``),
    and swapped in once every output of the set is complete: a writer need not be atomic, and
    nothing is at ``path`` unless the format ``appends`` and is asked to (``append=True``), when
    ``path`` holds a copy of the output to add ``ds`` to. ``overwrite`` is the caller's, already
    enforced on the output itself. ``options`` are those given to ``write`` (``layout``,
    ``calendar``, ``region``, ``tracks``, ...): each writer takes the ones it knows and ignores the
    rest, so that one set of options serves every output of a command.

``check(ds, path, **options) -> None`` (optional)
    refuses in one ClimodeError what could not be written at the output ``path`` itself, before
    anything is staged; ``ds`` is None when the outputs are checked before the data exist.

A new format is one entry: ``WRITERS["csv"] = Format("csv", (".csv",), write_csv)``. The maps and
animations import ``climode.maps`` (cartopy, matplotlib) only when one is written or checked.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .conventions import OUTPUT_LAYOUTS
from .errors import ClimodeError
from .io import write as datasets
from .io.atomic import commit, copy_tree, locked, staging_path, sweep_folder
from .registry import Registry


@dataclass(frozen=True)
class Format:
    """An output format (the contract of ``write`` and ``check``: the module's docstring).

    ``store``: it writes a folder, which may replace only a store of its own (a zarr store);
    ``appends``: with ``append=True`` it adds to an existing output instead of replacing it."""

    name: str
    suffixes: tuple[str, ...]
    write: Callable[..., object]
    check: Callable[..., object] | None = None
    store: bool = False
    appends: bool = False


Output = tuple[Path, Format]  # a path and the format it is written in


def _check_layout(ds: xr.Dataset | None, path: Path, *, layout: str = "valid", **options) -> None:
    """Refuse a ``layout`` that is none of ``OUTPUT_LAYOUTS``."""
    if layout not in OUTPUT_LAYOUTS:
        raise ClimodeError(f"unknown layout {layout!r}; choose one of {', '.join(OUTPUT_LAYOUTS)}")


def laid_out(ds: xr.Dataset, layout: str = "valid") -> xr.Dataset:
    """``ds`` in ``layout`` (``OUTPUT_LAYOUTS``): "valid" as it is, "lead" as ``io.write.lead_layout``."""
    _check_layout(ds, Path(), layout=layout)
    return datasets.lead_layout(ds) if layout == "lead" and "init_time" not in ds.dims else ds


def _calendar(ds: xr.Dataset) -> str | None:
    """The calendar of the first time-like coordinate holding cftime dates; None for numpy times."""
    for name in ("time", "init_time", "valid_time"):
        if name in ds.coords and ds[name].size:
            return getattr(np.ravel(ds[name].values)[0], "calendar", None)
    return None


def _netcdf(
    ds: xr.Dataset, path: Path, *, overwrite: bool, layout: str = "valid", calendar: str | None = None, **options
) -> None:
    """Compressed float32 CF NetCDF (``io.write.write_netcdf``), times on ``calendar`` (default the data's)."""
    datasets.write_netcdf(laid_out(ds, layout), path, calendar or _calendar(ds), overwrite=overwrite)


def _zarr(
    ds: xr.Dataset,
    path: Path,
    *,
    overwrite: bool,
    layout: str = "valid",
    calendar: str | None = None,
    append: bool = False,
    **options,
) -> None:
    """A zarr store (``io.write.to_zarr``), or ``ds`` appended along time to the store at ``path``."""
    datasets.to_zarr(laid_out(ds, layout), path, calendar or _calendar(ds), append=append and path.exists())


def _check_zarr(ds: xr.Dataset | None, path: Path, *, layout: str = "valid", append: bool = False, **options) -> None:
    """Refuse an unknown ``layout``, and appending ``ds`` to the store at ``path`` where it does not fit
    (``io.write.check_appendable``)."""
    _check_layout(ds, path, layout=layout)
    if ds is not None and append and path.exists():
        datasets.check_appendable(laid_out(ds, layout), path)


def _lead(ds: xr.Dataset, path: Path, *, overwrite: bool, **options) -> None:
    """A zarr store in the lead layout (init_time, lead_time, lat, lon), whatever ``layout`` says."""
    _zarr(ds, path, overwrite=overwrite, **{**options, "layout": "lead"})


def _check_lead(ds: xr.Dataset | None, path: Path, **options) -> None:
    _check_zarr(ds, path, **{**options, "layout": "lead"})


def _map(
    ds: xr.Dataset, path: Path, *, overwrite: bool, region: str = "storm", tracks: object = None, **options
) -> None:
    """A PNG map (``climode.maps``) of ``region`` ("storm", "full" or "LAT0:LAT1,LON0:LON1"): one panel
    per time, or for an ensemble (a realization dim) its track plume (``tracks``, a table of member
    tracks), PSL spaghetti and probability maps."""
    from . import maps  # cartopy and matplotlib load only when a map is written

    shown = maps.region(ds, region)
    if "realization" not in shown.dims:
        maps.plot_forecast(shown, path)
        return
    chances = [da for name, da in shown.data_vars.items() if name.startswith(("probability_", "strike_"))]
    probabilities = {da.attrs["long_name"]: da for da in chances}
    members = [name for name in shown.data_vars if "realization" in shown[name].dims]
    maps.plot_ensemble(shown[members], path, tracks=tracks, probabilities=probabilities)


def _animation(ds: xr.Dataset, path: Path, *, overwrite: bool, region: str = "storm", **options) -> None:
    """A GIF (an H.264 MP4 for .mp4, .m4v, .mov) of ``region``, one frame per time; for an ensemble
    its mean (the members are in the data files)."""
    from . import maps

    if "realization" in ds.dims:
        ds = ds.mean("realization", keep_attrs=True).assign_attrs(title="climode ensemble mean")
    maps.animate_forecast(maps.region(ds, region), path)


def _check_region(ds: xr.Dataset | None, path: Path, *, region: str = "storm", **options) -> None:
    """Refuse a ``region`` that is not "storm", "full" or LAT0:LAT1,LON0:LON1, before any work."""
    from . import maps

    maps.parse_region(region)


WRITERS: Registry[Format] = Registry(
    "output format",
    {
        fmt.name: fmt
        for fmt in (
            Format("netcdf", (".nc",), _netcdf, _check_layout),
            Format("zarr", (".zarr",), _zarr, _check_zarr, store=True, appends=True),
            Format("zarr-lead", (), _lead, _check_lead, store=True, appends=True),
            Format("png", (".png",), _map, _check_region),
            Format("gif", (".gif",), _animation, _check_region),
            Format("mp4", (".mp4", ".m4v", ".mov"), _animation, _check_region),
        )
    },
)


def choose(
    path: str | Path, format: str | None = None, *, among: Iterable[str] | None = None, default: str | None = None
) -> Format:
    """The format called ``format``, else the one of ``among`` (default: every format) that claims the
    suffix of ``path``, else ``default``; ClimodeError naming the choices when there is none."""
    if format is not None:
        return WRITERS.get_method(format)
    names = list(WRITERS if among is None else among)
    suffix = Path(path).suffix.lower()
    for name in names:
        if suffix in WRITERS.get_method(name).suffixes:
            return WRITERS[name]
    if default is not None:
        return WRITERS.get_method(default)
    claimed = ", ".join(f"{s} ({name})" for name in names for s in WRITERS[name].suffixes)
    raise ClimodeError(
        f"no output format for {path}: end it in one of {claimed}, or name a format ({', '.join(WRITERS)})"
    )


def check_outputs(
    outputs: Sequence[Output],
    ds: xr.Dataset | None = None,
    *,
    overwrite: bool = False,
    append: bool = False,
    inputs: Iterable[Path] = (),
    **options,
) -> None:
    """Refuse (ClimodeError), before anything is written, outputs that cannot be: two naming one path,
    one that would replace one of ``inputs`` (``io.write.check_not_inputs``), one that exists unless
    ``overwrite`` (or ``append`` for a format that appends), and what each format's ``check`` refuses.
    What killed writers left in the outputs' folders is cleared first (``io.atomic.sweep_folder``)."""
    paths = [path for path, _ in outputs]
    if len(set(map(Path.resolve, paths))) != len(paths):
        raise ClimodeError("two outputs name the same path")
    datasets.check_not_inputs(paths, list(inputs))
    for folder in sorted({path.parent.resolve() for path in paths}):
        sweep_folder(folder)  # their temporaries cleared, a set being swapped in put back
    for path, fmt in outputs:
        hint = " or --append" if fmt.appends else ""
        datasets.check_writable(path, overwrite or (append and fmt.appends), hint, store=fmt.store)
        if fmt.check is not None:
            fmt.check(ds, path, overwrite=overwrite, append=append, **options)


def _stage(ds: xr.Dataset, path: Path, fmt: Format, stage: Path, *, append: bool, **options) -> None:
    """Build at ``stage`` what ``path`` becomes: ``ds`` in ``fmt``, added to a copy of the output when
    the format appends and ``append`` asks it to."""
    if append and fmt.appends and path.exists():
        copy_tree(path, stage) if path.is_dir() else shutil.copy2(path, stage)
    fmt.write(ds, stage, append=append, **options)


def write_outputs(
    ds: xr.Dataset,
    outputs: Sequence[Output],
    *,
    overwrite: bool = False,
    append: bool = False,
    inputs: Iterable[Path] = (),
    waiting: Callable[[str], object] | None = None,
    **options,
) -> list[Path]:
    """Write ``ds`` to every output as one set: each is built beside its path (``staging_path``), then
    all are swapped in together (``io.atomic.commit``), so that a failure or a kill leaves every output
    as it was or every one new, an append included. The outputs' locks (``io.atomic.locked``; ``waiting``
    is told whom a writer waits for) are held from ``check_outputs`` through the swap: another writer
    of any of them waits, then finds them as this one left them (a store appended).

    Parameters
    ----------
    ds : the forecast (``climode.forecast``) or any fields in the toolkit's convention.
    outputs : (path, format) pairs (``choose``); formats that append are written first, so that an
        append that does not fit is refused before anything else is built.
    overwrite, append, inputs : as ``check_outputs`` takes them.
    **options : passed to every format's ``write`` and ``check`` (the module's docstring).

    Returns
    -------
    list of pathlib.Path
        the outputs, in the order they were written. An OSError (e.g. a full disk) is a ClimodeError
        naming the output being written.
    """
    outputs = [(Path(path), fmt) for path, fmt in outputs]
    order = sorted(outputs, key=lambda output: not output[1].appends)
    staged: dict[Path, Path] = {}
    writing: Path | None = None  # the output being staged, named if that fails
    try:
        with locked([path for path, _ in outputs], waiting=waiting):
            check_outputs(outputs, ds, overwrite=overwrite, append=append, inputs=inputs, **options)
            for path, fmt in order:
                writing, staged[path] = path, staging_path(path)
                _stage(ds, path, fmt, staged[path], overwrite=overwrite, append=append, **options)
            writing = None
            commit(staged)
    except OSError as exc:  # e.g. a full disk, or a file system that refuses despite its permissions
        raise ClimodeError(f"cannot write {writing or exc.filename or 'the outputs'}: {exc.strerror or exc}") from None
    finally:
        for stage in staged.values():
            if stage.exists():
                shutil.rmtree(stage) if stage.is_dir() else stage.unlink()
    return [path for path, _ in order]


def write(ds: xr.Dataset, path: str | Path, format: str | None = None, **options) -> Path:
    """Write ``ds`` at ``path`` in the format called ``format``, or else the one its suffix names
    (``WRITERS``: .nc NetCDF, .zarr a zarr store, .png a map, .gif/.mp4 an animation), atomically.

    Parameters
    ----------
    ds : a forecast (``climode.forecast``; dims (time, lat, lon), with a realization dim for an
        ensemble) or any fields in the toolkit's convention, physical units.
    path : the output; an existing one is refused unless ``overwrite=True`` (or ``append=True`` to
        add along time to a zarr store).
    format : a name of ``WRITERS`` ("netcdf", "zarr", "zarr-lead", "png", "gif", "mp4", ...).
    **options : ``overwrite``, ``append``, and the formats' own: ``layout`` ("valid" or "lead"),
        ``calendar`` (default the data's), ``region`` of a map ("storm", "full", "LAT0:LAT1,LON0:LON1").

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_outputs(ds, [(Path(path), choose(path, format))], **options)[0]
