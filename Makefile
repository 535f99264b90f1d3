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

# Slicer's own Python (3.12) with the package versions Slicer 5.10 / 5.12 bundle (see
# Utilities/slicer-envs/): pyenv's 3.12, else a python3.12 on PATH that runs
PYTHON312 ?= $(shell for p in $$HOME/.pyenv/versions/3.12*/bin/python3.12 $$(command -v python3.12); do \
	"$$p" -c "" 2>/dev/null && { echo "$$p"; break; }; done)
# the core and command-line tiers: what runs inside Slicer without MRML or Qt
SLICER_ENV_TESTS ?= Testing/core Testing/cohort/test_cli_stats.py Testing/hand/test_hand_cli.py \
	Testing/hand/test_click_outline.py Testing/spine/test_spine_cli.py Testing/core/test_dicom_export.py

.PHONY: demo test bench clean check-python test-slicer510 test-slicer512 print-python312

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (found %s); set PYTHON=python3.x" % sys.version.split()[0])'

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-headless: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[headless]"
	$(BIN)/python -m compileall -q CalcinosisQuant/calcinosis   # byte-compiled now, as a wheel install does
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test]"
	$(BIN)/python -m compileall -q CalcinosisQuant/calcinosis
	@touch $@

demo: $(VENV)/.installed-headless
	$(BIN)/calcinosis demo -o $(DEMO_OUT) --force

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --durations=20

bench: $(VENV)/.installed-test
	$(BIN)/python Testing/bench/run_bench.py

# make test-slicer510 / test-slicer512: a venv with Slicer's Python and exactly its packages
.venv-slicer%/.installed: Utilities/slicer-envs/slicer-%.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "make test-slicer: no Python 3.12 found (python3.12 on PATH or pyenv's); set PYTHON312=/path/to/python3.12"; exit 2; }
	rm -rf .venv-slicer$*
	$(PYTHON312) -m venv .venv-slicer$*
	.venv-slicer$*/bin/python -m pip --disable-pip-version-check -q install -r $< pillow pytest pytest-xdist openpyxl
	.venv-slicer$*/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
	@touch $@

print-python312:
	@echo "$(PYTHON312)"

test-slicer510: .venv-slicer5.10/.installed
	CALCINOSIS_TEST_ENV=slicer-5.10 .venv-slicer5.10/bin/python -m pytest -n $(TEST_JOBS) --dist loadfile -q $(SLICER_ENV_TESTS)

test-slicer512: .venv-slicer5.12/.installed
	CALCINOSIS_TEST_ENV=slicer-5.12 .venv-slicer5.12/bin/python -m pytest -n $(TEST_JOBS) --dist loadfile -q $(SLICER_ENV_TESTS)

clean:
	rm -rf $(VENV) .venv-slicer5.10 .venv-slicer5.12 $(DEMO_OUT) .pytest_cache build *.egg-info
