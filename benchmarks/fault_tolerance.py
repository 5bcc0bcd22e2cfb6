"""Fault tolerance under ``kill -9``: training, a forecast's outputs, a zarr append.

- training: ``--train N`` runs of a tiny bouncing-ball model (checkpoint every ``--every`` batches),
  each killed at a random moment after its first batch, then resumed (``--resume``) to the end; reports
  the batches reached at the kill (read from the progress bar on a pseudo-terminal), the batch of the
  checkpoint the resume starts from, the batches lost, and that the final model loads.
- forecast writes: ``--writes N`` forecasts writing NetCDF + zarr over an earlier forecast, each killed
  a random 0 to ``--kill-ms`` ms after its first staged output appears; reports what the final paths
  hold at the kill and once swept (what the next climode run does first, ``climode.io.atomic.sweep``):
  the earlier forecast (byte-equal NetCDF, same zarr values), a complete new one, or a mix; and that
  rerunning the command succeeds and leaves no temporary file.
- kills among the swaps: ``--swaps N`` of the same forecasts, each rename made 50 ms slower (the swaps
  into the final paths take under a millisecond, too short to hit from outside), killed 0-350 ms after
  the first journal of their set appears, so that most kills land between two swaps; reported the same way.
- zarr appends: ``--appends N`` forecasts appended to a store (``--zarr S --append``), killed the same
  way; reports that the store, once swept, opens with its original times and values or those plus
  the appended ones, and that the rerun appends (or is refused as a second append when it had landed).

    .venv/bin/python benchmarks/fault_tolerance.py [--train 10] [--writes 10] [--swaps 10] [--appends 5]
        [--kill-ms 150] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml

from climode.io.atomic import sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "model": {
        "width": 8,
        "encoder_solver": {"method": "euler", "step_size": 0.5},
        "decoder_solver": {"method": "euler", "step_size": 0.5},
    },
    "data": {"n_in": 5, "n_out": 5, "train_size": 64, "val_size": 8, "test_size": 8},
    "train": {"batch_size": 8, "disc_width": 8, "num_workers": 0},
}
BATCHES_PER_EPOCH = 8  # train_size / batch_size
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _command(*args) -> list[str]:
    return [sys.executable, "-m", *map(str, args)]


def _hidden(folder: Path) -> list[str]:
    """Temporary, staging or set-aside entries a killed writer may have left (``climode.io.atomic``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and re.search(r"-\d+", p.name))


# ---------------------------------------------------------------- training


# the training command, with each finished batch reported on stdout (the library has no such hook)
TRAIN_REPORTING = """
import sys
from climode.training import task

def report(self, outputs, batch, index):
    print("BATCHES", self.global_step // (2 if self.config.train.adversarial else 1), flush=True)

task.ForecastTask.on_train_batch_end = report
from climode.cli.train import main
sys.exit(main(sys.argv[1:]))
"""


def _train_until_killed(args: list[str], kill_after_batch: int, rng: random.Random) -> int:
    """Run the training command with ``args`` and kill -9 it at a random moment of the batch after
    ``kill_after_batch``; returns the batches it had finished."""
    argv = [sys.executable, "-c", TRAIN_REPORTING, *map(str, args)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV, cwd=ROOT)
    reached, last, killed = 0, time.perf_counter(), False
    for line in proc.stdout:  # after the kill: the batches reported before it, to the end of the pipe
        if not line.startswith("BATCHES"):
            continue
        reached, step, last = int(line.split()[1]), time.perf_counter() - last, time.perf_counter()
        if reached >= kill_after_batch and not killed:
            time.sleep(rng.uniform(0, step))
            proc.kill()
            killed = True
    if not killed:
        raise RuntimeError(f"training ended (rc {proc.wait()}) before batch {kill_after_batch}")
    proc.wait()
    return reached


