"""What a training or prepare command leaves behind and how it stops: a refused command leaves its
parent folder as it was, absurd time spans are refused up front, SIGTERM stops a slow update at its
next solver step, the first update's metrics are written at once, a short record gives up its
held-out blocks."""

import importlib
import logging
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import HANG, ROOT, TINY, assert_user_error, run_module, write_config
from lightning.pytorch.utilities.exceptions import SIGTERMException

from climode import load_model
from climode.checkpoint import Card
from climode.cli.train import main as train_main
from climode.config import config_from_dict
from climode.data.plan import plan_short
from climode.data.sampling import SamplingConfig
from climode.errors import ClimodeError
from climode.training import train
from climode.training.task import ForecastTask

SMALL = {  # frames too small for the discriminators: no adversarial terms
    "model": {"width": 4, **{k: TINY["model"][k] for k in ("encoder_solver", "decoder_solver")}},
    "train": {"adversarial": False},
}


def _clips(path, times: np.ndarray, n: int = 10, size: int = 16):
    """``n`` clips of 10 random frames at ``times`` (10,) or (n, 10)."""
    frames = np.random.default_rng(0).random((n, 10, 1, size, size)).astype(np.float32)
    np.savez(path, frames=frames, times=times)
    return path


def _record(n_steps: int) -> xr.Dataset:
    times = xr.date_range("2001-01-01", periods=n_steps, freq="1h", use_cftime=True, calendar="noleap")
    rain = np.random.default_rng(0).gamma(0.5, 2.0, (n_steps, 4, 6)).astype(np.float32)
    return xr.Dataset(
        {"rain": (("time", "y", "x"), rain, {"units": "mm h-1"})},
        coords={"time": times, "y": np.arange(4.0), "x": np.arange(6.0)},
    )


