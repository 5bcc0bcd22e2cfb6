"""The run directory of a training run: its lock, the config it keeps (``run.yaml``), what resuming
and overwriting it may do, the checkpoint a resume continues from and the logs' folder."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import zipfile
from pathlib import Path

import yaml

from ..config import Config, config_from_dict, load_config, replace
from ..data.datasets import DATASETS
from ..errors import ClimodeError
from ..io.atomic import is_current, replacing, sign
from ..model import ModelConfig

RUN_FILE = "run.yaml"


def is_launcher() -> bool:
    """Whether this is the launching process (rank 0 on its node) of a possibly data-parallel run."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def run_config(
    out: Path,
    config: Config | dict | str | Path | None,
    dataset: str | None,
    resume: str | None,
    overwrite: bool,
    launcher: bool,
) -> tuple[Config, bool]:
    """Check ``out`` against ``resume``/``overwrite``; return the run's config (with ``resume`` the run's
    own, else ``config``, by default the built-in config of ``dataset``) and whether ``out`` must be
    cleared (an existing run that ``overwrite`` replaces, removed only once every check has passed)."""
    run_file = out / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise ClimodeError(f"cannot resume: {out} holds no climode run ({RUN_FILE} not found)")
        values = yaml.safe_load(run_file.read_text())
        if isinstance(values, dict) and isinstance(values.get("model"), dict):
            values["model"] = ModelConfig.saved(values["model"])
        saved = config_from_dict(values, str(run_file))
        path = saved.data.path
        if path and not Path(path).is_absolute():  # relative to the run directory (``run_relative``)
            saved = replace(saved, "data", path=os.path.normpath(out / path))
        return saved, False
    if isinstance(config, dict):
        config = config_from_dict(config)
    elif not isinstance(config, Config):
        spec = DATASETS.get(dataset)
        config = load_config(str(config) if config is not None else spec.default_config if spec else None)
    if launcher and out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ClimodeError(
                f"{out} already holds files; pass --resume to continue that run, "
                "--overwrite to replace it, or choose another --out"
            )
        if not run_file.is_file():
            raise ClimodeError(f"refusing to overwrite {out}: it is not a climode run directory (no {RUN_FILE})")
        return config, True
    return config, False


def run_relative(config: Config, out: Path) -> Config:
    """``config`` as ``run.yaml`` keeps it: the data path relative to the run directory, so that a
    resume works from any working directory (and after moving the run and its data together)."""
    path = config.data.path
    if not path or "://" in str(path):
        return config
    return replace(config, "data", path=os.path.relpath(os.path.abspath(path), os.path.abspath(out)))


def write_run_file(out: Path, config: Config) -> None:
    """Keep the run's config in ``out/run.yaml`` (``run_relative``), written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    with replacing(out / RUN_FILE) as tmp:
        tmp.write_text(yaml.safe_dump(run_relative(config, out).to_dict(), sort_keys=False))


def resume_path(out: Path, resume: str | None) -> str | None:
    """The checkpoint ``resume`` names ("last": ``out/checkpoints/last.ckpt``), refused when missing or
    truncated; None without ``resume``."""
    if not resume:
        return None
    path = out / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise ClimodeError(f"cannot resume: checkpoint {path} not found")
    try:  # the zip's central directory sits at its end: a truncated file fails here, without reading it all
        zipfile.ZipFile(path).close()
    except (zipfile.BadZipFile, OSError) as exc:
        others = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt") if p != path)
        hint = f"; resume from another: {', '.join(others)}" if others else ""
        raise ClimodeError(f"cannot resume: checkpoint {path} is truncated or corrupt ({exc}){hint}") from None
    return str(path)


def log_version(out: Path, resuming: bool) -> str:
    """``logs`` for a new run; a resumed run logs to ``logs-resumed-N`` so earlier metrics are kept
    (Lightning's CSV logger empties the directory it writes to)."""
    if not resuming:
        return "logs"
    n = 1
    while (out / f"logs-resumed-{n}").exists():
        n += 1
    return f"logs-resumed-{n}"


def holding_run_lock(train_fn):
    """``train`` holding the run directory's lock (``run_lock``) on the launching process."""

    @functools.wraps(train_fn)
    def locked(config=None, out="runs/vidode", **settings):
        with run_lock(Path(out)) if is_launcher() else contextlib.nullcontext():
            return train_fn(config, out, **settings)

    return locked


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold ``.<run>.lock`` beside the run directory for the whole run (an advisory ``flock``, released
    by the system when the process ends, however it ends): a second run on the same directory is
    refused instead of interleaving checkpoints. A refused run (ClimodeError) leaves nothing it
    created: the run directory while it holds no checkpoint, the lock file and the folders made for
    them (``--out deep/er/run``) are removed before the lock is released."""
    run = out.resolve()
    lock = run.parent / f".{run.name}.lock"
    made = [p for p in (run.parent, *run.parent.parents) if not p.exists()]  # deepest first
    existed = run.exists(), lock.exists()
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ClimodeError(f"{out} is in use by another training run ({holder}); wait for it or stop it") from None
        if is_current(handle, lock):
            break
        handle.close()  # a refused run removed the file this one opened: lock the one now there
    with handle:
        sign(handle)
        try:
            yield
        except ClimodeError:
            if not existed[0] and not any((run / "checkpoints").glob("*.ckpt")):
                shutil.rmtree(run, ignore_errors=True)
            if not existed[1]:
                lock.unlink(missing_ok=True)
            for folder in made:
                with contextlib.suppress(OSError):  # only while empty
                    folder.rmdir()
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
