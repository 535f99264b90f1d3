"""Small phantoms for the MRML tests (kept small: the whole tier runs in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from CalcinosisLib.geometry import Geometry
from CalcinosisLib.phantoms import rotation_matrix


def blobs_labels(shape=(40, 60, 80), n=300, seed=0, max_size=3):
    """``n`` separated boxy blobs of random size (1..max_size voxels a side), label 1..n in
    placement order; returns the label array (uint16)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    occupied = np.zeros(shape, bool)
    placed = 0
    tries = 0
    while placed < n:
        tries += 1
        assert tries < 100 * n, "phantom too crowded"
        size = rng.integers(1, max_size + 1, 3)
        lo = np.array([rng.integers(0, s - z) for s, z in zip(shape, size)])
        hi = lo + size
        guard = tuple(slice(max(a - 1, 0), b + 1) for a, b in zip(lo, hi))
        if occupied[guard].any():
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        labels[box] = placed + 1
        occupied[box] = True
        placed += 1
    return labels


@pytest.fixture
def oblique_geometry():
    return Geometry.create((80, 60, 40), (0.45, 0.55, 0.8), (12.0, -30.0, 55.0), rotation_matrix((1, 2, 3), 23.0))


@pytest.fixture
def blob_lesions(oblique_geometry):
    """300 lesions on an oblique anisotropic grid (LesionSet from the core engine)."""
    from CalcinosisLib.lesions import LesionParams, split_lesions

    labels = blobs_labels(oblique_geometry.shape, 300)
    lesions = split_lesions(labels > 0, oblique_geometry, LesionParams(min_size=0))
    assert lesions.n == 300
    return lesions
