"""Radiograph: areas in mm² at the patient, against the projected truth.

The area of a lesion is the area of its segmentation: outlined by the reader (here: the
phantom's exact shadows, rasterised on the pixel grid) or by the detector.  Rasterising
an outline at 0.2 mm pixels errs by about +-0.3 pixel along the perimeter: under 3% for a
2 mm lesion, so 10% (the issue's bound) leaves room; what 10% cannot hide is a wrong
pixel spacing: reading the detector spacing without the magnification factor makes areas
M² = 1.17 times too large.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcinosis.core import dicom_write, image_io
from calcinosis.core.geometry import Geometry
from calcinosis.core.measure import measure_lesions
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.volume import Volume
from calcinosis.hand import detect, shapes

from hand_helpers import read, run_cli


@pytest.fixture(scope="module")
def xr_tables(hand_data, hand_results):
    truth = read(hand_data / "xr" / "truth.csv")
    lesions = read(hand_results / "xr_outlines" / "lesions.csv")
    by_id = {int(r["source_segment"].split()[-1]): r for r in lesions.rows}
    return truth, lesions, by_id


def test_outlined_areas_match_the_projected_truth(xr_tables):
    truth, _, by_id = xr_tables
    for t in truth.rows:
        if t["max_diameter_mm"] < 2.0:
            continue
        m = by_id[t["lesion_id"]]
        assert m["area_mm2"] == pytest.approx(t["projected_area_mm2"], rel=0.10), t["name"]


def test_missing_magnification_factor_is_caught(hand_data, tmp_path, xr_tables):
    truth, _, by_id = xr_tables
    img = image_io.load_image(hand_data / "xr" / "xr.dcm")
    # the same pixels, written with the detector spacing but no magnification factor, and the
    # reader's outlines drawn on the same pixels of that file
    dicom_write.write_dicom_radiograph(img.array[0], tmp_path / "nomag.dcm", (0.2 * 1.08, 0.2 * 1.08), "imager", None)
    nomag_geom = image_io.load_image(tmp_path / "nomag.dcm").geometry
    outlines = image_io.load_label_image(hand_data / "xr" / "outlines.seg.nrrd", reference=img.geometry)
    image_io.write_image(outlines.layers[0], nomag_geom, tmp_path / "outlines.nrrd")
    code = run_cli("hand", tmp_path / "nomag.dcm", "--mask", tmp_path / "outlines.nrrd", "-o", tmp_path / "out", "-q")
    assert code == 0
    prov = (tmp_path / "out" / "provenance.json").read_text()
    assert "gives no magnification factor" in prov and "--magnification" in prov
    nomag = read(tmp_path / "out" / "lesions.csv")
    big = max(truth.rows, key=lambda r: r["projected_area_mm2"])
    row = next(r for r in nomag.rows if r["source_segment"] == f"label_{big['lesion_id']}")
    assert row["area_mm2"] / by_id[big["lesion_id"]]["area_mm2"] == pytest.approx(1.08 ** 2, rel=1e-6)
    assert row["area_mm2"] > 1.10 * big["projected_area_mm2"]   # outside the 10% the test above allows


def test_assignment_on_the_radiograph(xr_tables):
    truth, _, by_id = xr_tables
    rows = [(t, by_id[t["lesion_id"]]) for t in truth.rows]
    assert all(m["digit"] == t["digit"] for t, m in rows)
    assert np.mean([m["zone"] == t["zone"] for t, m in rows]) >= 0.95
    assert all(m["side"] == "R" for _, m in rows)
    # depth is unknown on a projection; the phantom's subcutaneous deposits at joints lie beside them
    assert np.mean([m["kind"] == t["kind"] for t, m in rows]) >= 0.9


def test_detector_outlines_on_a_smooth_background_within_10_percent():
    """Where the background around a lesion is smooth (soft tissue away from bone outlines
    and skin edges) the detector's outline - at 20% of the peak above the background
    interpolated across it - keeps 1 - 0.2² = 96% of an ellipsoid's shadow; the pixel grid
    moves the outline by up to half a pixel (0.1 mm: 8% of a 2.5 mm shadow's area, less
    for larger ones), so 10% holds."""
    rng = np.random.default_rng(1)
    sp, H, W = 0.2, 300, 560
    Y, X = np.mgrid[0:H, 0:W]
    img = 800 + 0.8 * X + 0.3 * Y + 20 * np.sin(X / 60.0)
    truth, x = [], 40
    offs = (np.arange(4) + 0.5) / 4 - 0.5
    for n, d in enumerate([2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0]):
        semi = np.array([d / 2 * 1.3, d / 2, d / 2 * 0.8])
        R = rotation_matrix(rng.normal(size=3), 30 * n)
        c = np.array([x * sp, 0.0, 150 * sp])
        x += int(d / sp * 1.3) + 28
        acc = sum(shapes.ellipsoid_chord(c, semi, R, np.stack([(X + du) * sp, np.full(X.shape, -50.0), (Y + dv) * sp], -1),
                                         np.array([0.0, 1.0, 0.0])) for du in offs for dv in offs) / offs.size ** 2
        img = img + 40.0 * acc
        nrm = R.T @ np.array([0.0, 1.0, 0.0])
        a, b, cc = semi
        truth.append((c, np.pi * np.sqrt((b * cc * nrm[0]) ** 2 + (a * cc * nrm[1]) ** 2 + (a * b * nrm[2]) ** 2)))
    img = img + rng.normal(0, 6, img.shape)
    g = Geometry.create((W, H, 1), (sp, sp, 1.0), (0, 0, 0), np.diag([-1.0, -1.0, 1.0]))
    vol = Volume(img[None].astype(np.float32), g, {"modality": "XR"})
    det = detect.detect_xr(vol, detect.DetectParams(xr_min_confidence=0.0))   # every candidate: outlines, not the operating point
    table = measure_lesions(det.lesions, vol)
    assert len(table) == len(truth)
    for c, area in truth:
        ras = g.ijk_to_ras(np.array([c[0] / sp, c[2] / sp, 0.0]))
        row = min(table.rows, key=lambda r: np.hypot(r["centroid_r_mm"] - ras[0], r["centroid_a_mm"] - ras[1]))
        assert row["area_mm2"] == pytest.approx(area, rel=0.10)


def test_detector_without_a_region_warns(hand_results):
    prov = (hand_results / "xr_auto" / "provenance.json").read_text()
    assert "searched without a region" in prov
    assert (hand_results / "xr_auto" / "structural_form.csv").exists()
