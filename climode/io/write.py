"""Writing forecasts: CF metadata, NetCDF and zarr, never half-written.

NetCDF files and new zarr stores are written to a temporary path and renamed into place.
Appending to an existing zarr store works on a copy that replaces the original only when the
append is complete, so an interrupted or failed append leaves the store as it was. Several
outputs are swapped in as one set (``commit``), which a kill leaves as it was or all new. Writers of
one output take turns (``locked``), so that none loses what another wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import xarray as xr

from ..conventions import COORD_ATTRS, TIME_ORIGIN, VARIABLES, cf_attrs
from ..errors import ClimodeError

FILL = np.float32(1.0e20)
FLAG = "filled"  # the forecast's status flag: 1 where a value derives from missing input cells that were filled
FLAG_ATTRS = {
    "long_name": "forecast derived from filled missing input cells",
    "standard_name": "status_flag",
    "flag_values": np.array([0, 1], np.int8),
    "flag_meanings": "from_valid_input from_filled_input",
}


def fields(ds: xr.Dataset) -> list[str]:
    """The forecast fields of ``ds``: its data variables that are not status flags (``FLAG``)."""
    return [str(name) for name, da in ds.data_vars.items() if "flag_values" not in da.attrs]


def with_cf(ds: xr.Dataset, sources: dict[str, dict] | None = None) -> xr.Dataset:
    """``ds`` with CF attributes on its variables and lat/lon coordinates, data as float32, and the
    scalar coordinate ``plev`` (Pa) on the variables of a pressure level (U850, V850) only."""
    out = ds.copy()
    for name in fields(out):
        out[name] = out[name].astype(np.float32)
        own = {k: v for k, v in ds[name].attrs.items() if k not in ("_FillValue", "missing_value")}
        out[name].attrs = {**own, **cf_attrs(name, (sources or {}).get(name))}
    level = {n: VARIABLES[n].plev_pa for n in fields(out) if n in VARIABLES and VARIABLES[n].plev_pa}
    if len(set(level.values())) == 1 and "plev" not in out.variables:
        out = out.assign_coords(plev=((), next(iter(level.values()))))
    for name, attrs in COORD_ATTRS.items():
        if name in out.coords:
            out[name].attrs.update(attrs)
    for name, da in out.data_vars.items():  # each variable lists its own auxiliary coordinates
        own = [str(c) for c in out.coords if c not in out.dims and set(out[c].dims) <= set(da.dims)]
        listed = " ".join(c for c in own if c != "plev" or name in level)
        da.encoding.pop("coordinates", None)
        if listed:
            da.encoding["coordinates"] = listed
    out.attrs.setdefault("Conventions", "CF-1.8")
    return out


def lead_layout(forecast: xr.Dataset) -> xr.Dataset:
    """A forecast of ``climode.forecast`` (valid-time layout) laid out as WeatherBench 2 and
    earth2studio write forecasts, for many initialisations in one store.

    Returns dims (init_time, lead_time, lat, lon): ``init_time`` (cftime; standard_name
    forecast_reference_time, the last input frame's time), ``lead_time`` (timedelta64; standard_name
    forecast_period) and the coordinate ``valid_time`` (init_time, lead_time)."""
    if "lead_time" not in forecast.coords or "forecast_reference_time" not in forecast.coords:
        raise ClimodeError("the lead layout needs a forecast of climode.forecast (lead_time, forecast_reference_time)")
    hours = forecast["lead_time"].values.astype(np.float64)
    leads = np.rint(hours * 3.6e12).astype("timedelta64[ns]")
    out = forecast.drop_vars(["lead_time", "forecast_reference_time"]).rename(time="lead_time")
    out = out.assign_coords(
        lead_time=("lead_time", leads, {"standard_name": "forecast_period", "long_name": "time after the last input"})
    ).expand_dims(init_time=[forecast["forecast_reference_time"].values.item()])
    out = out.assign_coords(
        valid_time=(("init_time", "lead_time"), forecast["time"].values[None], {"standard_name": "time"})
    )
    out["init_time"].attrs = {"standard_name": "forecast_reference_time", "long_name": "time of the last input frame"}
    return out.transpose("init_time", "lead_time", ...)


def _along(ds: xr.Dataset) -> str:
    """The dim forecasts are appended along: time, or init_time in the lead layout."""
    return "init_time" if "init_time" in ds.dims else "time"


def _encoding(ds: xr.Dataset, calendar: str | None, netcdf: bool) -> dict:
    enc: dict = {
        name: {"dtype": "float32", "_FillValue": FILL} if name in fields(ds) else {"dtype": "int8", "_FillValue": None}
        for name in map(str, ds.data_vars)
    }
    if netcdf:
        for name in ds.data_vars:
            enc[str(name)].update(zlib=True, complevel=4)
    enc.update({name: {"_FillValue": None} for name in ds.coords})  # CF: coordinates have no fill value
    for name in ("time", "init_time", "valid_time", "forecast_reference_time"):
        if name in ds.coords and calendar:  # integers, so that a time reads back exactly as it was asked for
            whole = all(getattr(t, "microsecond", 0) == 0 for t in np.ravel(ds[name].values))
            unit = "seconds" if whole else "microseconds"
            enc[name].update(units=f"{unit} since {TIME_ORIGIN}", calendar=calendar, dtype="int64")
    if "lead_time" in ds.coords and ds["lead_time"].dtype.kind == "m":
        enc["lead_time"].update(units="hours", dtype="float64")
    return enc


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` holds a zarr store (its group metadata: ``.zgroup`` in format 2, ``zarr.json`` in 3)."""
    return (path / ".zgroup").exists() or (path / "zarr.json").exists()


