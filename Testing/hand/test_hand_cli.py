"""The command line: the table contract, bad input (message and exit code 2), nothing
half-written, and the form, landmark and comparison commands."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.measure import lesion_columns
from calcinosis.hand import landmarks as lmk

from hand_helpers import read, run_cli

DIGITS_CONTRACT = ["side", "digit", "modality", "lesion_count", "total_area_mm2", "largest_area_mm2",
                   "total_volume_mm3", "largest_volume_mm3", "total_projected_area_mm2"]
HAND_CONTRACT = ["side", "modality", "lesion_count", "total_area_mm2", "total_volume_mm3", "largest_area_mm2",
                 "largest_volume_mm3", "total_projected_area_mm2", "n_subcutaneous", "n_periarticular",
                 "zone_distal_phalanx_count", "zone_dip_count", "zone_pip_count", "zone_mcp_count",
                 "zone_wrist_count", "zone_other_count", "digits_affected"]


def _err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize("run, is_2d", [("ct", False), ("mri", False), ("xr_outlines", True)])
def test_outputs_follow_the_shared_contract(hand_results, run, is_2d):
    out = hand_results / run
    lesions = read(out / "lesions.csv")
    assert lesions.column_names == [c.name for c in lesion_columns(is_2d)] + ["side", "digit", "zone", "kind"]
    digits, hand = read(out / "digits.csv"), read(out / "hand.csv")
    assert digits.column_names == DIGITS_CONTRACT and hand.column_names == HAND_CONTRACT
    for name in ("lesions", "digits", "hand", "lesion_assignment"):
        assert (out / f"{name}.schema.csv").exists()
    for f in ("lesion_labels.nrrd", "lesions.seg.nrrd", "provenance.json"):
        assert (out / f).exists()
    assert {r["side"] for r in lesions.rows} <= {"L", "R", "unknown"}
    assert {r["digit"] for r in lesions.rows} <= {"thumb", "index", "middle", "ring", "little", "unassigned"}
    assert {r["zone"] for r in lesions.rows} <= {"distal_phalanx", "DIP", "PIP", "MCP", "wrist", "other"}
    assert {r["kind"] for r in lesions.rows} <= {"periarticular", "subcutaneous"}
    # summaries add up; area columns for radiographs, volume columns for CT/MRI, the others empty
    h = hand.rows[0]
    assert h["lesion_count"] == len(lesions) == sum(r["lesion_count"] for r in digits.rows)
    size = "area_mm2" if is_2d else "volume_mm3"
    assert h[f"total_{size}"] == pytest.approx(sum(r[size] for r in lesions.rows), rel=1e-6)
    other = "volume_mm3" if is_2d else "area_mm2"
    assert h[f"total_{other}"] is None and all(r[f"total_{other}"] is None for r in digits.rows)
    assert (h["total_projected_area_mm2"] is None) == is_2d
    assert sum(h[f"zone_{z}_count"] for z in ("distal_phalanx", "dip", "pip", "mcp", "wrist", "other")) == len(lesions)
    assert h["n_subcutaneous"] + h["n_periarticular"] == len(lesions)
    # segment names say side/digit/zone/kind
    seg = image_io.load_label_image(out / "lesions.seg.nrrd")
    names = sorted(s.name for s in seg.segments)
    expect = sorted(" ".join(str(v) for v in (r["lesion_id"], r["side"], r["digit"], r["zone"], r["kind"]))
                    for r in lesions.rows)
    assert names == expect
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["parameters"]["assignment"]["periarticular_mm"] == 6.0
    assert "PHANTOM" not in json.dumps(prov) and "19000101" not in json.dumps(prov)


def test_same_inputs_same_tables(hand_data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run_cli("hand", hand_data / "mri" / "mri", "--roi", hand_data / "mri" / "regions.seg.nrrd",
                       "--landmarks", hand_data / "mri" / "landmarks.csv", "-o", out, "-q") == 0
    for name in ("lesions.csv", "digits.csv", "hand.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_3d_image_as_radiograph_and_the_reverse(hand_data, tmp_path, capsys):
    assert run_cli("hand", hand_data / "ct" / "ct", "--modality", "xr", "-o", tmp_path / "a") == 2
    assert "3D image" in _err(capsys) and not (tmp_path / "a").exists()
    assert run_cli("hand", hand_data / "xr" / "xr.dcm", "--modality", "ct", "-o", tmp_path / "b") == 2
    assert "2D image cannot be a CT" in _err(capsys) and not (tmp_path / "b").exists()
    assert run_cli("hand", hand_data / "xr" / "xr.dcm", "--modality", "mri", "-o", tmp_path / "c") == 2
    assert "2D image cannot be a MRI" in _err(capsys)


def test_landmarks_far_outside_warn_and_leave_lesions_unassigned(hand_data, tmp_path, capsys):
    far = [(label, p + np.array([0.0, 0.0, 600.0])) for label, p in lmk.read_landmarks(hand_data / "mri" / "landmarks.csv").as_points()]
    (tmp_path / "far.csv").write_text(lmk.landmarks_csv_text(far))
    code = run_cli("hand", hand_data / "mri" / "mri", "--roi", hand_data / "mri" / "regions.seg.nrrd",
                   "--landmarks", tmp_path / "far.csv", "-o", tmp_path / "o", "-q")
    assert code == 0 and "outside the image" in _err(capsys)
    lesions = read(tmp_path / "o" / "lesions.csv")
    assert len(lesions) > 10 and {r["digit"] for r in lesions.rows} == {"unassigned"}
    assert {r["zone"] for r in lesions.rows} == {None} and {r["side"] for r in lesions.rows} == {"R"}  # DICOM laterality
    hand = read(tmp_path / "o" / "hand.csv")
    assert hand.rows[0]["zone_pip_count"] is None and hand.rows[0]["digits_affected"] is None


def test_ct_without_hu_rescale_warns(tmp_path, capsys):
    assert run_cli("phantom", "hand-ct", "--spacing", "1", "--no-rescale", "-o", tmp_path / "ph", "-q") == 0
    code = run_cli("hand", tmp_path / "ph" / "ct", "-o", tmp_path / "o", "-q")
    assert code == 0
    assert "without Rescale Slope/Intercept" in _err(capsys)
    assert "Rescale" in (tmp_path / "o" / "provenance.json").read_text()


def test_empty_segmentation_gives_empty_tables(hand_data, tmp_path, capsys):
    vol = image_io.load_image(hand_data / "ct" / "ct")
    image_io.write_image(np.zeros(vol.geometry.shape, np.uint8), vol.geometry, tmp_path / "empty.nrrd")
    code = run_cli("hand", hand_data / "ct" / "ct", "--mask", tmp_path / "empty.nrrd",
                   "--landmarks", hand_data / "ct" / "landmarks.mrk.json", "-o", tmp_path / "o", "-q")
    assert code == 0 and "holds no segment" in _err(capsys)
    assert len(read(tmp_path / "o" / "lesions.csv")) == 0
    digits = read(tmp_path / "o" / "digits.csv")
    assert len(digits) == 6 and all(r["lesion_count"] == 0 and r["total_volume_mm3"] == 0 for r in digits.rows)
    hand = read(tmp_path / "o" / "hand.csv")
    assert hand.rows[0]["lesion_count"] == 0 and hand.rows[0]["zone_pip_count"] == 0


def test_unknown_landmark_label_is_named(hand_data, tmp_path, capsys):
    text = (hand_data / "ct" / "landmarks.csv").read_text().replace("R_ring_PIP", "R_ring_PPI")
    (tmp_path / "typo.csv").write_text(text)
    assert run_cli("hand", hand_data / "ct" / "ct", "--landmarks", tmp_path / "typo.csv", "-o", tmp_path / "o") == 2
    err = _err(capsys)
    assert "'R_ring_PPI'" in err and "typo.csv" in err and not (tmp_path / "o").exists()
    # with the opt-in, the point is skipped and the ring still works from its three other points
    assert run_cli("hand", hand_data / "ct" / "ct", "--landmarks", tmp_path / "typo.csv",
                   "--ignore-unknown-landmarks", "-o", tmp_path / "o", "-q") == 0
    assert "ignored" in _err(capsys)


def test_earlier_result_is_kept_without_force(hand_results, tmp_path, hand_data, capsys):
    out = tmp_path / "o"
    shutil.copytree(hand_results / "mri", out)
    before = (out / "lesions.csv").read_bytes()
    assert run_cli("hand", hand_data / "ct" / "ct", "-o", out) == 2
    assert "--force" in _err(capsys) and (out / "lesions.csv").read_bytes() == before


def test_bad_parameters_exit_2(hand_data, tmp_path, capsys):
    assert run_cli("hand", hand_data / "ct" / "ct", "--edge-fraction", "1.5", "-o", tmp_path / "o") == 2
    assert run_cli("hand", hand_data / "ct" / "ct", "--roi", hand_data / "ct" / "truth.csv", "-o", tmp_path / "o") == 2
    assert "truth.csv" in _err(capsys)


def test_compare_three_modalities(hand_results, tmp_path):
    out = tmp_path / "cmp"
    assert run_cli("hand-compare", hand_results / "xr_outlines", hand_results / "ct", hand_results / "mri",
                   "-o", out, "-q") == 0
    digits = read(out / "compare_digits.csv")
    ct, mri, xr = (read(hand_results / r / "digits.csv") for r in ("ct", "mri", "xr_outlines"))
    for row in digits.rows:
        c = next(r for r in ct.rows if r["digit"] == row["digit"])
        m = next(r for r in mri.rows if r["digit"] == row["digit"])
        x = next(r for r in xr.rows if r["digit"] == row["digit"])
        assert row["ct_lesion_count"] == c["lesion_count"] and row["mri_lesion_count"] == m["lesion_count"]
        assert row["xr_total_area_mm2"] == pytest.approx(x["total_area_mm2"])
        assert row["ct_total_projected_area_mm2"] == pytest.approx(c["total_projected_area_mm2"])
        assert row["mri_minus_ct_volume_mm3"] == pytest.approx(m["total_volume_mm3"] - c["total_volume_mm3"])
    hand = read(out / "compare_hand.csv")
    assert hand.rows[0]["modalities"] == "XR;CT;MR" and hand.rows[0]["mri_minus_ct_volume_mm3"] < 0


def test_compare_two_modalities(hand_results, tmp_path):
    """XR and CT only: the CT columns and the XR area filled, MRI columns empty (not
    zero: not measured), the CT - MRI difference empty."""
    out = tmp_path / "cmp2"
    assert run_cli("hand-compare", hand_results / "ct", hand_results / "xr_outlines", "-o", out, "-q") == 0
    digits = read(out / "compare_digits.csv")
    ct, xr = (read(hand_results / r / "digits.csv") for r in ("ct", "xr_outlines"))
    assert len(digits.rows) == len(ct.rows)
    for row in digits.rows:
        c = next(r for r in ct.rows if r["digit"] == row["digit"])
        x = next(r for r in xr.rows if r["digit"] == row["digit"])
        assert row["ct_lesion_count"] == c["lesion_count"] and row["xr_lesion_count"] == x["lesion_count"]
        assert row["ct_total_volume_mm3"] == pytest.approx(c["total_volume_mm3"])
        assert row["xr_total_area_mm2"] == pytest.approx(x["total_area_mm2"])
        assert row["mri_lesion_count"] is None and row["mri_total_volume_mm3"] is None
        assert row["mri_minus_ct_volume_mm3"] is None
    assert read(out / "compare_hand.csv").rows[0]["modalities"] == "XR;CT"


def test_compare_refuses_mismatched_inputs(hand_results, tmp_path, capsys):
    other = tmp_path / "left"
    shutil.copytree(hand_results / "mri", other)
    for name in ("hand.csv", "digits.csv"):
        p = other / name
        p.write_text(p.read_text().replace("\nR,", "\nL,"))
    assert run_cli("hand-compare", hand_results / "ct", other, "-o", tmp_path / "o") == 2
    assert "not of the same hand" in _err(capsys)
    assert run_cli("hand-compare", hand_results / "ct", hand_results / "ct", "-o", tmp_path / "o") == 2
    assert "both CT results" in _err(capsys)
    assert run_cli("hand-compare", hand_results / "ct", tmp_path, "-o", tmp_path / "o") == 2
    assert "no provenance.json" in _err(capsys)
    assert run_cli("hand-compare", hand_results / "ct", "-o", tmp_path / "o") == 2
    assert not (tmp_path / "o").exists()


def test_structural_form_blank_and_check(tmp_path, capsys):
    form = tmp_path / "form.csv"
    assert run_cli("hand-form", "blank", "--side", "R", "-o", form) == 0
    t = read(form)
    assert len(t) == 8 and t.column_names == ["side", "finding", "pattern", "distal_phalanx", "DIP", "PIP", "MCP", "wrist"]
    assert run_cli("hand-form", "blank", "-o", form) == 2          # kept without --force
    lines = form.read_text().splitlines()
    lines[1] = lines[1].replace("R,calcinosis,soft_tissue,,,,,", "R,calcinosis,soft_tissue,1,0,0,,")
    lines[3] = lines[3].replace("R,periarticular_calcification,soft_tissue,,,,,", "R,periarticular_calcification,soft_tissue,0,0,0,0,0")
    form.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert run_cli("hand-form", "check", form, "-o", tmp_path / "summary.csv") == 0
    s = read(tmp_path / "summary.csv").rows[0]
    assert s["any_calcinosis"] == 1 and s["any_periarticular_calcification"] == 0 and s["any_subluxation"] is None
    assert s["any_soft_tissue_pattern"] == 1 and s["locations_assessed"] == 8
    lines[2] = lines[2].replace("R,acro_osteolysis,bone,,", "R,acro_osteolysis,bone,yes,")
    form.write_text("\n".join(lines) + "\n")
    assert run_cli("hand-form", "check", form) == 2
    assert "row 3, column distal_phalanx" in _err(capsys)


def test_landmark_template(tmp_path, hand_data, capsys):
    assert run_cli("hand-landmarks", "--side", "L", "-o", tmp_path / "t.mrk.json") == 0
    doc = json.loads((tmp_path / "t.mrk.json").read_text())
    cps = doc["markups"][0]["controlPoints"]
    assert len(cps) == 20 and all(cp["positionStatus"] == "undefined" for cp in cps) and cps[0]["label"] == "L_thumb_CMC"
    # an unplaced list is a valid input: nothing placed, so nothing assigned, with a warning
    assert run_cli("hand", hand_data / "mri" / "mri", "--roi", hand_data / "mri" / "regions.seg.nrrd",
                   "--landmarks", tmp_path / "t.mrk.json", "-o", tmp_path / "o", "-q") == 0
    assert "no placed hand landmark" in _err(capsys)


def test_assignment_details_flag_lesions_separated_from_bone(hand_results):
    details = read(hand_results / "ct" / "lesion_assignment.csv")
    lesions = read(hand_results / "ct" / "lesions.csv")
    assert [r["lesion_id"] for r in details.rows] == [r["lesion_id"] for r in lesions.rows]
    flags = {r["touches_bone"] for r in details.rows}
    assert flags == {0, 1}
    # only periarticular deposits sit against bone in the phantom
    kinds = {r["lesion_id"]: r["kind"] for r in lesions.rows}
    assert all(kinds[r["lesion_id"]] == "periarticular" for r in details.rows if r["touches_bone"] == 1)
    assert {r["touches_bone"] for r in read(hand_results / "mri" / "lesion_assignment.csv").rows} == {None}


def test_landmarks_of_the_other_hand_win_over_dicom_laterality(hand_data, tmp_path, capsys):
    """Landmarks labelled L on an image whose DICOM says R: the landmarks are used (a
    warning says so) and no empty R hand row is made up for hand-compare to compare."""
    src = (hand_data / "ct" / "landmarks.csv").read_text(encoding="utf-8")
    (tmp_path / "left.csv").write_text(src.replace("R_", "L_"), encoding="utf-8")
    out = tmp_path / "o"
    code = run_cli("hand", hand_data / "ct" / "ct", "--landmarks", tmp_path / "left.csv", "-o", out, "-q")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "DICOM laterality says R" in err
    assert [r["side"] for r in read(out / "hand.csv").rows] == ["L"]


def test_magnification_scales_areas_and_is_recorded(hand_data, tmp_path, capsys):
    """The phantom radiograph carries Imager Pixel Spacing = 0.2 mm x 1.08 and the factor
    1.08; ``--magnification 1.2`` replaces the factor, so every area of the same pixels
    (a plain threshold, ``calcinosis measure``) scales by exactly (1.08 / 1.2)² and
    provenance names the source.  Without any factor (tag removed) ``calcinosis hand``
    warns that sizes are at the detector plane."""
    import pydicom
    d = hand_data / "xr"
    areas = {}
    for name, extra in (("file", ()), ("user", ("--magnification", "1.2"))):
        assert run_cli("measure", d / "xr.dcm", "--threshold", "2800", *extra, "-o", tmp_path / name, "-q") == 0
        areas[name] = np.array([r["area_mm2"] for r in read(tmp_path / name / "lesions.csv").rows])
    assert areas["file"].size >= 3
    np.testing.assert_allclose(areas["user"], areas["file"] * (1.08 / 1.2) ** 2, rtol=1e-6)
    image = json.loads((tmp_path / "user" / "provenance.json").read_text())["inputs"]["image"]
    assert image["magnification"] == 1.2 and image["magnification_source"] == "user (--magnification)"
    image = json.loads((tmp_path / "file" / "provenance.json").read_text())["inputs"]["image"]
    assert image["magnification"] == pytest.approx(1.08) and image["magnification_source"].startswith("file")
    ds = pydicom.dcmread(str(d / "xr.dcm"))
    del ds.EstimatedRadiographicMagnificationFactor
    ds.save_as(str(tmp_path / "nofactor.dcm"))
    capsys.readouterr()
    assert run_cli("hand", tmp_path / "nofactor.dcm", "--mask", d / "outlines.seg.nrrd", "-o", tmp_path / "n") == 0
    assert "give it with --magnification" in _err(capsys)
    image = json.loads((tmp_path / "n" / "provenance.json").read_text())["inputs"]["image"]
    assert image["magnification"] is None and image["magnification_source"].startswith("none")
    assert run_cli("hand", d / "xr.dcm", "--magnification", "3", "-o", tmp_path / "bad") == 2
    assert "--magnification" in _err(capsys) and not (tmp_path / "bad").exists()


def test_jpeg_baseline_8bit_radiograph_runs_end_to_end(hand_data, hand_results, tmp_path, capsys):
    """An 8-bit JPEG-baseline DICOM copy of the phantom radiograph (lossy, as radiographs are
    often shared) is read and searched like the original: exit 0, the same hand, and most of
    the deposits the original gives found again (issue 12 found an IndexError here)."""
    from calcinosis.core import dicom_write
    vol = image_io.load_image(hand_data / "xr" / "xr.dcm")
    a = vol.array[0].astype(float)
    a = (a - a.min()) / (a.max() - a.min()) * 255.0
    dicom_write.write_dicom_radiograph(a, tmp_path / "xr8.dcm", tuple(vol.geometry.spacing[:2]), "pixel",
                                       bits_stored=8, jpeg_quality=90, laterality="R")
    assert run_cli("hand", tmp_path / "xr8.dcm", "--landmarks", hand_data / "xr" / "landmarks.csv",
                   "-o", tmp_path / "o", "-q") == 0
    ref = read(hand_results / "xr_auto" / "lesions.csv")
    got = read(tmp_path / "o" / "lesions.csv")
    assert len(ref) >= 8
    assert all(r["side"] == "R" for r in got.rows)
    assert len(got) >= 0.7 * len(ref), (len(got), len(ref))
