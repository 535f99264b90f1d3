"""Fixtures of the cohort tests: tiny phantoms and contract result folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calcinosis.core import image_io, phantoms
from calcinosis.cohort.manifest import write_manifest


@pytest.fixture
def manifest_writer():
    return write_manifest


@pytest.fixture(scope="session")
def tiny_phantoms(tmp_path_factory) -> dict:
    """Two small CT-like sphere phantoms (NRRD, 0.8 mm voxels) with their analytic volumes."""
    d = tmp_path_factory.mktemp("phantoms")
    out = {}
    for name, diam, seed in (("a", (4.0, 7.0), 1), ("b", (5.0, 6.0, 8.0), 2)):
        arr, geom, ells = phantoms.spheres_phantom(diam, 400.0, (0.8, 0.8, 0.8), noise_sd=5.0, seed=seed)
        p = d / f"{name}.nrrd"
        image_io.write_image(arr.round().astype("int16"), geom, p)
        out[name] = (p, [e.volume_mm3 for e in ells])
    bad = d / "broken.nrrd"
    bad.write_bytes(b"NRRD0004\nthis is not a valid header\n")
    out["broken"] = (bad, [])
    return out


#: Small hand and spine phantoms (``calcinosis phantom`` arguments), coarser than the defaults.
PHANTOMS = {
    "hand-ct": ["phantom", "hand-ct", "--spacing", "0.8", "--seed", "3"],
    "hand-mri": ["phantom", "hand-mri", "--spacing", "0.8", "--seed", "3"],
    "hand-xr": ["phantom", "hand-xr", "--spacing", "0.3", "--seed", "3"],
    "spine-lumbar": ["phantom", "spine-ct", "--coverage", "lumbar", "--fit", "--spacing", "1.2,1.2,1.25",
                     "--per-level", "1.5", "--seed", "2"],
    "spine-none": ["phantom", "spine-ct", "--coverage", "lumbar", "--fit", "--spacing", "1.2,1.2,1.25",
                   "--per-level", "0", "--seed", "4"],
}


@pytest.fixture(scope="session")
def phantom_folder(tmp_path_factory):
    """``phantom_folder(name)``: the folder of phantom ``name`` of :data:`PHANTOMS`, made on first
    use and shared by the tests of the session (all in one parent folder)."""
    from calcinosis.cli.main import main
    root = tmp_path_factory.mktemp("cohort-phantoms")

    def get(name: str) -> Path:
        folder = root / name
        if not folder.is_dir():
            assert main(PHANTOMS[name] + ["-o", str(folder), "-q"]) == 0, name
        return folder

    return get
