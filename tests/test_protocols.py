"""The paper's protocols end to end at a tiny size, the scores they report, and every model of
the registry through the trainer and the evaluator."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, run_module, write_config

from climode import load_model
from climode.cli.evaluate import main as evaluate_main
from climode.cli.train import main as train_main
from climode.errors import ClimodeError
from climode.model import LEARNED, MODELS
from climode.protocols import report, run, spec
from climode.verification.scoring import storm_scores

# 40 storms: the record's last 10 % (the test block, a sample's span after the training block) holds storms
TINY = spec.Preset(
    steps=2,
    width=4,
    batch_size=4,
    storms=40,
    samples_per_storm=1,
    resolution=4.0,
    train_size=16,
    test_size=8,
    seeds=(0, 1),
)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(spec.PRESETS, "tiny", TINY)
    short = dataclasses.replace(
        spec.PROTOCOLS["cam5-irregular"],
        entries=(spec.Entry("Persistence", "persistence"), spec.Entry("Vid-ODE", "vid-ode")),
    )
    monkeypatch.setitem(spec.PROTOCOLS, "cam5-irregular", short)


@pytest.mark.slow
def test_protocol_writes_tables_and_plots_and_continues_where_it_stopped(tiny, tmp_path, caplog):
    out = tmp_path / "proto"
    paths = run("cam5-irregular", "tiny", out)
    assert [p.name for p in paths] == ["scores.csv", "cases.csv", "results.md", "mse_by_lead.png"]
    table = pd.read_csv(out / "scores.csv")
    assert set(table["model"]) == {"Persistence", "Vid-ODE"}
    # the learned model once per training seed, in its own run; the parameter-free one once
    assert set(table[table["model"] == "Vid-ODE"]["seed"]) == {0, 1}
    assert table[table["model"] == "Persistence"]["seed"].isna().all()
    assert {p.name for p in (out / "runs").iterdir() if p.is_dir()} == {"persistence", "vid-ode-seed0", "vid-ode-seed1"}
    cases = pd.read_csv(out / "cases.csv")
    mse = cases[cases["score"] == "mse"]
    # each run's mean per lead is the mean of its cases
    means = mse.groupby(["model", "seed", "lead"], dropna=False)["value"].mean()
    stored = table[table["score"] == "mse"].set_index(["model", "seed", "lead"])["value"]
    np.testing.assert_allclose(means.sort_index().to_numpy(), stored.sort_index().to_numpy(), rtol=1e-9)
    assert mse["storm"].nunique() >= 2  # cases know their storm: the intervals resample storms
    assert sorted(table["lead"].unique()) == [3.0, 6.0, 9.0, 12.0, 15.0]
    scores = set(table["score"])
    assert {"mse", "psnr", "ssim", "lpips", "rmse_PSL", "track_km", "psl_min_abs_hpa", "wind_max_abs_ms"} <= scores
    assert table[table["score"] == "lpips"]["value"].isna().all()  # never a made-up number
    assert table[table["score"] == "mse"]["value"].notna().all()
    text = (out / "results.md").read_text()
    assert "| Persistence |" in text and "n/a" in text and "MSE x1e-3" in text
    assert "3 of 3 result(s)" in text and "training seeds 0, 1" in text and "adversarial losses off" in text
    assert "interval over" in text and "Vid-ODE minus each model" in text and "| seed 0 | seed 1 |" in text
    caplog.clear()
    with caplog.at_level("INFO", logger="climode"):
        run("cam5-irregular", "tiny", out)  # again: the trained entry is reused, not trained again
    assert "reusing" in caplog.text
    assert pd.read_csv(out / "scores.csv").equals(table)


def test_protocol_refuses_an_out_of_another_run(tiny, tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ClimodeError, match="not a protocol run"):
        run("cam5-irregular", "tiny", out)
    with pytest.raises(ClimodeError, match="unknown protocol"):
        run("ucf101", "tiny", tmp_path / "x")
    with pytest.raises(ClimodeError, match="pass --root DIR"):
        run("kth", "tiny", tmp_path / "x")  # a video protocol runs on the user's copy of the dataset
    assert not (tmp_path / "x").exists()
    assert (out / "mine.txt").read_text() == "keep"


@pytest.mark.slow
def test_protocol_out_that_is_a_file_is_refused_and_kept(tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("keep")
    result = run_module(
        "climode.evaluate", "--protocol", "ablation", "--preset", "cpu-small", "--out", mine, "--overwrite"
    )
    assert_user_error(result, "notes.txt", "not a directory")
    assert mine.read_text() == "keep"


@pytest.mark.slow
def test_protocol_command_needs_preset_and_out(tmp_path):
    result = run_module("climode.evaluate", "--protocol", "cam5-irregular", "--out", tmp_path)
    assert result.returncode == 2 and "--preset" in result.stderr and "Traceback" not in result.stderr


def _storm(lat, lon, clat, clon, depth=2000.0):
    """PSL (Pa) of a Gaussian low centred at (clat, clon) on a 1-degree grid."""
    d2 = (lat[:, None] - clat) ** 2 + (lon[None, :] - clon) ** 2
    return 101000.0 - depth * np.exp(-d2 / 8.0)


def test_storm_scores_by_hand():
    """Truth: calm winds and a low moving 1 degree east per lead; forecast: the low kept in place, U850
    off by 2 m/s everywhere. RMSE U850 = 2, V850 = 0; the track error is the distance the low moved;
    the minimum PSL is right; the maximum wind is off by 2 m/s."""
    lat, lon = np.arange(10.0, 31.0), np.arange(280.0, 311.0)
    leads = np.array([3.0, 6.0])
    frames = lambda centres, u: np.stack(
        [np.stack([np.full((21, 31), u), np.zeros((21, 31)), _storm(lat, lon, 20.0, c)]) for c in centres]
    )
    truth, pred = frames([296.0, 297.0], 0.0), frames([295.0, 295.0], 2.0)
    last = frames([295.0], 0.0)[0]
    scores = storm_scores(pred, truth, leads, last, ["U850", "V850", "PSL"], lat, lon, (20.0, 295.0))
    np.testing.assert_allclose(scores["rmse_U850"], [2.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(scores["rmse_V850"], [0.0, 0.0], atol=1e-9)
    one_degree_km = 2 * math.pi * 6371.0 / 360 * math.cos(math.radians(20.0))
    np.testing.assert_allclose(scores["track_km"], [one_degree_km, 2 * one_degree_km], rtol=0.01)
    np.testing.assert_allclose(scores["psl_min_abs_hpa"], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(scores["wind_max_abs_ms"], [2.0, 2.0], rtol=1e-6)


def test_report_cells_scale_mse_and_show_missing_as_na():
    assert report._cell(0.000515, "mse") == "0.515"  # the paper's MSE x1e-3
    assert report._cell(12345.0, "rmse_PSL") == "123.45"  # Pa -> hPa
    assert report._cell(float("nan"), "lpips") == "n/a"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_and_evaluates_through_the_commands(name, tmp_path, capsys):
    config = write_config(
        tmp_path / "c.yaml",
        model={"width": 4},
        data={"n_in": 3, "n_out": 2, "frame_size": 16, "train_size": 8, "test_size": 4},
        train={"batch_size": 4, "adversarial": False, "val_every": 100},
    )
    assert (
        train_main(["--config", str(config), "--model", name, "--out", str(tmp_path / "run"), "--max-steps", "2"]) == 0
    )
    path = capsys.readouterr().out.strip().splitlines()[-1]
    model = load_model(path)
    assert model.model.config.architecture == name
    assert (sum(p.numel() for p in model.model.parameters()) > 0) == (name in LEARNED)
    assert evaluate_main(["--checkpoint", path, "--json", str(tmp_path / "s.json")]) == 0  # in-process: no start-up
    assert name in capsys.readouterr().out


def _cases(diffs: dict[str, float], storms: int = 6, noise: float = 0.0) -> pd.DataFrame:
    """Cases of models A (the subject) and the others, 2 per storm at one lead: A's value is 1 plus
    +-noise alternating by storm, each other model's is A's minus its entry of ``diffs``."""
    rows = []
    for s in range(storms):
        for k in range(2):
            a = 1.0 + noise * (-1) ** s
            rows.append(("", "A", 2 * s + k, f"s{s}", 3.0, "mse", a))
            rows += [("", m, 2 * s + k, f"s{s}", 3.0, "mse", a - d) for m, d in diffs.items()]
    return pd.DataFrame(rows, columns=["setting", "model", "sample", "storm", "lead", "score", "value"])


def test_comparison_claims_a_difference_only_where_its_interval_excludes_zero():
    text = report.comparison(_cases({"B": 0.002, "C": 0.0}, noise=0.001), "A", "mse", "storm")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "2.000 [2.000, 2.000] *" in rows["B"]  # A is higher than B on every case, by 0.002 (x1e3 shown)
    assert "*" not in rows["C"]  # equal on every case: no claim
    noisy = _cases({"B": 0.0}, noise=0.001)
    noisy.loc[noisy["model"] == "B", "value"] = 1.0  # B constant, A above it on half the storms: no claim
    assert "*" not in report.comparison(noisy, "A", "mse", "storm").split("\n")[-2]


def test_seed_means_average_a_case_over_seeds_before_the_interval():
    cases = _cases({"B": 0.0}, storms=3)
    two = pd.concat([cases.assign(seed=0), cases.assign(seed=1, value=cases["value"] + 0.002)])
    means = report.seed_means(two)
    assert len(means) == len(cases)  # one row per case, not per (case, seed)
    np.testing.assert_allclose(means["value"], cases["value"] + 0.001)
    text = report.intervals(means, "mse", "storm")
    assert "interval over 3 storms" in text and "1001.000 [1001.000, 1001.000]" in text


@pytest.mark.slow
def test_protocol_seeds_are_checked():
    with pytest.raises(ClimodeError, match="distinct integers"):
        run("cam5-irregular", "cpu-small", "unused", seeds=[1, 1])
    result = run_module(
        "climode.evaluate", "--protocol", "ablation", "--preset", "cpu-small", "--out", "x", "--seeds", "0,one"
    )
    assert_user_error(result, "--seeds", "'0,one'")


def test_rate_table_means_mse_over_leads_per_model_and_rate():
    rows = [
        {"setting": s, "model": m, "lead": lead, "samples": 1, "score": "mse", "value": v}
        for s, m, lead, v in [
            ("100 %", "A", 3, 0.001),
            ("100 %", "A", 6, 0.003),
            ("50 %", "A", 3, 0.002),
            ("50 %", "A", 6, 0.004),
            ("100 %", "B", 3, 0.0),
            ("100 %", "B", 6, 0.001),
            ("50 %", "B", 3, 0.0005),
            ("50 %", "B", 6, 0.0005),
        ]
    ]
    text = report.rate_table(pd.DataFrame(rows))
    assert "| model | 100 % | 50 % |" in text
    assert "| A | 2.000 | 3.000 |" in text and "| B | 0.500 | 0.500 |" in text
