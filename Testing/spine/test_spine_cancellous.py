"""Bone or calcification from the CT alone (``spine.bone.cancellous``), on small synthetic
scenes with known answers: a body no denser than cancellous bone lying against bone, and
marrow enclosed in cortex, are bone; a dense calcification against bone, a faint one in soft
tissue and a faint one in a thin disc between two end plates (bone above and below, soft
tissue around it in its own slices) are calcifications."""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core.geometry import Geometry
from calcinosis.spine import bone

G = Geometry.create((60, 60, 30), (0.7, 0.7, 1.25))   # i, j in-plane; k axial (S)
SOFT_HU = 40.0


def _ball(shape, centre, radius_vox):
    k, j, i = np.indices(shape)
    return ((k - centre[0]) ** 2 * (1.25 / 0.7) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) <= radius_vox ** 2


def _test(ct, candidate):
    """``bone.cancellous`` for the one candidate (component 1)."""
    idx = np.flatnonzero(candidate)
    clab = np.ones(idx.size, dtype=np.int64)
    return bool(bone.cancellous(ct.astype(np.float32), idx, clab, 1, G, np.array([True]))[0])


def _scene():
    return np.full(G.shape, SOFT_HU, np.float32)


def _bone_block(ct, j0, j1, cancellous_hu=280.0, cortex_hu=800.0):
    """A block of bone filling rows j0..j1 (cortex 2 voxels thick around cancellous bone)."""
    ct[:, j0:j1] = cortex_hu
    ct[:, j0 + 2:j1 - 2, 2:-2] = cancellous_hu


def test_faint_body_against_bone_is_bone():
    ct = _scene()
    _bone_block(ct, 30, 60)
    cand = _ball(G.shape, (15, 28, 30), 2.5) & (np.indices(G.shape)[1] < 30)   # against the block's face
    ct[cand] = 300.0
    assert _test(ct, cand)


def test_dense_calcification_against_bone_is_kept():
    ct = _scene()
    _bone_block(ct, 30, 60)
    cand = _ball(G.shape, (15, 28, 30), 2.5) & (np.indices(G.shape)[1] < 30)
    ct[cand] = 900.0
    assert not _test(ct, cand)


@pytest.mark.parametrize("hu", [180.0, 300.0])
def test_faint_calcification_in_soft_tissue_is_kept(hu):
    ct = _scene()
    cand = _ball(G.shape, (15, 30, 30), 2.0)
    ct[cand] = hu
    assert not _test(ct, cand)


def test_marrow_enclosed_in_cortex_is_bone():
    ct = _scene()
    shell = _ball(G.shape, (15, 30, 30), 9.0)
    ct[shell] = 700.0
    marrow = _ball(G.shape, (15, 30, 30), 6.0)
    ct[marrow] = 460.0                     # dense marrow: above the cancellous limit, enclosed
    assert _test(ct, marrow)


def test_faint_disc_calcification_between_end_plates_is_kept():
    """Bone above and below (the end plates, other axial slices), disc tissue around it in
    its own slices: the in-plane ring sees soft tissue."""
    ct = _scene()
    ct[:14] = 700.0                        # vertebra below
    ct[17:] = 700.0                        # vertebra above: a 2-slice (2.5 mm) disc at k = 14, 15
    cand = np.zeros(G.shape, bool)
    cand[14:16, 27:33, 27:33] = True
    ct[cand] = 260.0
    assert not _test(ct, cand)
