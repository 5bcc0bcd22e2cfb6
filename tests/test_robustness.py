"""Bad input, impossible requests and doubtful data: one ``error:`` line (exit 2, no traceback, nothing
written) or one ``warning:`` where the forecast can go on (issue 18's battery)."""

import json
import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import HANG, command_error
from safetensors.torch import save_file

import climode
from climode.checkpoint import Card, save_model
from climode.cli.forecast import main as forecast_main
from climode.cli.train import main as train_main
from climode.config import config_from_dict
from climode.errors import ClimodeError
from climode.model import ModelConfig, build
from climode.model.compute import check_device


def _variant(storm, tmp_path, change, name="bad.nc"):
    ds = xr.open_dataset(storm / "storm.nc").load()
    change(ds)
    ds.to_netcdf(tmp_path / name)
    return tmp_path / name


def _forecast(capsys, storm, tmp_path, given, *fragments, extra=()):
    out = tmp_path / "out.nc"
    line = command_error(
        capsys, forecast_main, ["--input", given, "--times", "60", "--output", out, *extra], *fragments
    )
    assert not out.exists() and not list(tmp_path.glob(".out.nc*"))  # nothing written, not even a temporary
    return line


# ------------------------------------------------------------------ checkpoints and devices


def test_checkpoints_that_are_not_climode_models_are_named(storm, tmp_path, capsys):
    save_file({"w": torch.randn(3, 3)}, tmp_path / "random.safetensors")
    _forecast(capsys, storm, tmp_path, storm / "storm.nc", "random.safetensors", "without climode metadata",
              extra=["--checkpoint", tmp_path / "random.safetensors"])  # fmt: skip
    header = b'{"__metadata__": {"climode": "{not json"}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    (tmp_path / "corrupt.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    _forecast(capsys, storm, tmp_path, storm / "storm.nc", "corrupt.safetensors", "metadata is corrupt",
              extra=["--checkpoint", tmp_path / "corrupt.safetensors"])  # fmt: skip


def test_a_checkpoint_whose_card_and_network_disagree_on_channels_is_refused(tmp_path):
    model = build(ModelConfig(channels=2, width=4))
    save_model(tmp_path / "two.safetensors", model, Card(variables=("U850", "V850", "PSL"), time_units="hours"))
    with pytest.raises(ClimodeError, match="3 variables .U850, V850, PSL. but its network takes 2 channels"):
        climode.load_model(tmp_path / "two.safetensors")


def test_a_device_this_machine_cannot_give_is_one_line(monkeypatch, storm, tmp_path, capsys):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    _forecast(capsys, storm, tmp_path, storm / "storm.nc", "CUDA requested", "use --device cpu",
              extra=["--device", "cuda"])  # fmt: skip
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ClimodeError, match="cuda:3 requested but this machine has 1 GPU"):
        check_device("cuda:3")
    with pytest.raises(ClimodeError, match="is not a torch device"):
        check_device("gpu0")
    assert check_device("cpu") == torch.device("cpu")


# ------------------------------------------------------------------ implausible data


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda ds: ds.U850.values.__setitem__((0, 5, 5), np.inf), ["U850 has 1 infinite value", "never Inf"]),
        (lambda ds: ds.PSL.values.__setitem__((2, 1, 1), -np.inf), ["PSL has 1 infinite value"]),
        (lambda ds: ds.PSL.values.__setitem__(slice(None), 0.0), ["PSL has", "plausible 85000 to 110000 Pa"]),
        (lambda ds: ds.V850.values.__setitem__(slice(None), 1e4), ["V850", "plausible -150 to 150 m s-1"]),
        (lambda ds: ds.PSL.__setitem__(slice(None), ds.PSL / 100), ["labelled 'Pa'", "look like hPa", "'hPa'"]),
    ],
    ids=["inf", "minus-inf", "psl-zero", "wind-1e4", "hpa-as-pa"],
)
@pytest.mark.slow
def test_physically_implausible_fields_are_refused_naming_the_variable(storm, tmp_path, capsys, change, fragments):
    given = _variant(storm, tmp_path, change)
    _forecast(capsys, storm, tmp_path, given, *fragments)


