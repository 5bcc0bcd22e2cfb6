"""Best-of-N on bouncing balls: the paper's stochastic baselines (SVG-FP, SVG-LP, SRVP) drawn N times.

The Vid-ODE paper's supplement compares with SVG-FP, SVG-LP and SRVP by the best of several samples.
Here each of them (``climode.model.stochastic``) is trained per seed on generated bouncing balls (the
paper's set-up, climode/configs/bouncing-ball.yaml: 3 balls in 32 x 32, 10 frames in, 10 out, data seed
0) for ``--steps`` Adam updates of ``--batch-size`` on its paper's objective (``model.elbo``: the
teacher-forced ELBO over the whole 20-frame sequence, beta ``model.beta``), at width ``--width``. Then,
for each held-out sequence (the test split, ``--test-size``), ``model.sample`` draws ``--members``
members (every latent drawn with a generator seeded per training seed: the prior after the inputs),
and per lead (frames after the last input) it reports

- best-of-N MSE: the member with the lowest MSE over the sequence's targets (as SVG's and SRVP's
  evaluations pick the best sample per video), scored at each lead;
- mean-member MSE: the members' MSE at each lead, averaged over members;

each the mean over sequences (and seeds) x1e-3 with a 95 % bootstrap interval over sequences
(``climode.verification.intervals.bootstrap``: sequences resampled, the seeds' rows of a sequence kept
together); per seed in the JSON. Persistence (one member) is scored for reference.

Vid-ODE is deterministic: its single forecast is scored as its own best-of-1 row. It is trained per
seed with ``climode.train`` (its own losses, no adversarial terms, the same updates, batch, width and
data; about twice the others' time per update on one CPU thread), or, with ``--checkpoint``, a run
trained on these balls (1 channel) is scored instead; ``--no-vidode`` leaves it out. With ``--vidode-members
N`` its members are its forecast moved by ``climode.ensemble.perturb_cells`` (``vidode_members``; a
fixed 0.5 pixel per frame steering spread, correlated over 6 pixels, not calibrated).

    .venv/bin/python benchmarks/best_of_n.py --out runs/best-of-n [--steps 300] [--seeds 0,1,2]
        [--members 10] [--checkpoint runs/vidode/model.safetensors | --no-vidode]

Trained models are kept in OUT/runs and reused when run again with the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from climode import ensemble, load_model
from climode.config import DataConfig
from climode.data import collate, open_dataset
from climode.model import ModelConfig, build
from climode.model.baselines import persistence
from climode.training import train as train_model
from climode.verification.intervals import bootstrap

STOCHASTIC = ("svg-fp", "svg-lp", "srvp")
N_IN, N_OUT, FRAME, DATA_SEED = 10, 10, 32, 0


def vidode_members(
    model: torch.nn.Module,
    frames: torch.Tensor,
    times: torch.Tensor,
    query: torch.Tensor,
    members: int,
    generator: torch.Generator,
    speed: float = 0.5,
    length: float = 6.0,
) -> torch.Tensor:
    """``members`` Vid-ODE members (members, B, K, C, H, W): the forecast of ``frames`` (B, L, C, H, W)
    at ``query`` (K,) moved per member by ``climode.ensemble.perturb_cells`` on the pixel grid (steering
    ``speed`` pixels per frame, correlation ``length`` pixels, no intensity change: balls keep their
    brightness), each sequence's seed drawn from ``generator``."""
    det = model(frames, times, query)["frames"].numpy()  # (B, K, C, H, W)
    ages = ensemble.ages(query.numpy(), times.numpy())
    p = ensemble.Perturbation(speed_kmh=speed, growth_per_h=0.0, power=1.0, length_km=length, calibrated_on="fixed")
    out = []
    for b in range(det.shape[0]):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        # rows run downward in an image: a negative row spacing keeps "north" up
        out.append(ensemble.perturb_cells(det[b], ages, -1.0, 1.0, p, members, seed))
    return torch.from_numpy(np.stack(out, 1))


