"""Fixtures of the cohort tests: tiny phantoms and contract result folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from CalcinosisLib import image_io, phantoms
from CalcinosisLib.cohort.manifest import write_manifest


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
