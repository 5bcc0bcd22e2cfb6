"""Time and peak memory of one full Vid-ODE GAN training step (G forward, D update, G update).

Batch 8, 5 frames in, 5 out, 3 channels, the paper's widths (w = 32, discriminators 64),
through the real Lightning training step. Each size runs in a fresh process so peak RSS
is its own.

    .venv/bin/python benchmarks/gan_step.py --sizes 64 128 --solver dopri5 [--device cuda]
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


def one_size(size: int, solver: str, device: str, steps: int) -> dict:
    import lightning as L
    from torch.utils.data import DataLoader, Dataset

    from climode.checkpoint import Card
    from climode.config import Config, DataConfig, TrainConfig
    from climode.data import collate
    from climode.model import ModelConfig, SolverConfig
    from climode.train.task import ForecastTask

    class Random(Dataset):
        def __len__(self):
            return 8 * (steps + 1)

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            frames = torch.rand(10, 3, size, size, generator=g)
            t = torch.arange(10.0)
            return {"frames_in": frames[:5], "times_in": t[:5], "frames_out": frames[5:], "times_out": t[5:]}

    class Timer(L.Callback):
        def __init__(self):
            self.times, self.nfe = [], []

        def on_train_batch_start(self, trainer, module, batch, i):
            if device == "cuda":
                torch.cuda.synchronize()
            module.model.decoder_func.nfe = 0
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, i):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)
            self.nfe.append(module.model.decoder_func.nfe)

    s = SolverConfig(solver) if solver == "dopri5" else SolverConfig(solver, 0.5)
    config = Config(
        ModelConfig(channels=3, width=32, encoder_solver=s, decoder_solver=s),
        DataConfig(n_in=5, n_out=5),
        TrainConfig(batch_size=8, disc_width=64),
    )
    task = ForecastTask(config, Card())
    timer = Timer()
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_steps=2 * (steps + 1),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(task, DataLoader(Random(), 8, collate_fn=collate))
    measured = timer.times[1:]  # the first step warms up
    params = {name: sum(p.numel() for p in getattr(task, name).parameters()) for name in ("model", "d_img", "d_seq")}
    return {
        "size": size,
        "solver": solver,
        "device": device,
        "steps_timed": len(measured),
        "seconds_per_step_median": statistics.median(measured),
        "seconds_per_step_min": min(measured),
        "decoder_nfe": timer.nfe[1:],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "parameters_millions": {k: v / 1e6 for k, v in params.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--solver", default="dopri5", choices=("euler", "rk4", "dopri5"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.solver, args.device, args.steps)))
        return
    machine = platform.processor() or platform.machine()
    print(f"# {machine}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for size in args.sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(size),
                "--solver",
                args.solver,
                "--device",
                args.device,
                "--steps",
                str(args.steps),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
