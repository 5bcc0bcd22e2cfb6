import os
import subprocess
import sys
import tempfile
from pathlib import Path

# one torch thread per test process, and per command a test runs: `make test` runs two workers on two
# cores, and seeded results do not depend on how many cores the machine has
os.environ["OMP_NUM_THREADS"] = "1"
# decoded videos go to a cache of the test session's own, never the user's ~/.cache/climode
os.environ.setdefault("CLIMODE_CACHE", tempfile.mkdtemp(prefix="climode-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {
        "width": 8,
        "encoder_solver": {"method": "euler", "step_size": 0.5},
        "decoder_solver": {"method": "euler", "step_size": 0.5},
    },
    "data": {"n_in": 5, "n_out": 5, "train_size": 64, "val_size": 8, "test_size": 16},
    "train": {"batch_size": 8, "disc_width": 8, "checkpoint_every": 2},
}


def state_dependent(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its ConvDecoders' output layers given PyTorch's default random weights. Untrained,
    those layers are zero (the model starts near persistence), so the forecast would not depend on the
    state; tests of how times and inputs move the state need it to."""
    from climode.model.decoder import ConvDecoder

    for layer in model.modules():
        if isinstance(layer, ConvDecoder):
            layer.net[-1].reset_parameters()
    return model


class Persist(torch.nn.Module):
    """A stand-in model that repeats the last observed frame: forecasts are then known exactly."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, frames, times, query):
        from climode.model.base import last_observed

        return {"frames": last_observed(frames)[:, None].expand(-1, len(query), -1, -1, -1)}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def storm(tmp_path_factory) -> Path:
    """A folder with storm.nc (a synthetic storm on the bundled model's 1-degree grid, flat U850, V850,
    PSL on time, lat, lon, inputs at 0, 9, 21, 42, 57 h), its truth to 72 h and its track."""
    from climode.data.cases import first_case, write_case
    from climode.data.synthetic import make_corpus

    out = tmp_path_factory.mktemp("storm")
    write_case(out, first_case(*make_corpus(1, 3, small=True), (0, 9, 21, 42, 57), 72))
    return out


def write_config(path: Path, **sections) -> Path:
    """A tiny training config, with sections updated from ``sections``."""
    config = {k: dict(v) for k, v in TINY.items()}
    for name, values in sections.items():
        config[name].update(values)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_config(tmp_path / "tiny.yaml")


# a guard against a hung subprocess, not a speed check: under a load of 10-15 on 2 cores commands ran
# 10x slower than on an idle machine (up to 5 minutes where 30 s is usual), so the guard is an hour
HANG = 3600.0


def run_module(module: str, *args, timeout: float = HANG, **popen) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` as a user would and capture its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **popen.get("env", {})}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=popen.get("cwd", ROOT),
    )


def command_error(capsys, main, argv, *fragments: str) -> str:
    """A command run in this process, ``main(argv)``, exits 2 with one ``error:`` line holding every
    fragment and no traceback (what ``assert_user_error`` checks of a subprocess, without its start-up)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert_user_error(subprocess.CompletedProcess(argv, code, "", err), *fragments)
    return next(line for line in err.splitlines() if line.startswith("error:"))


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """One clear line on stderr naming the problem, no traceback, non-zero exit."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
