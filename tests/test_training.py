"""Training as a user runs it: the CLI, checkpoints, resuming, data parallelism, learning."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import HANG, ROOT, TINY, command_error, run_module, write_config

from climode import ClimodeError, load_model
from climode.cli.train import main as train_main
from climode.config import DataConfig, TrainConfig
from climode.data import open_dataset
from climode.training import train
from climode.training.task import Schedule, _frozen
from climode.verification.scoring import score_checkpoint


def _optimizer_steps(ckpt_path):
    ckpt = torch.load(ckpt_path, weights_only=True)
    return [int(state["state"][0]["step"]) for state in ckpt["optimizer_states"]], ckpt


@pytest.mark.slow
def test_tiny_model_learns_motion_and_beats_persistence(tmp_path, capsys):
    """Fading the balls alone gets ~0.9x persistence's next-frame MSE; moving them gets far below (300
    updates reach 0.30-0.35x with data and training seeds 0, 1, 2; 600 reach 0.25x)."""
    config = write_config(
        tmp_path / "learn.yaml",
        data={"n_out": 1, "train_size": 400, "test_size": 32},
        train={"checkpoint_every": 1000, "val_every": 100, "adversarial": False},
    )
    assert train_main(["--config", str(config), "--out", str(tmp_path / "run"), "--max-steps", "300"]) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]
    test = open_dataset(DataConfig(n_in=5, n_out=1, test_size=32), "test")
    scores = score_checkpoint(load_model(final), test)
    model, base = (scores["methods"][m]["mse"][0] for m in ("vid-ode", "persistence"))
    assert model < 0.6 * base, (model, base)


@pytest.mark.slow
def test_train_is_a_python_function(tmp_path, caplog):
    """What the command does, from Python: a config dict in, the model's path out, messages logged."""
    config = {k: dict(v) for k, v in TINY.items()}
    config["data"]["val_size"] = 0
    with caplog.at_level("INFO", logger="climode"):
        path = train(config, tmp_path / "run", model="ode-conv", max_steps=2)
    assert path == tmp_path / "run" / "model.safetensors"
    assert load_model(path).model.config.encoder == "conv"  # the name's variant, as on the command line
    training = load_model(path).card.training  # what the weights were trained on, for every forecast to say
    assert training["data"] == "bouncing-ball" and training["updates"] == 2 and "CPU" in training["hardware"]
    assert "no validation samples" in caplog.text
    with pytest.raises(ClimodeError, match="already holds files"):
        train(config, tmp_path / "run", model="persistence")
    assert train(config, tmp_path / "run", model="persistence", overwrite=True) == path
    assert load_model(path).model.config.architecture == "persistence"


@pytest.mark.slow
def test_killed_run_resumes_with_optimizer_schedule_and_discriminator_state(tmp_path):
    tiny_config = write_config(tmp_path / "tiny.yaml", train={"warmup_steps": 1})  # the cosine from update 1
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "climode.train",
            "--config",
            str(tiny_config),
            "--out",
            str(out),
            "--max-steps",
            "10000",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + HANG
        while not last.exists():
            assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
            time.sleep(0.1)
        time.sleep(1.5)  # killed at an arbitrary moment after that, mid-step or mid-save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (steps_g, steps_d), saved = _optimizer_steps(last)
    assert steps_g == steps_d > 0
    n = steps_g
    earlier = out / "logs" / "metrics.csv"  # what a longer first run would have flushed by now
    earlier.write_text("epoch,step,train/loss\n0,9,0.5\n")
    logged = {p: p.read_bytes() for p in (out / "logs").iterdir()}
    result = run_module("climode.train", "--out", out, "--resume", "--max-steps", n + 3)
    assert result.returncode == 0, result.stderr
    assert {p: p.read_bytes() for p in (out / "logs").iterdir()} == logged  # earlier metrics are kept
    assert (out / "logs-resumed-1").is_dir()  # where the resumed run logs
    assert f"resuming from {last}" in result.stderr
    (steps_g, steps_d), resumed = _optimizer_steps(last)
    train = TrainConfig(warmup_steps=1)
    end = Schedule(train.schedule, train.warmup_steps, n + 3, train.min_lr / train.lr, train.lr_decay, 1)(n + 3)
    assert (steps_g, steps_d) == (n + 3, n + 3)  # a fresh optimiser would have counted 3
    for scheduler in resumed["lr_schedulers"]:
        assert scheduler["last_epoch"] == n + 3  # the schedule counts generator updates, also across the resume
        # and ends where this run's --max-steps says, not where the killed run's (10000) would have
        assert scheduler["_last_lr"][0] == pytest.approx(train.lr * end)
    assert any(k.startswith("d_seq.") for k in resumed["state_dict"])
    assert any(k.startswith("ema.module.") for k in resumed["state_dict"])  # the moving average goes on too
    assert result.stdout.strip().splitlines()[-1] == str(out / "model.safetensors")