def _tree(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_refused_training_command_leaves_the_parent_folder_as_it_was(tmp_path, capsys, monkeypatch):
    """No lock file, no run directory, no folders made for --out (deep/er/run), for refusals before and
    after the lock is taken and the run directory made; what was there before (an earlier lock, a
    folder) stays."""
    monkeypatch.setattr(logging.getLogger("climode"), "handlers", [])  # the commands' handler goes with capsys
    parent = tmp_path / "parent"
    (parent / "kept").mkdir(parents=True)
    (parent / ".kept.lock").write_text("process 1")  # an earlier run's lock: not this command's to remove
    config = write_config(tmp_path / "tiny.yaml", **SMALL)
    not_a_model = tmp_path / "notes.safetensors"
    not_a_model.write_text("not a model")
    nan_times = np.tile(np.arange(10.0), (10, 1))
    nan_times[3, 4] = np.nan
    nan_clips = _clips(tmp_path / "nan.npz", nan_times)
    huge = _clips(tmp_path / "huge.npz", np.arange(10.0) * 1e12)
    fields = tmp_path / "rain.nc"
    _record(30).to_netcdf(fields)
    clips = ["--config", config, "--dataset", "clips", "--data"]
    gridded = ["--config", config, "--dataset", "gridded", "--data", fields, "--vars", "rain"]
    overlap = ["--train-times", "2001-01-01 00:00:2001-01-01 10:00", "--val-times", "2001-01-01 05:00:2001-01-01 12:00"]
    cases = [
        (["--config", tmp_path / "missing.yaml"], ["missing.yaml", "not found"]),
        (["--config", config, "--init-from", tmp_path / "nope.safetensors"], ["nope.safetensors"]),
        (["--config", config, "--init-from", not_a_model], ["notes.safetensors"]),
        ([*clips, nan_clips], ["nan.npz", "times must be finite", "clip 3"]),
        ([*clips, huge], ["huge.npz", "solver steps", "10000", "model.time_scale", "about 1e+12"]),
        ([*gridded, *overlap], ["--train-times and --val-times overlap"]),  # refused with the run directory made
    ]
    before = _tree(parent)
    for out in (parent / "deep" / "er" / "run", parent / "run", parent / "kept"):
        for args, fragments in cases:
            assert train_main([*map(str, args), "--out", str(out), "--max-steps", "1"]) == 2
            err = capsys.readouterr().err
            assert_user_error(subprocess.CompletedProcess(args, 2, "", err), *fragments)
            assert _tree(parent) == before, (out, args)
    # a folder that holds no run, and a logger whose package is missing, refused the same way
    monkeypatch.setattr(importlib.import_module("climode.training.checks"), "find_spec", lambda name: None)
    install = '.venv/bin/python -m pip install -c constraints.txt -e ".[tensorboard]"'
    for args, fragments in (
        (["--out", parent / "kept", "--resume"], ["cannot resume", "kept"]),
        (["--out", parent / "deep" / "run", "--logger", "tensorboard"], ["needs tensorboardX", install]),
    ):
        assert train_main(["--config", str(config), *map(str, args)]) == 2
        assert_user_error(subprocess.CompletedProcess(args, 2, "", capsys.readouterr().err), *fragments)
        assert _tree(parent) == before


def test_sigterm_stops_a_forecast_at_its_next_solver_step():
    """Once Lightning's handler has seen SIGTERM, the forecast of an update stops at the next module call
    (an ODE solver step), long before the update would end, and before its optimiser steps."""
    values = {k: dict(v) for k, v in TINY.items()}
    values["model"].update(channels=1, width=4)
    task = ForecastTask(config_from_dict(values), Card())
    times = torch.arange(10.0, dtype=torch.float64).expand(2, 10) * 20  # 360 solver steps a sample
    batch = {
        "frames_in": torch.rand(2, 5, 1, 16, 16),
        "times_in": times[:, :5],
        "frames_out": torch.rand(2, 5, 1, 16, 16),
        "times_out": times[:, 5:],
    }
    funcs = task.model.ode_functions()
    evaluations = lambda: sum(f.nfe for f in funcs.values())

    class Trainer:  # what the hook reads: Lightning's flag, here set after 3 solver steps
        received_sigterm = property(lambda self: evaluations() >= 3)

    task._trainer = Trainer()
    with pytest.raises(SIGTERMException):
        task.forecast(batch)
    assert evaluations() == 3
    task._trainer = None  # outside a fit: no check, the whole forecast
    task._reset_ode_evaluations()
    with torch.no_grad():
        assert torch.isfinite(task.forecast(batch)[0]).all()
    assert evaluations() > 300


@pytest.mark.slow
def test_sigterm_in_a_slow_update_exits_143_with_a_resumable_checkpoint(tmp_path):
    """Updates of many solver steps (long clip spans, allowed): SIGTERM after the first update's metrics row
    stops the run within one update, with a checkpoint that --resume continues."""
    times = np.tile(np.arange(10.0), (10, 1))
    times[:8] *= 100  # the 8 training clips: 1800 solver steps each; validation stays quick
    data = _clips(tmp_path / "slow.npz", times)
    config = write_config(tmp_path / "slow.yaml", **SMALL)
    out = tmp_path / "run"
    command = ["--config", config, "--dataset", "clips", "--data", data, "--out", out]
    proc = subprocess.Popen(
        [sys.executable, "-m", "climode.train", *map(str, command), "--max-steps", "100"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + HANG
        while not (out / "logs" / "metrics.csv").exists():  # written after the first update
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    stopped = re.search(r"stopped by SIGTERM after (\d+) updates", err)
    assert stopped and int(stopped[1]) in (1, 2), err[-3000:]  # the signal came after the first
    assert load_model(out / "model.safetensors").card.variables == ("var0",)
    resumed = run_module("climode.train", "--out", out, "--resume", "--max-steps", stopped[1])
    assert resumed.returncode == 0, resumed.stderr[-3000:]


@pytest.mark.slow
def test_the_first_update_is_logged_at_once(tmp_path):
    """Lightning writes a metrics row every log_every (10) updates; the first update's is written too."""
    config = write_config(tmp_path / "tiny.yaml", **SMALL)
    data = _clips(tmp_path / "c.npz", np.arange(10.0))
    train(str(config), tmp_path / "run", dataset="clips", data=str(data), max_steps=2)
    lines = (tmp_path / "run" / "logs" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    first = [r for r in rows if r["step"] == "0" and r["train/loss"]]
    assert len(first) == 1 and np.isfinite(float(first[0]["train/loss"]))


def test_a_short_record_gives_up_its_held_out_blocks_in_one_warning(caplog):
    """5 steps span a sample (buffer 5), 4 the shortest: 10 steps leave 80 % less the buffer (3 steps) no
    training sample, 90 % no validation sample; the whole record trains. Too short even for that: refused,
    naming the options."""
    sampling = SamplingConfig(n_in=2, n_out=2, step_h=1.0, min_gap_h=1.0, max_gap_h=3.0, lead_step_h=1.0)
    with caplog.at_level(logging.WARNING, logger="climode.data.plan"):
        plan = plan_short(_record(10), None, None, sampling, 0, 0)
    assert set(plan.split) == {"train"}
    assert [r.getMessage() for r in caplog.records] == [
        "a short record (10 steps of 1 h): no training sample in time blocks train 80 %, val 10 %, test 10 %, so "
        "held-out blocks are given up: time blocks train 100 % (--split chooses them)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="climode.data.plan"):
        assert set(plan_short(_record(100), None, None, sampling, 0, 0).split) == {"train", "val", "test"}
    assert not caplog.records  # a long enough record: 80/10/10, nothing said
    with pytest.raises(ClimodeError, match=r"first 3 steps \(all of it, nothing held out\).*--n-in, --n-out"):
        plan_short(_record(3), None, None, sampling, 0, 0)


@pytest.mark.slow
def test_prepare_trains_on_a_short_record_and_refuses_a_split_it_cannot_hold(tmp_path):
    source = tmp_path / "short.nc"
    _record(10).to_netcdf(source)
    common = ("--input", source, "--variables", "rain", "--all-windows", "--basins", "none", "--resolution", 0)
    common += ("--n-in", 2, "--n-out", 2, "--max-gap", 3, "--workers", 1)
    done = run_module("climode.prepare", *common, "--out", tmp_path / "s.zarr")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("held-out blocks are given up: time blocks train 100 % (--split") == 1
    summary = next(line for line in done.stderr.splitlines() if "samples from" in line)
    assert "(train " in summary and "val" not in summary and "test" not in summary
    refused = run_module("climode.prepare", *common, "--split", "80,10,10", "--out", tmp_path / "r.zarr")
    assert_user_error(refused, "no training samples", "its first 3 steps", "--split")
    assert_user_error(
        run_module("climode.prepare", *common, "--split", "80,30", "--out", tmp_path / "r.zarr"), "--split"
    )
    assert not (tmp_path / "r.zarr").exists()
