"""Numbers are checked where they enter (issue: reliability): options, DICOM header fields
and image spacings that are not finite, not positive where physical, or not plausible are
refused in one line that names the option or the field, exit code 2, nothing written."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from calcinosis.core.output import json_text


def _one_line_refusal(code, err, needle, out_dir):
    assert code == 2, err
    assert err.startswith("calcinosis: error:") and err.strip().count("\n") == 0, err
    assert needle in err, err
    assert not out_dir.exists()


@pytest.mark.parametrize("argv,needle", [
    (["measure", "ct.nrrd", "--min-size", "inf"], "--min-size"),
    (["measure", "ct.nrrd", "--min-size", "nan"], "--min-size"),
    (["measure", "ct.nrrd", "--spacing", "0,0"], "--spacing"),
    (["measure", "ct.nrrd", "--spacing", "1e-30,1e-30"], "--spacing"),
    (["measure", "ct.nrrd", "--spacing", "100,100"], "--spacing"),
    (["measure", "ct.nrrd", "--spacing", "nan,nan"], "--spacing"),
    (["hand", "x.dcm", "--cortical-hu", "nan"], "--cortical-hu"),
    (["hand", "x.dcm", "--joint-radius", "inf"], "--joint-radius"),
    (["hand", "x.dcm", "--edge-fraction", "nan"], "--edge-fraction"),
    (["spine", "ct", "--vertebrae", "v.nii.gz", "--threshold", "nan"], "--threshold"),
    (["spine", "ct", "--vertebrae", "v.nii.gz", "--search-margin", "inf"], "--search-margin"),
    (["phantom", "spheres", "--seed", "-1"], "--seed"),
    (["phantom", "spheres", "--oblique", "nan"], "--oblique"),
    (["phantom", "spheres", "--noise", "nan"], "--noise"),
    (["phantom", "spheres", "--intensity", "1e9"], "--intensity"),
    (["phantom", "spheres", "--diameters", "0,2"], "--diameters"),
    (["phantom", "radiograph", "--magnification", "1e6"], "--magnification"),
    (["phantom", "radiograph", "--magnification", "0.5"], "--magnification"),
    (["phantom", "hand-ct", "--seed", "-1"], "--seed"),
    (["phantom", "spine-ct", "--noise", "-3"], "--noise"),
])
def test_bad_option_values_are_refused(cli, tmp_path, argv, needle):
    out = tmp_path / "out"
    code, _, err = cli(*argv, "-o", out)
    _one_line_refusal(code, err, needle, out)


@pytest.mark.parametrize("limit", ["nan", "-5", "inf", "0"])
def test_change_limit_must_be_a_positive_percentage(cli, tmp_path, limit):
    table = tmp_path / "t.csv"
    table.write_text("patient_id,time_point,v\nP1,baseline,1\nP1,M12,2\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = cli("stats", "change", table, "--value", "v", "--limit", limit, "-o", out)
    _one_line_refusal(code, err, "--limit", out)


@pytest.fixture
def dicom_series(cli, tmp_path):
    code, _, err = cli("phantom", "spheres", "--format", "dicom", "--diameters", "4,6", "-o", tmp_path / "ph", "-q")
    assert code == 0, err
    return sorted((tmp_path / "ph").rglob("*.dcm"))


@pytest.mark.parametrize("spacing", [["0", "0"], ["nan", "nan"], None])
def test_series_without_a_usable_pixel_spacing_is_refused(cli, tmp_path, dicom_series, spacing):
    import pydicom
    for f in dicom_series:
        ds = pydicom.dcmread(f)
        if spacing is None:
            del ds.PixelSpacing
        else:
            with warnings.catch_warnings():   # pydicom warns that 'nan' is no valid DS: that is the point
                warnings.simplefilter("ignore")
                ds.PixelSpacing = spacing
        ds.save_as(f)
    out = tmp_path / "out"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", "130", "-o", out, "-q")
    _one_line_refusal(code, err, "Pixel Spacing (0028,0030)", out)


def test_series_without_slice_positions_is_refused(cli, tmp_path, dicom_series):
    import pydicom
    for f in dicom_series:
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    out = tmp_path / "out"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", "130", "-o", out, "-q")
    _one_line_refusal(code, err, "Image Position (Patient) (0020,0032)", out)


def test_implausible_magnification_is_refused(cli, tmp_path):
    import pydicom
    code, _, err = cli("phantom", "radiograph", "--spacing-tag", "imager", "--magnification", "1.1",
                       "-o", tmp_path / "ph", "-q")
    assert code == 0, err
    f = next((tmp_path / "ph").rglob("*.dcm"))
    ds = pydicom.dcmread(f)
    ds.EstimatedRadiographicMagnificationFactor = "1e6"
    ds.save_as(f)
    out = tmp_path / "out"
    code, _, err = cli("measure", f, "--threshold", "100", "-o", out, "-q")
    _one_line_refusal(code, err, "(0018,1114)", out)


@pytest.mark.parametrize("spacing", [1e-30, 1e6])
def test_implausible_voxel_spacing_in_a_file_is_refused(cli, tmp_path, spacing):
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16))
    img.SetSpacing((spacing, spacing, spacing))
    path = tmp_path / "tiny.nrrd"
    sitk.WriteImage(img, str(path))
    out = tmp_path / "out"
    code, _, err = cli("measure", path, "--threshold", "130", "-o", out, "-q")
    _one_line_refusal(code, err, "not a plausible size", out)


def test_provenance_json_stays_valid_json():
    text = json_text({"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32("nan"), "d": np.array([np.nan, 2.0])})
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert back == {"a": None, "b": [1.0, None], "c": None, "d": [None, 2.0]}
    assert not any(isinstance(v, float) and math.isnan(v) for v in back["b"])


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf", "130:nan"])
def test_threshold_must_be_finite(cli, tmp_path, dicom_series, threshold):
    out = tmp_path / "out"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", threshold, "-o", out, "-q")
    _one_line_refusal(code, err, "--threshold", out)


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_non_finite_voxels_are_refused(cli, tmp_path, fill):
    import SimpleITK as sitk
    a = np.zeros((6, 16, 16), np.float32)
    a[2:4, 5:9, 5:9] = 500.0
    a[0, 0, 0] = fill
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.5, 0.5, 0.5))
    path = tmp_path / "f.nrrd"
    sitk.WriteImage(img, str(path))
    out = tmp_path / "out"
    code, _, err = cli("measure", path, "--threshold", "130", "-o", out, "-q")
    _one_line_refusal(code, err, "not finite numbers", out)


def test_a_mask_off_the_image_is_said(cli, tmp_path):
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(np.zeros((6, 16, 16), np.int16))
    img.SetSpacing((0.5, 0.5, 0.5))
    sitk.WriteImage(img, str(tmp_path / "ct.nrrd"))
    mask = sitk.GetImageFromArray(np.ones((6, 16, 16), np.uint8))
    mask.SetSpacing((0.5, 0.5, 0.5))
    mask.SetOrigin((500.0, 500.0, 500.0))          # half a metre away
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    code, _, err = cli("measure", tmp_path / "ct.nrrd", "--mask", tmp_path / "mask.nrrd", "-o", tmp_path / "out", "-q")
    assert code == 0, err
    assert "does not overlap the image" in err


# ---------------------------------------------------------------------- faults while writing
def test_a_full_disk_is_one_line_and_nothing_is_written(cli, tmp_path, dicom_series, monkeypatch):
    import SimpleITK as sitk

    def full(*a, **k):
        raise RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute: itkNrrdImageIO.cxx:1207:\n"
                           "ITK ERROR: NrrdImageIO(0x55): Write: Error writing out.nrrd: No space left on device")
    monkeypatch.setattr(sitk, "WriteImage", full)
    out = tmp_path / "out"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", "130", "-o", out, "-q")
    assert code == 1 and err.strip().count("\n") == 0, err
    assert "could not be written" in err and "No space left on device" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_force_never_deletes_the_folder_itself(tmp_path):
    """An earlier provenance listing "" or "." among its outputs (hand-edited, or broken)
    must not make --force delete the whole folder and the user's files in it."""
    from calcinosis.core.output import OutputTransaction
    out = tmp_path / "res"
    out.mkdir()
    (out / "my_notes.txt").write_text("keep me", encoding="utf-8")
    (out / "provenance.json").write_text(json.dumps({"outputs": ["", ".", "./", "lesions.csv", "provenance.json"]}),
                                         encoding="utf-8")
    (out / "lesions.csv").write_text("old", encoding="utf-8")
    with OutputTransaction(out, force=True) as tx:
        tx.write_text("{}", "provenance.json")
    assert (out / "my_notes.txt").read_text(encoding="utf-8") == "keep me"
    assert not (out / "lesions.csv").exists()        # the earlier run's own file is replaced away