@pytest.mark.parametrize("cells", [2, 8])
def test_a_grid_smaller_than_the_model_needs_is_refused(storm, tmp_path, capsys, cells):
    ds = xr.open_dataset(storm / "storm.nc").load().isel(lat=slice(20, 20 + cells), lon=slice(100, 100 + cells))
    ds.to_netcdf(tmp_path / "tiny.nc")
    _forecast(capsys, storm, tmp_path, tmp_path / "tiny.nc", f"{cells} x {cells} cells", "at least 16 x 16")


@pytest.mark.slow
def test_a_region_missing_from_the_last_input_is_warned_about_and_forecast(storm, tmp_path, capsys):
    def hole(ds):
        for name in ("U850", "V850", "PSL"):
            ds[name].values[-1, 10:30, 40:80] = np.nan

    given = _variant(storm, tmp_path, hole)
    with pytest.warns(
        UserWarning, match=r"last input frame .* is missing 800 of 9821 cells \(8%; lat 10 to 29"
    ) as seen:
        assert forecast_main(["--input", str(given), "--times", "60", "--output", str(tmp_path / "out.nc")]) == 0
    assert len(seen) == 1
    assert xr.open_dataset(tmp_path / "out.nc").filled.values.any()


def test_an_unknown_variable_far_outside_its_training_range_is_warned_about(storm):
    from climode.io.checks import check_values
    from climode.normalise import Stats

    stats = Stats.from_dict({"rain": {"method": "minmax", "min": 0.0, "max": 10.0}})
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), np.full((1, 2, 2), 100.0))})
    with pytest.warns(UserWarning, match="rain spans 100 to 100, beyond what the model was trained on"):
        check_values(ds, ["rain"], stats)
    check_values(ds.assign(rain=ds.rain / 10), ["rain"], stats)  # 10: inside, no warning


def test_the_range_warning_compares_against_what_training_saw():
    from climode.data.stats import compute_stats
    from climode.io.checks import check_values

    rng = np.random.default_rng(0)
    rain = np.where(rng.random((50, 8, 8)) < 0.9, 0.0, rng.exponential(8.0, (50, 8, 8)))
    rain[0, 0, 0] = 91.0  # a skewed field: mean +- 4 std ends far below its heaviest rain
    store = xr.Dataset({"rain": (("time", "y", "x"), rain)}).chunk()
    stats = compute_stats(store, ["rain"], "zscore")
    assert stats.variables["rain"].seen == (0.0, 91.0)
    assert stats.variables["rain"].first + 4 * stats.variables["rain"].second < 78.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_values(xr.Dataset({"rain": (("time", "y", "x"), np.full((1, 2, 2), 78.9))}), ["rain"], stats)
    with pytest.warns(UserWarning, match=r"beyond what the model was trained on \(0 to 91\)"):
        check_values(xr.Dataset({"rain": (("time", "y", "x"), np.full((1, 2, 2), 200.0))}), ["rain"], stats)
    with pytest.raises(ClimodeError, match="variable rain is constant"):
        compute_stats(store.assign(rain=store.rain * 0 + 1.0), ["rain"])


# ------------------------------------------------------------------ unbounded requests


@pytest.mark.parametrize("times", ["1e9", "10000"])
def test_a_lead_far_beyond_training_needs_allow_long_leads(storm, tmp_path, capsys, times):
    out = tmp_path / "out.nc"
    command_error(capsys, forecast_main, ["--input", storm / "storm.nc", "--times", times, "--output", out],
                "beyond 4x the longest the model was trained for (84 hours)", "--allow-long-leads", "GiB")  # fmt: skip
    assert not out.exists()


