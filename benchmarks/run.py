"""One command for climode's speed: a table of what a training step, a forecast and the data
pipeline cost, against the machine's own floor.

    .venv/bin/python benchmarks/run.py [--quick] [--device cpu|cuda] [--settings NAME]
        [--json OUT]

Rows (each in a fresh process, so peak memory is its own):
- a full GAN training step (generator forward, discriminator update, generator update through the
  real Lightning step; batch 8, 5 in, 5 out, 3 channels, width 32) at 64 x 64 and 128 x 128:
  median and min seconds, steps per second, encoder and decoder NFE, FLOPs counted by
  ``torch.utils.flop_counter`` and the achieved FLOP/s against the floor;
- forecast latency: the model's forward pass at batch 1, 64 x 64 (5 inputs, 3 queries), and the
  bundled model on one 240 x 640 tile of the demo storm (``climode.forecast``, model loaded once);
- the forecast path of the demo storm at 1 and 2 torch threads, stage by stage (regrid in, network,
  regrid back, write, the whole forecast()), in CPU-seconds and wall (benchmarks/forecast_latency.py);
- the floor: FLOP/s this device reaches on the model's own 3 x 3 convolutions (forward and backward,
  128 channels on the encoder's 1/4 grid), so that "achieved / floor" says how much is left;
- the data pipeline: basin tiles cut and regridded to 1 degree per second (``climode.geo.tiles``).

Settings: ``default`` is ``ModelConfig``'s (rk4, one step per data interval, both ODEs; the light
Conv-Decoders, activation checkpointing, NHWC, float32); ``uncheckpointed`` without the checkpointing,
``bfloat16`` with that precision; ``before-32`` the default from issue 16 to issue 32 (the paper's
Conv-Decoders, no checkpointing); ``plain`` the default before issue 16 (rk4 step 0.5, NCHW);
``dopri5`` the built-in video and bouncing-ball configs' adaptive solver; ``official`` the equal-work
configuration of the earlier public implementation's figures (one Euler step per input gap, times
scaled to 0-0.9, dopri5 decoder, the paper's decoders; NCHW as that code is). ``--quick`` times 2
steps after a warm-up (else 5). benchmarks/side_by_side.py times the public code itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

SETTINGS = ("default", "uncheckpointed", "bfloat16", "before-32", "plain", "dopri5", "official")


def _model_config(settings: str):
    from climode.model import ModelConfig, SolverConfig

    rk4 = SolverConfig("rk4", 1.0)
    # the Conv-Decoders, solvers and memory before issue 32
    paper = {"decoder": "paper", "checkpointing": False, "encoder_solver": rk4, "decoder_solver": rk4}
    if settings == "official":  # 10 frames at times 0, 0.1, ..., 0.9: one Euler step of 0.1 per input gap
        euler = SolverConfig("euler", 0.1)
        return ModelConfig(channels=3, width=32, time_scale=10.0, channels_last=False,
                           **paper | {"encoder_solver": euler, "decoder_solver": SolverConfig("dopri5")})  # fmt: skip
    if settings == "dopri5":  # the built-in video and bouncing-ball configs
        adaptive = SolverConfig("dopri5")
        return ModelConfig(channels=3, width=32, encoder_solver=adaptive, decoder_solver=adaptive)
    if settings == "plain":  # the defaults before issue 16: rk4 step 0.5, NCHW, float32
        half = SolverConfig("rk4", 0.5)
        solvers = {"encoder_solver": half, "decoder_solver": half}
        return ModelConfig(channels=3, width=32, channels_last=False, **paper | solvers)
    if settings == "before-32":  # the defaults from issue 16 to issue 32
        return ModelConfig(channels=3, width=32, **paper)
    if settings == "uncheckpointed":
        return ModelConfig(channels=3, width=32, checkpointing=False)
    if settings == "bfloat16":
        return ModelConfig(channels=3, width=32, precision="bfloat16")
    return ModelConfig(channels=3, width=32)  # ModelConfig's defaults: rk4, one step per data interval, NHWC


def gan_step(size: int, device: str, steps: int, settings: str, flops: bool) -> dict:
    import lightning as L
    from torch.utils.data import DataLoader, Dataset

    from climode.checkpoint import Card
    from climode.config import Config, DataConfig, TrainConfig
    from climode.data import collate
    from climode.training.task import ForecastTask

    class Random(Dataset):
        def __len__(self):
            return 8 * (steps + 2)

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            frames = torch.rand(10, 3, size, size, generator=g)
            t = torch.arange(10.0)
            return {"frames_in": frames[:5], "times_in": t[:5], "frames_out": frames[5:], "times_out": t[5:]}

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    class Timer(L.Callback):
        def __init__(self):
            self.times, self.cpu, self.nfe = [], [], []

        def on_train_batch_start(self, trainer, module, batch, i):
            sync()
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, module, outputs, batch, i):
            sync()
            self.times.append(time.perf_counter() - self.start)
            self.cpu.append(time.process_time() - self.cpu_start)
            self.nfe.append({k: f.nfe for k, f in module.model.ode_functions().items()})

    config = Config(_model_config(settings), DataConfig(n_in=5, n_out=5), TrainConfig(batch_size=8, disc_width=64))
    task = ForecastTask(config, Card())
    timer = Timer()
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_steps=2 * (steps + 1), logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[timer],
    )  # fmt: skip
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(task, DataLoader(Random(), 8, collate_fn=collate))
    measured = timer.times[1:]
    out = {
        "row": f"GAN step {size} x {size}",
        "median_s": statistics.median(measured),
        "min_s": min(measured),
        "steps_per_s": 1 / statistics.median(measured),
        "cpu_median_s": statistics.median(timer.cpu[1:]),  # CPU-seconds of this process (all its threads)
        "cpu_min_s": min(timer.cpu[1:]),
        "nfe": timer.nfe[-1],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
    }
    if flops:
        out["flops"] = _step_flops(task, Random()[0], device)
        out["achieved_flops"] = out["flops"] / out["min_s"]
    return out


def _step_flops(task, sample: dict, device: str) -> float:
    """FLOPs of the generator's forward and backward on one batch of 8 (the bulk of a GAN step's)."""
    from torch.utils.flop_counter import FlopCounterMode

    from climode.data import collate

    batch = collate([sample] * 8)
    model = task.model.to(device).train()
    with FlopCounterMode(display=False) as counter:
        out = model(batch["frames_in"].to(device), batch["times_in"].to(device), batch["times_out"].to(device))
        out["frames"].nan_to_num().abs().mean().backward()
    return float(counter.get_total_flops())


def floor(device: str, settings: str) -> dict:
    """FLOP/s of the model's typical convolution (3 x 3, 128 -> 128 channels, batch 8, 16 x 16 and 32 x 32:
    the encoder's 1/4 grid at 64 and 128), forward and backward, in the settings' layout and precision."""
    from climode.model.compute import lowered, use_channels_last

    config = _model_config(settings)
    results = {}
    for side in (16, 32):
        conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(device)
        if config.channels_last:
            use_channels_last(conv)
        x = torch.randn(8, 128, side, side, device=device, requires_grad=True)
        flop = 3 * 2 * 128 * 128 * 9 * side * side * 8  # forward, and backward to input and weights

        def once(conv=conv, x=x):
            with lowered(config.precision, x):
                y = conv(x)
            y.float().sum().backward()

        for _ in range(3):
            once()
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        sync()
        start, n = time.perf_counter(), 20
        for _ in range(n):
            once()
        sync()
        results[side] = flop * n / (time.perf_counter() - start)
    return {"row": "floor: 3x3 conv 128->128, fwd+bwd", "flops_per_s_16": results[16], "flops_per_s_32": results[32]}


def forecast_latency(device: str, settings: str, repeats: int) -> dict:
    import numpy as np

    import climode
    from climode.data.cases import first_case
    from climode.data.synthetic import make_corpus
    from climode.forecasting import bundled_checkpoint
    from climode.model import build

    model = build(_model_config(settings)).to(device).eval()
    x = torch.rand(1, 5, 3, 64, 64, device=device)
    t, q = torch.arange(5.0, device=device), torch.tensor([5.0, 6.0, 7.0], device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(fn) -> float:
        fn()
        values = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            values.append(time.perf_counter() - start)
        return statistics.median(values)

    with torch.no_grad():
        small = timed(lambda: model(x, t, q))
    ds, tracks = make_corpus(1, 3)
    inputs = first_case(ds, tracks, (0, 9, 21, 42, 57), 66).inputs.isel(lat=slice(0, 240)).load()
    ckpt = climode.load_model(bundled_checkpoint(), device)
    tile = timed(lambda: climode.forecast(inputs, "60,63,66", checkpoint=ckpt, device=device))
    assert inputs.PSL.shape == (5, 240, 640), inputs.PSL.shape
    return {
        "row": "forecast latency",
        "model_64_batch1_s": small,
        "bundled_240x640_tile_s": tile,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "grid": list(np.shape(inputs.PSL.values)),
    }


def pipeline(repeats: int) -> dict:
    from climode.data.synthetic import make_corpus
    from climode.geo.tiles import extract, parse_tiles

    ds, _ = make_corpus(1, 3)
    ds = ds.isel(time=slice(0, 8)).load()
    tiles = parse_tiles("east-pacific-atlantic")
    start = time.perf_counter()
    for _ in range(repeats):
        for tile in tiles:
            extract(ds, tile, 1.0).load()
    seconds = time.perf_counter() - start
    return {"row": "pipeline: tiles cut to 1 degree", "tiles_per_s": repeats * len(tiles) * ds.sizes["time"] / seconds}


def forecast_path(threads: int, repeats: int) -> dict:
    """The demo storm's forecast, stage by stage (benchmarks/forecast_latency.py), in CPU-seconds and wall."""
    from forecast_latency import stages  # benchmarks/ is on the path of a script run from it

    return {"row": f"forecast path, {threads} thread(s)", "stages": stages(threads, repeats)}


