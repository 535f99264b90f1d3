"""The hand phantom is what it claims: exact truth, realistic ranges, proper DICOM."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from calcinosis.core import image_io
from calcinosis.core.phantoms import coverage_fraction
from calcinosis.hand import landmarks as lmk, phantom as ph
from calcinosis.hand.anatomy import KINDS, ZONES

from hand_helpers import read


@pytest.fixture(scope="module")
def patient():
    return ph.make_patient("R", 0)


def test_truth_is_analytic_and_rendering_matches_it(patient):
    # the partial-volume coverage the renderer paints integrates to the analytic volume:
    # sub-voxel sampling (4^3 points) of an ellipsoid of >= 1 mm³ errs by < 1% (sampling error ~ surface/N^2)
    g = ph.ct_geometry(patient)
    for les in patient.lesions:
        sl, frac = coverage_fraction(g, les.contains, les.center, les.half_extent(), supersample=4)
        assert frac.sum() * g.voxel_volume_mm3 == pytest.approx(les.volume_mm3, rel=0.01)
        a, b, c = les.semi
        assert les.volume_mm3 == pytest.approx(4 / 3 * np.pi * a * b * c)


def test_lesions_span_the_clinical_ranges(patient):
    vols = np.array([les.volume_mm3 for les in patient.lesions])
    assert vols.min() >= 0.8 and vols.max() <= 5000 and vols.max() >= 1000  # log-normal, ~1-5000 mm³
    assert np.std(vols) > np.mean(vols)                                          # right-skewed: SD > mean
    assert all(200 <= les.hu <= 1500 for les in patient.lesions)
    assert {les.zone for les in patient.lesions} == set(ZONES)
    assert {les.kind for les in patient.lesions} == set(KINDS)
    counts = {d: sum(les.digit == d for les in patient.lesions) for d in ("thumb", "index", "middle", "ring", "little")}
    assert max(counts, key=counts.get) == "index" and sorted(counts.values())[-2] == counts["thumb"]  # as study 1
    for les in patient.lesions:
        if les.kind == "periarticular":
            assert les.gap_to_bone_mm <= 0.85 and les.joint_distance_mm <= ph.TRUTH_PERIARTICULAR_MM - 1.0
        else:
            assert les.gap_to_bone_mm >= 2.0 and les.joint_distance_mm >= ph.TRUTH_PERIARTICULAR_MM + 1.5
    # the phantom is deterministic
    again = ph.make_patient("R", 0)
    assert [les.volume_mm3 for les in again.lesions] == [les.volume_mm3 for les in patient.lesions]


def test_left_hand_is_the_mirror_image():
    r, l = ph.build_hand("R"), ph.build_hand("L")
    np.testing.assert_allclose(l.rays["thumb"].points["tip"], r.rays["thumb"].points["tip"] * [-1, 1, 1])


def test_ct_dicom_series_geometry_tags_and_landmarks(hand_data, patient):
    vol = image_io.load_image(hand_data / "ct" / "ct")
    assert vol.geometry.same_grid(ph.ct_geometry(patient))
    assert vol.meta["modality"] == "CT" and vol.meta["laterality"] == "R"
    assert vol.array.min() >= -1024 and vol.array.max() > 1200      # air .. cortical bone, in HU
    lm = lmk.read_landmarks(hand_data / "ct" / "landmarks.mrk.json")
    assert len(lm) == 20
    np.testing.assert_allclose(lm.get("R", "index", "PIP"), patient.hand.rays["index"].points["PIP"], atol=1e-5)
    assert lmk.read_landmarks(hand_data / "ct" / "landmarks.csv").points.keys() == lm.points.keys()
    truth = read(hand_data / "ct" / "truth.csv")
    assert len(truth) == len(patient.lesions)


def test_radiograph_dicom_has_detector_spacing_and_magnification(hand_data):
    ds = pydicom.dcmread(hand_data / "xr" / "xr.dcm")
    assert ds.Modality == "CR" and ds.ImageLaterality == "R" and "PixelSpacing" not in ds
    assert float(ds.EstimatedRadiographicMagnificationFactor) == pytest.approx(1.08)
    assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx([0.2 * 1.08] * 2)
    vol = image_io.load_image(hand_data / "xr" / "xr.dcm")
    assert vol.is_2d and vol.geometry.spacing[:2] == pytest.approx((0.2, 0.2))
    assert "Magnification" in vol.meta["spacing_source"]
    # pixel values are the projection: the palm (thick, with bones) is brighter than a fingertip
    img = vol.array[0].astype(float)
    assert img.max() > 3 * np.median(img[:20, :20])


def test_mri_series_is_coronal_with_reader_regions(hand_data):
    vol = image_io.load_image(hand_data / "mri" / "mri")
    assert vol.meta["modality"] == "MR"
    assert vol.geometry.axial_axis != 0            # slices are coronal: the k axis runs along A
    assert vol.geometry.spacing[2] == pytest.approx(1.5)
    regions = image_io.load_label_image(hand_data / "mri" / "regions.seg.nrrd", reference=vol.geometry)
    assert len(regions.segments) >= 15 and regions.union().any()
