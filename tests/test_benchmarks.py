"""The benchmark scripts keep up with the code they measure (they are run by hand, not timed here)."""

import importlib.util

import pytest
import torch
from conftest import ROOT

from climode.model import build


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("settings", _load("run").SETTINGS)
def test_every_benchmark_setting_builds_and_forecasts(settings):
    config = _load("run")._model_config(settings)
    model = build(config).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 5, 3, 16, 16), torch.arange(5.0), torch.tensor([5.0, 6.0]))["frames"]
    assert out.shape == (1, 2, 3, 16, 16)
    if settings == "official":  # one Euler step per input gap of 0.1 model units
        assert config.encoder_solver.method == "euler" and config.encoder_solver.step_size * config.time_scale == 1
