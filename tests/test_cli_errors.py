"""Bad input to train and evaluate: one clear line, no traceback, a non-zero exit."""

import sys

import numpy as np
import pytest
from conftest import assert_user_error, run_module

from climode import save_model
from climode.checkpoint import Card
from climode.cli.evaluate import main as evaluate_main
from climode.cli.train import main as train_main
from climode.model import ModelConfig, VidODE


def _one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _clips(path, frames=None, times=None, **extra):
    rng = np.random.default_rng(0)
    frames = rng.random((10, 8, 3, 16, 16), dtype=np.float32) if frames is None else frames
    times = np.arange(frames.shape[1], dtype=float) if times is None else times
    np.savez(path, frames=frames, times=times, **extra)
    return path


@pytest.mark.slow
def test_missing_config_file_subprocess(tmp_path):
    result = run_module("climode.train", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "run")
    assert_user_error(result, "nope.yaml", "not found")
    assert not (tmp_path / "run").exists()


def test_unknown_config_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {widht: 8}\n")
    assert train_main(["--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    _one_error_line(capsys, "widht", "unknown key")


@pytest.mark.parametrize(
    "make,fragments",
    [
        (lambda p: p / "missing.npz", ("missing.npz", "not found")),
        (
            lambda p: _clips(p / "flat.npz", frames=np.zeros((10, 8, 16, 16), np.float32)),
            ("flat.npz", "5 dims", "(10, 8, 16, 16)"),
        ),
        (
            lambda p: _clips(p / "times.npz", times=np.array([0, 1, 2, 2, 4, 5, 6, 7.0])),
            ("times.npz", "strictly increasing"),
        ),
        (
            lambda p: _clips(p / "nan.npz", frames=np.full((10, 8, 3, 16, 16), np.nan, np.float32)),
            ("nan.npz", "all NaN"),
        ),
        (lambda p: _clips(p / "novars.npz", variables=np.array(["u", "v"])), ("novars.npz", "2 channels", "3")),
        (
            lambda p: _clips(p / "small.npz", frames=np.zeros((10, 10, 3, 16, 16), np.float32)),
            ("small.npz", "16 x 16 cells", "24 x 24", "train.adversarial: false"),
        ),
    ],
)
def test_bad_data_file(tmp_path, tiny_config, capsys, make, fragments):
    path = make(tmp_path)
    code = train_main(
        ["--config", str(tiny_config), "--dataset", "clips", "--data", str(path), "--out", str(tmp_path / "run")]
    )
    assert code == 2
    _one_error_line(capsys, *fragments)
    assert not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert train_main(["--config", str(tiny_config), "--out", str(out)]) == 2
    _one_error_line(capsys, str(out), "--resume", "--overwrite")
    assert train_main(["--config", str(tiny_config), "--out", str(out), "--overwrite"]) == 2
    _one_error_line(capsys, "not a climode run")
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
def test_evaluate_channels_not_matching_checkpoint(tmp_path):
    ckpt = save_model(
        tmp_path / "m.safetensors",
        VidODE(ModelConfig(channels=1, width=4)),
        Card(
            variables=("intensity",),
            time_units="frames",
            config={"data": {"n_in": 4, "n_out": 4}},
        ),
    )
    data = _clips(tmp_path / "rgb.npz")
    result = run_module("climode.evaluate", "--checkpoint", ckpt, "--dataset", "clips", "--data", data)
    assert_user_error(result, "1 channel", "intensity", "rgb.npz", "3")


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    assert evaluate_main(["--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    _one_error_line(capsys, "none.safetensors", "not found")


def test_evaluate_unwritable_json_fails_before_work(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "dir" / "scores.json"
    assert evaluate_main(["--checkpoint", str(tmp_path / "m.safetensors"), "--json", str(target)]) == 2
    _one_error_line(capsys, "scores.json", "not writable")
    assert not target.parent.exists()


def test_a_command_run_again_logs_to_the_stderr_of_the_moment(monkeypatch):
    """A notebook or test runs commands in one process with stderr redirected in between: messages go to
    the stream of the moment, never to a closed earlier one (a 'Logging error' traceback)."""
    import io
    import logging

    from climode.errors import show_logs

    logger = logging.getLogger("climode")
    monkeypatch.setattr(logger, "handlers", [])
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    show_logs()
    logger.info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    show_logs()
    logger.info("two")
    assert second.getvalue() == "two\n" and len(logger.handlers) == 1