def data_config(train_size: int, test_size: int) -> DataConfig:
    return DataConfig(
        name="bouncing-ball",
        n_in=N_IN,
        n_out=N_OUT,
        frame_size=FRAME,
        train_size=train_size,
        val_size=8,
        test_size=test_size,
        seed=DATA_SEED,
    )


def load_split(config: DataConfig, split: str) -> dict[str, torch.Tensor]:
    """A split as tensors: frames (N, L, 1, 32, 32) and the shared times (L,), (K,)."""
    dataset = open_dataset(config, split)
    batch = collate([dataset[i] for i in range(len(dataset))])
    return {**batch, "times_in": batch["times_in"][0], "times_out": batch["times_out"][0]}


def train_stochastic(name: str, data: dict, args, seed: int, run: Path) -> tuple[torch.nn.Module, dict]:
    """``name`` trained on its ELBO for ``args.steps`` updates (or reloaded from ``run`` when it was
    trained with these settings); returns it (eval mode) and its training record."""
    settings = {
        "model": name,
        "width": args.width,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_size": args.train_size,
        "seed": seed,
    }
    config = ModelConfig(architecture=name, channels=1, width=args.width, time_scale=1.0, frame_shape=[FRAME, FRAME])
    torch.manual_seed(seed)
    model = build(config)
    weights, record_file = run / "model.pt", run / "record.json"
    if weights.is_file() and record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("settings") == settings:
            model.load_state_dict(torch.load(weights, weights_only=True))
            print(f"  {name} seed {seed}: reusing {weights}", file=sys.stderr)
            return model.eval(), record
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    picks = torch.Generator().manual_seed(seed)
    n = len(data["frames_in"])
    log, started = [], time.perf_counter()
    model.train()
    for step in range(1, args.steps + 1):
        pick = torch.randint(n, (args.batch_size,), generator=picks)
        losses = model.elbo(data["frames_in"][pick], data["times_in"], data["frames_out"][pick], data["times_out"])
        optimiser.zero_grad()
        losses["loss"].backward()
        optimiser.step()
        if step == 1 or step % max(args.steps // 5, 1) == 0 or step == args.steps:
            row = {"step": step, **{k: v.item() for k, v in losses.items()}}
            log.append(row)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "step")
            print(f"  {name} seed {seed} update {step}: {shown}", file=sys.stderr)
    record = {"settings": settings, "seconds": time.perf_counter() - started, "log": log}
    run.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    record_file.write_text(json.dumps(record, indent=2))
    return model.eval(), record


def vidode_config(args, seed: int) -> dict:
    solver = {"method": "rk4", "step_size": 1.0}  # the protocols' cpu-small preset
    data = data_config(args.train_size, args.test_size)
    return {
        "model": {"width": args.width, "time_scale": 1.0, "encoder_solver": solver, "decoder_solver": solver},
        "data": {k: getattr(data, k) for k in ("name", "n_in", "n_out", "frame_size", "train_size", "val_size",
                                              "test_size", "seed")},
        "train": {
            "batch_size": args.batch_size,
            "adversarial": False,
            "max_steps": args.steps,
            "max_epochs": 100_000,
            "checkpoint_every": args.steps,
            "val_every": 100_000,
            "seed": seed,
        },
    }  # fmt: skip


def train_vidode(args, seed: int, run: Path) -> tuple[Path, dict]:
    """Vid-ODE trained with ``climode.train`` (reused when ``run`` holds one of these settings)."""
    text = yaml.safe_dump(vidode_config(args, seed), sort_keys=False)
    model, kept = run / "model.safetensors", run / "benchmark-config.yaml"
    if model.is_file() and kept.is_file() and kept.read_text() == text:
        print(f"  vid-ode seed {seed}: reusing {model}", file=sys.stderr)
        return model, json.loads((run / "record.json").read_text())
    started = time.perf_counter()
    train_model(yaml.safe_load(text), run, model="vid-ode", overwrite=True)
    record = {"seconds": time.perf_counter() - started, "updates": args.steps}
    kept.write_text(text)
    (run / "record.json").write_text(json.dumps(record))
    return model, record


