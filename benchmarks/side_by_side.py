"""One GAN training step of the earlier public Vid-ODE implementation against climode's, side by side:
CPU-seconds at one torch thread, wall seconds and peak RSS.

    .venv/bin/python benchmarks/side_by_side.py --public-dir DIR [--sizes 64 128] [--rounds 3]
        [--steps 2] [--json OUT]

The public code is not part of climode and is never copied into it: get it with
``git clone https://github.com/psh01087/Vid-ODE`` (measured at commit 116e835a) and pass the clone as
``--public-dir``; this script imports its ``models`` and ``utils`` from there and reads its ``main.py``.

For every round and size, each side runs in a fresh process of its own (so that its peak RSS,
``ru_maxrss``, is its own) with ``torch.set_num_threads(1)`` and OMP/MKL_NUM_THREADS=1; the order of
the two sides alternates from round to round (public first in round 1). Each process runs one
warm-up step, then ``--steps`` timed steps, each on a fresh random batch in [0, 1]: batch 8, 5 input
and 5 output frames, 3 channels, ``size`` x ``size``. A step is timed with ``time.process_time``
(CPU-seconds of the process) and ``time.perf_counter`` (wall); the table gives the median and min
over the timed steps, the JSON every step of every round.

- public: ``VidODE`` and ``create_netD`` (its image and sequence discriminators, one Adamax for
  both) built from the defaults of the argparse in its ``main.py`` (read from the file: init_dim
  32, two downsamplings, a two-layer ODE function, dopri5 decoder at rtol 1e-3 / atol 1e-4, Adamax
  lr 1e-3, lamb_adv 0.003, ...) with one change, ``--extrap`` (5 frames observed at times 0-0.4, 5
  predicted at 0.5-0.9; the default is interpolation: the same 5 frames observed and predicted).
  The batch is what its dataloader's collate gives (``utils.split_and_subsample_batch``, not
  timed). Timed: one iteration of the inner loop of ``train()`` in its ``main.py``, the same calls
  in the same order: ``get_next_batch``, ``compute_all_losses`` (generator forward, L1 and
  difference losses), both discriminators' D losses and G adversarial losses, then the D update
  (zero_grad, backward, step) and the G update. Not timed: the loop's periodic printing (every 10
  steps), checkpoint and image saving, and the per-epoch learning-rate decay.
- climode: ``gan_step`` of benchmarks/run.py, settings "default" (the whole Lightning
  ``training_step``: generator forward, one discriminator update, one generator update, gradient
  clipping, the moving average of the weights, logging, the LR schedule).

What it takes to run the public code (torch 1.0-era) on the CPU with this torch, all done from this
side; the copies are not edited:

- its D update runs before the G backward goes through the discriminators' graphs, and since torch
  1.5 an optimizer's in-place update of a parameter is seen by autograd ("one of the variables needed
  for gradient computation has been modified by an inplace operation"). Torch <= 1.4's optimizers
  updated ``p.data``, which autograd does not track, so the G backward ran with the updated D
  weights. Here the D optimizer (the same Adamax, same options, same parameters) steps on ``p.data``
  aliases of the discriminators' parameters, with their gradients handed over before each step:
  the torch <= 1.4 semantics, the same arithmetic;
- nothing else: its ``.cuda()`` calls lie on the interpolation and test paths only, the device is
  passed as ``torch.device("cpu")``, and indexing with uint8 masks and ``grid_sample`` without
  ``align_corners`` only warn;
- ``main.py`` is not imported (it imports its dataloader, tester and visualisation, which need
  torchvision and the data sets): its option defaults are read from the file with ``ast``, and the
  training iteration is the sequence of calls described above;
- forward hooks count the calls of its two ODE functions (the NFE), which changes nothing.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

MARK = "SIDE_BY_SIDE_RESULT "
BATCH, N_IN, N_OUT, CHANNELS = 8, 5, 5, 3


def _single_thread() -> None:
    torch.set_num_threads(1)


def public_defaults(public_dir: Path) -> dict:
    """The defaults of ``get_opt()``'s argparse in the public ``main.py`` (read, not imported), plus
    the ``input_dim = 3`` that get_opt sets after parsing."""
    tree = ast.parse((public_dir / "main.py").read_text())
    get_opt = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_opt")
    options = {}
    for node in ast.walk(get_opt):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"):
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant)]
        name = next((f for f in flags if f.startswith("--")), flags[0]).lstrip("-").replace("-", "_")
        keywords = {k.arg: k.value for k in node.keywords}
        if "default" in keywords:
            options[name] = ast.literal_eval(keywords["default"])
        else:
            store_true = "action" in keywords and ast.literal_eval(keywords["action"]) == "store_true"
            options[name] = False if store_true else None
    options["input_dim"] = 3
    return options


class _DataStep:
    """The public D optimizer stepping as torch <= 1.4's did: on ``p.data`` aliases of the parameters
    (not tracked by autograd), gradients handed over before each step (module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.aliases = [p.data for p in self.params]
        self.inner = type(optimizer)(self.aliases, **optimizer.defaults)
        self.param_groups = self.inner.param_groups

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None  # as this torch's Optimizer.zero_grad (set_to_none)

    def step(self) -> None:
        for alias, p in zip(self.aliases, self.params):
            alias.grad = p.grad
        self.inner.step()


def public_step(public_dir: Path, size: int, steps: int) -> dict:
    _single_thread()
    sys.path.insert(0, str(public_dir))
    import numpy as np
    import utils  # the public code's utils.py
    from models.conv_odegru import VidODE
    from models.gan import create_netD

    options = public_defaults(public_dir)
    opt = argparse.Namespace(**{**options, "extrap": True, "input_size": size})
    assert opt.batch_size == BATCH and opt.sample_size == N_IN + N_OUT and not opt.irregular, options
    device = torch.device("cpu")  # main.py: torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    netG = VidODE(opt, device)
    # main.py train():
    optimizer_netG = torch.optim.Adamax(netG.parameters(), lr=opt.lr)
    netD_img, netD_seq, optimizer_netD = create_netD(opt, device)
    optimizer_netD = _DataStep(optimizer_netD)

    nfe = {"encoder": 0, "decoder": 0}
    for key, func in (("encoder", netG.encoder_z0.z0_diffeq_solver.ode_func), ("decoder", netG.diffeq_solver.ode_func)):
        func.register_forward_hook(lambda *_, key=key: nfe.__setitem__(key, nfe[key] + 1))

    # dataloader.parse_datasets: regular extrapolation, times arange(sample_size) / sample_size
    time_steps = torch.from_numpy(np.arange(0, opt.sample_size) / opt.sample_size).type(torch.FloatTensor)

    def batch(i: int) -> dict:  # the dataloader's video_collate_fn on a batch of random clips
        g = torch.Generator().manual_seed(i)
        images = torch.rand(BATCH, opt.sample_size, CHANNELS, size, size, generator=g)
        mask = torch.ones(BATCH, opt.sample_size, 1)
        data_dict = utils.split_and_subsample_batch({"data": images, "time_steps": time_steps, "mask": mask}, opt)
        data_dict["mode"] = "train"
        return data_dict

    def iteration(data_dict: dict) -> None:  # main.py train(), one pass of its inner loop (module docstring)
        batch_dict = utils.get_next_batch(data_dict)
        res = netG.compute_all_losses(batch_dict)
        loss_netG = res["loss"]
        real, fake, input_real = batch_dict["data_to_predict"], res["pred_y"], batch_dict["observed_data"]
        loss_netD = opt.lamb_adv * netD_seq.netD_adv_loss(real, fake, input_real)
        loss_netD += opt.lamb_adv * netD_img.netD_adv_loss(real, fake, None)
        loss_adv_netG = opt.lamb_adv * netD_seq.netG_adv_loss(fake, input_real)
        loss_adv_netG += opt.lamb_adv * netD_img.netG_adv_loss(fake, None)
        loss_netG += loss_adv_netG
        optimizer_netD.zero_grad()
        loss_netD.backward()
        optimizer_netD.step()
        optimizer_netG.zero_grad()
        loss_netG.backward()
        optimizer_netG.step()

    cpu, wall, nfes = [], [], []
    for i in range(steps + 1):
        data_dict = batch(i)
        for key in nfe:
            nfe[key] = 0
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        iteration(data_dict)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
        nfes.append(dict(nfe))
    return {
        "cpu_s": cpu[1:],
        "wall_s": wall[1:],
        "warmup_cpu_s": cpu[0],
        "warmup_nfe": nfes[0],
        "nfe": nfes[1:],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "options": dict(vars(opt)),
    }


def climode_step(size: int, steps: int) -> dict:
    _single_thread()
    from run import gan_step  # benchmarks/ is on the path of a script run from it

    out = gan_step(size, "cpu", steps, "default", False)
    return {
        "cpu_median_s": out["cpu_median_s"],
        "cpu_min_s": out["cpu_min_s"],
        "wall_median_s": out["median_s"],
        "wall_min_s": out["min_s"],
        "nfe": out["nfe"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def _summary(side: dict) -> dict:
    """Median and min of a child's timed steps (climode's child gives them already)."""
    if "cpu_s" not in side:
        return side
    return {
        **side,
        "cpu_median_s": statistics.median(side["cpu_s"]),
        "cpu_min_s": min(side["cpu_s"]),
        "wall_median_s": statistics.median(side["wall_s"]),
        "wall_min_s": min(side["wall_s"]),
    }


def _run_child(side: str, size: int, steps: int, public_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", side, "--public-dir", str(public_dir)]
    command += ["--sizes", str(size), "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        sys.exit(f"{side} step at {size} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return _summary(json.loads(lines[-1][len(MARK) :]))


def _machine() -> dict:
    from forecast_latency import cpu_name  # benchmarks/ is on the path of a script run from it

    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": 1,
        "env": "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1",
    }


def _table(size: int, rounds: list[dict]) -> None:
    print(f"\n## {size} x {size}: one GAN training step, batch 8, 5 in / 5 out, 1 thread (CPU-s: median / min)")
    print(f"{'round':>5}  {'public CPU-s':>15}  {'climode CPU-s':>15}  {'public/climode':>14}  "
          f"{'public wall':>11}  {'climode wall':>12}  {'RSS public':>10}  {'RSS climode':>11}")  # fmt: skip
    for r in rounds:
        p, c = r["public"], r["climode"]
        print(f"{r['round']:>5}  {p['cpu_median_s']:7.2f} / {p['cpu_min_s']:5.2f}  "
              f"{c['cpu_median_s']:7.2f} / {c['cpu_min_s']:5.2f}  {p['cpu_median_s'] / c['cpu_median_s']:13.2f}x  "
              f"{p['wall_median_s']:10.2f}s  {c['wall_median_s']:11.2f}s  "
              f"{p['peak_rss_mib']:6.0f} MiB  {c['peak_rss_mib']:7.0f} MiB")  # fmt: skip
    if len(rounds) > 1:
        p_cpu = statistics.median(r["public"]["cpu_median_s"] for r in rounds)
        c_cpu = statistics.median(r["climode"]["cpu_median_s"] for r in rounds)
        print(f"{'all':>5}  {p_cpu:15.2f}  {c_cpu:15.2f}  {p_cpu / c_cpu:13.2f}x   (medians over rounds)")
    last = rounds[-1]
    print(f"NFE per step: public {last['public']['nfe'][-1]}, climode {last['climode']['nfe']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--public-dir", required=True, type=Path, help="a clone of github.com/psh01087/Vid-ODE")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed steps per process, after one warm-up step")
    p.add_argument("--json", help="write every round's raw numbers and the machine to this file")
    p.add_argument("--child", choices=("public", "climode"), help=argparse.SUPPRESS)
    args = p.parse_args()
    public_dir = args.public_dir.resolve()
    if args.child:
        size = args.sizes[0]
        out = public_step(public_dir, size, args.steps) if args.child == "public" else climode_step(size, args.steps)
        print(MARK + json.dumps(out), flush=True)
        return
    if not (public_dir / "models" / "conv_odegru.py").is_file():
        sys.exit(f"{public_dir} is not a Vid-ODE clone (git clone https://github.com/psh01087/Vid-ODE)")
    machine = _machine()
    print(f"# {machine['cpu_model']} ({machine['processor']}), torch {machine['torch']}, 1 thread", flush=True)
    results = []
    for i in range(args.rounds):
        for size in args.sizes:
            order = ("public", "climode") if i % 2 == 0 else ("climode", "public")
            entry = {"round": i + 1, "size": size, "order": list(order)}
            for side in order:
                entry[side] = out = _run_child(side, size, args.steps, public_dir)
                print(f"# round {i + 1}, {size} x {size}, {side}: {out['cpu_median_s']:.2f} CPU-s, "
                      f"{out['wall_median_s']:.2f} s wall, {out['peak_rss_mib']:.0f} MiB", flush=True)  # fmt: skip
            results.append(entry)
    summary = {}
    for size in args.sizes:
        rounds = [r for r in results if r["size"] == size]
        _table(size, rounds)
        p_cpu = statistics.median(r["public"]["cpu_median_s"] for r in rounds)
        c_cpu = statistics.median(r["climode"]["cpu_median_s"] for r in rounds)
        summary[size] = {"public_cpu_s": p_cpu, "climode_cpu_s": c_cpu, "ratio_public_over_climode": p_cpu / c_cpu}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                       "rounds": results}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