def train_trials(n: int, every: int, steps: int, work: Path, rng: random.Random) -> list[dict]:
    from climode import load_model

    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "checkpoint_every": every}}))
    rows = []
    for trial in range(n):
        out = work / f"run{trial}"
        args = ["--config", config, "--out", out, "--max-steps", steps]
        reached = _train_until_killed(args, rng.randint(1, steps - 2), rng)
        last = out / "checkpoints" / "last.ckpt"
        saved = torch.load(last, map_location="cpu", weights_only=True)["global_step"] // 2 if last.exists() else 0
        resumed = subprocess.run(
            _command("climode.train", *args, "--resume" if last.exists() else "--overwrite"),
            capture_output=True,
            text=True,
            env=ENV,
        )
        loads = resumed.returncode == 0 and load_model(out / "model.safetensors") is not None
        rows.append(
            {"trial": trial, "killed_after": reached, "resumed_from": saved, "lost": reached - saved, "loads": loads}
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


# ---------------------------------------------------------------- forecast writes and appends


# the forecast command with every rename 50 ms slower, so that a kill can land between two swaps
SLOW_RENAMES = """
import os, sys, time
rename = os.replace
def slow(src, dst):
    time.sleep(0.05)
    rename(src, dst)
os.replace = slow
from climode.cli.forecast import main
sys.exit(main(sys.argv[1:]))
"""


def _forecast_argv(case: Path, times: str, *outputs, slow: bool = False) -> list[str]:
    command = [sys.executable, "-c", SLOW_RENAMES] if slow else _command("climode.forecast")
    return [*command, "--input", str(case / "storm.nc"), "--times", times, *map(str, outputs)]


def _kill_while_writing(argv: list[str], folder: Path, rng: random.Random, window: float, after: str = "") -> bool:
    """Start ``argv``, wait for its first staged output in ``folder`` (its first entry whose name holds
    ``after``), kill -9 it 0-``window`` s later; whether it was still running when killed."""
    before = set(_hidden(folder))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=folder)
    while proc.poll() is None and not [e for e in set(_hidden(folder)) - before if after in e]:
        time.sleep(0.002)
    time.sleep(rng.uniform(0, window))
    running = proc.poll() is None
    proc.kill()
    proc.wait()
    return running


def _zarr_state(path: Path) -> list[tuple] | None:
    """(time, sum of PSL) per time of the store at ``path``; None when it does not open or read."""
    try:
        with xr.open_zarr(path, decode_times=False, consolidated=False) as ds:
            sums = np.nansum(ds["PSL"].values.reshape(ds.sizes["time"], -1), axis=1)
            return list(zip(ds.time.values.tolist(), sums.tolist()))
    except Exception:  # noqa: BLE001 - any failure to open is what this benchmark reports
        return None


def _store_state(path: Path) -> tuple:
    """A store's values (``_zarr_state``) and its attributes (their history names the run that wrote it)."""
    attrs = path / ".zattrs"
    return _zarr_state(path), attrs.read_bytes() if attrs.exists() else None


def _outputs_state(folder: Path, old_nc: bytes, old_zarr: tuple) -> str:
    """What ``f.nc`` and ``f.zarr`` in ``folder`` hold against the earlier forecast's."""
    nc = (folder / "f.nc").read_bytes() if (folder / "f.nc").exists() else None
    zarr = _store_state(folder / "f.zarr")
    if nc == old_nc and zarr == old_zarr:
        return "previous"
    complete = nc is not None and zarr[0] is not None
    if complete:
        with xr.open_dataset(folder / "f.nc") as ds:
            complete = {"U850", "V850", "PSL"} <= set(ds.data_vars) and bool(np.isfinite(ds["PSL"].values).all())
    return "new" if complete and nc != old_nc and zarr != old_zarr else "mixed"


