"""Measurements against analytic truth on phantoms, and against SimpleITK on the same labels.

Tolerances come from what voxelisation allows, computed per lesion:

* Volume.  With the threshold midway between lesion and background, a boundary voxel is
  counted when at least half of it is inside, so each boundary voxel adds an error between
  -h³/2 and +h³/2 (uniform, variance h⁶/12).  With N_s ≈ S/h² boundary voxels (S the
  surface area, h the geometric-mean spacing), the volume error has
  σ_V = h³·sqrt(N_s/12); the test allows 5σ_V.  (The 50 % iso-surface of a convex body
  also sits slightly inside it: a small negative bias, well inside 5σ.)
* Projected / 2D area.  The voxelised shadow boundary lies within half a pixel of the
  true outline, so |ΔA| ≤ ½·h_p·P with P the outline's perimeter.
* Principal axes: within one voxel (largest spacing).  Centroid: within h/4.
"""

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.core import phantoms
from calcinosis.core.geometry import Geometry
from calcinosis.core.image_io import array_to_sitk
from calcinosis.core.lesions import LesionParams, candidate_mask, split_lesions
from calcinosis.core.measure import agatston_weight, measure_lesions
from calcinosis.core.volume import Volume

MID_HU = (40 + 400) / 2


def _ellipse_perimeter(a, b):  # Ramanujan's second approximation (error < 1e-9 relative here)
    h = ((a - b) / (a + b)) ** 2
    return np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))


def _ellipsoid_surface(a, b, c):  # Knud Thomsen's approximation, within 1.1 %
    p = 1.6075
    return 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def _measure(seed, oblique, elongate, spacing=(0.4, 0.4, 0.6)):
    arr, geom, ells = phantoms.spheres_phantom(spacing=spacing, oblique_deg=oblique, elongate=elongate, seed=seed)
    vol = Volume(arr, geom, {"modality": "CT"})
    les = split_lesions(candidate_mask(arr, MID_HU), geom, LesionParams(MID_HU))
    table = measure_lesions(les, vol)
    truth = phantoms.ellipsoid_truth(ells)
    pairs = phantoms.match_by_centroid(table, truth, max_distance_mm=2.0)
    return arr, geom, ells, les, table, truth, pairs


