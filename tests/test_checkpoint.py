import json
import os

import pytest
import torch
from conftest import assert_user_error, run_module, state_dependent
from safetensors import safe_open

from climode import ClimodeError, load_model, save_model
from climode.checkpoint import Card
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
    older = {**header, "config": {"data": {"n_in": 5}, "model": header["model"]}, "written_by": "a later version"}
    assert Card.from_header(older) == card  # the second model config and unknown keys are left out
