import json
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import assert_user_error, run_module, state_dependent
from safetensors import safe_open
from safetensors.torch import save_file

from climode import ClimodeError, load_model, save_model
from climode.checkpoint import Card
from climode.cli.forecast import main as forecast_main
from climode.model import ModelConfig, SolverConfig, VidODE

META = Card(
    variables=("U850", "V850", "PSL"),
    normalisation={v: {"method": "minmax", "min": 0.0, "max": 1.0} for v in ("U850", "V850", "PSL")},
    time_units="hours",
)


def small_model():
    s = SolverConfig("euler", 0.5)
    return state_dependent(
        VidODE(ModelConfig(channels=3, width=4, time_scale=3.0, encoder_solver=s, decoder_solver=s))
    ).eval()


def test_round_trip_keeps_weights_config_and_metadata(tmp_path):
    model = small_model()
    path = save_model(tmp_path / "m.safetensors", model, META)
    ckpt = load_model(path)
    assert ckpt.variables == ["U850", "V850", "PSL"]
    assert ckpt.card.time_units == "hours"
    assert ckpt.model.config == model.config
    frames, times = torch.rand(1, 3, 3, 16, 16), torch.tensor([0.0, 3.0, 9.0])
    with torch.no_grad():
        assert torch.equal(
            model(frames, times, torch.tensor([12.0]))["frames"],
            ckpt.model(frames, times, torch.tensor([12.0]))["frames"],
        )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_checkpoint_with_pickled_payload_is_refused(tmp_path):
    marker = tmp_path / "executed"
    payload = Payload()
    payload.marker = marker
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": small_model().state_dict(), "climode": META, "extra": payload}, path)
    with pytest.raises(ClimodeError, match="pickled"):
        load_model(path)
    assert not marker.exists()
    result = run_module("climode.evaluate", "--checkpoint", path)
    assert_user_error(result, "pickled", str(path))
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(ClimodeError, match="junk.safetensors"):
        load_model(path)
    with pytest.raises(ClimodeError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


def test_the_card_stores_the_model_config_once_and_reads_older_headers(tmp_path):
    card = Card(variables=("U850",), time_units="hours", config={"data": {"n_in": 5}})
    path = save_model(tmp_path / "m.safetensors", VidODE(ModelConfig(channels=1, width=4)), card)
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["climode"])
    assert header["model"]["channels"] == 1 and "model" not in header["config"]
    assert load_model(path).card == card
    older = {**header, "config": {"data": {"n_in": 5}, "model": header["model"]}}
    assert Card.from_header(older) == card  # the second model config is left out


def test_a_header_without_the_decoder_key_is_the_papers_layout_and_a_new_one_keeps_its_own(tmp_path):
    """Files written before issue 32 have no ``decoder`` key: they hold the paper's Conv-Decoders, and
    load as that layout with every weight in place; a model saved now keeps the layout it was built with."""
    old = VidODE(ModelConfig(channels=1, width=4, decoder="paper"))
    path = save_model(tmp_path / "old.safetensors", old, Card(variables=("U850",), time_units="hours"))
    weights = {k: v.contiguous() for k, v in old.state_dict().items()}
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["climode"])
    del header["model"]["decoder"]
    save_file(weights, str(path), metadata={"climode": json.dumps(header)})
    loaded = load_model(path).model
    assert loaded.config.decoder == "paper"
    for name, value in old.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    new = save_model(tmp_path / "new.safetensors", VidODE(ModelConfig(channels=1, width=4)), Card())
    assert ModelConfig().decoder == "light" and load_model(new).model.config.decoder == "light"


# ------------------------------------------------------------------ checkpoints refused at load (issue's battery)


