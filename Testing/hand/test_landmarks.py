"""Landmark labels and files: tolerant parsing, clear errors, Slicer formats both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.hand import anatomy, landmarks as lmk


def test_expected_labels_cover_every_digit_point():
    labels = anatomy.expected_landmark_labels("both")
    assert len(labels) == 2 * (4 + 4 * 4) == 40
    assert labels[:4] == ["R_thumb_CMC", "R_thumb_MCP", "R_thumb_IP", "R_thumb_tip"]
    assert "L_little_DIP" in labels and "R_index_PIP" in labels
    assert all(not lab.startswith("R_thumb_PIP") for lab in labels)
    assert anatomy.expected_landmark_labels("L") == [lab for lab in labels if lab.startswith("L_")]


@pytest.mark.parametrize("text, key", [
    ("R_index_PIP", ("R", "index", "PIP")),
    ("r-Index-pip", ("R", "index", "PIP")),
    ("L thumb ip", ("L", "thumb", "IP")),
    ("left_Pinky_DIP", ("L", "little", "DIP")),
    ("RIGHT middle TIP", ("R", "middle", "tip")),
    ("R_thumb_CMC", ("R", "thumb", "CMC")),
])
def test_labels_tolerate_case_and_separators(text, key):
    k = anatomy.parse_landmark_label(text)
    assert (k.side, k.digit, k.point) == key


@pytest.mark.parametrize("text, named", [
    ("R_index_IP", "point 'IP' does not exist on the index"),
    ("R_thumb_PIP", "point 'PIP' does not exist on the thumb"),
    ("X_index_PIP", "side 'X'"),
    ("R_indx_PIP", "digit 'indx'"),
    ("F-1", "'F-1' is not a hand landmark"),
])
def test_unknown_labels_are_errors_that_name_them(text, named):
    with pytest.raises(InputError, match=named.replace("(", r"\(").replace("'", "'")):
        anatomy.parse_landmark_label(text, "pts.csv, row 3")


def _points():
    return [("R_index_MCP", np.array([1.0, 2.0, 3.0])), ("R_index_PIP", np.array([1.5, 2.5, 43.0])),
            ("R_index_DIP", None), ("R_thumb_tip", np.array([-40.0, 10.0, 60.0]))]


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_markups_json_round_trip_and_unplaced_points(tmp_path, system):
    path = tmp_path / "h.mrk.json"
    path.write_text(lmk.markups_json_text(_points(), coordinate_system=system))
    doc = json.loads(path.read_text())
    cps = doc["markups"][0]["controlPoints"]
    assert doc["markups"][0]["coordinateSystem"] == system
    assert cps[2]["positionStatus"] == "undefined" and cps[2]["position"] == ""
    if system == "LPS":  # stored as LPS: x and y negated
        assert cps[0]["position"] == [-1.0, -2.0, 3.0]
    lm = lmk.read_landmarks(path)
    assert len(lm) == 3  # the unplaced DIP is absent, not an error
    np.testing.assert_allclose(lm.get("R", "index", "MCP"), [1, 2, 3])
    np.testing.assert_allclose(lm.get("R", "thumb", "tip"), [-40, 10, 60])
    assert lm.covered_digits("R") == ["index"]


def test_csv_ras_lps_and_fcsv(tmp_path):
    (tmp_path / "ras.csv").write_text(lmk.landmarks_csv_text(_points()))
    lm = lmk.read_landmarks(tmp_path / "ras.csv")
    np.testing.assert_allclose(lm.get("R", "index", "PIP"), [1.5, 2.5, 43.0])
    (tmp_path / "lps.csv").write_text("label,l,p,s\nr index mcp,-1,-2,3\nR-index-PIP,,,\n")
    lm = lmk.read_landmarks(tmp_path / "lps.csv")
    np.testing.assert_allclose(lm.get("R", "index", "MCP"), [1, 2, 3])
    assert lm.get("R", "index", "PIP") is None
    (tmp_path / "a.fcsv").write_text("# Markups fiducial file version = 4.11\n# CoordinateSystem = LPS\n"
                                     "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                                     "vtkMRMLMarkupsFiducialNode_0,-1,-2,3,0,0,0,1,1,1,0,L_ring_DIP,,\n")
    lm = lmk.read_landmarks(tmp_path / "a.fcsv")
    np.testing.assert_allclose(lm.get("L", "ring", "DIP"), [1, 2, 3])


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "xyz.csv").write_text("label,x,y,z\nR_index_MCP,1,2,3\n")
    with pytest.raises(InputError, match="r,a,s .RAS. or l,p,s .LPS."):
        lmk.read_landmarks(tmp_path / "xyz.csv")
    (tmp_path / "dup.csv").write_text("label,r,a,s\nR_index_MCP,1,2,3\nr-index-mcp,4,5,6\n")
    with pytest.raises(InputError, match="R_index_MCP is placed twice"):
        lmk.read_landmarks(tmp_path / "dup.csv")
    (tmp_path / "typo.csv").write_text("label,r,a,s\nR_index_MCP,1,2,3\nR_index_PPI,4,5,6\n")
    with pytest.raises(InputError, match="typo.csv, point 2.*'R_index_PPI'"):
        lmk.read_landmarks(tmp_path / "typo.csv")
    lm = lmk.read_landmarks(tmp_path / "typo.csv", unknown="warn")
    assert len(lm) == 1 and "ignored" in lm.warnings[0]
    (tmp_path / "bad.mrk.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        lmk.read_landmarks(tmp_path / "bad.mrk.json")
    with pytest.raises(InputError, match="not found"):
        lmk.read_landmarks(tmp_path / "missing.mrk.json")


def test_template_has_every_label_unplaced():
    pts = lmk.template_points("R")
    assert [p for p, _ in pts] == anatomy.expected_landmark_labels("R")
    doc = json.loads(lmk.markups_json_text(pts))
    assert {cp["positionStatus"] for cp in doc["markups"][0]["controlPoints"]} == {"undefined"}
    assert doc["@schema"].endswith("markups-schema-v1.0.3.json#")


def test_landmarks_far_outside_the_image_are_dropped_with_a_warning():
    g = Geometry.create((100, 100, 50), (0.5, 0.5, 0.5))
    lm = lmk.landmarks_from_points([("R_index_MCP", [10.0, 10.0, 10.0]), ("R_index_PIP", [10.0, 10.0, 500.0])])
    kept, warnings = lmk.check_against_image(lm, g, margin_mm=20)
    assert len(kept) == 1 and "R_index_PIP" in warnings[0]
    lm = lmk.landmarks_from_points([("R_index_MCP", [900.0, 0, 0]), ("R_index_PIP", [900.0, 0, 40])])
    kept, warnings = lmk.check_against_image(lm, g)
    assert len(kept) == 0 and "all 2 points" in warnings[0]


def _planar_hand(tilt_deg: float) -> lmk.HandLandmarks:
    """Four fingers' points in a plane through S, turned ``tilt_deg`` about S from the
    coronal plane (palm normal = A at 0 degrees)."""
    t = np.radians(tilt_deg)
    in_plane = np.array([np.cos(t), np.sin(t), 0.0])        # the plane's transverse direction (R at 0)
    pts = []
    for k, digit in enumerate(("index", "middle", "ring", "little")):
        for n, point in enumerate(("MCP", "PIP", "DIP", "tip")):
            pts.append((f"R_{digit}_{point}", 20.0 * k * in_plane + np.array([0.0, 0.0, 30.0 * n])))
    return lmk.landmarks_from_points(pts)


@pytest.mark.parametrize("tilt", [0.0, 12.0, 35.0])
def test_projection_tilt_is_the_palms_angle_from_the_coronal_plane(tilt):
    """The projected area is cast along the grid axis nearest A-P; a palm turned about S
    by ``tilt`` has its normal ``tilt`` degrees from that axis, and past 20 degrees the
    measurement says its projected areas are not a PA radiograph's."""
    from calcinosis.core.volume import Volume
    from calcinosis.core.lesions import LesionSet, LesionParams
    from calcinosis.hand import pipeline as hand_pipeline

    g = Geometry.create((8, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    vol = Volume(np.zeros(g.shape, np.int16), g, {"modality": "CT"})
    lm = _planar_hand(tilt)
    assert hand_pipeline.projection_tilts(vol, lm) == {"R": pytest.approx(tilt, abs=0.1)}
    empty = LesionSet(np.zeros(g.shape, np.uint8), g, np.zeros(0, np.int64), np.zeros(0, np.int64), [],
                      LesionParams(130.0))
    res = hand_pipeline.measure_hand(vol, "CT", empty, lm)
    warned = any("palm lies" in w and "not the shadow a PA radiograph" in w for w in res.warnings)
    assert warned == (tilt > hand_pipeline.MAX_PROJECTION_TILT_DEG)


def test_no_palm_plane_from_one_digit_or_a_line():
    one = lmk.landmarks_from_points([("R_index_MCP", np.zeros(3)), ("R_index_PIP", np.array([0, 0, 30.0])),
                                     ("R_index_DIP", np.array([0, 0, 50.0])), ("R_index_tip", np.array([0, 0, 65.0]))])
    assert one.palm_normal("R") is None
    line = lmk.landmarks_from_points([(f"R_{d}_{p}", np.array([0.0, 0.0, 10.0 * k + n]))
                                      for k, d in enumerate(("index", "middle")) for n, p in enumerate(("MCP", "PIP"))])
    assert line.palm_normal("R") is None
