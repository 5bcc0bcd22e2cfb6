"""Every plug-in registry: each name resolves and builds, an unknown name is refused in one line
that lists the choices, an unavailable one says why."""

import numpy as np
import pytest
import torch

from climode.config import DataConfig
from climode.data import DATASETS, open_dataset
from climode.errors import ClimodeError
from climode.model import MODELS, ModelConfig, build
from climode.model.baselines import BASELINES
from climode.protocols.spec import PRESETS, PROTOCOLS
from climode.registry import Registry
from climode.verification.metrics import METRICS

REGISTRIES = {"model": MODELS, "baseline": BASELINES, "metric": METRICS, "dataset": DATASETS, "protocol": PROTOCOLS,
              "preset": PRESETS}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_name_resolves_and_an_unknown_one_is_refused_with_the_choices(kind):
    registry = REGISTRIES[kind]
    assert registry.kind == kind and len(registry) > 1
    assert all(registry.get_method(name) is registry[name] for name in registry)
    with pytest.raises(ClimodeError, match=f"unknown {kind} 'nope'; choose one of {', '.join(registry)}"):
        registry.get_method("nope")


def test_an_unavailable_name_says_why():
    registry = Registry("baseline", {"a": 1}, unavailable={"b": "b needs the b package"})
    with pytest.raises(ClimodeError, match="needs the b package"):
        registry.get_method("b")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_and_forecasts(name):
    model = build(ModelConfig(architecture=name, width=4, n_in=3, frame_shape=[16, 16]))
    out = model(torch.rand(2, 3, 3, 16, 16), torch.tensor([0.0, 1.0, 3.0]), torch.tensor([2.0, 4.0]))
    assert out["frames"].shape == (2, 2, 3, 16, 16) and torch.isfinite(out["frames"]).all()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_opens_or_asks_for_its_data(name):
    config = DataConfig(name=name, n_in=3, n_out=2, frame_size=16, train_size=4, val_size=2, test_size=2)
    if name in ("bouncing-ball", "scenes"):  # generated: they need no data
        dataset = open_dataset(config, "test")
        sample = dataset[0]
        assert len(dataset) == 2 and sample["frames_in"].shape[1:] == sample["frames_out"].shape[1:]
        assert sample["frames_in"].shape[-2:] == (16, 16) and np.isfinite(sample["frames_out"]).all()
    else:
        with pytest.raises(ClimodeError, match="needs data: pass --data"):
            open_dataset(config, "test")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_scores_a_frame_against_itself(name):
    frames = torch.rand(2, 1, 3, 16, 16)
    score = METRICS[name](frames, frames)
    assert score.shape[:2] == (2, 1) and torch.isfinite(score).all()


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_protocol_names_known_models_and_ends_with_its_subject(name):
    protocol = PROTOCOLS[name]
    assert all(entry.model in MODELS for entry in protocol.entries)
    assert protocol.subject == protocol.entries[-1].label