@pytest.mark.parametrize("oblique", [0.0, 31.0])
@pytest.mark.parametrize("elongate", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_volume_area_axes_centroid_against_analytic_truth(seed, oblique, elongate):
    arr, geom, ells, les, table, truth, pairs = _measure(seed, oblique, elongate)
    assert len(table) == len(truth), "one lesion per phantom object, no noise specks"
    h = geom.voxel_volume_mm3 ** (1 / 3)
    u = geom.direction_of_array_axis(geom.ap_axis)
    h_p = np.sqrt(geom.cross_section_area_mm2(geom.ap_axis))
    for t, m in pairs:
        assert m is not None, f"{truth.rows[t]['name']} not found"
        e, row = ells[t], table.rows[m]
        # volume
        surface = _ellipsoid_surface(*e.semi_axes_mm) * 1.011
        sigma_v = h ** 3 * np.sqrt(surface / h ** 2 / 12)
        assert abs(row["volume_mm3"] - e.volume_mm3) <= 5 * sigma_v, (e.name, row["volume_mm3"], e.volume_mm3)
        # projected area (shadow along the grid axis nearest A-P; that is A itself when not oblique)
        shadow = e.projected_area_mm2(u)
        if oblique == 0:
            assert shadow == pytest.approx(e.projected_area_mm2(), rel=1e-12)
        perim = _ellipse_perimeter(*e.projected_semi_axes_mm(u))
        assert abs(row["projected_area_mm2"] - shadow) <= 0.5 * h_p * perim, (e.name, row["projected_area_mm2"], shadow)
        # principal axes
        true_axes = sorted((2 * a for a in e.semi_axes_mm), reverse=True)
        got = [row["principal_axis_major_mm"], row["principal_axis_mid_mm"], row["principal_axis_minor_mm"]]
        np.testing.assert_allclose(got, true_axes, atol=max(geom.spacing))
        # centroid
        assert np.linalg.norm(np.array([row[f"centroid_{a}_mm"] for a in "ras"]) - e.center_ras) <= h / 4


def test_relative_volume_error_for_lesions_of_3mm_and_more_is_small():
    """What users read off: at the mid threshold, ≥ 3 mm lesions are within 7 % on 0.4×0.4×0.6 mm voxels."""
    worst = 0.0
    for seed in range(3):
        _, _, ells, _, table, truth, pairs = _measure(seed, 0.0, False)
        for t, m in pairs:
            if truth.rows[t]["diameter_mm"] >= 3:
                worst = max(worst, abs(table.rows[m]["volume_mm3"] / ells[t].volume_mm3 - 1))
    assert worst < 0.07


def test_lower_threshold_includes_more_partial_volume():
    arr, geom, _ = phantoms.spheres_phantom(diameters_mm=(4, 8), seed=3)
    vols = []
    for thr in (130, MID_HU, 310):
        les = split_lesions(candidate_mask(arr, thr), geom, LesionParams(thr))
        vols.append(measure_lesions(les, Volume(arr, geom, {"modality": "CT"})).column("volume_mm3"))
    v130, vmid, v310 = (np.array(v) for v in vols)
    assert np.all(v130 > vmid) and np.all(vmid > v310)


def test_engine_agrees_with_simpleitk_label_statistics():
    """Independent library on the same label image: counts, size, centroid, bounding box, intensities."""
    arr, geom, _, les, table, _, _ = _measure(5, 31.0, True)
    lab_img = array_to_sitk(les.labels.astype(np.uint32), geom)
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(lab_img)
    inten = sitk.LabelIntensityStatisticsImageFilter()
    inten.Execute(lab_img, array_to_sitk(arr.astype(np.float64), geom))
    for row in table.rows:
        k = row["lesion_id"]
        assert row["voxel_count"] == shape.GetNumberOfPixels(k)
        assert row["volume_mm3"] == pytest.approx(shape.GetPhysicalSize(k), rel=1e-9)
        c_lps = np.array(shape.GetCentroid(k))
        np.testing.assert_allclose([row["centroid_r_mm"], row["centroid_a_mm"], row["centroid_s_mm"]],
                                   c_lps * [-1, -1, 1], atol=1e-6)
        bb = shape.GetBoundingBox(k)  # (i0, j0, k0, ni, nj, nk)
        assert (row["bbox_i_min"], row["bbox_j_min"], row["bbox_k_min"]) == bb[:3]
        assert (row["bbox_i_max"], row["bbox_j_max"], row["bbox_k_max"]) == tuple(b + n - 1 for b, n in zip(bb[:3], bb[3:]))
        assert row["mean_intensity"] == pytest.approx(inten.GetMean(k), rel=1e-9)
        assert row["min_intensity"] == pytest.approx(inten.GetMinimum(k))
        assert row["max_intensity"] == pytest.approx(inten.GetMaximum(k))
        n = row["voxel_count"]
        sample_sd = inten.GetStandardDeviation(k)  # ITK uses n-1
        assert row["std_intensity"] == pytest.approx(sample_sd * np.sqrt((n - 1) / n), rel=1e-6)


def test_agatston_by_hand():
    # 1 x 1 mm pixels, 1.5 mm slices: one lesion on two slices
    g = Geometry.create((10, 10, 4), (1.0, 1.0, 1.5))
    a = np.zeros(g.shape, np.int16)
    a[1, 2:4, 2:4] = [[150, 180], [190, 250]]      # 4 mm², peak 250 -> weight 2
    a[2, 2:4, 2:5] = [[420, 135, 140], [131, 132, 133]]  # 6 mm², peak 420 -> weight 4
    les = split_lesions(candidate_mask(a, 130), g, LesionParams(130, min_size=0))
    row = measure_lesions(les, Volume(a, g, {"modality": "CT"})).rows[0]
    assert row["agatston_score"] == pytest.approx((4 * 2 + 6 * 4) * 1.5 / 3)
    assert row["axial_slice_count"] == 2 and row["axial_extent_mm"] == pytest.approx(3.0)
    assert agatston_weight(np.array([129.9, 130, 199, 200, 299.5, 300, 399, 400, 2000])).tolist() == \
        [0, 1, 1, 2, 2, 3, 3, 4, 4]
    # not CT: no Agatston score
    row = measure_lesions(les, Volume(a, g, {"modality": "MR"})).rows[0]
    assert row["agatston_score"] is None and row["intensity_unit"] == "a.u."


def test_radiograph_ellipse_areas():
    sp = (0.1, 0.12)
    img, ells = phantoms.radiograph_phantom(spacing_xy=sp, seed=4)
    g = Geometry.create((img.shape[1], img.shape[0]), sp, (0, 0, 0), np.diag([-1.0, -1.0, 1.0]))
    vol = Volume(img[np.newaxis], g, {"modality": "XR"})
    les = split_lesions(candidate_mask(vol.array, 2000), g, LesionParams(2000))
    table = measure_lesions(les, vol)
    assert "volume_mm3" not in table.column_names and "area_mm2" in table.column_names
    truth = phantoms.ellipse_truth(ells, g)
    h = np.sqrt(g.pixel_area_mm2)
    for t, m in phantoms.match_by_centroid(table, truth, 1.0):
        e, row = ells[t], table.rows[m]
        assert abs(row["area_mm2"] - e.area_mm2) <= 0.5 * h * _ellipse_perimeter(*e.semi_axes_mm)
        np.testing.assert_allclose([row["principal_axis_major_mm"], row["principal_axis_minor_mm"]],
                                   [2 * e.semi_axes_mm[0], 2 * e.semi_axes_mm[1]], atol=max(sp))


def test_empty_result_has_columns_and_no_rows():
    g = Geometry.create((5, 5, 5))
    a = np.zeros(g.shape)
    les = split_lesions(candidate_mask(a, 1), g, LesionParams(1))
    t = measure_lesions(les, Volume(a, g, {"modality": "CT"}))
    assert len(t) == 0 and "volume_mm3" in t.column_names