def member_mse(members: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """(M, B, K, C, H, W) members and (B, K, C, H, W) truth -> (M, B, K) MSE per member, sequence, lead."""
    return ((members - truth) ** 2).mean((-3, -2, -1)).double().numpy()


def forecast_members(name: str, model, test: dict, members: int, seed: int, chunk: int = 25) -> np.ndarray:
    """(M, N, K) MSE of each member of ``name`` for every test sequence; one member for the deterministic."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    out = []
    for start in range(0, len(test["frames_in"]), chunk):
        frames, truth = (test[k][start : start + chunk] for k in ("frames_in", "frames_out"))
        with torch.no_grad():
            if name in STOCHASTIC:
                drawn = model.sample(frames, test["times_in"], test["times_out"], members, generator)
            elif name == "persistence":
                drawn = persistence(frames, test["times_in"], test["times_out"])[None]
            elif members > 1:  # vid-ode's members
                drawn = vidode_members(model, frames, test["times_in"], test["times_out"], members, generator)
            else:
                drawn = model(frames, test["times_in"], test["times_out"])["frames"][None]
        out.append(member_mse(drawn, truth))
    return np.concatenate(out, 1)


def case_rows(label: str, seed: int | None, mse: np.ndarray) -> list[dict]:
    """Best-of-N and mean-member MSE per sequence and lead, as rows for the bootstrap."""
    M, N, K = mse.shape
    best = mse[mse.mean(2).argmin(0), np.arange(N)]  # the best member per sequence, over all its leads
    stats = {"best-of-N": best, "mean member": mse.mean(0)}
    return [
        {"model": label, "members": M, "seed": seed, "stat": stat, "lead": k + 1, "sequence": n, "mse": float(v[n, k])}
        for stat, v in stats.items()
        for n in range(N)
        for k in range(K)
    ]


def summarise(cases: pd.DataFrame) -> dict:
    """Pooled over seeds (sequence clusters) and per seed: mean, lo, hi per model, stat and lead (and
    over all leads)."""
    frame = cases.assign(mse=cases["mse"] * 1e3)
    pooled = bootstrap(frame, "mse", ["model", "stat", "lead"], cluster="sequence")
    overall = bootstrap(frame, "mse", ["model", "stat"], cluster="sequence")
    seeded = frame.dropna(subset=["seed"]).astype({"seed": int})
    per_seed = bootstrap(seeded, "mse", ["model", "seed", "stat", "lead"], cluster="sequence") if len(seeded) else None
    records = lambda df: [] if df is None else json.loads(df.to_json(orient="records"))
    return {"by_lead": records(pooled), "all_leads": records(overall), "by_seed_and_lead": records(per_seed)}


def table(summary: dict, order: list[str], members: dict[str, int]) -> str:
    """Markdown: a row per model and statistic (one for a single-member model), a column per lead."""
    by_lead = pd.DataFrame(summary["by_lead"])
    overall = pd.DataFrame(summary["all_leads"])
    leads = sorted(by_lead["lead"].unique())
    cell = lambda r: f"{r['mean']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"
    lines = [
        "| model | statistic | " + " | ".join(f"lead {k}" for k in leads) + " | all leads |",
        "|---|---|" + "---|" * (len(leads) + 1),
    ]
    for model in order:
        n = members.get(model, 1)
        for stat in ("best-of-N", "mean member") if n > 1 else ("best-of-N",):
            rows = by_lead[(by_lead["model"] == model) & (by_lead["stat"] == stat)].set_index("lead")
            if rows.empty:
                continue
            total = overall[(overall["model"] == model) & (overall["stat"] == stat)].iloc[0]
            cells = [cell(rows.loc[k]) for k in leads] + [cell(total)]
            label = f"best-of-{n}" if stat == "best-of-N" else f"mean of {n} members"
            label = label if n > 1 else "its one forecast (best-of-1)"
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/best-of-n"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=300, help="updates per model and seed")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam (the papers: SVG 2e-3, SRVP 3e-4)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--train-size", type=int, default=400)
    p.add_argument("--test-size", type=int, default=50)
    p.add_argument("--members", type=int, default=10, help="N, members per sequence")
    p.add_argument("--models", default=",".join(STOCHASTIC))
    p.add_argument("--checkpoint", type=Path, help="a Vid-ODE model.safetensors trained on these balls to score")
    p.add_argument("--no-vidode", action="store_true", help="leave Vid-ODE out (default: train it per seed)")
    p.add_argument(
        "--vidode-members",
        type=int,
        default=0,
        help="N Vid-ODE members (climode.ensemble.perturb_cells on its forecast); default its one forecast",
    )
    args = p.parse_args()
    # small convolutions: on a busy 2-core machine two threads ran 3-5x slower than one
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.checkpoint and args.no_vidode:
        p.error("give --checkpoint or --no-vidode, not both")
    train_vidode_too = not (args.checkpoint or args.no_vidode)
    seeds = [int(s) for s in args.seeds.split(",")]
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(STOCHASTIC))
    if unknown:
        p.error(f"--models takes {', '.join(STOCHASTIC)}; got {', '.join(unknown)}")
    started = time.perf_counter()
    config = data_config(args.train_size, args.test_size)
    train, test = load_split(config, "train"), load_split(config, "test")
    rows, records = case_rows("persistence", None, forecast_members("persistence", None, test, 1, 0)), {}
    vidode_n = args.vidode_members or 1
    vidode = "vid-ode" if vidode_n == 1 else f"vid-ode ({vidode_n} members)"
    for seed in seeds:
        for name in models:
            tic = time.perf_counter()
            run = args.out / "runs" / f"{name}-seed{seed}"
            model, records[f"{name} seed {seed}"] = train_stochastic(name, train, args, seed, run)
            mse = forecast_members(name, model, test, args.members, seed)
            rows += case_rows(name, seed, mse)
            best = mse[mse.mean(2).argmin(0), np.arange(mse.shape[1])].mean()
            print(f"{name} seed {seed}: MSE x1e-3 best-of-{args.members} {1e3 * best:.3f}, mean member "
                  f"{1e3 * mse.mean():.3f} ({time.perf_counter() - tic:.0f} s)", file=sys.stderr)  # fmt: skip
        if train_vidode_too:
            path, records[f"vid-ode seed {seed}"] = train_vidode(args, seed, args.out / "runs" / f"vid-ode-seed{seed}")
            model = load_model(path).model.eval()
            rows += case_rows(vidode, seed, forecast_members("vid-ode", model, test, args.vidode_members, seed))
    if args.checkpoint:
        loaded = load_model(args.checkpoint)
        if loaded.model.config.channels != 1:
            p.error(
                f"--checkpoint {args.checkpoint} forecasts {loaded.model.config.channels} channels, not the balls' 1"
            )
        records["vid-ode"] = {"checkpoint": str(args.checkpoint), "training": loaded.card.training}
        rows += case_rows(vidode, None, forecast_members("vid-ode", loaded.model.eval(), test, args.vidode_members, 0))
    cases = pd.DataFrame(rows)
    summary = summarise(cases)
    order = ["persistence", *models] + ([] if args.no_vidode else [vidode])
    header = (
        f"Bouncing balls (3 balls, {FRAME} x {FRAME}, {N_IN} in, {N_OUT} out), {args.test_size} held-out sequences; "
        f"{', '.join(models)} trained {args.steps} updates of batch {args.batch_size} (Adam lr {args.lr:g}, width "
        f"{args.width}, {args.train_size} training sequences) per seed ({', '.join(map(str, seeds))}), N = "
        f"{args.members} members each. MSE x1e-3, mean over sequences and seeds with a 95 % bootstrap interval "
        f"over sequences; best-of-N: the member with the lowest MSE over the sequence's {N_OUT} targets. "
        f"{(time.perf_counter() - started) / 60:.1f} min on {torch.get_num_threads()} torch thread(s)."
    )
    members = cases.groupby("model")["members"].max().to_dict()
    text = f"# Best-of-N on bouncing balls\n\n{header}\n\n{table(summary, order, members)}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "best_of_n.md").write_text(text)
    result = {"settings": vars(args) | {"out": str(args.out), "checkpoint": str(args.checkpoint)}, "header": header,
              "training": records, **summary}  # fmt: skip
    (args.out / "best_of_n.json").write_text(json.dumps(result, indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