def _child(args) -> dict:
    kind, value = args.one.split(":")
    if kind == "path":
        return forecast_path(int(value), 3 if args.quick else 5)
    if kind == "step":
        return gan_step(int(value), args.device, 2 if args.quick else 5, args.settings, int(value) == 64)
    if kind == "floor":
        return floor(args.device, args.settings)
    if kind == "forecast":
        return forecast_latency(args.device, args.settings, 3 if args.quick else 10)
    return pipeline(2 if args.quick else 5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats (under 10 minutes on 2 cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--settings", default="default", choices=SETTINGS)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(_child(args)))
        return
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"# {machine}; settings {args.settings}; device {args.device}", flush=True)
    rows = []
    for job in ("floor:0", "step:64", "step:128", "forecast:0", "path:1", "path:2", "pipeline:0"):
        command = [sys.executable, __file__, "--one", job, "--device", args.device, "--settings", args.settings]
        done = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{job} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    step = next(r for r in rows if r["row"] == "GAN step 64 x 64")
    top = rows[0]["flops_per_s_16"]
    print(f"# 64 x 64 step: {step['flops'] / 1e9:.1f} GFLOP, {step['achieved_flops'] / 1e9:.1f} GFLOP/s achieved, "
          f"{100 * step['achieved_flops'] / top:.0f} % of the 3x3 conv floor ({top / 1e9:.1f} GFLOP/s)")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "settings": args.settings, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