def write_trials(
    n: int, case: Path, folder: Path, rng: random.Random, window: float, swaps: bool = False
) -> list[dict]:
    folder.mkdir()
    outputs = ("--output", "f.nc", "--zarr", "f.zarr", "--overwrite")
    subprocess.run(_forecast_argv(case, "60,63", *outputs), cwd=folder, env=ENV, check=True, capture_output=True)
    rows = []
    for trial in range(n):
        old_nc, old_zarr = (folder / "f.nc").read_bytes(), _store_state(folder / "f.zarr")
        times = rng.choice(["60,63", "60,66", "63,69"])
        argv = _forecast_argv(case, times, *outputs, slow=swaps)
        running = _kill_while_writing(argv, folder, rng, window, ".journal-" if swaps else "")
        at_kill, left = _outputs_state(folder, old_nc, old_zarr), _hidden(folder)
        sweep(folder / "f.nc")
        swept = _outputs_state(folder, old_nc, old_zarr)
        rerun = subprocess.run(_forecast_argv(case, times, *outputs), cwd=folder, env=ENV, capture_output=True)
        row = {
            "trial": trial,
            "killed_running": running,
            "at_kill": at_kill,
            "swept": swept,
            "left_after_kill": len(left),
            "rerun_ok": rerun.returncode == 0,
            "left_after_rerun": len(_hidden(folder)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def append_trials(n: int, case: Path, work: Path, rng: random.Random, window: float) -> list[dict]:
    rows = []
    for trial in range(n):
        folder = work / f"append{trial}"
        folder.mkdir()
        first = ("--output", "a.nc", "--zarr", "s.zarr")
        subprocess.run(_forecast_argv(case, "60,63", *first), cwd=folder, env=ENV, check=True, capture_output=True)
        before = _zarr_state(folder / "s.zarr")
        argv = _forecast_argv(case, "66,69", "--output", "b.nc", "--zarr", "s.zarr", "--append")
        running = _kill_while_writing(argv, folder, rng, window)
        sweep(folder / "s.zarr")
        after = _zarr_state(folder / "s.zarr")
        appended = after is not None and len(after) == len(before) + 2 and after[: len(before)] == before
        state = "previous" if after == before else "appended" if appended else "damaged"
        rerun = subprocess.run(argv, cwd=folder, env=ENV, capture_output=True)  # refused when it landed
        final = _zarr_state(folder / "s.zarr")
        row = {
            "trial": trial,
            "killed_running": running,
            "store": state,
            "rerun_exit": rerun.returncode,
            "rerun_ok": (rerun.returncode == 0) == (state == "previous") and final is not None,
            "times_after_rerun": len(final) if final else None,
            "left_after_rerun": len(_hidden(folder)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=10)
    p.add_argument("--writes", type=int, default=10)
    p.add_argument("--swaps", type=int, default=10)
    p.add_argument("--appends", type=int, default=5)
    p.add_argument("--every", type=int, default=4, help="checkpoint interval, batches")
    p.add_argument("--steps", type=int, default=24, help="batches per training run")
    p.add_argument("--kill-ms", type=float, default=150, help="writes and appends: killed 0 to this after staging")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows and the summary here")
    args = p.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        case = work / "case"
        subprocess.run(_command("climode.data.cases", "--out", case, "--small"), env=ENV, check=True, cwd=ROOT)
        results = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads 1",
            "command": "python benchmarks/fault_tolerance.py " + " ".join(sys.argv[1:]),
            "train": train_trials(args.train, args.every, args.steps, work, rng),
            "writes": write_trials(args.writes, case, work / "writes", rng, args.kill_ms / 1000),
            "swaps": write_trials(args.swaps, case, work / "swaps", rng, 0.35, swaps=True),
            "appends": append_trials(args.appends, case, work, rng, args.kill_ms / 1000),
        }
    train, writes, swaps, appends = (results[k] for k in ("train", "writes", "swaps", "appends"))
    results["summary"] = {
        "train_max_lost": max((r["lost"] for r in train), default=None),
        "train_all_within_interval": all(r["lost"] <= args.every for r in train),
        "train_all_load": all(r["loads"] for r in train),
        "writes_never_mixed_once_swept": all(r["swept"] != "mixed" for r in writes),
        "writes_rerun_clean": all(r["rerun_ok"] and not r["left_after_rerun"] for r in writes),
        "swaps_never_mixed_once_swept": all(r["swept"] != "mixed" for r in swaps),
        "swaps_rerun_clean": all(r["rerun_ok"] and not r["left_after_rerun"] for r in swaps),
        "appends_store_intact": all(r["store"] != "damaged" for r in appends),
        "appends_rerun_ok": all(r["rerun_ok"] and not r["left_after_rerun"] for r in appends),
    }
    print(json.dumps(results["summary"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
