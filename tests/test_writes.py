"""Nothing lost when writing forecasts: writers of one output take turns, no output replaces an input,
stores carry consolidated metadata, what a killed writer left is cleared, a full disk is one line.

``python tests/test_writes.py 10`` runs the concurrent-append race 10 times and prints how many tries
lost an appended time (the test runs it 3 times)."""

import errno
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import HANG, ROOT, assert_user_error, run_module

from climode.cli.forecast import _outputs, _parser
from climode.cli.forecast import main as forecast_main
from climode.data.cases import first_case, write_case
from climode.data.synthetic import make_corpus
from climode.io.atomic import locked, sweep_folder
from climode.io.write import write_zarr

DECODE = xr.coders.CFDatetimeCoder(use_cftime=True)


@pytest.fixture(scope="module")
def storm(storm: Path) -> Path:
    """storm.nc of the synthetic storm (conftest's ``storm``)."""
    return storm / "storm.nc"


def _fields(start_hour: int) -> xr.Dataset:
    """A small forecast-like dataset: 2 times (3-hourly from ``start_hour``), 4 x 5 grid."""
    times = xr.date_range("2001-09-01", periods=2, freq="3h", use_cftime=True, calendar="noleap")
    rng = np.random.default_rng(start_hour)
    data = {v: (("time", "lat", "lon"), rng.normal(size=(2, 4, 5))) for v in ("U850", "PSL")}
    return xr.Dataset(
        data, coords={"time": times.shift(start_hour // 3, "3h"), "lat": np.arange(4.0), "lon": np.arange(5.0)}
    )


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _error(capsys, argv) -> str:
    """``forecast_main(argv)`` exits 2 with one ``error:`` line, no traceback: that line."""
    assert forecast_main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ 1. concurrent writers take turns


def race(storm: Path, work: Path, tries: int) -> list[str]:
    """``tries`` times, two forecasts started together append 63 h and 66 h to a copy of one store
    (forecast 60 h): a line per try, ``LOST`` in it where an appended time is missing afterwards or a
    refusal is not one ``error:`` line. The second to write appends after the first, or is refused if
    its time is then not after the store's last."""
    base = work / "base.zarr"
    if not base.exists():
        command = ["--input", storm, "--times", "60", "--zarr", base, "--output", work / "base.nc"]
        assert run_module("climode.forecast", *command).returncode == 0
    lines = []
    for n in range(tries):
        store = work / f"try{n}.zarr"
        shutil.copytree(base, store)
        runs = {
            hours: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "climode.forecast",
                    "--input",
                    storm,
                    "--times",
                    hours,
                    "--zarr",
                    store,
                    "--append",
                    "--output",
                    work / f"try{n}_{hours}.nc",
                ],  # fmt: skip
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,  # fmt: skip
            )
            for hours in ("63", "66")
        }
        done = {hours: (*run.communicate(timeout=HANG), run.returncode) for hours, run in runs.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # consolidated metadata after an append too
            times = xr.open_zarr(store, decode_times=DECODE)["time"].values
        stored = [f"{60 + (t - times[0]).total_seconds() / 3600:g}" for t in times[1:]]
        appended = [hours for hours, (_, _, code) in done.items() if code == 0]
        refused = [err for _, err, code in done.values() if code != 0]
        clean = all(err.count("error:") == 1 and "not after the store's last time" in err for err in refused)
        lost = sorted(stored) != appended or not clean or "Traceback" in "".join(refused)
        waited = sum("waiting for" in out for out, _, _ in done.values())  # for the lock the other held
        line = f"try {n}: appended {appended}, stored {stored}, refused {len(refused)}, waited {waited}"
        lines.append(line + ("  LOST" if lost else ""))
    return lines


@pytest.mark.slow
def test_two_forecasts_appending_to_one_store_at_once_lose_nothing(storm, tmp_path):
    """Real processes started together, twice: each appended time is in the store afterwards, or
    its forecast was refused in one line (its time no longer after the store's last); never both
    reported written and one lost, as before the store's lock (7 of 10 tries lost one)."""
    lines = race(storm, tmp_path, 2)
    assert not [line for line in lines if "LOST" in line], lines
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no lock or staging left


@pytest.mark.slow
def test_a_second_writer_waits_for_the_lock_and_is_told_who_holds_it(tmp_path):
    store, order, told = tmp_path / "s.zarr", [], []
    held = threading.Event()

    def first():
        with locked([store]):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with locked([tmp_path / "." / "s.zarr"], waiting=told.append):  # another name of the same output
        order.append("second holds")
        assert (tmp_path / ".s.zarr.lock").read_text() == f"process {os.getpid()}"
    thread.join()
    assert order == ["first done", "second holds"]
    assert told == [f"waiting for {tmp_path / '.' / 's.zarr'}: in use by process {os.getpid()}"]
    assert list(tmp_path.iterdir()) == []  # each lock file goes as its lock is let go


def test_two_writers_of_overlapping_outputs_never_wait_on_each_other(tmp_path):
    """Locks are taken in one order, whatever order the outputs are named in."""
    a, b, done = tmp_path / "a.nc", tmp_path / "b.zarr", []

    def write(paths):
        for _ in range(20):
            with locked(paths):
                done.append(1)

    threads = [threading.Thread(target=write, args=(p,), daemon=True) for p in ([a, b], [b, a])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(done) == 40


# ------------------------------------------------------------------ 2. no output replaces an input


SAME, INSIDE = "is the input", "lies inside the input store"


@pytest.mark.parametrize(
    "given,outputs,refused",
    [
        ("storm.nc", ["--output", "storm.nc"], ("storm.nc", SAME, "storm.nc")),
        ("storm.nc", ["--output", "link.nc"], ("link.nc", SAME, "storm.nc")),  # a symlink to the input
        ("storm.nc", ["--output", "hard.nc"], ("hard.nc", SAME, "storm.nc")),  # a hard link of it
        ("link.nc", ["--output", "storm.nc"], ("storm.nc", SAME, "link.nc")),  # the input links to the output
        ("st*.nc", ["--output", "f.nc", "--plot", "storm.nc"], ("storm.nc", SAME, "storm.nc")),  # a glob
        ("storm.nc", ["--output", "f.nc", "--animate", "hard.nc"], ("hard.nc", SAME, "storm.nc")),
        ("in.zarr", ["--output", "f.nc", "--zarr", "in.zarr", "--append"], ("in.zarr", SAME, "in.zarr")),
        ("in.zarr", ["--output", "in.zarr/f.nc"], ("in.zarr/f.nc", INSIDE, "in.zarr")),
        ("in.zarr", ["--output", "f.nc", "--zarr", "in.zarr/U850"], ("in.zarr/U850", INSIDE, "in.zarr")),
    ],
)
@pytest.mark.slow
def test_no_output_may_replace_an_input(storm, tmp_path, capsys, given, outputs, refused):
    """Named as it is, through a symlink or a hard link, a glob, or inside an input store: refused in
    one line naming the output and the input, before anything is written."""
    (tmp_path / "storm.nc").write_bytes(storm.read_bytes())
    (tmp_path / "link.nc").symlink_to(tmp_path / "storm.nc")
    os.link(tmp_path / "storm.nc", tmp_path / "hard.nc")
    with xr.open_dataset(tmp_path / "storm.nc") as ds:
        ds.to_zarr(tmp_path / "in.zarr", zarr_format=2, consolidated=True)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    argv = ["--input", tmp_path / given, "--times", "60", *[tmp_path / a if "." in a else a for a in outputs]]
    output, what, source = refused
    expected = f"error: output {tmp_path / output} {what} {tmp_path / source}; choose another output"
    assert _error(capsys, [*argv, "--overwrite"]) == expected
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing written


def test_an_output_that_holds_an_input_is_refused(storm, tmp_path, capsys):
    (tmp_path / "old.zarr").mkdir()
    (tmp_path / "old.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    (tmp_path / "old.zarr" / "storm.nc").write_bytes(storm.read_bytes())
    argv = ["--input", tmp_path / "old.zarr" / "storm.nc", "--times", "60", "--output", tmp_path / "f.nc"]
    line = _error(capsys, [*argv, "--zarr", tmp_path / "old.zarr", "--overwrite"])
    assert f"output {tmp_path / 'old.zarr'} holds the input {tmp_path / 'old.zarr' / 'storm.nc'}" in line


# ------------------------------------------------------------------ 3. consolidated metadata


def test_stores_have_consolidated_metadata_after_an_append_too(tmp_path):
    path = write_zarr(_fields(60), tmp_path / "f.zarr", calendar="noleap")
    for start in (None, 66):
        if start:
            write_zarr(_fields(start), path, append=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stored = xr.open_zarr(path, decode_times=DECODE)
        assert stored.sizes["time"] == (4 if start else 2)
    assert (path / ".zmetadata").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr"]


@pytest.mark.slow
def test_a_forecast_store_opens_without_warnings_and_appends(storm, tmp_path, capsys):
    argv = ["--input", storm, "--times", "60", "--output", tmp_path / "f.nc", "--zarr", tmp_path / "f.zarr"]
    assert forecast_main([str(a) for a in argv]) == 0
    argv[3] = "63"
    assert forecast_main([str(a) for a in [*argv, "--append", "--overwrite"]]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xr.open_zarr(tmp_path / "f.zarr", decode_times=DECODE).sizes["time"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nc", "f.zarr"]  # no lock or staging left


# ------------------------------------------------------------------ 4. what killed writers left


def _leftovers(where: Path, pid: int, output: str = "g") -> list[str]:
    """What a writer with ``pid`` leaves beside ``output``.zarr/.nc while at work; their names."""
    (where / f".{output}.staging-{pid}.zarr").mkdir()
    (where / f".{output}.staging-{pid}.nc").write_text("half")
    (where / f"..{output}.staging-{pid}.nc.tmp-{pid}").write_text("half")
    (where / f".{output}.nc.tmp-{pid}").write_text("half")
    (where / f".{output}.nc.journaling-{pid}").write_text("[")
    (where / f".{output}.zarr.lock").write_text(f"process {pid}")
    return sorted(p.name for p in where.iterdir())


def test_a_forecast_clears_what_dead_writers_left_for_any_output_in_its_folders(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    kept = _leftovers(tmp_path, alive, "live")  # a writer still running: left alone
    (tmp_path / ".notes").write_text("the user's")
    (tmp_path / ".x.lock").write_text("another tool's lock")
    (tmp_path / "h.nc").write_text("the new h")  # a dead run's set after its commit point
    (tmp_path / f".h.nc.old-{dead}").write_text("the previous h")
    (tmp_path / f".k.nc.old-{dead}").write_text("the previous k")  # killed between the renames of k
    _leftovers(tmp_path, dead)
    (tmp_path / "out").mkdir()
    argv = [
        "--input",
        "storm.nc",
        "--times",
        "60",
        "--output",
        tmp_path / "out" / "f.nc",
        "--zarr",
        tmp_path / "f.zarr",
    ]
    _outputs(_parser().parse_args([str(a) for a in argv]))  # the outputs' folders: tmp_path/out and tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, ".notes", ".x.lock", "h.nc", "k.nc", "out"])
    assert (tmp_path / "k.nc").read_text() == "the previous k" and (tmp_path / "h.nc").read_text() == "the new h"


def test_a_held_lock_is_never_swept(tmp_path):
    dead = _dead_pid()
    with locked([tmp_path / "g.zarr"]):
        (tmp_path / ".g.zarr.lock").write_text(f"process {dead}")  # as a holder that has yet to write its PID
        assert sweep_folder(tmp_path) == []
        assert (tmp_path / ".g.zarr.lock").exists()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 5. a full disk is one line


def _full_disk(monkeypatch) -> None:
    """``shutil.copytree`` as on a full disk: every file fails with ENOSPC, gathered into shutil.Error."""
    real = shutil.copytree

    def refuse(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), source, None, target)

    def copytree(source, target, symlinks=False, ignore=None, copy_function=None, *args):  # calls itself per folder
        return real(source, target, symlinks, ignore, refuse, *args)

    monkeypatch.setattr(shutil, "copytree", copytree)


def test_a_full_disk_during_an_append_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    path = write_zarr(_fields(60), tmp_path / "f.zarr", calendar="noleap")
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as caught:
        write_zarr(_fields(66), path, append=True)
    assert type(caught.value) is OSError and caught.value.errno == errno.ENOSPC
    assert caught.value.strerror == "No space left on device" and ".f.staging-" in caught.value.filename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr"]


@pytest.mark.slow
def test_a_full_disk_during_a_forecasts_append_is_one_clean_line(storm, tmp_path, capsys, monkeypatch):
    argv = ["--input", storm, "--times", "60", "--output", tmp_path / "f.nc", "--zarr", tmp_path / "f.zarr"]
    assert forecast_main([str(a) for a in argv]) == 0
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    _full_disk(monkeypatch)
    argv[3] = "63"
    line = _error(capsys, [*argv, "--append", "--overwrite"])
    assert line == f"error: cannot write {tmp_path / 'f.zarr'}: No space left on device"
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == stamp  # as it was, nothing left beside


@pytest.mark.slow
def test_an_output_naming_the_input_is_one_line_from_the_command(storm):
    """Through ``python -m``, as a user runs it: one ``error:`` line naming both, no traceback."""
    result = run_module("climode.forecast", "--input", storm, "--times", "60", "--output", storm, "--overwrite")
    assert_user_error(result, f"output {storm} is the input {storm}")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        case = Path(work) / "case"
        write_case(case, first_case(*make_corpus(1, 3, small=True), (0, 9, 21, 42, 57), 72))
        lines = race(case / "storm.nc", Path(work), int(sys.argv[1]) if len(sys.argv) > 1 else 10)
        print(*lines, f"lost in {sum('LOST' in line for line in lines)} of {len(lines)} tries", sep="\n")
