"""Files never half-written: atomic replacement, sets of outputs swapped in as one, locks, sweeping.

A file is written to a temporary path beside it and renamed into place (``replacing``). Several
outputs are built beside their paths (``staging_path``) and swapped in as one set (``commit``), which
a failure or a kill leaves as it was or all new: what a killed process left is put back or cleared by
the next writer of the folder (``sweep``, ``sweep_folder``). Writers of one output take turns
(``locked``), so that none loses what another wrote. Nothing here knows what the files hold.
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

from ..errors import ClimodeError


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


def copy_tree(source: Path, target: Path) -> None:
    """``shutil.copytree``, failing as the OSError of the first file it could not copy (e.g. ``[Errno 28]
    No space left on device``, naming that copy) rather than as ``shutil.Error``, whose message is its
    list of (source, destination, reason) for every such file."""
    try:
        shutil.copytree(source, target)
    except shutil.Error as exc:
        _, where, why = exc.args[0][0]
        code = re.match(r"\[Errno (\d+)\]", why)
        raise OSError(int(code[1]), os.strerror(int(code[1])), where) if code else OSError(None, why, where) from None


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
    if not os.access(lock.parent, os.W_OK):  # as io.write.check_writable says it
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
