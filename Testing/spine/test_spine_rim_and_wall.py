"""Two decisions of the spine map made from the CT, not the labels (issue 16):

* a piece of a bone's partial-volume rim is never denser than that bone's cortex, so a
  body against the bone that is (a calcification whose inner half the label swallowed)
  is not taken for rim (``candidates.denser_than_cortex``);
* a calcification in a contrast-filled vessel's wall touches the lumen
  (``vessels.lumen_gap_mm``); one merely joined to a lumen's region through a thin bridge
  of blurred halos (the rim of a vertebral body running to the vena cava) is not.

Synthetic CTs: known geometry, a Gaussian blur of 0.6 mm (a standard kernel's) and 10 HU
noise; each case is run on several noise seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume
from calcinosis.spine import candidates, vessels
from calcinosis.spine.vertebrae import Box, SpineLabels

SP = np.array([1.0, 0.8, 0.8])          # k (S), j, i in mm


def _grid(shape, sp):
    return np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp)], indexing="ij")


def _finish(ct, vert, sp, seed):
    ct = ndimage.gaussian_filter(ct, 0.6 / sp) + np.random.default_rng(seed).normal(0, 10.0, ct.shape)
    shape = ct.shape
    g = Geometry.create(shape[::-1], tuple(sp[::-1]), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    lab = SpineLabels(g, Box((0, 0, 0), shape), ["L1"], vert, np.zeros(shape, np.uint8))
    return Volume(np.round(ct).astype(np.int16), g, {"modality": "CT", "intensity_unit": "HU"}), lab


def _body(shape, sp):
    """A vertebral body: 1 mm cortex of 700 HU round 200 HU marrow, 24 x 28 mm, in 40 HU."""
    K, J, I = _grid(shape, sp)
    ct = np.full(shape, 40.0)
    inside = (K >= 8) & (K < shape[0] * sp[0] - 8) & (np.abs(J - 25.6) < 12) & (np.abs(I - 25.6) < 14)
    marrow = ndimage.binary_erosion(inside, iterations=1)
    ct[inside] = 700.0
    ct[marrow] = 200.0
    return ct, inside.astype(np.int16), (K, J, I)


def body_case(kind: str, seed: int, calc_hu: float = 1000.0):
    """``swallowed``: a 4 mm calcification of ``calc_hu`` on the body's front, centred
    0.8 mm beyond the cortex, whose inner half the label holds (as a model's label does
    with a calcification against bone); ``short``: no calcification, the label a voxel
    and a half short of the cortex over a 6 x 6 mm patch (its cortex outside the label)."""
    shape = (40, 70, 64)
    ct, vert, (K, J, I) = _body(shape, SP)
    front = 25.6 + 12
    calc = (K - 20.0) ** 2 + (J - front - 0.8) ** 2 + (I - 25.6) ** 2 <= 2.0 ** 2
    if kind == "swallowed":
        ct[calc] = calc_hu
        vert[calc & (J < front + 1.0)] = 1
    elif kind == "short":
        vert[(vert > 0) & (J >= front - 1.6) & (np.abs(K - 20) < 3) & (np.abs(I - 25.6) < 3)] = 0
    vol, lab = _finish(ct, vert, SP, seed)
    return vol, lab, calc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calcification_denser_than_the_cortex_is_not_the_rim(seed):
    """Half in the label, the calcification keeps under 1.4 mm beyond the bone's zone: the
    rim rule alone dropped it (``bone:rim``).  Its voxels are denser than the body's own
    cortex there, which the rim never is: it is found, and nothing else is."""
    vol, lab, calc = body_case("swallowed", seed)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True, detect_vessels=False))
    found = res.lesions.labels > 0
    assert res.lesions.n == 1, res.rejected
    assert found[calc].any()
    assert not found[~ndimage.binary_dilation(calc, iterations=2)].any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cortex_outside_a_short_label_stays_rim(seed):
    """The control: where the label stops short of the cortex, the cortex left outside is
    the bone's rim (no denser than the cortex): nothing is reported."""
    vol, lab, _ = body_case("short", seed)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True, detect_vessels=False))
    assert res.lesions.n == 0
    assert res.rejected["bone"] >= 1           # it was there, and taken for bone


