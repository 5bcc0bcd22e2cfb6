"""The CLIPER-style track baseline of climode.verification.cliper: exact cases, the regression, fallbacks, files."""

import cftime
import numpy as np
import pandas as pd
import pytest

from climode.data.synthetic import make_corpus
from climode.errors import ClimodeError
from climode.geo.storms import great_circle_km
from climode.verification.cliper import PREDICTORS, Cliper, track_hours


def _straight(storm: str, lat0: float, lon0: float, dlat: float, dlon: float, hours: np.ndarray) -> pd.DataFrame:
    """A track at constant velocity (dlat, dlon degrees per hour), lon wrapped to 0..360."""
    return pd.DataFrame({"storm": storm, "time": hours, "lat": lat0 + dlat * hours, "lon": (lon0 + dlon * hours) % 360})


def test_track_hours_of_every_time_type():
    assert track_hours([6.0, 12.0, 3.0]).tolist() == [0.0, 6.0, -3.0]
    days = np.array(["2000-02-28T18:00", "2000-03-01T00:00"], dtype="datetime64[m]")
    assert track_hours(days).tolist() == [0.0, 30.0]  # standard calendar: 29 February counts
    noleap = [cftime.DatetimeNoLeap(2000, 2, 28, 18), cftime.DatetimeNoLeap(2000, 3, 1, 0)]
    assert track_hours(noleap).tolist() == [0.0, 6.0]
    assert track_hours(["2000-02-28 18:00:00", "2000-03-01 00:00:00"]).tolist() == [0.0, 6.0]  # CAM5's noleap
    assert track_hours(["2000-02-28 18:00:00", "2000-03-01 00:00:00"], calendar="standard").tolist() == [0.0, 30.0]


def test_straight_tracks_are_forecast_exactly_across_the_prime_meridian():
    hours = np.arange(0.0, 97.0, 6.0)
    rng = np.random.default_rng(0)
    train = pd.concat(
        [
            _straight(
                f"S{k}",
                rng.uniform(10, 30),
                rng.uniform(250, 340),
                rng.uniform(-0.1, 0.2),
                rng.uniform(-0.4, 0.3),
                hours,
            )
            for k in range(6)
        ]
    )
    model = Cliper.fit(train, leads_h=[6, 12, 24, 48], step_h=6)
    test = _straight("T", 20.0, 350.0, 0.05, 0.25, np.arange(0.0, 121.0, 6.0))  # passes 360 -> 0 at 40 h
    history = test[test["time"] <= 54].rename(columns={"time": "time_h"})
    forecast = model.predict(history)
    truth = _straight("T", 20.0, 350.0, 0.05, 0.25, 54.0 + forecast["lead_h"].to_numpy())
    assert forecast["lead_h"].tolist() == [6.0, 12.0, 24.0, 48.0]
    np.testing.assert_allclose(forecast["lat"], truth["lat"], atol=1e-8)
    np.testing.assert_allclose(forecast["lon"], truth["lon"], atol=1e-8)
    assert forecast["lon"].iloc[-1] == pytest.approx(15.5)


