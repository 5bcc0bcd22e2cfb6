"""The one console command: ``climode COMMAND ...`` runs the same code as ``python -m climode.<module>``
(both ``climode.cli``)."""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import run_module

import climode
from climode.cli import COMMANDS, main


def test_every_command_has_a_main_and_help(capsys):
    import importlib

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name, module in COMMANDS.items():
        assert f"climode {name} " in listed, name  # ``climode --help`` lists every command
        assert callable(importlib.import_module(f"climode.cli.{module}").main), name
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0, name
        assert "usage" in capsys.readouterr().out, name


def test_version_unknown_command_and_no_command(capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"climode {climode.__version__}"
    assert main(["forcast"]) == 2 and "unknown command 'forcast'" in capsys.readouterr().err
    assert main([]) == 2 and "climode forecast" in capsys.readouterr().out


@pytest.mark.slow
def test_the_console_forecast_equals_python_m(tmp_path, storm):
    """``climode forecast`` (the installed script) and ``python -m climode.forecast`` write the same forecast."""
    script = shutil.which("climode", path=str(Path(sys.executable).parent))
    assert script is not None, "the climode console script is not installed beside this Python (pip install -e .)"
    times = "60,63,66"
    console = subprocess.run(
        [script, "forecast", "--input", storm / "storm.nc", "--times", times, "--output", tmp_path / "a.nc"],
        capture_output=True,
        text=True,
    )
    assert console.returncode == 0, console.stderr
    module = run_module(
        "climode.forecast", "--input", storm / "storm.nc", "--times", times, "--output", tmp_path / "b.nc"
    )
    assert module.returncode == 0, module.stderr
    a, b = xr.open_dataset(tmp_path / "a.nc"), xr.open_dataset(tmp_path / "b.nc")
    for v in ("U850", "V850", "PSL"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    bad = subprocess.run([script, "forecast", "--input", tmp_path / "nope.nc", "--times", "3"], capture_output=True)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    assert subprocess.run([sys.executable, "-m", "climode", "--version"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_the_accessor_equals_the_functions(tmp_path):
    from climode.data.cases import first_case, write_case
    from climode.data.synthetic import make_corpus

    ds, tracks = make_corpus(1, 3)
    write_case(tmp_path, first_case(ds, tracks, (0, 9, 21, 42, 57), 66))
    storm = climode.open_fields(tmp_path / "storm.nc")
    truth = climode.open_fields(tmp_path / "storm_truth.nc")
    by_method = storm.climode.forecast("60,63,66")
    by_function = climode.forecast(storm, "60,63,66")
    xr.testing.assert_identical(by_method.drop_attrs(), by_function.drop_attrs())
    assert by_method.climode.verify(truth) == climode.verify(by_function, truth)
    tiles = truth.climode.tiles("east-pacific-atlantic", resolution=2.0)
    sizes = dict(tiles["east-pacific-atlantic"].sizes)
    assert list(tiles) == ["east-pacific-atlantic"] and sizes == {"time": truth.sizes["time"], "lat": 30, "lon": 80}


def test_threads_suit_a_busy_machine(monkeypatch, caplog):
    import os

    import torch

    from climode.errors import cli, set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads() == torch.get_num_threads()  # the user's choice stands
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 3.0, 3.0))
        with caplog.at_level("INFO", logger="climode"):
            assert set_threads() == 1 and torch.get_num_threads() == 1
        assert "torch threads: 1 of 4 cores (load 3.2" in caplog.text
        monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
        assert set_threads() == 4
        monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 3.0, 3.0))
        caplog.clear()
        command = cli(lambda argv: argparse.ArgumentParser().parse_args(argv))
        with caplog.at_level("INFO", logger="climode"), pytest.raises(SystemExit):
            command(["--help"])
        assert "torch threads" not in caplog.text  # nothing chosen, nothing said, for a help
        with caplog.at_level("INFO", logger="climode"):
            assert command([]) == 0
        assert "torch threads: 1 of 4 cores" in caplog.text
    finally:
        torch.set_num_threads(before)
