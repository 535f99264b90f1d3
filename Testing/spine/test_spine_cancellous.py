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


def _bone_end(ct, top):
    """Bone (cortex over cancellous bone) filling the slices below ``top``, in rows 20..40:
    its end is the slice ``top - 1``."""
    ct[:top, 20:40, 20:40] = 800.0
    ct[:top - 1, 22:38, 22:38] = 280.0


@pytest.mark.parametrize("hu,bone_", [(250.0, True), (420.0, True), (900.0, False)])
def test_one_slice_lying_on_a_bone_end(hu, bone_):
    """On thick slices a bone's end is partial-volumed into the next slice: a faint copy of
    it, one slice thick, with soft tissue all around it in its own slice (the in-plane ring
    sees no bone) and the bone just below.  No denser than cancellous bone, it is bone
    (seen on the real contrast CT resampled by half a slice: 8 such pieces reported); a
    calcification lying on the bone is denser."""
    ct = _scene()
    _bone_end(ct, 15)
    cand = np.zeros(G.shape, bool)
    cand[15, 24:36, 24:36] = True
    ct[cand] = hu
    assert _test(ct, cand) is bone_


def test_two_slices_lying_on_a_bone_end_is_kept():
    """The same faint body two slices thick: more than a partial-volumed bone end (which
    reaches one slice beyond the bone) - a calcification against the bone (see also the
    faint disc calcification above, two slices over one end plate)."""
    ct = _scene()
    _bone_end(ct, 15)
    cand = np.zeros(G.shape, bool)
    cand[15:17, 24:36, 24:36] = True
    ct[cand] = 250.0
    assert not _test(ct, cand)


def _process_scene(hu: float):
    """A bone block and a faint process 4 slices by 4 columns across (5 x 2.8 mm) sticking
    out of it 14 voxels (9.8 mm; 137 mm3) into soft tissue: its in-plane ring is soft
    tissue but for its root."""
    ct = _scene()
    _bone_block(ct, 44, 60)
    process = np.zeros(G.shape, bool)
    process[13:17, 30:44, 28:32] = True
    ct[process] = hu
    return ct, process


def test_faint_process_attached_to_labelled_bone_is_bone():
    """A faint body (300 HU, no denser than cancellous bone) sticking out of a bone into soft
    tissue: on its ring alone it is not against bone (a faint calcification in soft tissue
    looks the same); continuing into the labelled bone and large (``attached``), it is the
    bone's process.  Dense (900 HU), it stays a calcification either way."""
    ct, process = _process_scene(300.0)
    idx = np.flatnonzero(process)
    clab = np.ones(idx.size, dtype=np.int64)
    ring_only = bone.cancellous(ct, idx, clab, 1, G, np.array([True]))[0]
    assert not ring_only
    assert bone.cancellous(ct, idx, clab, 1, G, np.array([True]), attached=np.array([True]))[0]
    ct, process = _process_scene(900.0)
    assert not bone.cancellous(ct, idx, clab, 1, G, np.array([True]), attached=np.array([True]))[0]
    assert process.sum() * G.voxel_volume_mm3 >= bone.ATTACHED_BODY_MIN_MM3


def test_large_process_with_a_dense_cortex_attached_is_bone():
    """A large process (a 6 x 20 x 8-voxel slab, 588 mm3) sticking out of a bone: a cortex of
    600 HU (above the cancellous limit) around trabecular bone of 250 HU, its mean below the
    limit - continuing into the labelled bone it is bone whatever its peak; not attached it
    stays a candidate (nothing says which bone it belongs to); a dense body as large (800 HU
    throughout) stays a calcification attached or not."""
    ct = _scene()
    _bone_block(ct, 44, 60)
    process = np.zeros(G.shape, bool)
    process[12:18, 24:44, 26:34] = True
    ct[process] = 600.0
    ct[13:17, 25:44, 27:33] = 250.0
    assert process.sum() * G.voxel_volume_mm3 >= bone.TRABECULAR_BODY_MIN_MM3
    assert ct[process].max() > bone.CANCELLOUS_MAX_HU > ct[process].mean()
    idx = np.flatnonzero(process)
    clab = np.ones(idx.size, dtype=np.int64)
    one = np.array([True])
    assert bone.cancellous(ct, idx, clab, 1, G, one, attached=one)[0]
    assert not bone.cancellous(ct, idx, clab, 1, G, one)[0]
    ct[process] = 800.0
    assert not bone.cancellous(ct, idx, clab, 1, G, one, attached=one)[0]