def test_a_southern_map_region_is_not_taken_for_an_option(storm, tmp_path, capsys):
    argv = ["--input", storm / "storm.nc", "--times", "60", "--output", tmp_path / "o.nc", "--plot", tmp_path / "m.png"]
    command_error(capsys, forecast_main, [*argv, "--map-region", "-60:-30,0:40"], "'-60:-30,0:40' holds no part")


# ------------------------------------------------------------------ training settings


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"train": {"lr": "fast"}}, "lr is 'fast' (str); expected float or int"),
        ({"train": {"lr": -0.1}}, "lr is -0.1, but a learning rate must be positive"),
        ({"train": {"devices": 0}}, "devices is 0, but must be at least 1"),
        ({"train": {"checkpoint_every": 0}}, "checkpoint_every is 0"),
        ({"train": {"max_steps": 0}}, "max_steps is 0, but must be at least 1"),
        ({"model": {"width": 1.5}}, "width is 1.5 (float); expected int"),
        ({"data": {"time_in_hours": "yes"}}, "time_in_hours is 'yes' (str); expected bool"),
    ],
)
def test_config_values_are_checked_with_their_types_and_ranges(values, fragment):
    with pytest.raises(ClimodeError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        config_from_dict(values)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--max-steps", "0"], "max_steps is 0"),
        (["--max-steps", "-5"], "max_steps is -5"),
        (["--devices", "0"], "devices is 0"),
        (["--checkpoint-every", "0"], "checkpoint_every is 0"),
    ],
)
def test_bad_training_flags_are_refused_before_a_run_directory_exists(tmp_path, capsys, argv, fragment):
    out = tmp_path / "run"
    command_error(capsys, train_main, ["--config", "bouncing-ball-demo", "--out", out, *argv], fragment)
    assert not out.exists()


def test_a_yaml_learning_rate_in_words_names_the_file_and_key(tmp_path, capsys):
    (tmp_path / "fast.yaml").write_text(json.dumps({"train": {"lr": "fast"}}))
    command_error(capsys, train_main, ["--config", tmp_path / "fast.yaml", "--out", tmp_path / "run"],
                "fast.yaml: train: lr is 'fast'")  # fmt: skip
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ faults: what a killed run leaves


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_sweep_clears_what_dead_processes_left_and_restores_a_set_aside_file(tmp_path):
    from climode.io.atomic import sweep

    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f".f.nc.tmp-{dead}").write_text("half")
    (tmp_path / f".f.staging-{dead}.nc").write_text("half")
    (tmp_path / f".f.staging-{dead}.zarr").mkdir()
    (tmp_path / f"..f.staging-{dead}.nc.tmp-{dead}").write_text("half")  # killed writing the staging copy
    (tmp_path / f".f.nc.old-{dead}").write_text("the previous forecast")
    (tmp_path / f".f.nc.tmp-{alive}").write_text("another run, still writing")
    (tmp_path / f".g.nc.tmp-{dead}").write_text("another file's")
    sweep(tmp_path / "f.nc")
    sweep(tmp_path / "f.zarr")
    assert (tmp_path / "f.nc").read_text() == "the previous forecast"  # killed between the two renames
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["f.nc", f".f.nc.tmp-{alive}", f".g.nc.tmp-{dead}"])


def _outputs_argv(storm, tmp_path, times="60", *extra) -> list[str]:
    paths = ["--output", tmp_path / "f.nc", "--zarr", tmp_path / "f.zarr"]
    return [str(a) for a in ["--input", storm / "storm.nc", "--times", times, *paths, *extra]]


