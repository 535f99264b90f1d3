"""DICOM SEG and SR (``--dicom-seg``, ``--dicom-sr``): written with highdicom, read back with
highdicom and pydicom, and compared with the result's own tables and label map - the segment
pixels voxel for voxel, each lesion's measurement to the table's value (the SR stores the
same float: 1e-9 relative), its site codes and qualitative evaluations, the references
between SR, SEG and the source images, and no patient identity by default."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from calcinosis.core import dicom_export, terminology
from calcinosis.core.dicom_write import PHANTOM_BIRTH_DATE, PHANTOM_PATIENT_ID, PHANTOM_PATIENT_NAME
from calcinosis.core.geometry import Geometry
from calcinosis.core.tables import Table

SCT_CALCIFICATION = ("SCT", "18115005")


@pytest.fixture(scope="module")
def hd():
    try:
        import highdicom
    except ImportError:
        from environment import skip_extra_or_fail_in_ci
        skip_extra_or_fail_in_ci("DICOM SEG/SR tests", "highdicom is not installed; `make test` installs it")
    return highdicom


def _main(*argv) -> int:
    from calcinosis.cli.main import main
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def hand_ct(tmp_path_factory, hd):
    d = tmp_path_factory.mktemp("dicom-hand")
    assert _main("phantom", "hand-ct", "-o", d / "ph", "-q") == 0
    assert _main("hand", d / "ph" / "ct", "--landmarks", d / "ph" / "landmarks.mrk.json", "--dicom-sr",
                 "--case-id", "P007", "-o", d / "out", "-q") == 0
    return d


@pytest.fixture(scope="module")
def spine(tmp_path_factory, hd):
    d = tmp_path_factory.mktemp("dicom-spine")
    assert _main("phantom", "spine-ct", "--coverage", "lumbar", "--fit", "--spacing", "1.5,1.5,2", "-o", d / "ph",
                 "-q") == 0
    assert _main("spine", d / "ph" / "ct", "--vertebrae", d / "ph" / "vertebrae.nii.gz", "--dicom-sr", "--no-chart",
                 "-o", d / "out", "-q") == 0
    return d


def _code(c) -> tuple[str, str]:
    return (str(c.scheme_designator), str(c.value))


def _groups(hd, path, planar=False):
    sr = hd.sr.srread(str(path))
    g = (sr.content.get_planar_roi_measurement_groups() if planar
         else sr.content.get_volumetric_roi_measurement_groups())
    return sr, g


def _evaluations(group) -> dict[str, str]:
    return {str(q.name.value): str(q.value.value) for q in group.get_qualitative_evaluations()}


def _check_seg_pixels(hd, seg_path, labels_path, source_files):
    """Each source image's frame of the SEG equals the label map's slice at that image's
    position (found by SimpleITK from the file's own Image Position, not by the code under test)."""
    import pydicom
    seg = hd.seg.segread(str(seg_path))
    assert seg.SegmentationType == "LABELMAP"
    labels = sitk.ReadImage(str(labels_path))
    if len(source_files) > 1:   # a label map cropped to the lesions (spine): back onto the CT's grid
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(source_files[0].parent)))
        labels = sitk.Resample(labels, reader.Execute(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    want = sitk.GetArrayFromImage(labels)
    sources = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in source_files]
    # (a real series may leave SOP Instance UID empty: its file meta names the instance)
    uids = [str(s.get("SOPInstanceUID", "") or s.file_meta.MediaStorageSOPInstanceUID) for s in sources]
    got = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    assert got.shape[0] == len(sources) == want.shape[0]
    for s, frame in zip(sources, got):
        k = labels.TransformPhysicalPointToIndex([float(x) for x in s.ImagePositionPatient])[2] \
            if "ImagePositionPatient" in s else 0
        assert np.array_equal(frame.astype(np.int64), want[k].astype(np.int64)), s.SOPInstanceUID
    return seg


def test_hand_ct_seg_pixels_codes_and_labels(hd, hand_ct):
    out = hand_ct / "out"
    seg = _check_seg_pixels(hd, out / dicom_export.SEG_NAME, out / "lesion_labels.nrrd",
                            sorted((hand_ct / "ph" / "ct").iterdir()))
    rows = Table.read_csv(out / "lesions.csv").rows
    # LABELMAP: segment 0 is the background, then one segment per lesion
    assert [int(x.SegmentNumber) for x in seg.SegmentSequence] == [0] + [int(r["lesion_id"]) for r in rows]
    assert len(rows) > 5
    for r in rows:
        d = seg.get_segment_description(int(r["lesion_id"]))
        assert _code(d.segmented_property_category) == ("SCT", "49755003")
        assert _code(d.segmented_property_type) == SCT_CALCIFICATION
        region, _ = terminology.hand_region(r["side"], r["digit"], r["zone"])
        assert [_code(a) for a in d.anatomic_regions] == [region[:2]]
        assert d.segment_label.startswith(f"{r['lesion_id']} {r['side']} {r['digit']}")
    # each segment in the colour of its lesions.seg.nrrd segment (RGB -> CIE Lab (16 bit) -> RGB)
    from calcinosis.core import segnrrd
    colours = [x.color for x in segnrrd.read_seg_nrrd(out / "lesions.seg.nrrd").segments]
    for item, rgb in zip(seg.SegmentSequence[1:], colours):
        back = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()
        assert np.allclose(np.asarray(back, float), 255 * np.asarray(rgb), atol=3), (back, rgb)
    # the SEG is in the source's study and references the source series
    import pydicom
    src = pydicom.dcmread(str(sorted((hand_ct / "ph" / "ct").iterdir())[0]), stop_before_pixels=True)
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID


def test_hand_ct_sr_measurements_sites_and_references(hd, hand_ct):
    out = hand_ct / "out"
    seg = hd.seg.segread(str(out / dicom_export.SEG_NAME))
    sr, groups = _groups(hd, out / dicom_export.SR_NAME)
    rows = {int(r["lesion_id"]): r for r in Table.read_csv(out / "lesions.csv").rows}
    assert len(groups) == len(rows)
    for g in groups:
        ref = g.referenced_segment
        n = int(ref.referenced_segment_numbers[0]) if hasattr(ref, "referenced_segment_numbers") \
            else int(ref.ReferencedSegmentNumber)
        r = rows[n]
        m = g.get_measurements()
        assert len(m) == 1 and _code(m[0].name) == ("SCT", "118565006") and str(m[0].unit.value) == "mm3"
        assert m[0].value == pytest.approx(float(r["volume_mm3"]), rel=1e-9)
        assert _code(g.finding_type) == SCT_CALCIFICATION
        ev = _evaluations(g)
        assert (ev["side"], ev["digit"], ev["zone"], ev["kind"]) == (r["side"], r["digit"], r["zone"], r["kind"])
        region, lat = terminology.hand_region(r["side"], r["digit"], r["zone"])
        site = g.finding_sites[0]
        assert _code(site.value) == region[:2] and _code(site.laterality) == lat[:2]
        assert str(g.tracking_identifier) == f"lesion {n}"
    # the SR's evidence: the source images and the SEG
    uids = {i.ReferencedSOPInstanceUID for st in sr.CurrentRequestedProcedureEvidenceSequence
            for se in st.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in uids


def test_no_patient_identity_unless_asked(hd, hand_ct, tmp_path):
    out = hand_ct / "out"
    import pydicom
    for name in (dicom_export.SEG_NAME, dicom_export.SR_NAME):
        ds = pydicom.dcmread(str(out / name))
        assert str(ds.PatientID) == "P007" and str(ds.PatientName) == "P007"
        assert "PatientBirthDate" not in ds and "PatientSex" not in ds
        raw = (out / name).read_bytes()
        for secret in (PHANTOM_PATIENT_NAME, PHANTOM_PATIENT_ID, PHANTOM_BIRTH_DATE):
            assert secret.encode() not in raw
    # --dicom-keep-patient: the source's patient module, for the PACS
    ph = hand_ct / "ph"
    assert _main("hand", ph / "ct", "--landmarks", ph / "landmarks.mrk.json", "--dicom-seg", "--dicom-keep-patient",
                 "-o", tmp_path / "keep", "-q") == 0
    ds = pydicom.dcmread(str(tmp_path / "keep" / dicom_export.SEG_NAME))
    assert str(ds.PatientID) == PHANTOM_PATIENT_ID and str(ds.PatientName) == PHANTOM_PATIENT_NAME
    assert not (tmp_path / "keep" / dicom_export.SR_NAME).exists()     # --dicom-seg alone: no SR


def test_spine_seg_and_sr_carry_level_segment_subsite_pattern(hd, spine):
    out = spine / "out"
    seg = _check_seg_pixels(hd, out / dicom_export.SEG_NAME, out / "lesion_labels.nrrd",
                            sorted((spine / "ph" / "ct").iterdir()))
    rows = {int(r["lesion_id"]): r for r in Table.read_csv(out / "lesions.csv").rows}
    assert len(rows) > 10
    _, groups = _groups(hd, out / dicom_export.SR_NAME)
    assert len(groups) == len(rows)
    seen = set()
    for g in groups:
        n = int(g.referenced_segment.ReferencedSegmentNumber) if hasattr(g.referenced_segment, "ReferencedSegmentNumber") \
            else int(g.referenced_segment.referenced_segment_numbers[0])
        r = rows[n]
        ev = _evaluations(g)
        assert (ev["level"], ev["segment"], ev["subsite"], ev["pattern"]) == (
            r["level"], r["segment"], r["subsite"], r["pattern"])
        assert g.get_measurements()[0].value == pytest.approx(float(r["volume_mm3"]), rel=1e-9)
        # the level itself, coded as the DICOM standard does ("Level of T8/T9 intervertebral disc")
        level_code = _code(g.finding_sites[0].value)
        assert level_code[0] == "SCT" and str(g.finding_sites[0].value.meaning) == \
            f"Level of {r['level'].replace('-', '/')} intervertebral disc"
        assert level_code == terminology.spine_level_region(r["level"])[0][:2]
        assert [_code(x) for x in seg.get_segment_description(n).anatomic_regions] == [level_code]
        seen.add(n)
    assert seen == set(rows)


def test_radiograph_seg_and_planar_sr(hd, tmp_path):
    assert _main("phantom", "hand-xr", "-o", tmp_path / "ph", "-q") == 0
    ph = tmp_path / "ph"
    assert _main("hand", ph / "xr.dcm", "--landmarks", ph / "landmarks.mrk.json", "--mask", ph / "outlines.seg.nrrd",
                 "--dicom-sr", "-o", tmp_path / "out", "-q") == 0
    out = tmp_path / "out"
    _check_seg_pixels(hd, out / dicom_export.SEG_NAME, out / "lesion_labels.nrrd", [ph / "xr.dcm"])
    rows = {int(r["lesion_id"]): r for r in Table.read_csv(out / "lesions.csv").rows}
    _, groups = _groups(hd, out / dicom_export.SR_NAME, planar=True)
    assert len(groups) == len(rows) > 5
    for g in groups:
        m = g.get_measurements()[0]
        assert _code(m.name) == ("SCT", "42798000") and str(m.unit.value) == "mm2"
    areas = sorted(g.get_measurements()[0].value for g in groups)
    assert areas == pytest.approx(sorted(float(r["area_mm2"]) for r in rows.values()), rel=1e-9)


def test_not_dicom_input_is_refused_before_any_work(hd, tmp_path, cli):
    g = Geometry.create((20, 20, 10), (1, 1, 1))
    img = sitk.GetImageFromArray(np.zeros(g.shape, np.int16))
    sitk.WriteImage(img, str(tmp_path / "ct.nrrd"))
    code, out, err = cli("spine", tmp_path / "ct.nrrd", "--points", tmp_path / "none.csv", "--dicom-seg",
                         "-o", tmp_path / "out", "-q")
    assert code == 2 and "ct.nrrd" in err and "DICOM" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_highdicom_is_one_clear_line(monkeypatch, tmp_path, cli):
    import sys
    monkeypatch.setitem(sys.modules, "highdicom", None)
    (tmp_path / "x.dcm").write_bytes(b"")
    code, out, err = cli("hand", tmp_path / "x.dcm", "--dicom-seg", "-o", tmp_path / "out", "-q")
    assert code == 2 and "highdicom is not installed" in err and "pip install highdicom" in err
    assert not (tmp_path / "out").exists()


def test_frames_follow_the_source_datasets_order():
    """Each source dataset gets the slice at its own Image Position, whatever the order."""
    from types import SimpleNamespace
    g = Geometry.create((4, 3, 5), (0.5, 0.5, 2.0), (10.0, 20.0, -30.0))   # RAS origin, identity direction
    labels = np.arange(5)[:, None, None] * np.ones((5, 3, 4), np.uint8)
    order = [3, 0, 4, 1, 2]
    sources = []
    for k in order:
        ras = g.ijk_to_ras(np.array([[0.0, 0.0, k]]))[0]
        sources.append(SimpleNamespace(ImagePositionPatient=[-ras[0], -ras[1], ras[2]]))
    frames = dicom_export.labels_per_source_frame(labels, g, sources)
    assert [int(f[0, 0]) for f in frames] == order
    off = SimpleNamespace(ImagePositionPatient=[-10.0, -20.0, -30.0 + 1.0])     # half-way between two slices
    with pytest.raises(Exception, match="does not lie on a slice"):
        dicom_export.labels_per_source_frame(labels, g, [off, off])


def test_a_result_without_lesions_is_written_without_dicom_objects(hd, tmp_path):
    """A hand without calcinosis: every other file is written, no SEG (it needs a segment),
    and provenance says why."""
    import json
    assert _main("phantom", "hand-ct", "--spacing", "0.7", "-o", tmp_path / "ph", "-q") == 0
    assert _main("hand", tmp_path / "ph" / "ct", "--landmarks", tmp_path / "ph" / "landmarks.mrk.json",
                 "--threshold", "5000", "--dicom-sr", "-o", tmp_path / "out", "-q") == 0
    out = tmp_path / "out"
    assert len(Table.read_csv(out / "lesions.csv").rows) == 0 and (out / "hand.csv").is_file()
    assert not (out / dicom_export.SEG_NAME).exists() and not (out / dicom_export.SR_NAME).exists()
    assert dicom_export.NO_LESION_WARNING in json.loads((out / "provenance.json").read_text())["warnings"]


def test_real_dicom_series_with_empty_sop_class(hd, totalseg_example, tmp_path):
    """The real TotalSegmentator example series (its SOP Class UID is empty; the file meta
    names it): a SEG and SR are written on it, each source image's frame equal to the label
    map's slice at that image's position (threshold lowered to 100 HU so that it has lesions;
    at the default it has none)."""
    series = totalseg_example / "ct_dicom"
    assert _main("spine", series, "--vertebrae", totalseg_example / "example_seg_dicom.nii.gz", "--threshold", "100",
                 "--dicom-sr", "--no-chart", "-o", tmp_path / "out", "-q") == 0
    out = tmp_path / "out"
    rows = Table.read_csv(out / "lesions.csv").rows
    assert len(rows) >= 1
    _check_seg_pixels(hd, out / dicom_export.SEG_NAME, out / "lesion_labels.nrrd", sorted(series.iterdir()))
    _, groups = _groups(hd, out / dicom_export.SR_NAME)
    assert len(groups) == len(rows)