def test_outputs_are_readable_as_the_umask_allows(tmp_path):
    import os
    import stat

    from calcinosis.core.output import OutputTransaction, write_file_atomic
    old = os.umask(0o022)
    try:
        with OutputTransaction(tmp_path / "res") as tx:
            tx.write_text("a", "a.txt")
        single = write_file_atomic(tmp_path / "form.csv", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "res").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "res" / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE(single.stat().st_mode) == 0o644


@pytest.mark.parametrize("units,scale", [("um", 1.0), ("mm", 0.0)])
def test_collapsed_landmarks_are_refused(tmp_path, units, scale):
    """Landmarks in micrometres (or all at one point) would leave every lesion unassigned."""
    from calcinosis.core.errors import InputError
    from calcinosis.hand import landmarks as lmk
    from calcinosis.hand.phantom import ct_phantom
    points = [(label, np.asarray(p) * scale if scale else np.zeros(3)) for label, p in ct_phantom("R", seed=0).landmarks]
    doc = json.loads(lmk.markups_json_text(points))
    doc["markups"][0]["coordinateUnits"] = units
    path = tmp_path / "lm.mrk.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match=r"lie within .* mm of one another"):
        lmk.read_landmarks(path)


def test_hand_compare_names_a_missing_column(cli, tmp_path):
    """A hand result whose hand.csv lacks a column: one line naming file and column (was a KeyError)."""
    code, _, err = cli("phantom", "hand-xr", "-o", tmp_path / "ph", "-q")
    assert code == 0, err
    code, _, err = cli("hand", tmp_path / "ph" / "xr.dcm", "--landmarks", tmp_path / "ph" / "landmarks.mrk.json",
                       "-o", tmp_path / "res", "-q")
    assert code == 0, err
    hand_csv = tmp_path / "res" / "hand.csv"
    lines = hand_csv.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    k = header.index("lesion_count")
    hand_csv.write_text("\n".join(",".join(c for j, c in enumerate(ln.split(",")) if j != k) for ln in lines) + "\n",
                        encoding="utf-8")
    out = tmp_path / "cmp"
    code, _, err = cli("hand-compare", tmp_path / "res", tmp_path / "res", "-o", out)
    _one_line_refusal(code, err, "hand.csv: column lesion_count is missing", out)