@pytest.mark.slow
def test_a_rerun_after_a_killed_forecast_succeeds_and_leaves_no_temporary(storm, tmp_path, capsys):
    """A run killed (-9) while appending left staging copies of its outputs and a temporary file; the
    same command again clears them, appends once and leaves nothing else."""
    assert forecast_main(_outputs_argv(storm, tmp_path)) == 0
    before = xr.open_zarr(tmp_path / "f.zarr", consolidated=False).sizes["time"]
    dead = _dead_pid()
    (tmp_path / f".f.staging-{dead}.zarr").mkdir()
    (tmp_path / f".f.staging-{dead}.nc").write_text("half")
    (tmp_path / f".f.nc.tmp-{dead}").write_text("half")
    assert forecast_main(_outputs_argv(storm, tmp_path, "63", "--append", "--overwrite")) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nc", "f.zarr"]
    assert xr.open_zarr(tmp_path / "f.zarr", consolidated=False).sizes["time"] == before + 1


@pytest.mark.slow
def test_a_failure_while_writing_leaves_every_output_as_it_was(storm, tmp_path, capsys, monkeypatch):
    argv = [
        "--input",
        storm / "storm.nc",
        "--times",
        "60",
        "--output",
        tmp_path / "f.nc",
        "--zarr",
        tmp_path / "f.zarr",
    ]
    assert forecast_main([str(a) for a in argv]) == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "f.nc"))

    monkeypatch.setattr("climode.io.write.write_netcdf", full_disk)  # after the zarr was staged
    command_error(capsys, forecast_main, _outputs_argv(storm, tmp_path, "60", "--overwrite"), "No space left on device")
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamp  # zarr included: not swapped in


PREVIOUS = {"f.nc": "previous nc", "f.zarr": "previous store", "g.png": None}
NEW = {"f.nc": "new nc", "f.zarr": "new store", "g.png": "new png"}


def _outputs_set(where) -> dict:
    """Two outputs that exist (a file and a store) and one that does not yet."""
    read = {"f.nc": "f.nc", "f.zarr": "f.zarr/x", "g.png": "g.png"}
    return {name: (where / path).read_text() if (where / path).exists() else None for name, path in read.items()}


def _previous_set(where) -> None:
    (where / "f.nc").write_text(PREVIOUS["f.nc"])
    (where / "f.zarr").mkdir()
    (where / "f.zarr" / "x").write_text(PREVIOUS["f.zarr"])


def _stage_new_set(where) -> dict:
    """This process's staged copies of the three outputs, as ``commit`` takes them."""
    from climode.io.atomic import staging_path

    staged = {where / name: staging_path(where / name) for name in NEW}
    staged[where / "f.nc"].write_text(NEW["f.nc"])
    staged[where / "f.zarr"].mkdir()
    (staged[where / "f.zarr"] / "x").write_text(NEW["f.zarr"])
    staged[where / "g.png"].write_text(NEW["g.png"])
    return staged


@pytest.mark.parametrize("kill", [*range(1, 9), "after"])
def test_a_set_of_outputs_killed_while_swapping_in_is_left_all_previous_or_all_new(tmp_path, kill):
    """commit() in a child that dies as under kill -9 (no clean-up) at each of its 8 renames (3
    journals, 5 swaps), or after its commit point: one sweep of any output puts the whole set back
    as it was (before the commit point) or leaves it all new (after), and sweeps leave nothing else."""
    import multiprocessing

    from climode.io import atomic

    _previous_set(tmp_path)

    def child():
        staged, real, renames = _stage_new_set(tmp_path), os.replace, [0]

        def replace(a, b):
            renames[0] += 1
            if renames[0] == kill:
                os._exit(9)
            real(a, b)

        os.replace = replace
        atomic._remove = lambda path: os._exit(9)  # the first removal of a previous version
        atomic.commit(staged)

    died = multiprocessing.get_context("fork").Process(target=child)
    died.start()
    died.join()
    assert died.exitcode == 9
    if kill in range(5, 9):  # killed among the swaps: on disk, a mix of the two runs
        assert _outputs_set(tmp_path) not in (PREVIOUS, NEW)
    atomic.sweep(tmp_path / "f.zarr")  # any one output's sweep mends the set
    assert _outputs_set(tmp_path) == (NEW if kill == "after" else PREVIOUS)
    for name in NEW:
        atomic.sweep(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, v in _outputs_set(tmp_path).items() if v)


