"""climode.normalise: the typed statistics and the wrapper that puts them around a model."""

import numpy as np
import pytest
import torch

from climode.checkpoint import Card
from climode.model import ModelConfig, build
from climode.normalise import Normalised, Stats

JSON = {
    "U850": {"method": "zscore", "mean": 2.0, "std": 8.0},
    "PSL": {"method": "minmax", "min": 95000.0, "max": 103000.0},
}


def test_stats_keep_their_json_form_and_refuse_an_unknown_method():
    stats = Stats.from_dict(JSON)
    assert stats.to_dict() == JSON
    assert Card(variables=("U850", "PSL"), normalisation=JSON).normalisation == stats
    with pytest.raises(ValueError, match="'PSL'.*'none'"):
        Stats.from_dict({"PSL": {"method": "none"}})
    with pytest.raises(KeyError, match="V850"):
        stats.normalise(np.zeros((1, 2, 1, 1)), ["U850", "V850"])


def test_the_wrapper_takes_and_returns_physical_units():
    """Persistence through the wrapper returns the physical input, although the network inside only
    ever sees scaled frames (in [0, 1] for min-max PSL, z-scores for U850)."""
    torch.manual_seed(0)
    seen = []

    class Persist(torch.nn.Module):
        def forward(self, frames, times, query):
            seen.append(frames)
            return {"frames": frames[:, -1:].expand(-1, len(query), -1, -1, -1)}

    physical = torch.stack([torch.randn(1, 3, 4, 4) * 8 + 2, 95000 + 8000 * torch.rand(1, 3, 4, 4)], 2)
    net = Normalised(Persist(), Stats.from_dict(JSON), ["U850", "PSL"])
    out = net(physical, torch.arange(3.0), torch.tensor([4.0, 5.0]))["frames"]
    assert torch.allclose(out[:, 0], physical[:, -1], rtol=1e-6)
    assert 0 <= float(seen[0][:, :, 1].min()) and float(seen[0][:, :, 1].max()) <= 1
    assert abs(float(seen[0][:, :, 0].mean())) < 1


def test_a_real_model_in_the_wrapper_forecasts_in_physical_units():
    model = build(ModelConfig(channels=2, width=4)).eval()
    net = Normalised(model, Stats.from_dict(JSON), ["U850", "PSL"])
    frames = torch.stack([torch.zeros(1, 3, 16, 16) + 2, torch.full((1, 3, 16, 16), 99000.0)], 2)
    with torch.no_grad():
        out = net(frames, torch.arange(3.0), torch.tensor([3.0]))["frames"]
        scaled = model(net.scale_inputs(frames), torch.arange(3.0), torch.tensor([3.0]))["frames"]
    assert torch.allclose(out, net.physical(scaled)) and 9.0e4 < float(out[..., 1, :, :].mean()) < 1.1e5
