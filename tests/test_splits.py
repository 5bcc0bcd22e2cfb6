"""Time-block splits: no (tile, time) is both a held-out target and a training frame, blocks are a
buffer apart, and a store that leaks (prepared before time blocks) is refused."""

import logging

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import assert_user_error, run_module

from climode.data.plan import plan_samples, sample_span, time_blocks
from climode.data.prepare import write_shards
from climode.data.sampling import SamplingConfig, draw
from climode.data.shards import Shards, leakage, open_store, shared_frames
from climode.errors import ClimodeError
from climode.geo.tiles import Tile

HOURLY = SamplingConfig(n_in=2, n_out=2, step_h=1.0, min_gap_h=1.0, max_gap_h=2.0, lead_step_h=1.0)


def _fields(n_steps: int) -> xr.Dataset:
    """An hourly record of one small variable on a projected grid."""
    times = xr.date_range("2001-01-01", periods=n_steps, freq="1h", use_cftime=True, calendar="noleap")
    rain = np.random.default_rng(0).gamma(0.5, 2.0, (n_steps, 4, 6)).astype(np.float32)
    return xr.Dataset(
        {"rain": (("time", "y", "x"), rain, {"units": "mm h-1"})},
        coords={"time": times, "y": np.arange(4.0), "x": np.arange(6.0)},
    )


def _steps(plan: pd.DataFrame) -> np.ndarray:
    return np.stack([np.concatenate((r.inputs, r.targets)) for r in plan.itertuples()])


def _assert_blocks_apart(plan: pd.DataFrame, buffer: int) -> None:
    """No (tile, step) of a held-out sample, input or target, is a training sample's, and blocks are ``buffer``
    steps apart."""
    steps = _steps(plan)
    assert set(shared_frames(plan.split.to_numpy(), plan.tile.to_numpy(), steps, 0).values()) == {0.0}
    used = {s: steps[plan.split.to_numpy() == s] for s in ("train", "val", "test")}
    used = [u for u in used.values() if len(u)]
    for earlier, later in zip(used[:-1], used[1:]):
        assert later.min() - earlier.max() > buffer  # at least `buffer` unused steps between them


def test_sample_span_is_the_widest_a_sample_can_be():
    rng = np.random.default_rng(0)
    for cfg, span in (
        (SamplingConfig(), 16 * 4 + 5),
        (SamplingConfig(rate=0.5), 19 + 5),
        (SamplingConfig(between=True), 69),
        (HOURLY, 2 + 2),
    ):
        assert sample_span(cfg) == span
        drawn = [draw(300, cfg, rng) for _ in range(200)]
        assert max(max(i.max(), t.max()) - i.min() for i, _, t in drawn) <= span


def test_time_blocks_give_up_a_buffer_at_the_end_of_train_and_val():
    assert time_blocks(100, 4) == {"train": range(0, 76), "val": range(80, 86), "test": range(90, 100)}
    assert time_blocks(100, 15) == {"train": range(0, 65), "val": range(80, 80), "test": range(90, 100)}
    assert time_blocks(100, 4, (0.5, 0.0, 0.5)) == {"train": range(0, 46), "val": range(50, 50), "test": range(50, 100)}
    assert time_blocks(100, 4, (1.0, 0.0, 0.0)) == {
        "train": range(0, 100),
        "val": range(100, 100),
        "test": range(100, 100),
    }
    with pytest.raises(ValueError, match="fractions"):
        time_blocks(100, 4, (0.8, 0.1, 0.2))


def test_every_window_of_each_block_without_tracks():
    plan = plan_samples(_fields(100), None, None, HOURLY, 0, 0)
    assert plan.split.value_counts().to_dict() == {"train": 76 - 3, "val": 6 - 3, "test": 10 - 3}
    assert (plan.storm == plan.split).all() and (plan.tile == "grid").all()
    _assert_blocks_apart(plan, sample_span(HOURLY))


def _storm(name: str, start: int, hours: int, lat: float, lon: float) -> pd.DataFrame:
    """A storm that stays in place for ``hours`` steps from hour ``start`` of 2001-01-01 (noleap)."""
    first = cftime.DatetimeNoLeap(2001, 1, 1)
    times = [first + pd.Timedelta(hours=start + h).to_pytimedelta() for h in range(hours)]
    return pd.DataFrame({"storm": name, "time": times, "lat": lat, "lon": lon})


