"""climode.verification.skill: cases drawn as designed, every score exact for a perfect forecast, tables that bold
only a separated winner."""

import cftime
import numpy as np
import pandas as pd
import pytest

from climode.data.synthetic import make_corpus
from climode.verification import skill

DESIGN = skill.Design(leads=(3.0, 6.0, 12.0), off_grid=(), fractions=(0.5,), gaps_h=(3.0, 12.0), step_h=3.0)


@pytest.fixture(scope="module")
def world():
    ds, tracks = make_corpus(3, 4, small=True)
    ds = ds[["U850", "V850", "PSL"]]
    parse = lambda s: cftime.DatetimeNoLeap(*(int(x) for x in (s[:4], s[5:7], s[8:10], s[11:13])))
    tracks = skill.track_hours(tracks.assign(time=[parse(s) for s in tracks["time"]]), ds.time.values[0])
    return ds, tracks


def test_cases_ask_what_the_design_says_on_frames_of_the_record(world):
    ds, tracks = world
    hours = skill.record_hours(ds)
    cases = skill.draw_cases(skill.storm_periods(tracks), hours, 2, seed=3, design=DESIGN)
    assert len(cases) >= 4
    assert cases == skill.draw_cases(skill.storm_periods(tracks), hours, 2, seed=3, design=DESIGN)
    frames = set(np.round(hours, 6))
    for case in cases:
        end = case.inputs[-1]
        assert np.all(np.diff(case.inputs) >= 3) and np.all(np.diff(case.inputs) <= 12)
        assert list(case.queries) == sorted(case.queries)
        assert all(round(q, 6) in frames for q in (*case.inputs, *case.queries))
        ahead = [
            (q - end, lead) for q, task, lead in zip(case.queries, case.tasks, case.leads) if task == "extrapolation"
        ]
        assert [a for a, _ in ahead] == [lead for _, lead in ahead] == list(DESIGN.leads)
        inside = [q for q, task in zip(case.queries, case.tasks) if task == "interpolation"]
        assert all(case.inputs[-2] < q < end for q in inside)
        track = tracks[tracks.storm == case.storm]
        assert track.hours.min() <= end <= track.hours.max() - 12


def test_a_perfect_forecast_scores_perfectly_and_persistence_does_not(world):
    ds, tracks = world
    case = skill.draw_cases(skill.storm_periods(tracks), skill.record_hours(ds), 1, seed=0, design=DESIGN)[0]
    at = {round(h, 6): k for k, h in enumerate(skill.record_hours(ds))}
    truth = ds.isel(time=[at[round(q, 6)] for q in case.queries]).load()
    last = ds.isel(time=[at[round(case.inputs[-1], 6)]] * len(case.queries)).load()
    rows = pd.DataFrame(
        skill.score_case(case, {"perfect": truth, "persistence": last}, truth, tracks[tracks.storm == case.storm], 0)
    )
    ahead = rows[rows.task == "extrapolation"].pivot_table(index=["metric", "lead"], columns="method", values="value")
    perfect, persisted = ahead["perfect"].unstack("lead"), ahead["persistence"].unstack("lead")
    for metric in ("rmse_U850", "rmse_V850", "rmse_PSL", "track_km", "psl_min_abs_hpa", "wind_max_abs_ms"):
        assert np.allclose(perfect.loc[metric], 0, atol=1e-6), metric
        assert persisted.loc[metric, 12.0] > 0, metric
    for metric in ("sharpness_wind", "sharpness_PSL", "hit"):
        assert np.allclose(perfect.loc[metric], 1), metric
    assert np.allclose(perfect.loc["fss_deficit10"].dropna(), 1) and perfect.loc["fss_deficit10"].notna().any()
    assert persisted.loc["track_km"].is_monotonic_increasing  # a steadily moving storm left behind


def test_tables_bold_a_method_only_where_its_interval_separates():
    summary = pd.DataFrame(
        {
            "task": "extrapolation",
            "metric": "rmse_PSL",
            "lead": [3.0, 3.0, 6.0, 6.0],
            "method": ["vid-ode", "persistence"] * 2,
            "mean": [1.0, 2.0, 1.0, 1.2],
            "lo": [0.8, 1.8, 0.7, 0.9],
            "hi": [1.2, 2.2, 1.3, 1.5],
        }
    )
    text = skill.tables(summary)
    assert "| 3 | **1 [0.8, 1.2]** | 2 [1.8, 2.2] |" in text
    assert "| 6 | 1 [0.7, 1.3] | 1.2 [0.9, 1.5] |" in text
    flipped = skill.tables(summary.assign(metric="csi_wind17"))
    assert "| 3 | 1 [0.8, 1.2] | **2 [1.8, 2.2]** |" in flipped


def test_paired_differences_are_taken_case_by_case_and_resampled_by_storm():
    """Each method less the model on the same case: a method worse by a steady 0.5 on every case has a
    difference of 0.5 with a zero-width interval, though its own scores vary widely across cases."""
    rng = np.random.default_rng(0)
    rows = []
    for case in range(12):
        own = rng.uniform(0.5, 5.0)
        for method, value in (("vid-ode", own), ("persistence", own + 0.5), ("cliper", np.nan)):
            rows.append(
                {"case": case, "storm": f"S{case // 3}", "task": "extrapolation", "lead": 3.0}
                | {"method": method, "metric": "rmse_PSL", "value": value}
            )
    paired = skill.paired(pd.DataFrame(rows), n=200)
    row = paired.set_index("method").loc["persistence"]
    assert row["mean"] == pytest.approx(0.5) and row["lo"] == pytest.approx(0.5) and row["hi"] == pytest.approx(0.5)
    assert row["n_cases"] == 12 and row["n_clusters"] == 4 and "cliper" not in set(paired["method"])
    assert "vid-ode" not in set(paired["method"])


def test_native_baselines_run_on_the_inputs_own_grid():
    from climode import load_model
    from climode.forecasting import bundled_checkpoint

    model = load_model(bundled_checkpoint())
    native = skill.forecasters(model, ("persistence",), native=True)
    assert native["vid-ode"] is model and native["persistence"].card.grid == {"resolution": None}
    assert skill.forecasters(model, ("persistence",))["persistence"].card.grid == model.card.grid
