"""The CAM5 pipeline as a user runs it: synthetic storms -> prepare_cam5 -> shards -> trainer."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import HANG, ROOT, assert_user_error, command_error, run_module

from climode.checkpoint import Card, save_model
from climode.cli.evaluate import main as evaluate_main
from climode.cli.prepare import main as prepare_main
from climode.cli.train import main as train_main
from climode.data.plan import plan_samples, sample_span
from climode.data.sampling import SamplingConfig
from climode.data.shards import Shards, leakage, shared_frames
from climode.data.shards import read_tracks as stored_tracks
from climode.data.synthetic import write_corpus
from climode.geo.detect import detect, match
from climode.geo.tiles import parse_tiles
from climode.io.fields import open_fields
from climode.io.tracks import read_tracks
from climode.model import ModelConfig, build

GEOCAT = ROOT.parent / "shared" / "data" / "geocat_storm_500hPa"


def prepare(*args, timeout=HANG):
    return subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "prepare_cam5.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out, storms=5, seed=0, small=True)
    return out


@pytest.mark.slow
def test_detector_finds_the_synthetic_storms(corpus):
    fields = open_fields(sorted(corpus.glob("*.nc")))
    truth = read_tracks(corpus / "tracks.csv", calendar="noleap")
    scores = match(truth, detect(fields))
    assert scores["hit_rate"] >= 0.9, scores
    assert scores["mean_error_km"] < 100, scores


@pytest.mark.slow
def test_the_verb_prepares_in_this_process_and_returns_the_plan(corpus, tmp_path):
    """``climode.prepare`` is the command as a function: the same options as keywords, the plan back;
    ``workers=0`` runs on dask's threads here. Names that ``mapping`` adds are kept with ``variables``."""
    import climode

    out = tmp_path / "tiles.zarr"
    tracks = corpus / "tracks.csv"
    kw = dict(variables="U850,V850", mapping="PSL=PSL", tracks=tracks, max_gap=12, samples_per_storm=1, workers=0)
    plan = climode.prepare(f"{corpus}/*.nc", out, fractions=(1.0, 0.0, 0.0), **kw)
    store = xr.open_zarr(out)
    assert len(plan) == store.sizes["sample"] > 0 and set(plan.split) == {"train"}
    assert list(store.variable.values) == ["U850", "V850", "PSL"] and store.attrs["tracks_file"] == str(tracks)
    assert (plan.storm.to_numpy() == store.storm.values).all()
    with pytest.raises(climode.ClimodeError, match="exists; pass --overwrite"):
        climode.prepare(f"{corpus}/*.nc", out, **kw)


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory):
    """45 days of storms: the last 10 % of the record (the test block) still holds some."""
    out = tmp_path_factory.mktemp("long")
    write_corpus(out, storms=40, seed=0, small=True)
    return out


@pytest.mark.slow
def test_coexisting_storms_are_split_by_time_blocks(long_corpus):
    """Storms share the one tile and their times: held-out samples are a buffer of one sample's
    longest span (16 steps x 4 gaps + 5 targets) after the training ones, never on their frames."""
    ds = open_fields(sorted(long_corpus.glob("*.nc")))
    tracks = read_tracks(long_corpus / "tracks.csv", calendar="noleap")
    sampling = SamplingConfig()
    plan = plan_samples(ds, parse_tiles("east-pacific-atlantic"), tracks, sampling, 8, 0)
    steps = np.stack([np.concatenate((r.inputs, r.targets)) for r in plan.itertuples()])
    split = plan.split.to_numpy()
    assert set(split) == {"train", "test"}  # the 36-step validation block is shorter than the buffer
    assert shared_frames(split, plan.tile.to_numpy(), steps, 0) == {"test": 0.0}
    assert steps[split == "test"].min() - steps[split == "train"].max() > sample_span(sampling) == 69
    assert plan[split == "train"].storm.nunique() >= 20 and plan[split == "test"].storm.nunique() >= 3
    by_storm = np.where(plan.storm.isin(["SYN0020", "SYN0021"]), "test", "train")  # the old kind of split
    assert shared_frames(by_storm, plan.tile.to_numpy(), steps, sampling.n_in)["test"] > 0.5


