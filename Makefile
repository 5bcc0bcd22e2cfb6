# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS ?= constraints.txt

.PHONY: demo test install clean floors package notebooks

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

# The analysis notebooks in JupyterLab (installed into .venv on first use); options go in
# JUPYTER_ARGS, e.g. make notebooks JUPYTER_ARGS="--no-browser --port 8890".
notebooks: $(VENV)/.installed-test
	$(PIP) install --quiet -c $(CONSTRAINTS) jupyterlab
	$(BIN)/jupyter lab notebooks/ $(JUPYTER_ARGS)

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

clean:
	rm -rf $(VENV) runs

# The floors pyproject.toml states, tested: every dependency at its lowest allowed version
# (constraints-floors.txt; wheels only) in a venv of its own, then the quick tests. CI runs it.
FLOORS := .venv-floors
floors:
	rm -rf $(FLOORS)
	$(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS)/bin/python -m pip install --quiet --only-binary :all: -c constraints-floors.txt -e ".[test]"
	$(FLOORS)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

# The distributions a user would install: built, then checked as PyPI would (twine check). CI runs it.
package: $(VENV)/.installed-test
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