def check_writable(path: Path, overwrite: bool, hint: str = "", store: bool = False) -> None:
    """Refuse (ClimodeError) an existing ``path`` unless ``overwrite``, and a missing or read-only parent.
    What ``overwrite`` may replace is an output of the same kind: a file for a file, a zarr ``store``
    for a store, never a user's directory."""
    if path.exists() and not overwrite:
        raise ClimodeError(f"{path} exists; pass --overwrite{hint} to replace it (or choose another output)")
    if path.is_dir() and not store:
        raise ClimodeError(f"{path} is a directory; give a file path for this output")
    if path.exists() and store and not is_zarr_store(path):
        raise ClimodeError(f"{path} exists and is not a zarr store; it is not replaced: choose another output")
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ClimodeError(f"cannot write {path}: {parent} does not exist or is not writable")


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse (ClimodeError) an output that would replace an input: one that is an input file (the same
    path once symlinks are resolved, or the same file under another name: a hard link), lies inside an
    input zarr store, or is a store that holds an input."""
    for output in outputs:
        for given in inputs:
            out, src = output.resolve(), given.resolve()
            if out == src or (out.exists() and src.exists() and os.path.samefile(out, src)):
                raise ClimodeError(f"output {output} is the input {given}; choose another output")
            if src in out.parents or out in src.parents:
                where = "lies inside the input store" if src in out.parents else "holds the input"
                raise ClimodeError(f"output {output} {where} {given}; choose another output")


def write_netcdf(ds: xr.Dataset, path: str | Path, calendar: str | None = None, overwrite: bool = False) -> Path:
    """Write ``ds`` as compressed float32 CF NetCDF, atomically (a temporary file, then renamed),
    holding the file's lock (``locked``) from the check that it may be written.

    Parameters
    ----------
    ds : a forecast (``climode.forecast``; dims (time, lat, lon), or the lead layout's (init_time,
        lead_time, lat, lon)) or any fields in the toolkit's convention, physical units.
    path : the file; an existing one is refused unless ``overwrite``.
    calendar : the calendar every time-like coordinate is written on (whole seconds since 0001-01-01);
        default as xarray encodes them.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with locked([path]):
        check_writable(path, overwrite)
        with replacing(path) as tmp:
            with_cf(ds).to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds, calendar, netcdf=True))
    return path


