"""Small phantoms for the MRML tests (kept small: the whole tier runs in seconds)."""

from __future__ import annotations

import pytest

from calcinosis.core.geometry import Geometry
from calcinosis.core.phantoms import rotation_matrix
from mrml_helpers import blobs_labels


@pytest.fixture
def oblique_geometry():
    return Geometry.create((80, 60, 40), (0.45, 0.55, 0.8), (12.0, -30.0, 55.0), rotation_matrix((1, 2, 3), 23.0))


@pytest.fixture
def blob_lesions(oblique_geometry):
    """300 lesions on an oblique anisotropic grid (LesionSet from the core engine)."""
    from calcinosis.core.lesions import LesionParams, split_lesions

    labels = blobs_labels(oblique_geometry.shape, 300)
    lesions = split_lesions(labels > 0, oblique_geometry, LesionParams(min_size=0))
    assert lesions.n == 300
    return lesions