def test_denser_than_cortex():
    """Per voxel, against the densest cortex of the border voxels within the nearest one's
    distance plus the reach (so the denser of two bones whose borders are near), plus the
    multiple of the noise; without bones: never."""
    from calcinosis.spine import bone
    from scipy.spatial import cKDTree
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 4.0]])            # two bones' border voxels
    surfaces = bone.BoneSurfaces(pts, np.arange(2), np.array([1, 2]), np.zeros(2), ["T8", "ribs"], {}, cKDTree(pts),
                                 cortex_hu=np.array([900.0, 600.0]))
    vox = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, 3.0]])
    hu = np.array([940.0, 700.0, 700.0])
    sigma = np.full(3, 12.0)
    # 1 mm from the 900 HU cortex: 940 > 936; 1 mm from the 600 HU one but 3 mm from the
    # 900 HU one: within 1 + 3 mm -> compared with 900 (no), within 1 + 1 mm -> with 600 (yes)
    assert denser(vox, hu, surfaces, sigma, 3.0, reach_mm=3.0) == [True, False, False]
    assert denser(vox, hu, surfaces, sigma, 3.0, reach_mm=1.0) == [True, True, True]
    assert denser(vox, hu, surfaces, sigma, 4.0, reach_mm=1.0) == [False, True, True]
    empty = bone.BoneSurfaces(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0), [], {}, None)
    assert denser(vox, hu, empty, sigma, 3.0, reach_mm=3.0) == [False, False, False]


def denser(vox, hu, surfaces, sigma, multiple, reach_mm):
    return candidates.denser_than_cortex(vox, hu, surfaces, sigma, multiple, reach_mm).tolist()


def vein_case(seed: int):
    """A body, and beside it an unlabelled vein along the spine (10 mm lumen of 125 HU,
    portal-venous: under the 130 HU threshold; 1.2 mm wall of 45 HU), with a 3 mm
    calcification of 800 HU in the wall facing the body."""
    sp = np.array([1.25, 0.8, 0.8])
    shape = (48, 80, 80)
    ct, vert, (K, J, I) = _body(shape, sp)
    R = 5.0
    vc = np.array([25.6 + 12 + 3.0 + R, 25.6 + 7.0])
    r = np.hypot(J - vc[0], I - vc[1])
    ct[r <= R + 1.2] = 45.0
    ct[r <= R] = 125.0
    calc = (K - 30.0) ** 2 + (J - (vc[0] + R + 0.6)) ** 2 + (I - vc[1]) ** 2 <= 1.5 ** 2
    ct[calc] = 800.0
    vol, lab = _finish(ct, vert, sp, seed)
    return vol, lab, calc


@pytest.mark.parametrize("seed", [0, 1])
def test_calcification_in_an_unlabelled_vein_wall_is_vascular(seed):
    """It touches the lumen: taken with the vessel (``vessel_shape``), not reported."""
    vol, lab, calc = vein_case(seed)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True))
    idx, clab, why = res.explain
    mine = np.unique(clab[np.isin(idx, np.flatnonzero(calc.ravel()))])
    assert mine.size and all(why[c - 1] == "vessel_shape" for c in mine), [why[c - 1] for c in mine]
    assert not (res.lesions.labels > 0)[calc].any()