def _check_appendable(store: xr.Dataset, ds: xr.Dataset, path: Path) -> None:
    if set(store.data_vars) != set(ds.data_vars):
        raise ClimodeError(
            f"cannot append to {path}: it holds {', '.join(sorted(store.data_vars))}, "
            f"the forecast {', '.join(sorted(ds.data_vars))}"
        )
    along = _along(ds)
    if along not in store.dims:
        raise ClimodeError(f"cannot append to {path}: it is not a forecast store along {along} (another --layout?)")
    for dim in ("lat", "lon", "lead_time"):
        if dim in ds.dims and dim in ds.coords and not np.array_equal(store[dim].values, ds[dim].values):
            what = "lead times differ" if dim == "lead_time" else f"{dim} grid differs"
            raise ClimodeError(f"cannot append to {path}: its {what} from the forecast's")
    last, first = store[along].values[-1], ds[along].values[0]
    if getattr(last, "calendar", None) != getattr(first, "calendar", None):
        raise ClimodeError(
            f"cannot append to {path}: calendar {getattr(last, 'calendar', 'standard')} "
            f"differs from the forecast's {getattr(first, 'calendar', 'standard')}"
        )
    if not first > last:
        raise ClimodeError(
            f"cannot append to {path}: the forecast starts at {first}, not after the store's last time {last}"
        )


def write_zarr(
    ds: xr.Dataset, path: str | Path, calendar: str | None = None, append: bool = False, overwrite: bool = False
) -> Path:
    """Write ``ds`` to a zarr store (chunks: one time step, whole grid), or append it along time
    (along init_time in the lead layout).

    A new store is written beside ``path`` and renamed into place. An append is made on a copy
    of the store that replaces it only once complete. Either holds the store's lock (``locked``)
    throughout. Stores carry consolidated metadata (``.zmetadata``).
    """
    path = Path(path)
    stage = staging_path(path)
    try:
        with locked([path]):
            sweep(path)
            stage_zarr(ds, path, stage, calendar, append, overwrite)
            commit({path: stage})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path


def stage_zarr(
    ds: xr.Dataset, path: Path, stage: Path, calendar: str | None = None, append: bool = False, overwrite: bool = False
) -> Path:
    """Write at ``stage`` the store that ``write_zarr(ds, path, ...)`` leaves at ``path``: a copy of the
    existing store with ``ds`` appended, or a new one. ``path`` itself is not touched; a caller that
    then swaps ``stage`` in holds the store's lock (``locked``) from this call through the swap."""
    along = _along(ds)
    data = with_cf(ds).chunk({along: 1, **{d: -1 for d in ds.dims if d != along}})
    shutil.rmtree(stage, ignore_errors=True)
    if append and path.exists():
        store = xr.open_zarr(
            path,
            consolidated=False,
            decode_times=xr.coders.CFDatetimeCoder(use_cftime=True),
            decode_timedelta=True,
        )
        _check_appendable(store, ds, path)
        _copy_tree(path, stage)
        data.to_zarr(stage, append_dim=along, consolidated=True)
    else:
        check_writable(path, overwrite, store=True)
        data.to_zarr(stage, mode="w", consolidated=True, zarr_format=2, encoding=_encoding(ds, calendar, netcdf=False))
    return stage


def _copy_tree(source: Path, target: Path) -> None:
    """``shutil.copytree``, failing as the OSError of the first file it could not copy (e.g. ``[Errno 28]
    No space left on device``, naming that copy) rather than as ``shutil.Error``, whose message is its
    list of (source, destination, reason) for every such file."""
    try:
        shutil.copytree(source, target)
    except shutil.Error as exc:
        _, where, why = exc.args[0][0]
        code = re.match(r"\[Errno (\d+)\]", why)
        raise OSError(int(code[1]), os.strerror(int(code[1])), where) if code else OSError(None, why, where) from None


# ---------------------------------------------------------------- atomic files


