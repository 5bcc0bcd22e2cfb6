"""Pipeline throughput and peak memory at two corpus sizes, and detector skill on the larger.

For each size: write a synthetic 0.25-degree corpus (U850/V850/PSL, 3-hourly, noleap) of N
storms, run ``pipelines/prepare_cam5.py`` on it (storms detected on the fields, 1-degree
60 x 160 tiles, LocalCluster of 2 workers), and record wall time, samples (tiles) per second,
input files, and the peak resident memory of the whole process tree (pipeline + dask workers,
sampled every 0.2 s). Then score the detector against the corpus's true tracks.

    .venv/bin/python benchmarks/pipeline.py --storms 10 20 --workdir /tmp/climode-bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psutil
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS of the process tree and of the main process alone, stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak, peak_main = psutil.Process(proc.pid), 0, 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        try:
            peak_main = max(peak_main, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return time.perf_counter() - start, peak, peak_main, err


def one_size(storms: int, workdir: Path, seed: int) -> dict:
    from climode.data.synthetic import write_corpus
    from climode.geo.detect import detect, match
    from climode.io.fields import open_fields
    from climode.io.tracks import read_tracks

    corpus = workdir / f"corpus-{storms}"
    if not (corpus / "tracks.csv").exists():
        write_corpus(corpus, storms=storms, seed=seed)
    files = sorted(corpus.glob("*.nc"))
    store = workdir / f"tiles-{storms}.zarr"
    wall, peak, peak_main, log = run_measured(
        [
            sys.executable,
            str(ROOT / "pipelines" / "prepare_cam5.py"),
            "--input",
            f"{corpus}/*.nc",
            "--out",
            str(store),
            "--overwrite",
            "--workers",
            "2",
        ]
    )
    shards = xr.open_zarr(store, consolidated=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fields = open_fields(files)
        found = detect(fields)
    skill = match(read_tracks(corpus / "tracks.csv", calendar="noleap"), found)
    return {
        "storms": storms,
        "input_files": len(files),
        "input_gb": sum(f.stat().st_size for f in files) / 1e9,
        "time_steps": fields.sizes["time"],
        "samples": shards.sizes["sample"],
        "wall_s": wall,
        "samples_per_s": shards.sizes["sample"] / wall,
        "peak_rss_gib": peak / 2**30,
        "peak_rss_main_gib": peak_main / 2**30,
        "detector": skill,
        "storms_detected": int(found.storm.nunique()),
        "summary": log.strip().splitlines()[-1],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storms", type=int, nargs="+", default=[10, 20])
    p.add_argument("--workdir", default="/tmp/climode-bench")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for storms in args.storms:
        print(json.dumps(one_size(storms, workdir, args.seed)), flush=True)


if __name__ == "__main__":
    main()