def written(
    tmp_path: Path,
    header: Callable[[dict], object] = lambda h: None,
    tensors: Callable[[dict], object] = lambda t: None,
    model: torch.nn.Module | None = None,
    name: str = "bad.safetensors",
) -> Path:
    """A checkpoint of ``model`` (default ``small_model()``) with ``META``, its JSON header and its
    tensors first changed in place by ``header`` and ``tensors``."""
    model = model or small_model()
    values, weights = META.header(model), {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    header(values)
    tensors(weights)
    save_file(weights, str(tmp_path / name), metadata={"climode": json.dumps(values)})
    return tmp_path / name


def refused(path: Path, *fragments: str) -> str:
    """``load_model(path)`` raises one line naming the file and every fragment; returns the line."""
    with pytest.raises(ClimodeError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def poisoned(value: float, *positions: int) -> Callable[[dict], None]:
    """A change of a state dict that puts ``value`` in its tensors at ``positions`` (in the model's order)."""

    def change(weights: dict) -> None:
        for i in positions:
            tensor = weights[list(weights)[i]]
            tensor[(0,) * tensor.ndim] = value

    return change


def pickled(path: Path) -> Path:
    """A bare pickle (protocol 4, which torch warns about) of a training checkpoint with a payload."""
    payload = Payload()
    payload.marker = path.parent / "executed"
    model = small_model()
    state = {"state_dict": model.state_dict(), "climode": META.header(model), "extra": payload}
    path.write_bytes(pickle.dumps(state, protocol=4))
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_first_bad_tensor(tmp_path, value):
    names = list(small_model().state_dict())
    path = written(tmp_path, tensors=poisoned(value, 7, 3))
    message = refused(path, "non-finite weights", f"tensor {names[3]} holds 1 NaN or Inf")
    assert names[7] not in message


def test_a_training_checkpoint_gets_the_same_checks(tmp_path):
    model = small_model()
    weights = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    newer = {**META.header(model), "format": "climode-vidode-9"}
    torch.save({"state_dict": weights, "climode": newer}, tmp_path / "newer.ckpt")
    refused(tmp_path / "newer.ckpt", "climode-vidode-9", "upgrade climode")
    first, tensor = next(iter(weights.items()))
    tensor[(0,) * tensor.ndim] = float("nan")
    torch.save({"state_dict": weights, "climode": META.header(model)}, tmp_path / "nan.ckpt")
    refused(tmp_path / "nan.ckpt", "non-finite weights", f"tensor {first[len('model.') :]} holds")


@pytest.mark.parametrize(
    ("statistics", "fragments"),
    [
        (
            {"method": "minmax", "min": 101000.0, "max": 101000.0},
            ["PSL", "min 101000, max 101000", "max not above min"],
        ),
        ({"method": "minmax", "min": 103000.0, "max": 93000.0}, ["PSL", "max not above min"]),
        ({"method": "zscore", "mean": 101000.0, "std": 0.0}, ["PSL", "std 0", "std not above 0"]),
        ({"method": "zscore", "mean": 101000.0, "std": float("nan")}, ["PSL", "std not finite"]),
        ({"method": "minmax", "min": -float("inf"), "max": 103000.0}, ["PSL", "min not finite"]),
    ],
    ids=["min-equals-max", "max-below-min", "zero-std", "nan-std", "inf-min"],
)
def test_statistics_that_cannot_scale_are_refused_naming_the_variable_and_statistic(tmp_path, statistics, fragments):
    path = written(tmp_path, header=lambda h: h["normalisation"].update(PSL=statistics))
    refused(path, "the normalisation of", *fragments)


def test_statistics_missing_for_a_variable_or_unreadable_are_refused(tmp_path):
    refused(written(tmp_path, header=lambda h: h["normalisation"].pop("V850")), "no statistics for V850")
    path = written(tmp_path, header=lambda h: h["normalisation"]["PSL"].pop("max"))
    refused(path, "its card is invalid", "'max'")


def test_a_newer_format_is_refused_for_what_it_is(tmp_path):
    path = written(tmp_path, header=lambda h: h.update(format="climode-vidode-2", ensemble={"members": 4}))
    refused(path, "was written in format climode-vidode-2, newer than this climode reads (climode-vidode-1): upgrade")


@pytest.mark.parametrize(
    "change", [lambda h: h.update(format="someone-else-1"), lambda h: h.pop("format")], ids=["other", "none"]
)
def test_a_header_of_another_format_or_none_is_refused(tmp_path, change):
    refused(written(tmp_path, header=change), "not one climode reads (climode-vidode-1)")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda h: h.update(written_by="x", members=4), ["its header", "unknown key(s) members, written_by"]),
        (lambda h: h.pop("time_units"), ["its header", "missing time_units"]),
        (lambda h: h["model"].update(heads=4), ["its model configuration", "unknown key(s) heads"]),
        (lambda h: (h["model"].pop("width"), h["model"].update(heads=4)), ["unknown key(s) heads; missing width"]),
        (lambda h: h["model"].update(encoder="transformer"), ["model configuration is invalid", "transformer"]),
    ],
    ids=["unknown-card-keys", "missing-card-key", "unknown-config-key", "unknown-and-missing", "bad-config-value"],
)
def test_header_keys_the_format_does_not_have_are_refused_in_one_line(tmp_path, change, fragments):
    refused(written(tmp_path, header=change), *fragments)


