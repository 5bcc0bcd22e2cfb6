# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS ?= constraints.txt

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The main job on an embedded default: a synthetic storm observed at 0, 9, 21, 42 and 57 h is
# forecast at 60, 63 and 66 h by the bundled model (NetCDF, zarr, map, animation), then verified
# against the truth next to persistence. A few minutes after the install, on 2 cores.
DEMO := runs/demo
demo: $(VENV)/.installed
	$(BIN)/python -m climode.data.cases --out $(DEMO) --inputs 0,9,21,42,57 --until 72 --overwrite
	cd $(DEMO) && $(abspath $(BIN))/python -m climode.forecast --input storm.nc --times 60,63,66 \
		--zarr storm_forecast.zarr --plot storm_forecast.png --animate storm_forecast.gif --map-region 10:50,270:350 \
		--overwrite
	$(BIN)/python -m climode.evaluate --forecast $(DEMO)/storm_forecast.nc --truth $(DEMO)/storm_truth.nc \
		--json $(DEMO)/scores.json

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

clean:
	rm -rf $(VENV) runs
