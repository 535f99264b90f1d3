"""The bone's own edge as the CT shows it (:mod:`calcinosis.spine.bone` edge model) and the
calcification filling a thin disc that it lets the map keep (issue 16: "a thin disc touching
the end plates stays a calcification and loses only the rim it shares with bone")."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import ndtr

from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume
from calcinosis.spine import bone, candidates
from calcinosis.spine.vertebrae import Box, SpineLabels


@pytest.mark.parametrize("sigma_mm", [0.5, 0.8, 1.2])
def test_edge_shape_is_the_blurred_step(sigma_mm):
    """Profiles of a step from 1000 to 0 HU blurred by a Gaussian of ``sigma_mm``, each edge
    somewhere else in [0, 1] mm: the shape is the Gaussian's survival function beyond the
    50% point.  Tolerance 0.02: linear interpolation on the 0.25 mm samples of a curve whose
    second derivative is at most 0.24 / sigma^2 errs by under 0.25^2 / 8 * 0.24 / 0.25 =
    0.0075 at sigma 0.5 mm, and the median of the re-sampled profiles adds as much."""
    rng = np.random.default_rng(0)
    edge = rng.uniform(0.0, 1.0, 200)
    x = bone.PROFILE_MM[None, :]
    profiles = 1000.0 * (1.0 - ndtr((x - edge[:, None]) / sigma_mm))
    ip, peak, low = bone.peak_and_low(profiles)
    found, _ = bone.edge_positions(profiles)
    assert np.allclose(found, edge, atol=0.01)
    shape = bone.edge_shape(profiles, found, peak, low)
    t = bone.EDGE_T_MM
    beyond = (t >= 0) & (t <= 5.0 - 1.0)          # where every profile still has samples
    assert np.allclose(shape[beyond], 1.0 - ndtr(t[beyond] / sigma_mm), atol=0.02)
    assert np.all(shape[t < 0] == 1.0)             # inside the 50% point: errs towards bone


def _disc_case(with_calcification: bool, seed: int = 0):
    """Two vertebral bodies (1 mm cortex of 900 HU around 200 HU marrow) with a 3 mm disc
    between their end plates, soft tissue of 40 HU, blurred (Gaussian, 0.6 mm) with 10 HU
    noise; optionally a calcification of 800 HU, 5 mm across, filling the disc at the
    bodies' front (it touches both end plates).  Labels exact."""
    sp = np.array([1.0, 0.8, 0.8])                   # k (S), j, i in mm
    shape = (60, 64, 64)
    K, J, I = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp)], indexing="ij")
    ct = np.full(shape, 40.0)
    vert = np.zeros(shape, np.int16)
    bodies = [(10.0, 28.0, 2), (31.0, 49.0, 1)]       # (S from, S to, label): a 3 mm disc at 28-31 mm
    for s0, s1, lab in bodies:
        inside = (K >= s0) & (K < s1) & (np.abs(J - 25.6) < 12) & (np.abs(I - 25.6) < 14)
        marrow = (K >= s0 + 1) & (K < s1 - 1) & (np.abs(J - 25.6) < 11) & (np.abs(I - 25.6) < 13)
        ct[inside] = 900.0
        ct[marrow] = 200.0
        vert[inside] = lab
    ct[(K >= 28) & (K < 31) & (np.abs(J - 25.6) < 12) & (np.abs(I - 25.6) < 14)] = 80.0     # disc
    truth = ((K - 29.5) ** 2 + (J - 36.5) ** 2 + (I - 25.6) ** 2) <= 2.5 ** 2
    truth &= (K >= 28) & (K < 31)                                                        # in the disc
    if with_calcification:
        ct[truth] = 800.0
    ct = ndimage.gaussian_filter(ct, 0.6 / sp)
    ct += np.random.default_rng(seed).normal(0, 10.0, shape)
    g = Geometry.create(shape[::-1], tuple(sp[::-1]), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    lab = SpineLabels(g, Box((0, 0, 0), shape), ["L1", "L2"], vert, np.zeros(shape, np.uint8))
    vol = Volume(np.round(ct).astype(np.int16), g, {"modality": "CT", "intensity_unit": "HU"})
    return vol, lab, truth


@pytest.mark.parametrize("with_calcification", [True, False])
def test_calcification_filling_a_thin_disc_is_kept(with_calcification):
    """Every voxel of a calcification filling a 3 mm disc is within the end plates' rim
    reach (each reaches half-way): without the edge model it was dropped whole.  Denser
    than the end plates' edges explain there, it is found (most of its voxels), and the
    same disc without it gives nothing: the end plates' own rims are not freed.  (The
    bone decision alone: the search for enhanced tubes is off here - see the next test.)"""
    vol, lab, truth = _disc_case(with_calcification)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True, detect_vessels=False))
    found = res.lesions.labels > 0
    if with_calcification:
        assert res.lesions.n == 1, res.rejected
        assert found[truth].mean() >= 0.5
        assert not found[~ndimage.binary_dilation(truth, iterations=2)].any()
    else:
        assert res.lesions.n == 0, res.rejected


def test_between_vertebrae():
    """Points with the borders of two vertebrae within reach, and not those near one only
    (the disc case's end plates 3 mm apart)."""
    vol, lab, _ = _disc_case(False)
    g = lab.box_geometry
    structures = candidates.label_structures(lab)
    surfaces = bone.fit_bone_surfaces(vol.array, structures, g, 0.5, 3.0, 130.0)
    sp = np.array([g.spacing_along_array_axis(a) for a in range(3)])
    # (k, j, i) voxels: in the disc at the bodies' front; at a body's front, mid-height
    pts = np.round(np.array([[29.5, 36.5 / 0.8, 25.6 / 0.8], [20.0, 38.4 / 0.8, 25.6 / 0.8]])).astype(int) * sp
    assert candidates.between_vertebrae(pts, surfaces, 2).tolist() == [True, False]


def test_calcification_filling_a_thin_disc_is_not_taken_for_a_vessel():
    """The same with the search for enhanced tubes on (the default): on a CT without any
    vessel, nothing is a vessel - the blurred rim around the two labelled bodies (above the
    blood's 100 HU beyond the one-voxel gap the tube search leaves) is a shell along the
    spine with a vessel's cross-section, and was taken for one with the calcification
    touching it (``vessels.shell_of_bone``)."""
    vol, lab, truth = _disc_case(True)
    res = candidates.find_candidates(vol, lab, candidates.CandidateOptions(study_rule=True))
    assert res.rejected["vessel_shape"] == 0 and res.lesions.n == 1
