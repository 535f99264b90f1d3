"""CT accuracy on the hand phantom (issue 3, item 7), asserted against the analytic truth.

Tolerance for volumes (lesions >= 3 mm across, the half-max outline): the outline takes
the voxels at least half covered by the lesion, so the error is (a) the curvature bias of
that voxel set, which for an ellipsoid whose smallest semi-axis is >= 1.5 mm at 0.5 mm
voxels is below 3% (measured on the noise-free coverage of every phantom lesion), plus
(b) the random position of the ~S/h² boundary voxels, SD ~ 0.29 h³ sqrt(1.5 S / h²) / V
(<= 3% at 3 mm, so 2 SD <= 6%), plus (c) noise in the local background/plateau
estimates (<= 1% at >= 250 HU of contrast and 18 HU noise).  Together: 10%.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.hand import pipeline as hand_pipeline, phantom as ph
from calcinosis.hand.phantom import Site
from calcinosis.core.volume import Volume

from hand_helpers import matched, read, unmatched_measured


@pytest.fixture(scope="module")
def ct_tables(hand_data, hand_results):
    return read(hand_data / "ct" / "truth.csv"), read(hand_results / "ct" / "lesions.csv")


def test_every_lesion_of_2mm_or_more_is_found(ct_tables):
    truth, lesions = ct_tables
    pairs = matched(lesions, truth)
    missed = [t["name"] for t, m in pairs if m is None and t["max_diameter_mm"] >= 2.0]
    assert not missed
    assert sum(m is not None for _, m in pairs) >= len(truth) - 2  # only the ~1 mm³ ones may go


def test_no_bone_is_reported_as_calcinosis(ct_tables, hand_data, hand_results):
    truth, lesions = ct_tables
    assert not unmatched_measured(lesions, truth)  # every detection is a true lesion
    # and no detected voxel lies inside bone (deeper than half a voxel, the partial-volume edge)
    patient = ph.make_patient("R", 0)
    lab = image_io.load_label_image(hand_results / "ct" / "lesion_labels.nrrd")
    kji = np.argwhere(lab.layers[0] > 0)
    ras = lab.geometry.kji_to_ras(kji)
    assert np.min(patient.hand.bone_sdf(ras)) > -0.25


def test_digit_zone_and_kind_assignment(ct_tables):
    truth, lesions = ct_tables
    pairs = [(t, m) for t, m in matched(lesions, truth) if m is not None]
    digit_ok = np.mean([t["digit"] == m["digit"] for t, m in pairs])
    zone_ok = np.mean([t["zone"] == m["zone"] for t, m in pairs])
    kind_ok = np.mean([t["kind"] == m["kind"] for t, m in pairs])
    side_ok = np.mean([m["side"] == "R" for _, m in pairs])
    assert digit_ok == 1.0 and side_ok == 1.0
    assert zone_ok >= 0.95
    assert kind_ok >= 0.95


def test_volume_within_partial_volume_tolerance(ct_tables):
    truth, lesions = ct_tables
    checked = 0
    for t, m in matched(lesions, truth):
        if m is None or t["min_diameter_mm"] < 3.0:
            continue
        assert m["volume_mm3"] == pytest.approx(t["volume_mm3"], rel=0.10), t["name"]
        checked += 1
    assert checked >= 6


def test_projected_area_matches_coronal_truth(ct_tables):
    # the CT lesions' shadow on the coronal plane, to compare with radiographs: counting voxel
    # columns over-covers the outline by about half a voxel all round (h/2 x perimeter)
    truth, lesions = ct_tables
    for t, m in matched(lesions, truth):
        if m is None or t["min_diameter_mm"] < 3.0:
            continue
        perimeter = 2 * np.pi * np.sqrt(t["projected_area_mm2"] / np.pi)
        assert abs(m["projected_area_mm2"] - t["projected_area_mm2"]) <= 0.5 * perimeter + 0.1 * t["projected_area_mm2"]


def test_lesions_touching_bone_are_kept_apart_from_it():
    """Periarticular deposits 0-0.8 mm from bone merge with it at 130 HU; they must come back
    as separate lesions.  Tolerance: the 10% above plus what bone removal may take, a cap of
    the lesion as deep as the bone's rim reaches past its cortex (rim + half a voxel, 1 mm
    at 0.5 mm voxels) minus the gap: V_cap = pi c² (3r - c) / 3, c = max(0, 1 - gap)."""
    sites = [Site("index", "PIP", "periarticular"), Site("index", "DIP", "periarticular"),
             Site("middle", "PIP", "periarticular"), Site("middle", "MCP", "periarticular"),
             Site("thumb", "MCP", "periarticular"), Site("ring", "PIP", "periarticular")]
    vols = [30.0, 20.0, 40.0, 25.0, 35.0, 28.0]
    gaps = [0.0, 0.3, 0.5, 0.8, 0.0, 0.3]
    pat = ph.make_patient("R", 5, sites=sites, volumes=vols, gaps=gaps)
    P = ph.ct_phantom(patient=pat, seed=5)
    vol = Volume(P.array, P.geometry, {"modality": "CT", "intensity_unit": "HU"})
    det = hand_pipeline.detect_lesions(vol, "CT")
    from calcinosis.core.measure import measure_lesions
    table = measure_lesions(det.lesions, vol)
    pairs = matched(table, P.truth)
    assert all(m is not None for _, m in pairs) and len(table) == len(sites)
    touching = 0
    for t, m in pairs:
        r = t["min_diameter_mm"] / 2
        c = max(0.0, 1.0 - t["gap_to_bone_mm"])
        cap = np.pi * c * c * (3 * r - c) / 3
        tol = 0.10 + cap / t["volume_mm3"]
        assert m["volume_mm3"] == pytest.approx(t["volume_mm3"], rel=tol), t["name"]
        touching += bool(det.touches_bone[m["lesion_id"] - 1])
    assert touching >= 3  # they really were in contact with the bone mask


def test_threshold_volume_score_is_biased_as_physics_says(hand_data):
    """With the plain 130 HU mask (--boundary threshold) a voxel counts once it is covered
    by (130 - bg) / (HU - bg) of the lesion: dense lesions in soft tissue come out larger
    than they are.  The half-max outline removes that bias (tested above)."""
    truth = read(hand_data / "ct" / "truth.csv")
    vol = image_io.load_image(hand_data / "ct" / "ct")
    from calcinosis.hand.detect import DetectParams
    det = hand_pipeline.detect_lesions(vol, "CT", DetectParams(boundary="threshold"))
    from calcinosis.core.measure import measure_lesions
    table = measure_lesions(det.lesions, vol)
    dense = [(t, m) for t, m in matched(table, truth) if m is not None and t["ct_hu"] >= 600 and t["min_diameter_mm"] >= 3]
    assert dense and all(m["volume_mm3"] > t["volume_mm3"] for t, m in dense)


def test_anisotropic_grid_like_a_clinical_hand_ct():
    """Thin in-plane pixels and thicker slices (as the benchmark's 512x512x300 CT): bone
    edges across slices must not turn into small 'lesions', lesions >= 2 mm are all found."""
    P = ph.ct_phantom("L", 7, spacing=(0.35, 0.35, 0.8))
    vol = Volume(P.array, P.geometry, {"modality": "CT", "intensity_unit": "HU"})
    from calcinosis.hand import landmarks as lmk
    res = hand_pipeline.measure_hand(vol, "CT", hand_pipeline.detect_lesions(vol, "CT").lesions,
                                     lmk.landmarks_from_points(P.landmarks))
    pairs = matched(res.lesions_table, P.truth)
    assert not [t["name"] for t, m in pairs if m is None and t["max_diameter_mm"] >= 2.0]
    assert not unmatched_measured(res.lesions_table, P.truth)
    assert all(t["digit"] == m["digit"] and t["side"] == m["side"] == "L" for t, m in pairs if m is not None)