def test_a_header_written_before_the_run_settings_still_loads(tmp_path):
    """The bundled model's header has no channels_last, precision or checkpointing: they default."""
    path = written(
        tmp_path, header=lambda h: [h["model"].pop(k) for k in ("channels_last", "precision", "checkpointing")]
    )
    assert load_model(path).model.config.precision == "float32"


def test_tensors_of_another_width_are_refused_naming_the_first_and_both_shapes(tmp_path):
    s = SolverConfig("euler", 0.5)
    wider = VidODE(ModelConfig(channels=3, width=6, time_scale=3.0, encoder_solver=s, decoder_solver=s))
    path = written(tmp_path, model=wider, header=lambda h: h["model"].update(width=4))
    name, tensor = next(iter(small_model().state_dict().items()))
    found = tuple(wider.state_dict()[name].shape)
    refused(path, f"tensor {name} is {found} in the file, {tuple(tensor.shape)} in the model")


def test_missing_or_unknown_tensors_are_named_in_one_line(tmp_path):
    first = next(iter(small_model().state_dict()))
    path = written(tmp_path, tensors=lambda t: (t.pop(first), t.update({"extra.weight": torch.zeros(2)})))
    refused(path, f"1 missing (first {first}); 1 unknown (first extra.weight)")


def test_a_bare_pickle_is_refused_without_a_warning_or_unpickling(tmp_path):
    path = pickled(tmp_path / "evil.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused(path, "pickled object that is not plain weights", "never executes code")
    assert not caught, [str(w.message) for w in caught]
    assert not (tmp_path / "executed").exists()


@pytest.fixture(scope="module")
def fields(tmp_path_factory) -> Path:
    """Five 3-hourly frames of U850, V850 and PSL on a 24 x 24 one-degree grid, as a forecast takes."""
    times, lat, lon = np.arange(0.0, 15.0, 3.0), np.arange(10.0, 34.0), np.arange(260.0, 284.0)
    rng, dims = np.random.default_rng(0), ("time", "lat", "lon")
    noise = rng.normal(size=(len(times), len(lat), len(lon)))
    ds = xr.Dataset(
        {
            "U850": (dims, 5 * noise, {"units": "m s-1"}),
            "V850": (dims, -5 * noise, {"units": "m s-1"}),
            "PSL": (dims, 101000 + 300 * noise, {"units": "Pa"}),
        },
        coords={
            "time": ("time", times, {"units": "hours since 2000-08-01 00:00:00", "calendar": "noleap"}),
            "lat": lat,
            "lon": lon,
        },
    )
    path = tmp_path_factory.mktemp("fields") / "storm.nc"
    ds.to_netcdf(path)
    return path


BAD = {
    "nan-weights": (lambda d: written(d, tensors=poisoned(float("nan"), 3)), "non-finite weights"),
    "zero-span": (
        lambda d: written(d, header=lambda h: h["normalisation"]["PSL"].update(min=1e5, max=1e5)),
        "the normalisation of PSL",
    ),
    "newer-format": (lambda d: written(d, header=lambda h: h.update(format="climode-vidode-2")), "upgrade climode"),
    "pickled": (lambda d: pickled(d / "evil.ckpt"), "pickled object"),
    "other-width": (
        lambda d: written(
            d, model=VidODE(ModelConfig(channels=3, width=6)), header=lambda h: h["model"].update(width=4)
        ),
        "in the file",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD))
def test_a_forecast_with_a_bad_checkpoint_is_one_error_line_and_writes_nothing(tmp_path, fields, case, capsys):
    make, fragment = BAD[case]
    path = make(tmp_path)
    argv = ["--input", fields, "--times", "15", "--checkpoint", path]
    if case == "pickled":  # as a user runs it; the others in this process, without the start-up
        result = run_module("climode.forecast", *argv, cwd=tmp_path)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert_user_error(result, str(path), fragment)
    else:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            assert forecast_main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err  # nothing else, not even a warning
        assert str(path) in err and fragment in err, err
    assert not list(tmp_path.glob("*forecast*")) and not list(tmp_path.glob(".*"))
    assert not (tmp_path / "executed").exists()


@pytest.mark.slow
def test_the_same_checkpoint_unchanged_forecasts(tmp_path, fields):
    """The control for the test above: its input and checkpoint forecast when nothing is wrong."""
    result = run_module(
        "climode.forecast", "--input", fields, "--times", "15", "--checkpoint", written(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "storm_forecast.nc").is_file()
