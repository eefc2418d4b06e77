# domadapt — two commands: `make demo` and `make test` (both create .venv and install on first use).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.domadapt-installed
# Tests run in 2 processes; each keeps to one BLAS/OpenMP thread so they do not fight over the cores.
PYTEST_ARGS ?= -n 2

.PHONY: install demo test test-recipes test-slow test-all bench clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m domadapt demo

test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -m "not slow and not gpu and not data and not recipes" $(PYTEST_ARGS)

# Every recipe under recipes/ run end to end by `domadapt smoke` (real-data ones on a synthesised tree at 1/16 scale).
test-recipes: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -m "recipes and not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -v

test-all: $(STAMP)
	$(PY) -m pytest -m "not gpu and not data" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/data_throughput.py

clean:
	rm -rf runs .pytest_cache build *.egg-info