def test_report_refuses_a_missing_or_wrong_image(cli, tmp_path, dicom_series):
    """``report --image``: a missing image, or one the case was not measured on, is an error
    (was: exit 0, with black or no slice panels)."""
    pytest.importorskip("matplotlib")
    case = tmp_path / "case"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", "130", "-o", case, "-q")
    assert code == 0, err
    out = tmp_path / "rep"
    code, _, err = cli("report", case, "--image", tmp_path / "nowhere.nrrd", "-o", out)
    _one_line_refusal(code, err, "--image", out)
    import SimpleITK as sitk
    other = tmp_path / "other.nrrd"
    img = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16))
    img.SetSpacing((0.5, 0.5, 0.5))
    sitk.WriteImage(img, str(other))
    code, _, err = cli("report", case, "--image", other, "-o", out)
    _one_line_refusal(code, err, "not the image this case was measured on", out)
    code, _, err = cli("report", case, "--image", dicom_series[0].parent, "-o", out)
    assert code == 0 and (out / "report.html").is_file(), err


@pytest.mark.parametrize("value", ["inf", "-inf", "1e308", "Infinity"])
def test_stats_refuse_infinite_values_naming_row_and_column(cli, tmp_path, value):
    table = tmp_path / "patients.csv"
    table.write_text("patient_id,group,volume_mm3\nP1,a,10\nP2,a,12\nP3,b," + value + "\nP4,b,9\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = cli("stats", "groups", table, "--by", "group", "--vars", "volume_mm3", "-o", out)
    _one_line_refusal(code, err, "column volume_mm3", out)
    assert "row 4" in err or "line 4" in err or "P3" in err, err


def test_change_needs_two_different_time_points(cli, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("patient_id,time_point,v\nP1,baseline,1\nP1,M12,2\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = cli("stats", "change", table, "--value", "v", "--baseline", "M12", "--followup", "M12", "-o", out)
    _one_line_refusal(code, err, "both 'M12'", out)


def test_report_and_stats_never_write_into_their_input(cli, tmp_path, dicom_series):
    """-o onto the input folder with --force would replace or remove the input's files."""
    case = tmp_path / "case"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", "130", "-o", case, "-q")
    assert code == 0, err
    before = sorted(p.name for p in case.iterdir())
    code, _, err = cli("report", case, "-o", case, "--force")
    assert code == 2 and "holds the input" in err and err.count("\n") == 1, err
    table = tmp_path / "t.csv"
    table.write_text("patient_id,time_point,v\nP1,baseline,1\nP1,M12,2\nP2,baseline,3\nP2,M12,3\n",
                     encoding="utf-8")
    code, _, err = cli("stats", "change", table, "--value", "v", "-o", tmp_path, "--force")
    assert code == 2 and "holds the input t.csv" in err, err
    assert sorted(p.name for p in case.iterdir()) == before and table.is_file()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_spine_param_must_be_finite(cli, tmp_path, value):
    """``--param points_bone_hu=nan`` was reported later as "no vertebra inside the CT"."""
    out = tmp_path / "out"
    code, _, err = cli("spine", "ct", "--vertebrae", "v.nii.gz", "--param", f"points_bone_hu={value}", "-o", out)
    _one_line_refusal(code, err, "--param points_bone_hu", out)


def test_report_names_a_corrupt_provenance(cli, tmp_path, dicom_series):
    """A case folder whose provenance.json is corrupt: one line naming it (was: "none found", exit 0)."""
    case = tmp_path / "case"
    code, _, err = cli("measure", dicom_series[0].parent, "--threshold", "130", "-o", case, "-q")
    assert code == 0, err
    (case / "provenance.json").write_text('{"command": "measure", "outputs": [', encoding="utf-8")
    out = tmp_path / "rep"
    code, _, err = cli("report", case, "-o", out)
    _one_line_refusal(code, err, "provenance.json: unreadable provenance record", out)
