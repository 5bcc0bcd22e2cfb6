"""The dependency lists agree: pyproject.toml's floors, the floor-version constraints `make floors` installs,
and environment.yml."""

import re
import tomllib

from conftest import ROOT

CONDA_NAMES = {"torch": "pytorch", "netCDF4": "netcdf4", "dask[distributed]": "dask"}


def _floors() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)>=([\w.]+)", d).groups() for d in deps)


def _pins(path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if "==" in line)


def test_floor_constraints_pin_every_dependency_at_its_floor():
    pins = {name.lower(): version for name, version in _pins(ROOT / "constraints-floors.txt").items()}
    for name, floor in _floors().items():
        base = name.split("[")[0].lower()
        if base == "torch":  # the CPU build on disk (constraints.txt), not the CUDA floor
            assert pins["torch"] == _pins(ROOT / "constraints.txt")["torch"]
            continue
        assert pins.get(base, "").startswith(floor), (name, floor, pins.get(base))
    assert pins["distributed"] == pins["dask"]


def test_environment_yml_lists_the_same_floors():
    text = (ROOT / "environment.yml").read_text()
    listed = dict(re.findall(r"^\s+- ([\w\-]+)(?:>=|=)([\w.]+)\s*$", text, re.M))
    for name, floor in _floors().items():
        conda = CONDA_NAMES.get(name, name.split("[")[0].lower())
        if conda == "pytorch":
            assert listed["pytorch"] == _pins(ROOT / "constraints.txt")["torch"]
            continue
        assert listed.get(conda) == floor, (name, floor, listed.get(conda))