def test_lumen_gap_sees_through_a_bridge_of_halos():
    """A 10 mm tube (a lumen) and a 3 x 3 x 3 voxel candidate: against the tube the core
    is a voxel or two away; joined to it only by a one-voxel-thin strand 8 voxels long
    (the blurred rim of a bone), the core is the tube's, 8 voxels and more away."""
    sp = np.array([1.0, 1.0, 1.0])
    shape = (30, 40, 40)
    K, J, I = _grid(shape, sp)
    tube = np.hypot(J - 12, I - 20) <= 5
    q = np.argwhere((np.abs(K - 15) <= 1) & (np.abs(J - 19) <= 1) & (np.abs(I - 20) <= 1))
    touching = tube.copy()
    touching[q[:, 0], q[:, 1], q[:, 2]] = True
    assert vessels.lumen_gap_mm(touching, q, sp) <= 3.0
    far = q + np.array([0, 8, 0])
    bridged = tube.copy()
    bridged[15, 17:27, 20] = True
    bridged[far[:, 0], far[:, 1], far[:, 2]] = True
    assert vessels.lumen_gap_mm(bridged, far, sp) >= 8.0
    assert vessels.lumen_gap_mm(np.zeros(shape, bool), far, sp) == float("inf")      # no lumen at all


def rod_case(peak_hu: float, seed: int):
    """An enhanced scan (a labelled aorta of 160 HU) with, 8 mm in front of a body, a rod
    3 mm across and 14 mm long along S (shorter than the tube search's 20 mm) at 175 HU with
    a 3 mm spot of ``peak_hu`` in its middle: a small vessel's segment (``peak_hu`` near
    the blood) or a linear calcification (far denser)."""
    from calcinosis.spine.vertebrae import CAT_AORTA
    sp = np.array([1.0, 0.8, 0.8])
    shape = (40, 80, 64)
    ct, vert, (K, J, I) = _body(shape, sp)
    cat = np.zeros(shape, np.uint8)
    aorta = np.hypot(J - 62.0, I - 12.0) <= 7.0
    ct[aorta] = 160.0
    cat[aorta] = CAT_AORTA
    rod = (np.hypot(J - (25.6 + 12 + 8), I - 30.0) <= 1.5) & (np.abs(K - 20) <= 7)
    ct[rod] = 175.0
    spot = rod & (np.abs(K - 20) <= 1.5)
    ct[spot] = peak_hu
    vol, lab = _finish(ct, vert, sp, seed)
    lab = SpineLabels(lab.box_geometry, lab.box, lab.names, lab.vert, cat)
    return vol, lab, rod


@pytest.mark.parametrize("seed", [0, 1])
def test_small_vessel_segment_on_an_enhanced_scan_is_not_reported(seed):
    """Its brightest voxels (230 HU) stand above the blood + 5 noise SD, so the blood
    density rule alone kept it; a thin rod at the blood's density on average is a small
    enhanced vessel (the real contrast CT's last two findings were such)."""
    vol, lab, rod = rod_case(230.0, seed)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True))
    idx, clab, why = res.explain
    mine = np.unique(clab[np.isin(idx, np.flatnonzero(rod.ravel()))])
    assert mine.size and all(why[c - 1] == "blood_density:rod" for c in mine), [why[c - 1] for c in mine]
    assert res.lesions.n == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_linear_calcification_on_an_enhanced_scan_is_kept(seed):
    """The same rod with a 700 HU core: a linear calcification, far denser than the blood."""
    vol, lab, rod = rod_case(700.0, seed)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True))
    assert res.lesions.n == 1, res.rejected
    assert (res.lesions.labels > 0)[rod].any()


def test_rod_shaped():
    """A 1 x 1 x 12 voxel line is a rod, a 4 x 4 x 4 cube and a 2 x 6 x 6 plate are not."""
    shape = (20, 20, 20)
    sp = np.ones(3)
    blocks = [np.zeros(shape, bool) for _ in range(3)]
    blocks[0][4:16, 10, 10] = True
    blocks[1][5:9, 5:9, 5:9] = True
    blocks[2][10:12, 2:8, 2:8] = True
    idx = np.concatenate([np.flatnonzero(b.ravel()) for b in blocks])
    clab = np.concatenate([np.full(int(b.sum()), k + 1) for k, b in enumerate(blocks)])
    order = np.argsort(idx)
    got = candidates.rod_shaped(idx[order], clab[order], 3, np.ones(3, bool), sp, shape)
    assert got.tolist() == [True, False, False]
