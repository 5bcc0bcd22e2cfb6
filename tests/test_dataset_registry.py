"""A dataset added through its registry entry alone trains and is scored end to end; the dataset contract
is checked when a dataset opens; each named step of ``train()`` does its one thing."""

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY
from lightning.pytorch.utilities.exceptions import SIGTERMException

import climode
from climode import ClimodeError, load_model
from climode.config import Config, DataConfig, config_from_dict, load_config, replace
from climode.data import DATASETS, DatasetInfo, DatasetSpec, open_dataset
from climode.normalise import Stats
from climode.protocols.spec import PROTOCOLS
from climode.training import checks, fitting, rundir, setup
from climode.verification.scoring import score_checkpoint

torch.set_num_threads(1)
SIZE = 8  # cells a side: tiny frames, below the discriminators' minimum (no adversarial terms)


class Toy(torch.utils.data.Dataset):
    """``n`` samples of two channels of random frames at times 0, 1, ...; optionally scaled and placed."""

    def __init__(self, n: int, n_in: int, n_out: int, places: bool = False):
        self.n = n
        stats = (
            Stats.from_dict({v: {"method": "zscore", "mean": 0.0, "std": 2.0} for v in ("a", "b")}) if places else None
        )
        self.info = DatasetInfo(("a", "b"), "hours", n_in, n_out, time_step=3.0, normalisation=stats, places=places)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        frames = rng.random((self.info.n_in + self.info.n_out, 2, SIZE, SIZE)).astype(np.float32)
        times = np.arange(len(frames), dtype=np.float64)
        n = self.info.n_in
        return {"frames_in": frames[:n], "times_in": times[:n], "frames_out": frames[n:], "times_out": times[n:]}

    def place(self, i: int) -> dict:
        return {"storm": f"blob {i % 2}", "lat": None}


def _open_toy(cfg: DataConfig, split: str, normalisation: Stats | None) -> Toy:
    return Toy({"train": 4, "val": 2, "test": 3}[split], cfg.n_in, cfg.n_out, places=cfg.path == "placed")


@pytest.fixture
def toy(monkeypatch):
    """The dataset "toy", registered for the test only."""
    monkeypatch.setitem(DATASETS, "toy", DatasetSpec(_open_toy))
    return DATASETS["toy"]


def _config(**data) -> dict:
    config = {k: dict(v) for k, v in TINY.items()}
    config["model"]["width"] = 4
    config["train"].update(adversarial=False, batch_size=2)
    config["data"].update(n_in=3, n_out=2, **data)
    return config


def test_a_dataset_added_through_the_registry_alone_trains_and_is_scored(tmp_path, toy):
    path = climode.train(_config(), tmp_path / "run", dataset="toy", max_steps=1)
    ckpt = load_model(path)
    assert list(ckpt.variables) == ["a", "b"] and ckpt.card.time_units == "hours"
    assert ckpt.model.config.time_scale == 3.0  # the dataset's time step: the model's time unit
    assert ckpt.card.training["data"] == "toy" and ckpt.card.training["updates"] == 1
    run = yaml.safe_load((tmp_path / "run" / rundir.RUN_FILE).read_text())
    assert run["data"]["name"] == "toy" and run["model"]["channels"] == 2
    scores = score_checkpoint(ckpt, open_dataset(DataConfig(name="toy", n_in=3, n_out=2), "test"))
    assert scores["lead_times"] == [1.0, 2.0] and scores["samples"] == [3, 3]
    assert {"vid-ode", "persistence"} <= set(scores["methods"])
    assert all(np.isfinite(scores["methods"]["vid-ode"]["mse"]))


def test_a_dataset_that_places_its_samples_groups_the_cases_by_them(toy):
    from conftest import Persist

    from climode.verification.scoring import ModelForecaster, score

    test = open_dataset(DataConfig(name="toy", path="placed", n_in=3, n_out=2), "test")
    scores = score({"p": ModelForecaster(Persist())}, test, batch_size=2, storms=True, cases=True)
    assert set(scores["cases"]["storm"]) == {"blob 0", "blob 1"}
    assert "rmse_a" in scores["methods"]["p"]  # scaled data: physical-unit scores too


def test_a_dataset_without_its_info_is_refused_when_it_opens(monkeypatch):
    monkeypatch.setitem(DATASETS, "bare", DatasetSpec(lambda cfg, split, stats: torch.utils.data.TensorDataset()))
    with pytest.raises(TypeError, match="dataset 'bare' .* declares no info: DatasetInfo"):
        open_dataset(DataConfig(name="bare"), "test")
    with pytest.raises(ValueError, match="needs variables"):
        DatasetInfo((), "frames", 3, 2)


def test_every_dataset_declares_its_info_and_its_entry_names_a_built_in_config():
    from climode.configs import builtin_configs

    assert isinstance(open_dataset(DataConfig(n_in=3, n_out=2, test_size=2, frame_size=16), "test").info, DatasetInfo)
    assert all(spec.default_config in (None, *builtin_configs()) for spec in DATASETS.values())
    assert all(protocol.data in DATASETS for protocol in PROTOCOLS.values())  # what a protocol runs on


