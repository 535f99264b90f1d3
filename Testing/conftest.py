"""Shared test fixtures.

Real-data tests read ``../shared/data/external`` (never copied into the repository).
On a user's fresh clone it is absent and those tests skip with a visible reason; in CI
(``CI=true``) it must be present, and its absence fails the run instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXTERNAL_DATA = REPO_ROOT.parent / "shared" / "data" / "external"


def _external_or_skip(*parts: str) -> Path:
    path = EXTERNAL_DATA.joinpath(*parts)
    if path.exists():
        return path
    reason = (f"real test data not found at {path} (it lives in ../shared/data/external beside the repository; "
              "a fresh clone has none)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI must run the real-data tests: " + reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def external_data() -> Path:
    """``../shared/data/external`` or a skip (a failure in CI)."""
    return _external_or_skip()


@pytest.fixture(scope="session")
def totalseg_example(external_data) -> Path:
    return _external_or_skip("totalsegmentator-example")


@pytest.fixture(scope="session")
def verse_sample(external_data) -> Path:
    return _external_or_skip("verse-sample")


def _mrml_or_skip():
    try:
        from CalcinosisLib import mrml
    except ImportError as e:  # slicer-core is a test extra: absent only outside `make test`
        reason = f"slicer-core (real MRML) is not installed ({e}); `make test` installs it"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must run the MRML tests: " + reason)
        pytest.skip(reason)
    return mrml


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
    from CalcinosisCLI.main import main

    def run(*argv: str):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse errors
            code = e.code if isinstance(e.code, int) else 2
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
