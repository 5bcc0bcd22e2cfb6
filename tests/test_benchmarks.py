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


@pytest.mark.slow
@pytest.mark.parametrize("settings", _load("run").SETTINGS)
def test_every_benchmark_setting_builds_and_forecasts(settings):
    config = _load("run")._model_config(settings)
    model = build(config).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 5, 3, 16, 16), torch.arange(5.0), torch.tensor([5.0, 6.0]))["frames"]
    assert out.shape == (1, 2, 3, 16, 16)
    if settings == "official":  # one Euler step per input gap of 0.1 model units
        assert config.encoder_solver.method == "euler" and config.encoder_solver.step_size * config.time_scale == 1


@pytest.mark.slow
def test_fault_tolerance_script_runs_its_trials(tmp_path):
    """One kill of each kind (a training run, a forecast's writes, an append), as the docs' table runs ten."""
    import json
    import subprocess
    import sys

    from conftest import HANG

    out = tmp_path / "ft.json"
    argv = ["--train", 1, "--writes", 1, "--swaps", 1, "--appends", 1, "--steps", 6, "--every", 2, "--json", out]
    script = ROOT / "benchmarks" / "fault_tolerance.py"
    result = subprocess.run([sys.executable, script, *map(str, argv)], capture_output=True, text=True, timeout=HANG)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [len(results[k]) for k in ("train", "writes", "swaps", "appends")] == [1, 1, 1, 1]
    assert all(v for v in results["summary"].values() if isinstance(v, bool)), results  # every row, to see why