def test_run_config_reads_the_datasets_default_config_and_guards_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "toy", DatasetSpec(_open_toy, default_config="video"))
    config, clear = rundir.run_config(tmp_path / "new", None, "toy", None, False, True)
    assert config == load_config("video") and not clear
    assert rundir.run_config(tmp_path / "new", None, None, None, False, True)[0] == Config()
    (tmp_path / "old" / "x").mkdir(parents=True)
    with pytest.raises(ClimodeError, match="already holds files"):
        rundir.run_config(tmp_path / "old", None, None, None, False, True)
    with pytest.raises(ClimodeError, match="not a climode run directory"):
        rundir.run_config(tmp_path / "old", None, None, None, True, True)
    with pytest.raises(ClimodeError, match="holds no climode run"):
        rundir.run_config(tmp_path / "old", None, None, "last", False, True)
    rundir.write_run_file(tmp_path / "old", replace(Config(), "data", path=str(tmp_path / "d.npz")))
    assert rundir.run_config(tmp_path / "old", None, None, None, True, True)[1]  # a run: overwrite clears it
    resumed, clear = rundir.run_config(tmp_path / "old", None, None, "last", False, True)
    assert resumed.data.path == str(tmp_path / "d.npz") and not clear
    run_file = tmp_path / "old" / rundir.RUN_FILE
    values = yaml.safe_load(run_file.read_text())
    assert values["model"].pop("decoder") == "light"
    run_file.write_text(yaml.safe_dump(values))  # as a run started before issue 32 wrote it
    assert rundir.run_config(tmp_path / "old", None, None, "last", False, True)[0].model.decoder == "paper"


def test_overridden_refuses_time_spans_for_data_not_prepared_in_the_run_and_a_missing_logger(monkeypatch, toy):
    config = setup.overridden(Config(), {"name": "toy", "n_in": None}, {"max_steps": 3})
    assert config.data.name == "toy" and config.train.max_steps == 3
    with pytest.raises(ClimodeError, match=r"prepared in the run \(--dataset gridded\), not of toy"):
        setup.overridden(Config(), {"name": "toy", "train_times": "2000-01-01:2000-02-01"}, {})
    monkeypatch.setattr(checks, "find_spec", lambda name: None)
    with pytest.raises(ClimodeError, match="needs tensorboardX"):
        setup.overridden(Config(), {}, {"logger": "tensorboard"})


def test_chosen_model_sets_the_variant_and_refuses_another_model_on_resume(tmp_path):
    config, chosen = setup.chosen_model(Config(), "ode-conv", None, None, tmp_path)
    assert chosen["architecture"] == "ode-conv" and chosen["encoder"] == "conv"
    with pytest.raises(ClimodeError, match="cannot resume .* as --model convgru"):
        setup.chosen_model(Config(), "convgru", "last", None, tmp_path)


def test_training_data_prepares_through_the_registry_entry_in_the_run_directory(tmp_path, monkeypatch):
    prepared = []
    spec = DatasetSpec(_open_toy, prepare=lambda cfg, store: prepared.append((cfg.path, store)))
    monkeypatch.setitem(DATASETS, "toy", spec)
    config = config_from_dict(_config(name="toy", path="raw.nc"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old").write_text("the run overwrite replaces")
    out, train_set, val_set = setup.training_data(config, tmp_path / "run", None, True, True)
    assert prepared == [("raw.nc", tmp_path / "run" / setup.PREPARED)]
    assert out.data.path == str(tmp_path / "run" / setup.PREPARED) and not (tmp_path / "run").exists()
    assert (len(train_set), len(val_set)) == (4, 2)
    out, _, _ = setup.training_data(config, tmp_path / "run", None, False, False)  # another process
    assert len(prepared) == 1 and out.data.path == str(tmp_path / "run" / setup.PREPARED)


def test_model_config_is_what_the_data_decide():
    config = config_from_dict(_config(name="toy"))
    config = replace(config, "data", n_in=7)
    train_set, val_set = Toy(2, 3, 2), Toy(1, 3, 2)
    derived, card = setup.model_config(
        config, train_set, val_set, {"architecture": "ode-conv", "encoder": "conv"}, None
    )
    assert (derived.data.n_in, derived.data.n_out, derived.model.n_in) == (3, 2, 3)
    assert derived.model.channels == 2 and list(derived.model.frame_shape) == [SIZE, SIZE]
    assert derived.model.time_scale == 3.0 and derived.model.architecture == "ode-conv"
    assert card.variables == ("a", "b") and card.time_units == "hours" and card.grid is None


def test_check_solver_steps_reads_each_samples_time_spans_from_the_info():
    config = config_from_dict(_config())
    toy = Toy(1, 3, 2)
    spans = np.array([[2.0, 2.0], [2.0, 1e9]])
    toy.info = DatasetInfo(("a",), "frames", 3, 2, time_spans=spans)
    with pytest.raises(ClimodeError, match="solver steps"):
        checks.check_solver_steps([toy], config)
    checks.check_solver_steps([Toy(1, 3, 2)], config)  # the first sample's spans: fine


def test_loaders_leave_out_an_empty_validation_set():
    config = config_from_dict(_config(queries="random"))
    train_loader, val_loader = fitting.loaders(config, Toy(4, 3, 2), Toy(0, 3, 2))
    assert val_loader is None and len(next(iter(train_loader))["frames_in"]) == 2


def test_stop_handling_saves_and_exits_on_sigterm_and_lets_an_interrupt_go_on(tmp_path):
    saved = []

    class Trainer:
        global_step, is_global_zero = 4, False

        def save_checkpoint(self, path: Path, weights_only: bool) -> None:
            saved.append(path)

    task = type("Task", (), {"config": config_from_dict(_config())})()
    with pytest.raises(SystemExit) as stop, fitting.stop_handling(Trainer(), task, tmp_path):
        raise SIGTERMException()
    assert stop.value.code == 128 + signal.SIGTERM and saved == [tmp_path / "checkpoints" / "last.ckpt"]
    with pytest.raises(KeyboardInterrupt), fitting.stop_handling(Trainer(), task, tmp_path):
        raise KeyboardInterrupt
    assert len(saved) == 2