def test_coexisting_storms_in_two_tiles_share_no_frame_across_splits():
    """Storms that overlap in time, in two tiles, some crossing block edges: a storm gives samples to more
    than one split, yet no held-out target is a frame of a training sample of its tile."""
    tiles = [Tile("a", 0.0, 200.0), Tile("b", -60.0, 20.0)]
    tracks = pd.concat(
        [_storm(f"S{i}", 5 * i, 40, 20.0 if i % 2 else -30.0, 250.0 if i % 2 else 60.0) for i in range(36)],
        ignore_index=True,
    )
    plan = plan_samples(_fields(200), tiles, tracks, HOURLY, 6, 0)
    assert set(plan.split) == {"train", "val", "test"} and set(plan.tile) == {"a", "b"}
    assert (plan.groupby("storm").split.nunique() > 1).any()
    _assert_blocks_apart(plan, sample_span(HOURLY))
    old = plan.assign(split=np.where(plan.storm.isin(["S30", "S31"]), "test", "train"))  # a split by storm
    assert shared_frames(old.split.to_numpy(), old.tile.to_numpy(), _steps(old), 2)["test"] > 0.5


def test_empty_held_out_split_is_a_warning_and_no_training_an_error(caplog):
    wide = SamplingConfig(n_in=2, n_out=2, step_h=1.0, min_gap_h=1.0, max_gap_h=20.0, lead_step_h=1.0)
    with caplog.at_level(logging.WARNING, logger="climode.data.plan"):
        plan = plan_samples(_fields(100), None, None, wide, 0, 0)
    assert set(plan.split) == {"train", "test"}
    assert "no val samples: the val block is empty: 10 % of 100 steps less a buffer of 22 steps" in caplog.text
    with pytest.raises(ClimodeError, match="the record has 24 steps of 1 h .* its first 0 steps .* buffer of 22 steps"):
        plan_samples(_fields(24), None, None, wide, 0, 0)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A store of every window of a short hourly record, and what it was written from."""
    ds = _fields(100)
    plan = plan_samples(ds, None, None, HOURLY, 0, 0)
    store = tmp_path_factory.mktemp("splits") / "shards.zarr"
    write_shards(store, ds, None, plan, ["rain"], None, "zscore", None, HOURLY, {})
    return store, ds, plan


def test_a_written_store_has_no_leak_and_opens(written):
    store, _, plan = written
    assert leakage(open_store(store)) == {"val": 0.0, "test": 0.0}
    assert len(Shards(store, "test")) == (plan.split == "test").sum()


def test_a_plan_that_leaks_is_refused_before_anything_is_written(written, tmp_path):
    _, ds, plan = written
    leaky = plan.assign(split=np.where(np.arange(len(plan)) % 10 == 0, "test", plan.split))
    out = tmp_path / "leaky.zarr"
    with pytest.raises(
        ClimodeError,
        match=r"the plan for .*leaky.zarr: .* % of the test targets are frames \(same "
        r"tile and time\) of training samples",
    ):
        write_shards(out, ds, None, leaky, ["rain"], None, "zscore", None, HOURLY, {})
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_store_that_leaks_is_refused_by_training_and_evaluation(written, tmp_path):
    """A store prepared before time blocks (here: training samples relabelled "test") is refused with
    the share it leaks and what to do, wherever it is opened."""
    store, _, _ = written
    shards = xr.open_zarr(store, consolidated=False).load()
    split = shards.split.values.copy()
    split[np.flatnonzero(split == "train")[::10]] = "test"
    leaky = tmp_path / "old.zarr"
    shards.assign(split=("sample", split)).to_zarr(leaky, consolidated=False, zarr_format=2)
    share = leakage(xr.open_zarr(leaky, consolidated=False))["test"]
    assert share > 0.5
    message = (
        f"{leaky}: {100 * share:.3g} % of the test targets are frames (same tile and time) of training "
        "samples; re-prepare it with this version of climode (time-block splits)"
    )
    for split_name in ("train", "test"):
        with pytest.raises(ClimodeError) as refused:
            Shards(leaky, split_name)
        assert str(refused.value) == message
    result = run_module(
        "climode.train", "--dataset", "cam5", "--data", leaky, "--out", tmp_path / "run", "--max-steps", 1
    )
    assert_user_error(result, message)
    assert not (tmp_path / "run" / "model.safetensors").exists()