@pytest.mark.parametrize("failing", range(1, 9))
def test_a_commit_that_fails_midway_puts_every_output_back(tmp_path, monkeypatch, failing):
    """Any of the 8 renames fails (e.g. a file system's refusal): every output as it was, the staged
    copies intact under their staging names (the caller removes them), no journal left."""
    from climode.io import atomic

    _previous_set(tmp_path)
    staged, real, renames = _stage_new_set(tmp_path), os.replace, [0]

    def replace(a, b):
        renames[0] += 1
        if renames[0] == failing:
            raise OSError(13, "Permission denied", str(b))
        real(a, b)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        atomic.commit(staged)
    assert _outputs_set(tmp_path) == PREVIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["f.nc", "f.zarr", *(s.name for s in staged.values())])
    assert (staged[tmp_path / "f.nc"]).read_text() == NEW["f.nc"]


def test_a_dead_runs_journal_never_moves_outputs_it_did_not_put_there(tmp_path):
    """A journal whose staged copies are gone and whose outputs are not those copies (another run's,
    or the user's) is only removed: the outputs stay."""
    import json

    from climode.io.atomic import sweep

    _previous_set(tmp_path)
    dead = _dead_pid()
    pairs = [[str(tmp_path / f".f.staging-{dead}.nc"), str(tmp_path / "f.nc"), 1], [str(tmp_path / "x"), "/y", 2]]
    (tmp_path / f".f.nc.journal-{dead}").write_text(json.dumps(pairs))
    sweep(tmp_path / "f.nc")
    assert _outputs_set(tmp_path) == PREVIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nc", "f.zarr"]


