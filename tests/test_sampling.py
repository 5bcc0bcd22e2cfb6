import numpy as np
import pytest
import xarray as xr

from climode.data.sampling import SamplingConfig, draw, draw_many
from climode.data.stats import compute_stats
from climode.normalise import Stats


def test_gaps_mode_irregular_inputs_then_regular_targets():
    cfg = SamplingConfig()  # 5 in, gaps 3..48 h, 5 targets every 3 h, 3-hourly storage
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(200):
        inputs, observed, targets = draw(80, cfg, rng)
        assert len(inputs) == 5 and observed.all() and len(targets) == 5
        assert inputs.min() >= 0 and targets.max() < 80
        gap = np.diff(inputs) * 3
        assert gap.min() >= 3 and gap.max() <= 48
        assert list(np.diff(targets)) == [1] * 4 and targets[0] == inputs[-1] + 1
        gaps.extend(gap)
    assert len(set(gaps)) > 10  # really irregular


def test_between_adds_a_target_inside_each_input_gap_first():
    cfg = SamplingConfig(n_out=15, step_h=1.0, min_gap_h=3.0, lead_step_h=1.0, between=True)
    assert cfg.targets == 19
    rng = np.random.default_rng(1)
    offsets = []
    for _ in range(100):
        inputs, _, targets = draw(200, cfg, rng)
        inside, after = targets[:4], targets[4:]
        assert (inputs[:-1] < inside).all() and (inside < inputs[1:]).all()
        assert list(after) == list(inputs[-1] + np.arange(1, 16))
        offsets.extend((inside - inputs[:-1]) / np.diff(inputs))
    assert min(offsets) < 0.2 and max(offsets) > 0.8  # anywhere inside the gap


def test_too_short_period_gives_nothing_and_seed_reproduces():
    cfg = SamplingConfig()
    assert draw(5, cfg, np.random.default_rng(0)) is None
    assert draw_many(5, cfg, 3, np.random.default_rng(0)) == []
    a = draw_many(100, cfg, 4, np.random.default_rng(7))
    b = draw_many(100, cfg, 4, np.random.default_rng(7))
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[2], y[2]) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("rate", [1.0, 0.75, 0.5, 0.25])
def test_rate_mode_observes_that_fraction(rate):
    cfg = SamplingConfig(rate=rate, window_h=57)
    rng = np.random.default_rng(1)
    fractions = []
    for _ in range(300):
        inputs, observed, targets = draw(60, cfg, rng)
        assert len(inputs) == cfg.input_frames == 20 and observed[-1]
        assert list(np.diff(inputs)) == [1] * 19
        fractions.append(observed[:-1].mean())
    assert np.mean(fractions) == pytest.approx(rate, abs=0.03)


def test_stats_out_of_core_and_exact_inverse():
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "U850": (("t", "y", "x"), rng.normal(0, 10, (6, 8, 8))),
            "PSL": (("t", "y", "x"), rng.normal(101000, 900, (6, 8, 8))),
        }
    ).chunk({"t": 1})
    ds["U850"][0, 0, 0] = np.nan
    minmax = compute_stats(ds, ["U850", "PSL"], "minmax")
    assert minmax.to_dict()["PSL"]["max"] == pytest.approx(float(ds.PSL.max()))
    z = compute_stats(ds, ["U850", "PSL"], "zscore")
    assert z.to_dict()["U850"]["mean"] == pytest.approx(float(np.nanmean(ds.U850.values)))
    assert Stats.from_dict(z.to_dict()) == z  # the JSON form a store and a checkpoint keep
    frames = np.stack([ds.U850.values, ds.PSL.values], 1).astype(np.float32)  # (t, C, y, x)
    for stats in (minmax, z):
        scaled = stats.normalise(frames, ["U850", "PSL"])
        restored = stats.denormalise(scaled, ["U850", "PSL"])
        assert np.allclose(restored, frames, rtol=1e-6, atol=1e-6 * 101000, equal_nan=True)
    scaled = minmax.normalise(frames, ["U850", "PSL"])
    assert np.nanmin(scaled) == pytest.approx(0, abs=1e-6) and np.nanmax(scaled) == pytest.approx(1, abs=1e-6)


def test_short_periods_still_give_irregular_samples_within_bounds():
    cfg = SamplingConfig()
    rng = np.random.default_rng(3)
    for n_steps in (10, 14, 25):
        samples = draw_many(n_steps, cfg, 5, rng)
        assert len(samples) == 5
        for inputs, _, targets in samples:
            assert inputs[0] >= 0 and targets[-1] < n_steps
            assert np.all(np.diff(inputs) >= 1) and np.all(np.diff(inputs) <= 16)
    assert draw(9, cfg, rng) is None  # 4 gaps of 3 h and 5 targets need 10 steps