def staging_path(path: Path) -> Path:
    """Where this process builds ``path`` before it is swapped in: hidden, beside it, same suffix (so
    writers that read the format from the suffix still do), named by this process's PID."""
    return path.with_name(f".{path.stem}.staging-{os.getpid()}{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep(path: str | Path) -> list[Path]:
    """Clear what killed processes left beside ``path``: a set of outputs a run was swapping in when
    it died is put back as it was (``commit``), staging copies, temporary files and locks are removed,
    and an old version set aside for a replacement that never arrived is put back. Entries of processes
    still running are left alone. Returns the paths removed or restored."""
    path = Path(path)
    return _clear(path.parent, path.name)


def sweep_folder(folder: str | Path) -> list[Path]:
    """``sweep`` every output in ``folder``: what killed processes left there, whichever output it was for."""
    return _clear(Path(folder))


_WORKING = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old|journal|journaling)-(?P<pid>\d+)")
_STAGED = re.compile(r"\.(?P<stem>.+)\.staging-(?P<pid>\d+)(?P<suffix>(\.[^.]*)?)")
_LOCK = re.compile(r"\.(?P<name>.+)\.lock")


def _leftover(entry: Path) -> tuple[str, int, str] | None:
    """(kind, PID, the output's name) of what a writer keeps beside an output while at work: a temporary
    file, a set-aside previous version, a journal, a staging copy (or the temporary of a writer of the
    staging copy, ``replacing``) or a lock (its holder's PID inside); None for anything else."""
    if match := _WORKING.fullmatch(entry.name):
        if match["kind"] == "tmp" and (staged := _STAGED.fullmatch(match["name"])):
            return "staging", int(match["pid"]), staged["stem"] + staged["suffix"]
        return match["kind"], int(match["pid"]), match["name"]
    if match := _STAGED.fullmatch(entry.name):
        return "staging", int(match["pid"]), match["stem"] + match["suffix"]
    if (match := _LOCK.fullmatch(entry.name)) and entry.is_file():
        try:
            holder = re.fullmatch(r"process (\d+)", entry.read_text())
        except (OSError, UnicodeDecodeError):
            holder = None
        return ("lock", int(holder[1]), match["name"]) if holder else None
    return None


