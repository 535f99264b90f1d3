# Two commands do all set-up on a fresh machine with Python 3.10+ and pip:
#   make demo   - create .venv, install, run the pipelines on built-in sample data
#   make test   - the same plus test extras, then the whole test suite
# make bench runs the benchmarks (not part of make test).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO_OUT ?= demo-output
# test processes (pytest-xdist): one per core of the 2-core machines the project targets; a test
# file stays on one process (--dist loadfile) so its module fixtures are computed once
TEST_JOBS ?= 2

.PHONY: demo test bench clean check-python

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (found %s); set PYTHON=python3.x" % sys.version.split()[0])'

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-headless: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[headless]"
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test]"
	@touch $@

demo: $(VENV)/.installed-headless
	$(BIN)/calcinosis demo -o $(DEMO_OUT) --force

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --durations=20

bench: $(VENV)/.installed-test
	$(BIN)/python Testing/bench/run_bench.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache build *.egg-info