@pytest.mark.slow
def test_query_sampler_draws_random_query_sets_and_hides_in_between_inputs():
    from climode.data import BouncingBall, QuerySampler

    data = BouncingBall("train", 8, n_in=6, n_out=5, frame_size=16, continuous=True)
    sampler = QuerySampler(data, hide=1.0, seed=3)
    counts, hidden_seen = set(), False
    for _ in range(6):
        for i in range(len(data)):
            original, sample = data[i], sampler[i]
            assert np.array_equal(sample["times_in"], original["times_in"])
            hidden = np.isnan(sample["frames_in"]).all(axis=(1, 2, 3))
            assert not hidden[0] and not hidden[-1]  # the first and the last input stay
            assert hidden.any()  # hide = 1: always some in-between input asked for
            asked = set(sample["times_out"].tolist())
            assert set(original["times_in"][hidden].tolist()) <= asked
            extrapolated = sorted(t for t in asked if t > original["times_in"][-1])
            assert set(asked - set(original["times_in"].tolist())) <= set(original["times_out"].tolist())
            assert np.all(np.diff(sample["times_out"]) > 0)
            counts.add(len(extrapolated))
            hidden_seen |= hidden.sum() > 1
    assert len(counts) > 2 and hidden_seen  # the number of leads varies, and of hidden frames
    between = data[0]["times_out"][data[0]["times_out"] < 5]  # one target inside each of the 5 input gaps
    assert np.array_equal(np.floor(between), np.arange(5)) and np.all(between % 1 > 0)
    again = QuerySampler(data, hide=1.0, seed=3)[2]
    first = QuerySampler(data, hide=1.0, seed=3)[2]
    assert np.array_equal(again["times_out"], first["times_out"])  # seeded


def test_query_sampler_takes_a_rectangle_of_cells_from_the_inputs_and_keeps_the_targets():
    from climode.data import BouncingBall, QuerySampler

    data = BouncingBall("train", 16, n_in=6, n_out=3, frame_size=30)
    sampler = QuerySampler(data, hide=0.0, seed=1, missing=1.0)
    frames_seen, sides = set(), set()
    for i in range(len(data)):
        original, sample = data[i], sampler[i]
        gone = np.isnan(sample["frames_in"][:, 0])  # (L, H, W)
        assert gone[-1].any() and not gone.all(axis=(1, 2)).any()  # the last input loses cells, no frame all
        rows, cols = np.nonzero(gone[-1])
        box = gone[-1][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and 3 <= box.shape[0] <= 15 and 3 <= box.shape[1] <= 15  # one rectangle, 1/10-1/2 a side
        sides.add(max(box.shape))
        assert np.array_equal(sample["frames_in"][~gone[:, None]], original["frames_in"][~gone[:, None]])
        assert np.isfinite(sample["frames_out"]).all()  # the targets keep those cells
        frames_seen.add(int(gone.any(axis=(1, 2)).sum()))
    assert frames_seen == {1, 6}  # from the last input only, or from every input
    assert max(sides) > 10  # larger than a third of a side: up to a quarter of the frame
    assert not np.isnan(QuerySampler(data, hide=0.0, seed=1)[0]["frames_in"]).any()  # missing = 0: none


def test_leakage_is_the_share_of_held_out_targets_seen_in_training():
    """Targets of a held-out sample at a (tile, time) that a training sample holds, as an input or a
    target, are leaked; another tile or another time is not."""
    import xarray as xr

    from climode.data.shards import leakage

    hours = np.array([[0, 3, 6, 9], [6, 9, 12, 15], [0, 3, 6, 9], [20, 23, 26, np.nan]], dtype=float)
    store = xr.Dataset(
        {
            "split": ("sample", ["train", "test", "test", "val"]),
            "tile": ("sample", ["a", "a", "b", "a"]),
            "hours": (("sample", "step"), hours),
        },
        attrs={"n_in": 2},
    )
    # test targets: (a, 12), (a, 15) not seen, (b, 6), (b, 9) other tile; val: (a, 26) not seen
    assert leakage(store) == {"test": 0.0, "val": 0.0}
    store["hours"][1, 2] = 9.0  # a test target at (a, 9): a training sample's target
    store["hours"][3, 2] = 3.0  # a val target at (a, 3): a training sample's input
    assert leakage(store) == {"test": 0.25, "val": 1.0}