@pytest.mark.slow
def test_a_forecast_killed_between_its_outputs_swaps_is_put_back_and_the_rerun_appends_once(storm, tmp_path):
    """The forecast dies (os._exit, as kill -9) after swapping its zarr append in and before its NetCDF:
    the same command again finds the set as it was before the killed run, appends once, succeeds."""
    assert forecast_main(_outputs_argv(storm, tmp_path)) == 0
    argv = _outputs_argv(storm, tmp_path, "63", "--append", "--overwrite")
    code = (
        "import os, sys\n"
        f"finals, real, seen = {{{str(tmp_path / 'f.nc')!r}, {str(tmp_path / 'f.zarr')!r}}}, os.replace, []\n"
        "def replace(a, b):\n"
        "    if str(b) in finals:\n"
        "        seen.append(b)\n"
        "        if len(seen) == 2:\n"
        "            os._exit(9)\n"
        "    real(a, b)\n"
        "os.replace = replace\n"
        "from climode.cli.forecast import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    died = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=HANG)
    assert died.returncode == 9, died.stderr
    assert not (tmp_path / "f.nc").exists()  # killed mid-set: the store appended, the NetCDF set aside
    assert xr.open_zarr(tmp_path / "f.zarr", consolidated=False).sizes["time"] == 2
    assert forecast_main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nc", "f.zarr"]
    stored = xr.open_zarr(
        tmp_path / "f.zarr", consolidated=False, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)
    )
    with xr.open_dataset(tmp_path / "f.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as written:
        assert stored.sizes["time"] == 2 and stored.time.values[-1] == written.time.values[-1]


def test_a_truncated_checkpoint_is_refused_before_resuming(tmp_path):
    import zipfile

    from climode.training.rundir import resume_path

    (tmp_path / "checkpoints").mkdir()
    with zipfile.ZipFile(tmp_path / "checkpoints" / "step=1.ckpt", "w") as whole:
        whole.writestr("data.pkl", b"x" * 1000)
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes((tmp_path / "checkpoints" / "step=1.ckpt").read_bytes()[:500])
    with pytest.raises(ClimodeError, match=r"last.ckpt is truncated or corrupt .*resume from another: step=1.ckpt"):
        resume_path(tmp_path, "last")
    assert resume_path(tmp_path, str(tmp_path / "checkpoints" / "step=1.ckpt")).endswith("step=1.ckpt")


def test_a_second_run_on_a_directory_in_use_is_refused(tmp_path, capsys):
    import fcntl

    with open(tmp_path / ".run.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running training holds it
        command_error(capsys, train_main, ["--out", tmp_path / "run", "--resume"], "is in use by another training run")
    assert not (tmp_path / "run").exists()


def test_run_yaml_keeps_the_data_path_relative_to_the_run_so_resume_works_from_anywhere(tmp_path, monkeypatch):
    import yaml

    from climode.config import Config, replace
    from climode.training.rundir import RUN_FILE, run_config, run_relative

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "r").mkdir(parents=True)
    config = replace(Config(), "data", path="data/tiles.zarr")  # relative to where the run began
    saved = run_relative(config, tmp_path / "runs" / "r")
    assert saved.data.path == "../../data/tiles.zarr"
    (tmp_path / "runs" / "r" / RUN_FILE).write_text(yaml.safe_dump(saved.to_dict()))
    monkeypatch.chdir(tmp_path / "runs")  # resumed from elsewhere
    resumed, _ = run_config(tmp_path / "runs" / "r", None, None, "last", False, True)
    assert resumed.data.path == str(tmp_path / "data" / "tiles.zarr")


@pytest.mark.slow
def test_help_loads_no_stack():
    """``--help`` of every command answers without torch, xarray or dask (under a second, where the
    stack takes 5-12 s to import on 2 cores): the commands import what they use after the options."""
    from climode.cli import COMMANDS

    code = (
        "import sys\n"
        "from climode.cli import main\n"
        "assert main(['--help']) == 0\n"
        "for command in sys.argv[1:]:\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (command, exc.code)\n"
        "print('LOADED', sorted(m for m in ('torch', 'xarray', 'numpy', 'pandas', 'dask', 'lightning') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *COMMANDS], capture_output=True, text=True, timeout=HANG)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("usage:") == len(COMMANDS), result.stdout[-2000:]
    assert "LOADED []" in result.stdout, result.stdout.splitlines()[-1]


def test_unknown_model_or_dataset_names_the_choices(tmp_path, capsys):
    from climode.cli.train import _parser
    from climode.data import DATASETS

    command_error(capsys, train_main, ["--model", "vidode", "--out", tmp_path / "r"], "'vidode'", "vid-ode", "convgru")
    command_error(capsys, train_main, ["--dataset", "cam6", "--out", tmp_path / "r"], "dataset 'cam6'", *DATASETS)
    assert not (tmp_path / "r").exists()
    dataset_help = next(a.help for a in _parser()._actions if a.dest == "dataset")
    assert all(name in dataset_help for name in DATASETS)  # the help names every dataset


def test_a_grid_too_large_for_the_memory_is_refused_before_reading(storm, tmp_path, capsys, monkeypatch):
    from climode.io import checks

    assert checks.available_memory() > 2**20  # read from this machine
    monkeypatch.setattr(checks, "available_memory", lambda: 2**20)  # 1 MiB: the storm's fields take more
    line = command_error(capsys, forecast_main, _outputs_argv(storm, tmp_path, "60,63,66"), "3 time(s)", "region")
    assert "storm.nc" in line and "MiB, more than the 1 MiB this machine can spare" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--output", "--zarr"])
def test_overwrite_never_replaces_a_users_directory(storm, tmp_path, capsys, option):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    outputs = ["--output", folder] if option == "--output" else ["--output", tmp_path / "f.nc", "--zarr", folder]
    argv = ["--input", storm / "storm.nc", "--times", "60", *outputs, "--overwrite"]
    line = command_error(capsys, forecast_main, argv, str(folder))
    assert ("is a directory" if option == "--output" else "not a zarr store") in line
    assert (folder / "thesis.tex").read_text() == "keep me" and not (tmp_path / "f.nc").exists()
