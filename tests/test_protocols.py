"""The paper's protocols end to end at a tiny size, the scores they report, and every model of
the registry through the trainer and the evaluator."""
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, run_module, write_config

from climode import load_model
from climode.errors import ClimodeError
from climode.model import LEARNED, MODELS
from climode.protocols import report, run, spec
from climode.scoring import storm_scores
from climode.train import main as train_main

# 40 storms: the record's last 10 % (the test block, a sample's span after the training block) holds storms
TINY = spec.Preset(steps=2, width=4, batch_size=4, storms=40, samples_per_storm=1, resolution=4.0, train_size=16,
                   test_size=8)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(spec.PRESETS, "tiny", TINY)
    short = dataclasses.replace(spec.PROTOCOLS["cam5-irregular"], entries=(spec.Entry("Persistence", "persistence"),
                                                                           spec.Entry("Vid-ODE", "vid-ode")))
    monkeypatch.setitem(spec.PROTOCOLS, "cam5-irregular", short)


def test_protocol_writes_tables_and_plots_and_continues_where_it_stopped(tiny, tmp_path, capsys):
    out = tmp_path / "proto"
    paths = run("cam5-irregular", "tiny", out)
    assert [p.name for p in paths] == ["scores.csv", "results.md", "mse_by_lead.png"]
    table = pd.read_csv(out / "scores.csv")
    assert set(table["model"]) == {"Persistence", "Vid-ODE"}
    assert sorted(table["lead"].unique()) == [3.0, 6.0, 9.0, 12.0, 15.0]
    scores = set(table["score"])
    assert {"mse", "psnr", "ssim", "lpips", "rmse_PSL", "track_km", "psl_min_abs_hpa", "wind_max_abs_ms"} <= scores
    assert table[table["score"] == "lpips"]["value"].isna().all()  # never a made-up number
    assert table[table["score"] == "mse"]["value"].notna().all()
    text = (out / "results.md").read_text()
    assert "| Persistence |" in text and "n/a" in text and "MSE x1e-3" in text
    assert "2 of 2 result(s)" in text
    capsys.readouterr()
    run("cam5-irregular", "tiny", out)  # again: the trained entry is reused, not trained again
    assert "reusing" in capsys.readouterr().err
    assert pd.read_csv(out / "scores.csv").equals(table)


def test_protocol_refuses_an_out_of_another_run(tiny, tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ClimodeError, match="not a protocol run"):
        run("cam5-irregular", "tiny", out)
    with pytest.raises(ClimodeError, match="unknown protocol"):
        run("kth", "tiny", tmp_path / "x")
    assert (out / "mine.txt").read_text() == "keep"


def test_protocol_out_that_is_a_file_is_refused_and_kept(tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("keep")
    result = run_module("climode.evaluate", "--protocol", "ablation", "--preset", "cpu-small", "--out", mine,
                        "--overwrite")
    assert_user_error(result, "notes.txt", "not a directory")
    assert mine.read_text() == "keep"


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
    frames = lambda centres, u: np.stack([np.stack([np.full((21, 31), u), np.zeros((21, 31)),
                                                    _storm(lat, lon, 20.0, c)]) for c in centres])
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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_and_evaluates_through_the_commands(name, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", model={"width": 4}, data={"n_in": 3, "n_out": 2, "frame_size": 16,
                                                                         "train_size": 8, "test_size": 4},
                          train={"batch_size": 4, "adversarial": False, "val_every": 100})
    assert train_main(["--config", str(config), "--model", name, "--out", str(tmp_path / "run"),
                       "--max-steps", "2"]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    model = load_model(path)
    assert model.model.config.architecture == name
    assert (sum(p.numel() for p in model.model.parameters()) > 0) == (name in LEARNED)
    result = run_module("climode.evaluate", "--checkpoint", path, "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    assert name in result.stdout


def test_rate_table_means_mse_over_leads_per_model_and_rate():
    rows = [{"setting": s, "model": m, "lead": lead, "samples": 1, "score": "mse", "value": v}
            for s, m, lead, v in [("100 %", "A", 3, 0.001), ("100 %", "A", 6, 0.003), ("50 %", "A", 3, 0.002),
                                  ("50 %", "A", 6, 0.004), ("100 %", "B", 3, 0.0), ("100 %", "B", 6, 0.001),
                                  ("50 %", "B", 3, 0.0005), ("50 %", "B", 6, 0.0005)]]
    text = report.rate_table(pd.DataFrame(rows))
    assert "| model | 100 % | 50 % |" in text
    assert "| A | 2.000 | 3.000 |" in text and "| B | 0.500 | 0.500 |" in text
