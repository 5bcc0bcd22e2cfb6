"""The paper's evaluation protocols, run end to end: build the data, train every entry with
``climode.train``, score it with ``climode.verification.scoring``, write tables and plots.

``python -m climode.evaluate --protocol NAME --preset cpu-small|paper --out DIR [--seeds 0,1,2]``.
Every learned entry is trained once per training seed (the preset's, three by default) on the
same data; parameter-free entries run once. DIR keeps the data, each run (``runs/<entry>-seed<N>``,
``runs/<entry>``) and the results; a run that stops part way is continued by running the same
command again (finished runs are not trained again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from ..checkpoint import load_model
from ..config import DataConfig
from ..data import DATASETS, open_dataset
from ..data.datasets import DatasetSpec
from ..data.shards import Shards
from ..errors import ClimodeError
from ..io.atomic import replacing
from ..model import LEARNED
from ..training import train
from ..verification.scoring import ModelForecaster, score
from . import report
from .data import storm_shards
from .spec import PRESETS, PROTOCOLS, VIDEO_ENTRIES, Entry, Preset, Protocol

log = logging.getLogger(__name__)
STATE = "protocol.json"


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _config(protocol: Protocol, preset: Preset, entry: Entry, data: dict, seed: int) -> dict:
    solver = {"method": "rk4", "step_size": preset.solver_step}
    return {
        "model": {
            "width": preset.width,
            "time_scale": DATASETS.get_method(protocol.data).time_scale,
            "encoder_solver": solver,
            "decoder_solver": solver,
            **entry.model_config,
        },
        "data": data,
        "train": {
            "batch_size": preset.batch_size,
            "adversarial": False,
            "disc_width": preset.width,
            "max_steps": preset.steps,
            "max_epochs": 100_000,
            "checkpoint_every": max(preset.steps // 4, 1),
            "val_every": 5,
            "seed": seed,
            **entry.train_config,
        },
    }


def _train(entry: Entry, config: dict, run: Path) -> Path:
    """Train one entry in ``run`` (or reuse its model when that run already finished with this config)."""
    model = run / "model.safetensors"
    wanted = run / "protocol-config.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    if model.is_file() and wanted.is_file() and wanted.read_text() == text:
        log.info("  reusing %s", model)
        return model
    try:
        model = train(config, run, model=entry.model, overwrite=True)
    except ClimodeError as exc:
        raise ClimodeError(f"training {entry.label} in {run}: {exc}") from None
    wanted.write_text(text)
    return model


def _check_out(out: Path, name: str, preset: str, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ClimodeError(
            f"--out {out} is a file, not a directory; give a directory for the protocol's data, runs and results"
        )
    state = out / STATE
    record = {"protocol": name, "preset": preset}
    if state.is_file():
        found = json.loads(state.read_text())
        if found != record and not overwrite:
            raise ClimodeError(
                f"{out} holds protocol {found.get('protocol')} with preset {found.get('preset')}; "
                "choose another --out, or pass --overwrite to run into it anyway"
            )
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ClimodeError(
            f"{out} already holds files that are not a protocol run; choose another --out or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    with replacing(state) as tmp:
        tmp.write_text(json.dumps(record))


def _video_data(name: str, preset: Preset, video: dict) -> dict:
    """The data section of a video protocol: ``video`` holds root, task and drop."""
    task = video["task"]
    return {
        "name": name,
        "path": str(video["root"]),
        "task": task,
        "n_in": 5,
        "n_out": 5 if task == "extrapolation" else 4,
        "drop": video.get("drop", 0.0),
        "frame_size": preset.video_size,
        "clips_per_video": preset.clips_per_video,
        "augment": True,
        "seed": preset.seed,
    }


def _datasets(
    protocol: Protocol, preset: Preset, out: Path, data: dict | None = None
) -> tuple[dict, dict[str, object], dict[str, float]]:
    """The training data section and the test sets by setting name (and the rate of each setting);
    ``data`` is the data section when the protocol's data are the user's (video)."""
    if data is not None:
        return data, {"": open_dataset(DataConfig(**data), "test")}, {}
    if DATASETS.get_method(protocol.data).storms:
        train_store = storm_shards(out / "data", preset, protocol.train_rate)
        data = {"name": protocol.data, "path": str(train_store)}
        stats = Shards(train_store, "train").info.normalisation  # every test set scaled as the models were trained
        if protocol.rates is None:
            return data, {"": Shards(train_store, "test")}, {}
        settings = {f"{round(r * 100)} % of frames": r for r in protocol.rates}
        tests = {
            s: Shards(storm_shards(out / "data", preset, r), "test", normalisation=stats) for s, r in settings.items()
        }
        return data, tests, settings
    data = {
        "name": protocol.data,
        "n_in": protocol.n_in,
        "n_out": protocol.n_out,
        "frame_size": 32,
        "train_size": preset.train_size,
        "val_size": max(preset.test_size // 5, 8),
        "test_size": preset.test_size,
        "seed": preset.seed,
    }
    return data, {"": open_dataset(DataConfig(**data), "test")}, {}


def _seeds(seeds: tuple[int, ...] | list[int] | None, preset: Preset) -> tuple[int, ...]:
    seeds = tuple(preset.seeds if seeds is None else seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise ClimodeError(f"training seeds must be distinct integers >= 0, got {list(seeds)}")
    return seeds


def run(
    name: str,
    preset_name: str,
    out: str | Path,
    overwrite: bool = False,
    seeds: tuple[int, ...] | list[int] | None = None,
    root: str | Path | None = None,
    task: str = "extrapolation",
    drop: float = 0.0,
    lpips: Callable | None = None,
) -> list[Path]:
    """Run protocol ``name`` at preset ``preset_name`` into ``out``, every learned entry once per
    training seed (default: the preset's); returns the result files. A video protocol (kth, mgif,
    penn, folder) runs on the dataset under ``root`` for ``task`` ("extrapolation" or
    "interpolation"), with each inner input frame missing with probability ``drop`` (the irregular
    variants). ``lpips`` (``climode.verification.lpips.LPIPS``) scores LPIPS too; else it is n/a."""
    protocol, preset = PROTOCOLS.get_method(name), PRESETS.get_method(preset_name)
    dataset = DATASETS.get_method(protocol.data)
    video = None
    if dataset.video:
        if root is None:
            raise ClimodeError(f"protocol {name} runs on your copy of the dataset: pass --root DIR")
        if task not in VIDEO_ENTRIES:
            raise ClimodeError(f"unknown video task {task!r}; choose one of {', '.join(VIDEO_ENTRIES)}")
        if not 0 <= drop < 1:
            raise ClimodeError(f"--drop is a probability in [0, 1), got {drop}")
        video = _video_data(name, preset, {"root": Path(root).resolve(), "task": task, "drop": drop})
        n_out = video["n_out"]
        title = f"{protocol.title}: {task}, 5 frames in, {n_out} {'between them' if n_out == 4 else 'after them'} out"
        if drop:
            title += f", each inner input missing with probability {drop:g}"
        protocol = dataclasses.replace(protocol, entries=VIDEO_ENTRIES[task], title=title)
    elif root is not None:
        raise ClimodeError(f"--root goes with the video protocols (kth, mgif, penn, folder), not {name}")
    if lpips is not None and video is None:  # refused before any training, not after it
        raise ClimodeError(f"--lpips-weights goes with the video protocols (kth, mgif, penn, folder), not {name}")
    out = Path(out).resolve()  # runs are keyed by absolute paths
    seeds = _seeds(seeds, preset)
    extra = "" if video is None else f" --root {video['path']} --task {task}" + (f" --drop {drop:g}" if drop else "")
    _check_out(out, name + extra, preset_name, overwrite)
    started = time.perf_counter()
    data, tests, rates = _datasets(protocol, preset, out, video)
    runs = [(entry, seed) for entry in protocol.entries for seed in (seeds if entry.model in LEARNED else (None,))]
    results: list[dict] = []
    for i, (entry, seed) in enumerate(runs, 1):
        tic = time.perf_counter()
        what = f"seed {seed}, training {preset.steps} updates" if seed is not None else "no parameters"
        log.info("[%d/%d] %s: %s", i, len(runs), entry.label, what)
        slug = _slug(entry.label) + ("" if seed is None else f"-seed{seed}")
        config = _config(protocol, preset, entry, data, 0 if seed is None else seed)
        model = load_model(_train(entry, config, out / "runs" / slug))
        forecast = ModelForecaster(model.model)
        for setting, test in tests.items():
            scores = score({entry.label: forecast}, test, batch_size=8, storms=dataset.storms, cases=True, lpips=lpips)
            results.append({"setting": setting, "model": entry.label, "seed": seed, "scores": scores})
            mse = scores["methods"][entry.label]["mse"]
            log.info(
                "  %s: MSE x1e-3 by lead %s (%.0f s)",
                setting or "test",
                ", ".join(f"{1e3 * v:.3f}" for v in mse),
                time.perf_counter() - tic,
            )
        written = _write(out, name + extra, preset_name, protocol, results, rates, started, dataset, seeds, len(runs))
    return written


def _write(
    out: Path,
    name: str,
    preset_name: str,
    protocol: Protocol,
    results: list[dict],
    rates: dict,
    started: float,
    dataset: DatasetSpec,
    seeds: tuple[int, ...],
    n_runs: int,
) -> list[Path]:
    minutes = (time.perf_counter() - started) / 60
    preset = PRESETS[preset_name]
    expected = n_runs * max(len(rates), 1)
    adversarial = sorted({e.label for e in protocol.entries if e.train_config.get("adversarial")})
    command = (
        f"python -m climode.evaluate --protocol {name} --preset {preset_name} --out {out} "
        f"--seeds {','.join(map(str, seeds))}"
    )
    header = (
        f"`{command}`: {protocol.title}. Preset {preset_name}: {preset}. Every learned model: "
        f"{preset.steps} updates of batch {preset.batch_size}, width {preset.width}, training seeds "
        f"{', '.join(map(str, seeds))}, adversarial losses "
        + (f"only for {', '.join(adversarial)}" if adversarial else "off for every model")
        + f". {len(results)} of {expected} result(s), {minutes:.1f} min on {torch.get_num_threads()} "
        "torch thread(s)."
    )
    return report.write(
        out,
        protocol.title,
        header,
        results,
        "h" if dataset.storms else "frames",
        rates or None,
        subject=protocol.subject,
        cluster="storm" if dataset.storms else "video" if dataset.video else "sequence",
    )


__all__ = ["PRESETS", "PROTOCOLS", "run"]