def _recurrent_tracks(coefficients: np.ndarray, storms: int, steps: int, seed: int) -> pd.DataFrame:
    """12-hourly tracks whose next 12 h displacement is exactly ``predictors @ coefficients`` (7, 2)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(storms):
        lat = list(rng.uniform(10, 25) + np.cumsum(np.r_[0, rng.uniform(-1, 1, 2)]))
        lon = list(rng.uniform(260, 320) + np.cumsum(np.r_[0, rng.uniform(-2, 1, 2)]))
        for _ in range(steps):
            x = np.array(
                [1, lat[-1] - lat[-2], lon[-1] - lon[-2], lat[-2] - lat[-3], lon[-2] - lon[-3], lat[-1], lon[-1]]
            )
            dlat, dlon = x @ coefficients
            lat.append(lat[-1] + dlat)
            lon.append(lon[-1] + dlon)
        rows.append(pd.DataFrame({"storm": f"R{k}", "time": 12.0 * np.arange(len(lat)), "lat": lat, "lon": lon}))
    return pd.concat(rows, ignore_index=True)


def test_regression_recovers_a_known_linear_dependence():
    truth = np.array([[0.5, -3.0], [0.7, 0.05], [0.1, 0.6], [-0.2, 0.0], [0.0, 0.2], [0.01, 0.02], [-0.002, 0.008]])
    tracks = _recurrent_tracks(truth, storms=20, steps=8, seed=1)
    assert tracks["lon"].between(200, 359).all()  # no wrap: the lon predictor is the track's lon
    model = Cliper.fit(tracks, leads_h=[12, 24], step_h=12)
    np.testing.assert_allclose(model.coefficients[0], truth, atol=1e-8)
    assert model.coefficients.shape == (2, len(PREDICTORS), 2) and model.samples[0] > model.samples[1]
    future = _recurrent_tracks(truth, storms=1, steps=6, seed=7)  # 24 h ahead is linear in the predictors too
    forecast = model.predict(future.iloc[:5].rename(columns={"time": "time_h"}))
    np.testing.assert_allclose(
        forecast[["lat", "lon"]].to_numpy(), future.iloc[[5, 6]][["lat", "lon"]].to_numpy(), atol=1e-6
    )


def test_short_histories_keep_their_motion_or_position():
    hours = np.arange(0.0, 61.0, 6.0)
    model = Cliper.fit(
        pd.concat([_straight(f"S{k}", 15 + k, 300 - 5 * k, 0.1, -0.2 - 0.05 * k, hours) for k in range(4)]),
        leads_h=[6, 12],
        step_h=6,
    )
    six_hours = pd.DataFrame({"time_h": [0.0, 3.0, 6.0], "lat": [10.0, 10.0, 11.0], "lon": [359.0, 359.5, 1.0]})
    forecast = model.predict(six_hours, leads_h=[12])  # the last 6 h's motion, held: +2 deg lat, +4 deg lon
    assert forecast[["lead_h", "lat", "lon"]].values.tolist() == [[12.0, 13.0, 5.0]]
    one = model.predict(pd.DataFrame({"time_h": [0.0], "lat": [10.0], "lon": [100.0]}))
    assert one[["lat", "lon"]].values.tolist() == [[10.0, 100.0], [10.0, 100.0]]
    with pytest.raises(ValueError, match="lead 18 h was not fitted"):
        model.predict(six_hours, leads_h=[18])


def test_saved_model_reloads_the_same(tmp_path):
    hours = np.arange(0.0, 61.0, 6.0)
    model = Cliper.fit(
        pd.concat([_straight(f"S{k}", 15 + k, 300 - 5 * k, 0.1 * k, -0.2, hours) for k in range(4)]),
        leads_h=[6, 12],
        step_h=6,
    )
    again = Cliper.load(model.save(tmp_path / "cliper.json"))
    assert again.leads_h == model.leads_h and again.samples == model.samples and again.step_h == 6
    np.testing.assert_array_equal(again.coefficients, model.coefficients)
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ClimodeError, match="not a CLIPER model"):
        Cliper.load(tmp_path / "other.json")


def test_fit_refuses_leads_the_tracks_do_not_reach():
    with pytest.raises(ClimodeError, match="reach lead 48 h"):
        Cliper.fit(_straight("S", 15, 300, 0.1, -0.2, np.arange(0.0, 61.0, 6.0)), leads_h=[48], step_h=6)


def _errors_km(model: Cliper, tracks: pd.DataFrame, leads: list[float]) -> dict[str, np.ndarray]:
    """Mean great-circle error (km) per lead of CLIPER and of position persistence, from every fix with
    24 h of history whose leads the track reaches."""
    errors = {"cliper": [], "persistence": []}
    for _, storm in tracks.groupby("storm"):
        hours, lat, lon = track_hours(storm["time"].to_numpy()), storm["lat"].to_numpy(), storm["lon"].to_numpy()
        for i in np.flatnonzero((hours >= 24) & (hours + max(leads) <= hours[-1])):
            forecast = model.predict(
                pd.DataFrame({"time_h": hours[: i + 1], "lat": lat[: i + 1], "lon": lon[: i + 1]}), leads
            )
            at = [int(np.flatnonzero(np.isclose(hours, hours[i] + lead))[0]) for lead in leads]
            errors["cliper"].append(great_circle_km(forecast["lat"], forecast["lon"], lat[at], lon[at]))
            errors["persistence"].append(great_circle_km(lat[i], lon[i], lat[at], lon[at]))
    return {name: np.mean(values, 0) for name, values in errors.items()}


@pytest.mark.slow
def test_beats_position_persistence_on_held_out_synthetic_storms():
    tracks = make_corpus(8, seed=0, small=True)[1]
    storms = sorted(tracks["storm"].unique())
    leads = [6.0, 12.0, 24.0]
    model = Cliper.fit(tracks[tracks["storm"].isin(storms[:5])], leads_h=leads, step_h=3)
    errors = _errors_km(model, tracks[tracks["storm"].isin(storms[5:])], leads)
    print({name: np.round(values, 1).tolist() for name, values in errors.items()})
    assert (errors["cliper"] < 0.5 * errors["persistence"]).all(), errors