@pytest.mark.slow
def test_two_process_cpu_training(tmp_path, tiny_config):
    out = tmp_path / "ddp"
    result = run_module(
        "climode.train", "--config", tiny_config, "--out", out, "--max-steps", 3, "--devices", 2, "--accelerator", "cpu"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert "data-parallel training: 2 processes, gloo backend" in result.stderr
    assert load_model(result.stdout.strip().splitlines()[-1]).variables == ["intensity"]
    steps, _ = _optimizer_steps(out / "checkpoints" / "last.ckpt")
    assert steps == [3, 3]


@pytest.mark.slow
def test_clips_file_trains_and_evaluates_with_json(tmp_path, tiny_config):
    data = tmp_path / "balls.npz"
    made = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipelines" / "make_clips.py"),
            "--out",
            str(data),
            "--clips",
            "40",
            "--frames",
            "10",
            "--drop",
            "0.3",
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    frames = np.load(data)["frames"]
    assert frames.shape == (40, 10, 1, 32, 32) and np.isnan(frames[:, :5]).any()
    out = tmp_path / "run"
    trained = run_module(
        "climode.train", "--config", tiny_config, "--dataset", "clips", "--data", data, "--out", out, "--max-steps", 2
    )
    assert trained.returncode == 0, trained.stderr
    scores = tmp_path / "scores.json"
    result = run_module("climode.evaluate", "--checkpoint", out / "model.safetensors", "--json", scores)
    assert result.returncode == 0, result.stderr
    assert "MSE persistence" in result.stdout
    written = json.loads(scores.read_text())
    assert written["lead_times"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    for method in ("vid-ode", "persistence"):
        assert set(written["methods"][method]) == {"mse", "psnr", "ssim", "lpips"}
        assert written["methods"][method]["lpips"] == [None] * 5  # n/a, written as null, never a number
        assert all(len(v) == 5 for v in written["methods"][method].values())


@pytest.mark.slow
def test_clips_with_irregular_times_per_clip_train(tmp_path, tiny_config):
    """Samples with different irregular times share a batch on the union of their grids."""
    rng = np.random.default_rng(1)
    frames = rng.random((20, 10, 2, 32, 32), dtype=np.float32)
    frames[:, :, :, 5:9, 5:9] = np.nan  # missing cells
    times = np.cumsum(rng.choice([1.0, 2.0, 3.0], size=(20, 10)), axis=1)
    data = tmp_path / "irregular.npz"
    np.savez(data, frames=frames, times=times, variables=np.array(["u", "v"]))
    result = run_module(
        "climode.train",
        "--config",
        tiny_config,
        "--dataset",
        "clips",
        "--data",
        data,
        "--out",
        tmp_path / "run",
        "--max-steps",
        2,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_model(result.stdout.strip().splitlines()[-1]).variables == ["u", "v"]


@pytest.mark.slow
def test_sigterm_mid_training_leaves_a_loadable_model(tmp_path):
    """A scheduler's time limit (SIGTERM): the run stops between updates, writes model.safetensors and
    last.ckpt, says so, and exits 143; --resume continues it. With ``data.continuous`` and the
    adversarial terms on (the README's bouncing-ball-demo), whose samples carry a target in every gap."""
    config = write_config(tmp_path / "tiny.yaml", data={"continuous": True, "queries": "random"})
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "climode.train", "--config", str(config), "--out", str(out), "--max-steps", "10000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + HANG
        while not (out / "checkpoints" / "last.ckpt").exists():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    model = load_model(out / "model.safetensors")
    assert model.card.variables == ("intensity",)
    resumed = run_module("climode.train", "--out", out, "--resume", "--max-steps", 4)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_tensorboard_logger_writes_event_files_beside_the_csv(tmp_path, capsys):
    tiny_config = write_config(tmp_path / "tiny.yaml", train={"log_every": 1})
    result = run_module(
        "climode.train", "--config", tiny_config, "--out", tmp_path / "run", "--max-steps", 2, "--logger", "tensorboard"
    )
    assert result.returncode == 0, result.stderr
    logs = tmp_path / "run" / "logs"
    assert (logs / "metrics.csv").is_file() and list((logs / "tensorboard").glob("events.out.tfevents.*"))
    command_error(capsys, train_main, ["--config", tiny_config, "--out", tmp_path / "r2", "--logger", "wandb"], "wandb")


def test_the_anomaly_l1_pays_for_the_extremes_a_plain_l1_lets_go():
    """A forecast that misses a compact core (a few cells far from the frame's mean) costs little in L1
    and much in the anomaly-weighted L1; one that errs by as much everywhere costs the same in both."""
    from climode.training.losses import anomaly_l1, masked_l1

    target = torch.zeros(1, 1, 1, 32, 32)
    target[..., 14:18, 14:18] = -10.0  # a core of 16 cells in 1024
    smoothed = target.clone()
    smoothed[..., 14:18, 14:18] = 0.0
    assert masked_l1(smoothed, target) < 0.2 and anomaly_l1(smoothed, target) > 5.0
    offset = target + 0.5
    assert float(anomaly_l1(offset, target)) == pytest.approx(0.5) == float(masked_l1(offset, target))
    holed, unasked = target.clone(), smoothed.clone()
    holed[..., :4, :] = unasked[..., :4, :] = float("nan")  # missing truth, and forecasts not asked for, do not count
    assert anomaly_l1(unasked, holed) == pytest.approx(float(anomaly_l1(smoothed, holed)))
    assert torch.isfinite(anomaly_l1(unasked, holed))


def test_lambda_core_adds_the_anomaly_l1_to_the_generators_loss():
    from climode.checkpoint import Card
    from climode.config import config_from_dict
    from climode.training.task import ForecastTask

    values = {k: dict(v) for k, v in TINY.items()}
    values["model"].update(channels=1, n_in=None)
    batch = {"frames_out": torch.rand(2, 3, 1, 16, 16)}
    out = {"frames": torch.rand(2, 3, 1, 16, 16)}
    plain = ForecastTask(config_from_dict(values), Card())
    assert "core" not in plain.generator_losses(batch, out)
    values["train"]["lambda_core"] = 2.0
    task = ForecastTask(config_from_dict(values), Card())
    losses = task.generator_losses(batch, out)
    assert float(task.generator_loss(losses)) == pytest.approx(float(losses["recon"] + 2.0 * losses["core"]))
    with pytest.raises(ClimodeError, match="lambda_core"):
        config_from_dict({"train": {"lambda_core": -1.0}})


def test_frozen_discriminators_pass_gradients_to_their_input_only_and_are_trained_after():
    """The generator's adversarial loss reaches the frames through the discriminators without the
    weight gradients it used to compute and throw away; the discriminators train again after."""
    torch.manual_seed(0)
    disc = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(4, 1, 3))
    fake = torch.rand(2, 3, 8, 8, requires_grad=True)
    with _frozen(disc):
        frozen_loss = disc(fake).square().mean()
    frozen_loss.backward()
    assert all(p.grad is None for p in disc.parameters()) and fake.grad.abs().sum() > 0
    expected = torch.autograd.grad(disc(fake).square().mean(), fake)[0]
    torch.testing.assert_close(fake.grad, expected, rtol=0, atol=0)  # the same gradient for the generator
    assert all(p.requires_grad for p in disc.parameters())
    disc(fake.detach()).square().mean().backward()
    assert all(p.grad is not None for p in disc.parameters())