@pytest.fixture(scope="module")
def prepared(long_corpus, tmp_path_factory):
    store = tmp_path_factory.mktemp("prepared") / "tiles.zarr"
    result = prepare(
        "--input",
        f"{long_corpus}/*.nc",
        "--out",
        store,
        "--tracks",
        long_corpus / "tracks.csv",
        "--max-gap",
        12,
        "--samples-per-storm",
        1,
        "--workers",
        1,
    )
    return store, result


@pytest.mark.slow
def test_prepare_then_train(long_corpus, prepared, tmp_path):
    store, result = prepared
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "CommClosedError" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata: no warning from xarray
        shards = xr.open_zarr(store)
    assert shards.frames.dtype == np.float32 and shards.frames.shape[1:] == (10, 3, 60, 160)
    assert shards.frames.data.chunksize[0] == 1
    # time blocks a buffer apart (4 gaps of up to 12 h and 5 targets every 3 h: 21 steps): no shared frame
    hours, split = shards.hours.values, shards.split.values
    assert set(split) == {"train", "val", "test"} and leakage(shards) == {"val": 0.0, "test": 0.0}
    assert hours[split == "val"].min() - hours[split == "train"].max() > 3 * 21
    assert hours[split == "test"].min() - hours[split == "val"].max() > 3 * 21
    gaps = np.diff(hours[:, :5], axis=1)
    assert gaps.min() >= 3 and gaps.max() <= 12 and (np.diff(hours[:, 4:], axis=1) == 3).all()
    stats = json.loads(shards.attrs["normalisation"])
    train = shards.frames.values[shards.split.values == "train"]
    assert stats["PSL"]["min"] == pytest.approx(float(np.nanmin(train[:, :, 2])))
    assert shards.attrs["calendar"] == "noleap"
    stored = stored_tracks(shards)
    truth = read_tracks(long_corpus / "tracks.csv", calendar="noleap")
    assert len(stored) == len(truth) and set(stored.storm) == set(truth.storm)
    assert np.allclose(stored.lat, truth.lat) and (np.diff(stored.hours[stored.storm == "SYN0001"]) == 3).all()
    sample = Shards(store, "train")[0]
    assert sample["times_in"][0] == 0 and np.nanmin(sample["frames_in"]) >= -1e-6
    assert np.nanmax(sample["frames_in"]) <= 1 + 1e-6
    run = run_module("climode.train", "--dataset", "cam5", "--data", store, "--out", tmp_path / "run", "--max-steps", 2)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(not GEOCAT.is_dir(), reason="../shared/data/geocat_storm_500hPa is not beside the checkout")
