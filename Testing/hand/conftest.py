"""Hand phantoms and results, made once per test session (small: 0.5 mm CT voxels over
one hand, 0.5 x 0.5 x 1.5 mm MRI, 0.2 mm radiograph pixels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hand_helpers import run_cli


@pytest.fixture(scope="session")
def hand_data(tmp_path_factory) -> Path:
    """``ct/``, ``mri/`` and ``xr/`` phantom folders of the default patient (R hand, seed 0)."""
    root = tmp_path_factory.mktemp("hand-phantoms")
    assert run_cli("phantom", "hand-ct", "-o", root / "ct", "-q") == 0
    assert run_cli("phantom", "hand-mri", "-o", root / "mri", "-q") == 0
    assert run_cli("phantom", "hand-xr", "-o", root / "xr", "-q") == 0
    return root


@pytest.fixture(scope="session")
def hand_results(hand_data, tmp_path_factory) -> Path:
    """``calcinosis hand`` on the three phantoms: ``ct/``, ``mri/``, ``xr_outlines/`` (the
    reader's outlines measured) and ``xr_auto/`` (the detector)."""
    out = tmp_path_factory.mktemp("hand-results")
    d = hand_data
    assert run_cli("hand", d / "ct" / "ct", "--landmarks", d / "ct" / "landmarks.mrk.json", "-o", out / "ct", "-q") == 0
    assert run_cli("hand", d / "mri" / "mri", "--landmarks", d / "mri" / "landmarks.mrk.json",
                   "--roi", d / "mri" / "regions.seg.nrrd", "-o", out / "mri", "-q") == 0
    assert run_cli("hand", d / "xr" / "xr.dcm", "--landmarks", d / "xr" / "landmarks.csv",
                   "--mask", d / "xr" / "outlines.seg.nrrd", "-o", out / "xr_outlines", "-q") == 0
    assert run_cli("hand", d / "xr" / "xr.dcm", "--landmarks", d / "xr" / "landmarks.mrk.json",
                   "-o", out / "xr_auto", "-q") == 0
    return out
