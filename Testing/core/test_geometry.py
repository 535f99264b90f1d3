"""Geometry: RAS/LPS conversion, index <-> mm, patient axes on any orientation."""

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.core.geometry import Geometry, orientation_code
from calcinosis.core.phantoms import rotation_matrix


def _sitk_image(size, spacing, origin_lps, direction_lps):
    img = sitk.Image(list(size), sitk.sitkInt16)
    img.SetSpacing(spacing)
    img.SetOrigin(origin_lps)
    img.SetDirection(np.asarray(direction_lps, float).ravel().tolist())
    return img


def test_from_sitk_converts_lps_to_ras_exactly():
    img = _sitk_image((10, 20, 30), (0.5, 0.7, 1.25), (10.0, -20.0, 30.0), np.eye(3))
    g = Geometry.from_sitk(img)
    # LPS origin (10, -20, 30) is RAS (-10, 20, 30)
    assert g.origin_ras == (-10.0, 20.0, 30.0)
    # i axis points to patient left in LPS identity: -R in RAS
    np.testing.assert_allclose(g.direction, np.diag([-1.0, -1.0, 1.0]))
    # compare every voxel centre of a few samples with ITK's own index->physical mapping
    for idx in [(0, 0, 0), (9, 19, 29), (3, 7, 11)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(idx))
        ras = g.ijk_to_ras(np.array(idx, float))
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-9)


def test_sitk_round_trip_oblique():
    d = rotation_matrix((1, 2, 3), 23.0)
    img = _sitk_image((5, 6, 7), (0.3, 0.4, 2.0), (1.0, 2.0, 3.0), d)
    g = Geometry.from_sitk(img)
    spacing, origin, direction = g.to_sitk_fields()
    np.testing.assert_allclose(spacing, img.GetSpacing())
    np.testing.assert_allclose(origin, img.GetOrigin(), atol=1e-12)
    np.testing.assert_allclose(direction, img.GetDirection(), atol=1e-12)


def test_ijk_ras_inverse_and_kji_order():
    g = Geometry.create((4, 5, 6), (0.5, 0.6, 0.7), (1, 2, 3), rotation_matrix((0, 1, 1), 40))
    pts = np.random.default_rng(0).uniform(-3, 8, size=(20, 3))
    np.testing.assert_allclose(g.ras_to_ijk(g.ijk_to_ras(pts)), pts, atol=1e-10)
    np.testing.assert_allclose(g.kji_to_ras(pts[:, ::-1]), g.ijk_to_ras(pts))
    assert g.shape == (6, 5, 4)
    np.testing.assert_allclose(np.linalg.inv(g.ras_to_ijk_matrix()), g.ijk_to_ras_matrix())


@pytest.mark.parametrize("code", ["RAS", "LPS", "PIR", "ASL", "SRA"])
def test_axial_and_ap_axis_follow_orientation(code):
    letters = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    d = np.zeros((3, 3))
    for col, ch in enumerate(code):
        axis, sign = letters[ch]
        d[axis, col] = sign
    g = Geometry.create((8, 9, 10), (1, 1, 1), (0, 0, 0), d)
    assert orientation_code(g) == code
    s_col = next(c for c, ch in enumerate(code) if ch in "SI")
    a_col = next(c for c, ch in enumerate(code) if ch in "AP")
    assert g.axial_axis == 2 - s_col
    assert g.ap_axis == 2 - a_col


def test_2d_geometry_never_picks_k():
    g = Geometry.create((100, 80), (0.1, 0.2))
    assert g.is_2d and g.size_ijk == (100, 80, 1)
    assert g.pixel_area_mm2 == pytest.approx(0.02)
    assert g.axial_axis in (1, 2) and g.ap_axis in (1, 2)


def test_cross_section_area_and_tilt():
    d = rotation_matrix((0, 0, 1), 60.0)
    g = Geometry.create((5, 5, 5), (0.5, 0.8, 1.5), (0, 0, 0), d)
    assert g.cross_section_area_mm2(0) == pytest.approx(0.5 * 0.8)  # k-face: i x j
    assert g.cross_section_area_mm2(1) == pytest.approx(0.5 * 1.5)
    assert g.tilt_deg(0, [0, 0, 1]) == pytest.approx(0.0, abs=1e-6)  # rotation about S keeps k axial
    assert g.tilt_deg(g.ap_axis, [0, 1, 0]) == pytest.approx(30.0)


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError):
        Geometry.create((2, 2, 2), (0, 1, 1))
    with pytest.raises(ValueError):
        Geometry.create((2, 2, 2), (1, 1, 1), (0, 0, 0), [[1, 0, 0], [1, 0, 0], [0, 0, 1]])


def test_same_grid_and_contains():
    g = Geometry.create((10, 10, 10), (1, 1, 1), (0, 0, 0))
    h = Geometry.create((10, 10, 10), (1, 1, 1), (0, 0, 0.01))
    assert g.same_grid(g) and not g.same_grid(h)
    inside = g.contains_ras(np.array([[0, 0, 0], [9.4, 9.4, 9.4], [9.6, 0, 0], [-5, 0, 0]]))
    assert inside.tolist() == [True, True, False, False]
    assert g.contains_ras(np.array([[-5, 0, 0]]), margin_mm=6.0).tolist() == [True]