def test_real_geocat_files_are_read_with_flags_and_tiled(tmp_path):
    store = tmp_path / "geocat.zarr"
    result = prepare(
        "--input",
        GEOCAT / "U500storm.cdf",
        GEOCAT / "V500storm.cdf",
        "--variables",
        "U850,V850",
        "--vars",
        "U850=u,V850=v",
        "--time-in-hours",
        "--reference-time",
        "1996-01-05 00:00:00",
        "--basins",
        "10:200",
        "--resolution",
        2.5,
        "--n-out",
        3,
        "--samples-per-storm",
        6,
        "--out",
        store,
        "--workers",
        1,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shards = xr.open_zarr(store, consolidated=False)
    assert shards.frames.shape[1:] == (8, 2, 24, 64)
    assert shards.lon.values.min() > 200 and np.isnan(shards.frames.values).any()
    assert set(np.diff(shards.hours.values[:, 5:], axis=1).ravel()) == {6.0}


def _no_store_left(tmp_path, name):
    return not [p for p in tmp_path.iterdir() if name in p.name]


@pytest.mark.slow
def test_bad_inputs_give_one_error_and_no_partial_store(corpus, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    common = ("--out", out, "--workers", 1)
    hours = ("--time-in-hours", "--reference-time", "1996-01-05")
    # the pipeline script as a user runs it, once; the other cases in this process (no start-up)
    assert_user_error(prepare("--input", GEOCAT / "U500storm.cdf", *common), "no units", "--time-in-hours")
    command_error(
        capsys,
        prepare_main,
        ["--input", GEOCAT / "U500storm.cdf", *hours, *common],
        "V850",
        "data variables there: reftime, u",
    )
    command_error(capsys, prepare_main, ["--input", f"{corpus}/*.nc", "--basins=-60:20", *common], "outside the grid")
    far = tmp_path / "far.csv"
    pd.DataFrame(
        {
            "storm": ["X"] * 3,
            "time": ["2000-08-02 00:00:00", "2000-08-02 03:00:00", "2000-08-02 06:00:00"],
            "lat": [-30.0] * 3,
            "lon": [30.0] * 3,
        }
    ).to_csv(far, index=False)
    command_error(
        capsys, prepare_main, ["--input", f"{corpus}/*.nc", "--tracks", far, *common], "no training samples", "storm"
    )
    first = sorted(corpus.glob("*.nc"))[0]
    copy = tmp_path / "copy.nc"
    copy.write_bytes(first.read_bytes())
    command_error(capsys, prepare_main, ["--input", first, copy, *common], "overlap in time")
    empty = tmp_path / "empty.nc"
    ds = xr.open_dataset(first, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    ds["PSL"][:] = np.nan
    ds.to_netcdf(empty)
    command_error(capsys, prepare_main, ["--input", empty, *common], "PSL", "NaN")
    assert _no_store_left(tmp_path, "out.zarr")


@pytest.mark.slow
def test_gridded_projected_fields_train_without_code(tmp_path):
    """A few weeks of a radar-like variable on an x/y grid: every window, split by time blocks."""
    rng = np.random.default_rng(0)
    times = xr.date_range("2001-06-01", periods=120, freq="6h", use_cftime=True, calendar="standard")
    y, x = np.arange(24) * 2000.0, np.arange(40) * 2000.0
    rain = rng.gamma(0.5, 2.0, (120, 24, 40)).astype(np.float32)
    ds = xr.Dataset({"rain": (("time", "y", "x"), rain, {"units": "mm h-1"})}, coords={"time": times, "y": y, "x": x})
    source = tmp_path / "radar.nc"
    ds.to_netcdf(source)
    run = run_module(
        "climode.train",
        "--dataset",
        "gridded",
        "--data",
        source,
        "--vars",
        "precip=rain",
        "--out",
        tmp_path / "run",
        "--max-steps",
        2,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    shards = xr.open_zarr(tmp_path / "run" / "data.zarr", consolidated=False)
    assert shards.frames.shape[1:] == (10, 1, 24, 40) and "x_coord" in shards
    hours = shards.hours.values
    by_split = {s: hours[shards.split.values == s] for s in ("train", "val", "test")}
    # 120 steps cannot hold three blocks of 48-h gaps (a sample spans up to 37 steps): the record is
    # too short for 80/10/10, so the gaps shrink to one step (a 9-step span, the buffer) and the
    # split gives up the test block to keep validation, and the run says so
    assert "a short record (120 steps of 6 h): input gaps up to 1 steps" in run.stderr
    assert "time blocks train 90 %, val 10 %" in run.stderr
    assert len(by_split["val"]) and not len(by_split["test"])
    assert by_split["val"].min() - by_split["train"].max() > 6 * 9  # the buffer between the blocks
    assert len(by_split["train"]) == 108 - 9 - 9  # every window of the training block, less the buffer
    ckpt = run.stdout.strip().splitlines()[-1]
    scored = run_module("climode.evaluate", "--checkpoint", ckpt, "--split", "val")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "lead (hours)" in scored.stdout


def _with_attrs(store, tmp_path, **attrs):
    """A copy of the shard store with some of its attributes changed."""
    import shutil

    import zarr

    copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(str(copy), mode="r+")
    for key, value in attrs.items():
        group.attrs[key] = value
    return copy


@pytest.mark.slow
def test_evaluation_normalises_with_the_models_own_statistics(prepared, tmp_path, capsys):
    """A model scores the same on a store whatever statistics the store carries: it sees the data scaled
    as it was trained (the bundled model's statistics are not this store's)."""
    store, _ = prepared
    stats = json.loads(xr.open_zarr(store, consolidated=False).attrs["normalisation"])
    other = {v: {**s, "min": s["min"] - 7.0, "max": s["max"] * 1.5} for v, s in stats.items()}
    skewed = _with_attrs(store, tmp_path, normalisation=json.dumps(other))
    scores = []
    for data in (store, skewed):
        out = tmp_path / f"scores-{len(scores)}.json"
        bundled = "climode/weights/cam5-synthetic.safetensors"
        argv = ["--checkpoint", str(ROOT / bundled), "--dataset", "cam5", "--data", str(data), "--json", str(out)]
        assert evaluate_main(argv) == 0, capsys.readouterr().err[-3000:]  # in-process: no start-up
        scores.append(json.loads(out.read_text())["methods"])
    assert scores[0]["vid-ode"]["mse"] == scores[1]["vid-ode"]["mse"]
    assert scores[0]["persistence"]["rmse_PSL"] == scores[1]["persistence"]["rmse_PSL"]


@pytest.mark.slow
def test_init_from_the_bundled_model_starts_at_its_loss(prepared, tmp_path):
    """Fine-tuning starts from the saved weights, architecture and normalisation: the first logged loss is
    the bundled model's own loss on that batch (every training sample in one batch, every target)."""
    import yaml

    from climode import load_model
    from climode.config import Config, TrainConfig
    from climode.data import collate
    from climode.forecasting import bundled_checkpoint
    from climode.training.task import ForecastTask

    store, _ = prepared
    config = tmp_path / "tune.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "cam5", "queries": "all", "hide": 0.0},
                "train": {
                    "batch_size": 64,
                    "adversarial": False,
                    "log_every": 1,
                    "ema": 0.0,
                    "max_epochs": 1,
                    "val_every": 10,
                },
            }
        )
    )
    run = tmp_path / "tuned"
    result = run_module(
        "climode.train", "--config", config, "--data", store, "--out", run, "--init-from", "bundled", "--max-steps", 1
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "starting from the weights of" in result.stderr
    logged = pd.read_csv(run / "logs" / "metrics.csv")["train/loss"].dropna().iloc[0]
    bundled = load_model(bundled_checkpoint())
    samples = Shards(store, "train", bundled.card.normalisation)
    batch = collate([samples[i] for i in range(len(samples))])
    task = ForecastTask(Config(model=bundled.model.config, train=TrainConfig(adversarial=False, ema=0.0)), bundled.card)
    task.model.load_state_dict(bundled.model.state_dict())
    _, losses, _ = task.forecast(batch)
    assert logged == pytest.approx(float(task.generator_loss(losses)), rel=1e-4)
    tuned = load_model(run / "model.safetensors")
    assert tuned.card.normalisation == bundled.card.normalisation
    assert tuned.model.config == bundled.model.config


@pytest.mark.slow
def test_init_from_refuses_what_is_not_a_model_of_these_data(prepared, tmp_path, capsys):
    store, _ = prepared
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    coarse = _with_attrs(store, tmp_path, resolution=2.0)
    balls = save_model(
        tmp_path / "balls.safetensors",
        build(ModelConfig(channels=1, width=4)),
        Card(variables=("intensity",), time_units="frames", normalisation={}),
    )
    cases = [
        (["--data", store, "--init-from", text], [str(text), "not a safetensors"]),
        (["--data", store, "--init-from", balls], ["intensity", "U850, V850, PSL"]),
        (["--data", coarse, "--init-from", "bundled"], ["1-degree grid", "2-degree grid"]),
    ]
    out = tmp_path / "run"
    for k, (args, fragments) in enumerate(cases):
        if k == 0:  # as a user runs it; the others in this process, without the start-up
            assert_user_error(run_module("climode.train", "--dataset", "cam5", "--out", out, *args), *fragments)
        else:
            command_error(capsys, train_main, ["--dataset", "cam5", "--out", out, *args], *fragments)
        assert not out.exists()
