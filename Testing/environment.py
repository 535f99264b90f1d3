"""Where the tests run: CI or a user's machine, `make test` or a Slicer environment
(``make test-slicer510/512``), with or without figures.  Shared by ``conftest.py`` and the
test files (``from environment import draws_figures``)."""

from __future__ import annotations

import importlib.util
import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def slicer_env() -> str:
    """``slicer-5.10`` / ``slicer-5.12`` when the tests run in ``make test-slicer510/512``'s
    environment (Slicer's Python and packages, without the test extras), else ``""``."""
    return os.environ.get("CALCINOSIS_TEST_ENV", "")


def draws_figures() -> bool:
    """Whether the figures (PNG charts, drawn with matplotlib) are made here: always in `make
    test` (matplotlib is a test extra; CI fails without it), not in a Slicer environment
    (``make test-slicer510/512``: Slicer bundles no matplotlib; the tables are written all the
    same and the figures left out with a warning)."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    if not slicer_env():
        skip_or_fail_in_ci("figure tests", "matplotlib is not installed; `make test` installs it")
    return False


def skip_extra_or_fail_in_ci(what: str, reason: str):
    """As :func:`skip_or_fail_in_ci` for a missing test extra, which a Slicer environment
    (``make test-slicer510/512``) leaves out on purpose: there the test skips."""
    if slicer_env():
        pytest.skip(f"{reason} (not in the {slicer_env()} environment, as in that Slicer)")
    skip_or_fail_in_ci(what, reason)


def skip_or_fail_in_ci(what: str, reason: str):
    """Skip with ``reason`` on a user's machine; fail in CI, which must run ``what``."""
    if in_ci():
        pytest.fail(f"CI must run the {what}: {reason}")
    pytest.skip(reason)
