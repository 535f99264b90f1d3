"""Shared test fixtures.

Real-data tests read ``../shared/data/external`` (never copied into the repository).
On a user's fresh clone it is absent and those tests skip with a visible reason; in CI
(``CI=true``) it must be present, and its absence fails the run instead of skipping.  The
same holds for the test extras (slicer-core, Dask, statsmodels: ``pip install -e .[test]``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from environment import skip_extra_or_fail_in_ci, skip_or_fail_in_ci

REPO_ROOT = Path(__file__).resolve().parent.parent
EXTERNAL_DATA = REPO_ROOT.parent / "shared" / "data" / "external"


def _external_or_skip(*parts: str) -> Path:
    path = EXTERNAL_DATA.joinpath(*parts)
    if path.exists():
        return path
    skip_or_fail_in_ci("real-data tests", f"real test data not found at {path} (it lives in ../shared/data/external "
                                          "beside the repository; a fresh clone has none)")


@pytest.fixture(scope="session")
def external_data() -> Path:
    """``../shared/data/external`` or a skip (a failure in CI)."""
    return _external_or_skip()


@pytest.fixture(scope="session")
def totalseg_example(external_data) -> Path:
    return _external_or_skip("totalsegmentator-example")


@pytest.fixture(scope="session")
def tcia_ct(external_data) -> Path:
    return _external_or_skip("tcia-pancreatic-ct")


@pytest.fixture(scope="session")
def real_hand_xr(external_data) -> Path:
    return _external_or_skip("real-hand-xr-normal")


@pytest.fixture(scope="session")
def verse_sample(external_data) -> Path:
    return _external_or_skip("verse-sample")


def _mrml_or_skip():
    try:
        from calcinosis import mrml
    except ImportError as e:  # slicer-core is a test extra: absent only outside `make test`
        skip_extra_or_fail_in_ci("MRML tests", f"slicer-core (real MRML) is not installed ({e}); `make test` installs it")
    return mrml


def import_extra_or_skip(module: str):
    """``pytest.importorskip`` for the test extras (Dask, statsmodels): the module, or a skip
    with the reason; in CI, where the extras are installed, a failure."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_extra_or_fail_in_ci(f"tests that need {module}",
                           f"{module} is not installed ({e}); it is a test extra, `make test` installs it")


@pytest.fixture
def import_extra():
    """``import_extra("distributed")``: see :func:`import_extra_or_skip`."""
    return import_extra_or_skip


@pytest.fixture
def mrml_scene():
    """A fresh headless MRML scene (slicer-core) with the module logics registered, set as
    ``slicer.mrmlScene``; cleared and released after the test."""
    mrml = _mrml_or_skip()
    scene = mrml.headless_scene()
    yield scene
    mrml.close_headless_scene(scene)


@pytest.fixture
def cli(capsys):
    """Run the ``calcinosis`` command line in-process: returns (exit code, stdout, stderr)."""
    from calcinosis.cli.main import main

    def run(*argv: str):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse errors
            code = e.code if isinstance(e.code, int) else 2
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