def _clear(folder: Path, only: str | None = None) -> list[Path]:
    """``sweep`` the outputs in ``folder``: the one named ``only``, or all."""
    dead = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        kind, pid, name = (_leftover(entry) if entry.name.startswith(".") else None) or ("", 0, "")
        if kind and only in (None, name) and pid != os.getpid() and not _alive(pid):
            dead.append((entry, kind, pid, name))
    cleared = []
    for entry, kind, pid, _ in dead:  # a set killed while it was being swapped in is put back first
        if kind == "journal" and entry.exists():
            cleared += _roll_back(entry, pid)
    for entry, kind, _, name in dead:
        if not (entry.exists() or entry.is_symlink()) or (kind == "lock" and not _unlink_if_free(entry)):
            continue
        if kind == "old" and not (folder / name).exists():
            os.replace(entry, folder / name)  # killed between setting the old version aside and the new one's rename
        elif kind != "lock":
            _remove(entry)
        cleared.append(entry)
    return cleared


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed onto it when the block succeeds and removed otherwise
    (what a killed run left beside it is cleared first, ``sweep``)."""
    path = Path(path)
    sweep(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def commit(staged: dict[Path, Path]) -> None:
    """Swap staged outputs in (``{final path: staged copy}``, each complete) as one set: after a
    failure or a kill, every output is as it was (once swept) or every one is new.

    A journal naming every pair is put beside each output (written whole, then renamed); the
    previous versions are set aside (``.NAME.old-PID``) while the staged copies are renamed in;
    removing the journals is the commit, and only then are the previous versions removed. A failure
    before that undoes the swaps at once; a sweep that finds the journal of a dead run undoes them
    (``_roll_back``). An output counts as swapped in only if it is the staged copy itself (its inode,
    which a rename keeps), so an undo never moves a file the set did not put there.
    """
    pid = os.getpid()
    pairs = [(stage, path, stage.lstat().st_ino) for path, stage in staged.items()]
    text = json.dumps([[str(stage.resolve()), str(path.resolve()), inode] for stage, path, inode in pairs])
    try:
        for path in staged:
            _journal(path, pid, writing=True).write_text(text)
            os.replace(_journal(path, pid, writing=True), _journal(path, pid))
        for stage, path, _ in pairs:
            if os.path.lexists(path):
                os.replace(path, _old(path, pid))
            os.replace(stage, path)
    except BaseException:
        _undo(pairs, pid)
        raise
    for path in staged:
        _journal(path, pid).unlink()
    for path in staged:
        if os.path.lexists(_old(path, pid)):
            _remove(_old(path, pid))


def _journal(path: Path, pid: int, writing: bool = False) -> Path:
    return path.with_name(f".{path.name}.{'journaling' if writing else 'journal'}-{pid}")


def _old(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.old-{pid}")


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _undo(pairs: list[tuple[Path, Path, int]], pid: int) -> None:
    """Put back what process ``pid``'s ``commit`` of ``pairs`` (staged copy, final path, the copy's
    inode) swapped in: each output that is its staged copy goes back to the staging name, each
    previous version back in place; then its journals go. Safe to repeat if interrupted itself."""
    for stage, path, inode in pairs:
        if os.path.lexists(path) and path.lstat().st_ino == inode and not os.path.lexists(stage):
            os.replace(path, stage)
        if os.path.lexists(_old(path, pid)) and not os.path.lexists(path):
            os.replace(_old(path, pid), path)
    for _, path, _ in pairs:
        _journal(path, pid, writing=True).unlink(missing_ok=True)
        _journal(path, pid).unlink(missing_ok=True)


def _roll_back(journal: Path, pid: int) -> list[Path]:
    """Undo (``_undo``) the swaps of dead process ``pid``'s ``commit`` as ``journal`` names them, then
    remove its staging copies. Returns the outputs put back."""
    try:
        pairs = [(Path(stage), Path(path), int(inode)) for stage, path, inode in json.loads(journal.read_text())]
    except (ValueError, TypeError):  # not one of ours: journals are renamed into place whole
        pairs = []
    _undo(pairs, pid)
    journal.unlink(missing_ok=True)
    for stage, _, _ in pairs:
        if os.path.lexists(stage):
            _remove(stage)
    return [path for _, path, _ in pairs]


# ---------------------------------------------------------------- locks


@contextmanager
def locked(paths: Iterable[str | Path], waiting: Callable[[str], object] | None = None) -> Iterator[None]:
    """Hold the lock of every output in ``paths`` (``.NAME.lock`` beside it: an exclusive advisory
    ``flock``, released by the system when the process ends, however it ends), first waiting for any
    writer that holds one (``waiting`` is told which, in a line): writers of one output take turns,
    each reading its state and swapping its new version in before the next reads it. The locks are
    taken in one order, so two writers never wait on each other; each file goes as its lock is let go."""
    with ExitStack() as stack:
        for lock, path in sorted({_lock_path(Path(p)): Path(p) for p in paths}.items()):
            stack.enter_context(_holding(lock, path, waiting))
        yield


def _lock_path(path: Path) -> Path:
    real = path.resolve()
    return real.with_name(f".{real.name}.lock")


@contextmanager
def _holding(lock: Path, path: Path, waiting: Callable[[str], object] | None) -> Iterator[None]:
    """Hold ``lock``, the lock of ``path`` (``locked``)."""
    if not os.access(lock.parent, os.W_OK):  # as check_writable says it
        raise ClimodeError(f"cannot write {path}: {lock.parent} does not exist or is not writable")
    while True:
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    handle.seek(0)
                    waiting(f"waiting for {path}: in use by {handle.read().strip() or 'another process'}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            if not is_current(handle, lock):
                continue  # its holder removed it as it let go: lock the file now there
            sign(handle)
            try:
                yield
            finally:
                lock.unlink(missing_ok=True)  # before closing the handle lets go of the lock
            return


def sign(handle: IO) -> None:
    """Write this process into the lock file ``handle`` holds, for whoever finds it held."""
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}")
    handle.flush()


def is_current(handle: IO, lock: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``lock`` (one removed as its holder let go is not)."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(lock))
    except FileNotFoundError:
        return False


def _unlink_if_free(lock: Path) -> bool:
    """Remove ``lock`` if no process holds it. Returns whether it was removed."""
    try:
        with open(lock) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if is_current(handle, lock):
                lock.unlink()
                return True
    except (BlockingIOError, FileNotFoundError):
        pass
    return False
