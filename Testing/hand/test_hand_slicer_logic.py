"""The CalcinosisQuant panel's logic (``calcinosis.mrml.hand_session``), headless on slicer-core.

The reference is the command line on the same inputs: the panel's Export must write the
same files as ``calcinosis hand`` (unedited detection) or ``calcinosis hand --mask``
(the segmentation as the user edited it, saved) - byte for byte for every table and its
schema, voxel for voxel for the label map.  Only provenance.json differs (time, how the
inputs were identified) and its parameters are compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calcinosis.core import image_io
from calcinosis.core.errors import Cancelled, InputError, OutputExistsError
from calcinosis.core.progress import Progress
from calcinosis.hand import landmarks as lmk
from calcinosis.hand.anatomy import expected_landmark_labels
from calcinosis.hand.structural_form import FINDINGS, LOCATIONS, read_form

from hand_helpers import read, run_cli

pytestmark = pytest.mark.mrml

TABLES = ["lesions", "digits", "hand", "lesion_assignment"]


@pytest.fixture(scope="module")
def ct_volume(hand_data):
    return image_io.load_image(hand_data / "ct" / "ct")


@pytest.fixture
def ct(mrml_scene, hand_data, ct_volume):
    """The phantom CT as a volume node (modality from its attribute) and its landmarks as a point list."""
    from calcinosis import mrml

    node = mrml.node_from_volume(ct_volume, "hand CT")
    points = lmk.read_landmarks(hand_data / "ct" / "landmarks.mrk.json").as_points()
    return node, mrml.markups_from_points(points, "hand landmarks")


def _same_files(a: Path, b: Path, names=None):
    names = names or sorted(p.name for p in b.iterdir() if p.name != "provenance.json")
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in names:
        if name.endswith(".nrrd"):
            continue
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    la = image_io.load_label_image(a / "lesion_labels.nrrd")
    lb = image_io.load_label_image(b / "lesion_labels.nrrd")
    assert np.array_equal(la.layers[0], lb.layers[0]) and la.geometry.shape == lb.geometry.shape
    sa = image_io.load_label_image(a / "lesions.seg.nrrd")
    sb = image_io.load_label_image(b / "lesions.seg.nrrd")
    assert [s.name for s in sa.segments] == [s.name for s in sb.segments]


def _provenance(folder: Path) -> dict:
    return json.loads((folder / "provenance.json").read_text())


def _lesion_rows(node) -> int:
    return node.GetTable().GetNumberOfRows()


# ---------------------------------------------------------------------- the whole flow = the command line
def test_detect_measure_export_equal_calcinosis_hand(ct, hand_results, tmp_path):
    from calcinosis.mrml import hand_session as sl

    node, landmarks = ct
    det = sl.detect(node, "auto", landmarks_node=landmarks)
    cli = hand_results / "ct"
    cli_lesions = read(cli / "lesions.csv")
    seg = det.segmentation_node.GetSegmentation()
    assert seg.GetNumberOfSegments() == det.lesions.n == len(cli_lesions)
    # segments named and coloured as the command line's lesions.seg.nrrd
    cli_seg = image_io.load_label_image(cli / "lesions.seg.nrrd")
    names = [seg.GetNthSegment(k).GetName() for k in range(seg.GetNumberOfSegments())]
    assert names == [s.name for s in cli_seg.segments]
    assert names[0].split()[:2] == ["1", "R"]

    messages = []
    m = sl.measure(node, det.segmentation_node, "auto", landmarks, det, progress=Progress(lambda f, t: messages.append(t)))
    assert m.from_detection and sl.measurement_is_current(m)
    assert "segmentation unchanged since Detect" in messages  # not read back: nothing changed
    # the tables shown: one row per lesion / digit / hand, units on the columns
    assert _lesion_rows(m.lesion_table_node) == len(cli_lesions)
    assert m.lesion_table_node.GetColumnUnitLabel("volume_mm3") == "mm3"
    assert m.digit_table_node.GetColumnUnitLabel("total_volume_mm3") == "mm3"
    assert _lesion_rows(m.digit_table_node) == len(read(cli / "digits.csv"))
    assert _lesion_rows(m.hand_table_node) == 1
    assert m.lesion_table_node.GetLocked() and m.lesion_table_node.GetUseColumnTitleAsColumnHeader()
    # the per-digit chart: one bar series of total volume, labelled "R thumb", ...
    chart = m.chart_node
    assert chart.GetNumberOfPlotSeriesNodes() == 1
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetYColumnName() == "total_volume_mm3" and series.GetLabelColumnName() == "digit"
    data = series.GetTableNode().GetTable()
    digits = read(cli / "digits.csv")
    assert [data.GetValueByName(r, "digit").ToString() for r in range(data.GetNumberOfRows())] == \
        [f"{r['side']} {r['digit']}" for r in digits.rows]
    assert [data.GetValueByName(r, "total_volume_mm3").ToDouble() for r in range(data.GetNumberOfRows())] == \
        pytest.approx([r["total_volume_mm3"] for r in digits.rows], rel=1e-9)

    written = sl.export(tmp_path / "panel", m)
    assert {p.name for p in written} == {p.name for p in cli.iterdir()}
    _same_files(tmp_path / "panel", cli)
    prov, cli_prov = _provenance(tmp_path / "panel"), _provenance(cli)
    assert prov["command"] == "hand" and prov["parameters"] == cli_prov["parameters"]
    assert prov["inputs"]["image"]["interface"].startswith("3D Slicer")
    assert "path" not in json.dumps(prov["inputs"])
    # `calcinosis hand-compare` takes the panel's export like the command line's
    assert run_cli("hand-compare", tmp_path / "panel", hand_results / "mri", "-o", tmp_path / "cmp", "-q") == 0

    # a segment renamed (or given a 3D surface): touched, same voxels -> still the detection, same files
    seg.GetNthSegment(0).SetName("checked")
    messages = []
    touched = sl.measure(node, det.segmentation_node, "auto", landmarks, det,
                         progress=Progress(lambda f, t: messages.append(t)))
    assert touched.from_detection and "reading the segmentation" in messages
    sl.export(tmp_path / "touched", touched)
    _same_files(tmp_path / "touched", cli)

    # measuring again refills the same nodes (no second chart series, no second table)
    tables_before = node.GetScene().GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems()
    series_before = node.GetScene().GetNodesByClass("vtkMRMLPlotSeriesNode").GetNumberOfItems()
    again = sl.measure(node, det.segmentation_node, "auto", landmarks, det, lesion_table_node=m.lesion_table_node,
                       digit_table_node=m.digit_table_node, hand_table_node=m.hand_table_node, chart_node=m.chart_node)
    assert node.GetScene().GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == tables_before
    assert again.chart_node.GetNumberOfPlotSeriesNodes() == 1
    assert node.GetScene().GetNodesByClass("vtkMRMLPlotSeriesNode").GetNumberOfItems() == series_before


def test_every_panel_setting_reaches_the_core_like_the_command_line_options(ct, hand_data, tmp_path):
    """Non-default detection and assignment settings: the panel and `calcinosis hand` with the
    matching options write the same files (so each setting is passed on, and to the right place)."""
    from calcinosis.mrml import hand_session as sl

    node, landmarks = ct
    params = sl.detect_params(threshold=150.0, min_size=2.0, connectivity="full", min_slices=2, boundary="threshold",
                              remove_bone=True)
    assign = sl.assign_params(max_ray_distance_mm=12.0, joint_radius_mm=4.0, periarticular_mm=5.0,
                              wrist_reach_mm=25.0, side_reach_mm=50.0, thumb_ip_zone="PIP", wrist_width_mm=10.0,
                              landmark_margin_mm=5.0)
    det = sl.detect(node, "CT", params, landmarks_node=landmarks, assign=assign)
    m = sl.measure(node, det.segmentation_node, "CT", landmarks, det, params, assign=assign)
    assert m.from_detection
    sl.export(tmp_path / "panel", m)
    assert run_cli("hand", hand_data / "ct" / "ct", "--landmarks", hand_data / "ct" / "landmarks.mrk.json",
                   "--threshold", "150", "--min-size", "2", "--connectivity", "full", "--min-slices", "2",
                   "--boundary", "threshold", "--max-ray-distance", "12", "--joint-radius", "4",
                   "--periarticular-distance", "5", "--wrist-reach", "25", "--side-reach", "50", "--thumb-ip-zone", "PIP",
                   "--wrist-width", "10", "--landmark-margin", "5", "-o", tmp_path / "cli", "-q") == 0
    _same_files(tmp_path / "panel", tmp_path / "cli")
    prov = _provenance(tmp_path / "panel")
    assert prov["parameters"] == _provenance(tmp_path / "cli")["parameters"]
    assert prov["parameters"]["assignment"]["wrist_width_mm"] == 10.0
    assert prov["parameters"]["assignment"]["landmark_margin_mm"] == 5.0
    assert prov["parameters"]["detection"]["boundary"] == "threshold"


def test_measure_follows_the_users_edits_like_hand_mask(ct, hand_data, ct_volume, tmp_path):
    import slicer.util
    from calcinosis import mrml
    from calcinosis.mrml import hand_session as sl

    node, landmarks = ct
    det = sl.detect(node, "CT", landmarks_node=landmarks)
    segnode = det.segmentation_node
    seg = segnode.GetSegmentation()
    n = det.lesions.n
    first = sl.measure(node, segnode, "CT", landmarks, det)
    # the reviewer deletes the first lesion, erases half of the largest one, and paints a
    # missed 2 mm cube in the soft tissue of the index finger
    seg.RemoveSegment(seg.GetNthSegmentID(0))
    assert not sl.measurement_is_current(first)
    largest = int(np.argmax(det.lesions.counts()[1:])) + 1
    lid = f"lesion_{largest}"
    arr = slicer.util.arrayFromSegmentBinaryLabelmap(segnode, lid, node)
    k_mid = int(np.median(np.nonzero(arr)[0]))
    full = int(arr.sum())
    arr[:k_mid] = 0
    slicer.util.updateSegmentBinaryLabelmapFromArray(arr, segnode, lid, node)
    geom = ct_volume.geometry
    pip = lmk.read_landmarks(hand_data / "ct" / "landmarks.mrk.json").get("R", "index", "PIP")
    dip = lmk.read_landmarks(hand_data / "ct" / "landmarks.mrk.json").get("R", "index", "DIP")
    centre = np.rint(geom.ras_to_ijk((pip + dip) / 2)).astype(int)
    cube = np.zeros(geom.shape, np.uint8)
    k, j, i = centre[::-1]
    cube[k - 2:k + 2, j - 2:j + 2, i - 2:i + 2] = 1
    new_id = seg.AddEmptySegment("", "missed lesion")
    slicer.util.updateSegmentBinaryLabelmapFromArray(cube, segnode, new_id, node)

    m = sl.measure(node, segnode, "CT", landmarks, det)
    assert not m.from_detection and sl.measurement_is_current(m)
    rows = m.result.lesions_table.rows
    assert len(rows) == n  # one removed, one painted
    painted = next(r for r in rows if r["source_segment"] == "missed lesion")
    assert painted["voxel_count"] == 64
    assert painted["volume_mm3"] == pytest.approx(64 * geom.voxel_volume_mm3, rel=1e-12)
    assert painted["digit"] == "index" and painted["side"] == "R"
    halved = next(r for r in rows if r["source_segment"] == det.names[largest - 1])
    assert 0 < halved["voxel_count"] < full
    before = m.result.parameters["review"]["detection_before_review"]
    assert before["threshold"] == 130.0 and before["modality"] == "CT"

    # the command line measuring the saved segmentation gives the same files
    mrml.save_segmentation(segnode, tmp_path / "edited.seg.nrrd")
    assert run_cli("hand", hand_data / "ct" / "ct", "--landmarks", hand_data / "ct" / "landmarks.mrk.json",
                   "--mask", tmp_path / "edited.seg.nrrd", "-o", tmp_path / "cli", "-q") == 0
    sl.export(tmp_path / "panel", m)
    _same_files(tmp_path / "panel", tmp_path / "cli")
    prov = _provenance(tmp_path / "panel")
    params = {k: v for k, v in prov["parameters"].items() if k != "review"}
    assert params == _provenance(tmp_path / "cli")["parameters"]

    # a landmark moved after Measure makes the measurement stale; so does a changed setting
    landmarks.SetNthControlPointPositionWorld(0, 0.0, 0.0, 0.0)
    assert not sl.measurement_is_current(m)
    m = sl.measure(node, segnode, "CT", landmarks, det)
    assert sl.measurement_is_current(m, m.settings)
    changed = sl.settings_key(node, "CT", sl.DETECT_DEFAULTS, sl.assign_params(joint_radius_mm=7.0), False,
                              landmarks, False)
    assert not sl.measurement_is_current(m, changed)


def test_mri_with_drawn_regions_equals_calcinosis_hand(mrml_scene, hand_data, hand_results, tmp_path):
    from calcinosis import mrml
    from calcinosis.mrml import hand_session as sl

    vol = image_io.load_image(hand_data / "mri" / "mri")
    node = mrml.node_from_volume(vol, "hand MRI")
    landmarks = mrml.markups_from_points(lmk.read_landmarks(hand_data / "mri" / "landmarks.mrk.json").as_points(), "lm")
    with pytest.raises(InputError, match="draw a region around the lesions"):
        sl.detect(node, "auto", landmarks_node=landmarks)
    assert mrml_scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    region = mrml.load_segmentation(hand_data / "mri" / "regions.seg.nrrd")
    det = sl.detect(node, "MRI", region_node=region, landmarks_node=landmarks)
    m = sl.measure(node, det.segmentation_node, "MRI", landmarks, det)
    sl.export(tmp_path / "panel", m)
    _same_files(tmp_path / "panel", hand_results / "mri")


# ---------------------------------------------------------------------- radiograph: spacing at the patient, form
class _FakeDicomDatabase:
    def __init__(self, files):
        self.files = files

    def fileForInstance(self, uid):
        return str(self.files.get(uid, ""))


@pytest.fixture
def xr(mrml_scene, hand_data, monkeypatch):
    """The phantom radiograph as Slicer's DICOM loader shows it: the detector spacing
    (Imager Pixel Spacing, 0.216 mm) without the magnification factor (1.08), and a DICOM
    database that knows its file."""
    import slicer
    from calcinosis import mrml
    from calcinosis.core.volume import Volume

    vol = image_io.load_image(hand_data / "xr" / "xr.dcm")
    node = mrml.node_from_volume(Volume(vol.array, vol.geometry, {}), "hand XR")
    node.SetAttribute("DICOM.instanceUIDs", "1.2.3.4")
    sp = list(node.GetSpacing())
    node.SetSpacing(sp[0] * 1.08, sp[1] * 1.08, sp[2])
    monkeypatch.setattr(slicer, "dicomDatabase", _FakeDicomDatabase({"1.2.3.4": hand_data / "xr" / "xr.dcm"}),
                        raising=False)
    return node, vol


def test_panel_magnification_wins_and_is_recorded(xr, mrml_scene):
    """The panel's magnification field: the detector spacing (0.216 mm) divided by the
    user's 1.2 instead of the file's 1.08; applied once (asking again changes nothing),
    kept on the node, and recorded as the user's in what the pipeline reads; on an image
    without a DICOM header the spacing as loaded is the detector's."""
    from calcinosis import mrml
    from calcinosis.core.volume import Volume
    from calcinosis.mrml import hand_session as sl

    node, vol = xr
    detector = 0.2 * 1.08
    advice = sl.radiograph_spacing_advice(node, magnification=1.2)
    assert advice.patient_spacing == pytest.approx((detector / 1.2, detector / 1.2), rel=1e-9)
    assert "(user)" in advice.source
    sl.apply_patient_spacing(node, advice)
    assert node.GetSpacing()[:2] == pytest.approx((detector / 1.2, detector / 1.2), rel=1e-9)
    assert sl.radiograph_spacing_advice(node) is None                   # the node remembers 1.2
    assert sl.radiograph_spacing_advice(node, magnification=1.2) is None
    volume, _ = sl.read_image(node)
    assert volume.meta["magnification"] == 1.2 and volume.meta["magnification_source"].startswith("user")
    assert not any("at the patient they are" in w for w in volume.meta["warnings"])
    # no DICOM header: the node's spacing as loaded, divided; twice asked, once applied
    plain = mrml.node_from_volume(Volume(vol.array, vol.geometry, {}), "plain XR")
    assert sl.radiograph_spacing_advice(plain) is None
    loaded = plain.GetSpacing()[0]
    sl.apply_patient_spacing(plain, sl.radiograph_spacing_advice(plain, magnification=1.25))
    assert sl.radiograph_spacing_advice(plain, magnification=1.25) is None
    assert plain.GetSpacing()[0] == pytest.approx(loaded / 1.25, rel=1e-9)
    sl.apply_patient_spacing(plain, sl.radiograph_spacing_advice(plain, magnification=1.1))
    assert plain.GetSpacing()[0] == pytest.approx(loaded / 1.1, rel=1e-9)   # from the spacing as loaded


def test_radiograph_spacing_at_the_patient_and_outlines_equal_hand_mask(xr, hand_data, hand_results, tmp_path):
    from calcinosis import mrml
    from calcinosis.mrml import hand_session as sl

    node, vol = xr
    summary = sl.image_summary(node, "auto")
    assert summary.modality == "XR" and summary.is_2d and summary.size_unit == "mm2" and summary.source == "DICOM header"
    advice = sl.radiograph_spacing_advice(node)
    assert advice is not None and advice.area_ratio() == pytest.approx(1.08 ** 2, rel=1e-6)
    assert advice.patient_spacing == pytest.approx(tuple(vol.geometry.spacing[:2]), rel=1e-9)
    volume, m = sl.read_image(node)
    assert m == "XR" and volume.meta["laterality"] == "R"
    assert any("at the patient" in w for w in volume.meta["warnings"])
    sl.apply_patient_spacing(node, advice)
    assert sl.radiograph_spacing_advice(node) is None

    # the reader's outlines, measured with the landmarks: the files of `calcinosis hand --mask`
    outlines = mrml.load_segmentation(hand_data / "xr" / "outlines.seg.nrrd")
    landmarks = mrml.markups_from_points(lmk.read_landmarks(hand_data / "xr" / "landmarks.csv").as_points(), "lm")
    meas = sl.measure(node, outlines, "auto", landmarks)
    assert not meas.from_detection
    assert meas.lesion_table_node.GetColumnUnitLabel("area_mm2") == "mm2"
    assert meas.chart_node.GetNthPlotSeriesNode(0).GetYColumnName() == "total_area_mm2"
    sl.export(tmp_path / "panel", meas)
    _same_files(tmp_path / "panel", hand_results / "xr_outlines")  # with the blank structural form


def test_radiograph_detect_uses_the_landmarks_like_calcinosis_hand(xr, hand_data):
    """On radiographs the landmarks tell bone ends and carpal bones from deposits: the panel's
    Detect must hand them to the detector, giving the command line's candidates."""
    from calcinosis import mrml
    from calcinosis.hand import pipeline as hand_pipeline
    from calcinosis.mrml import hand_session as sl

    node, vol = xr
    sl.apply_patient_spacing(node, sl.radiograph_spacing_advice(node))
    hand_lm = lmk.read_landmarks(hand_data / "xr" / "landmarks.csv")
    landmarks = mrml.markups_from_points(hand_lm.as_points(), "lm")
    det = sl.detect(node, "auto", landmarks_node=landmarks)
    volume, _ = sl.read_image(node)
    core = hand_pipeline.detect_lesions(volume, "XR", landmarks=hand_lm)
    without = hand_pipeline.detect_lesions(volume, "XR")
    assert det.detection.lesions.n == core.lesions.n
    np.testing.assert_array_equal(np.sort(det.detection.lesions.voxel_index), np.sort(core.lesions.voxel_index))
    # the placed landmarks were used (none was filled in by the hand model); without them the
    # hand model's 20 are (they now give as few false candidates as placed ones, so the counts
    # alone cannot tell)
    assert det.detection.parameters["hand_model"]["automatic_landmarks"] == []
    assert len(without.parameters["hand_model"]["automatic_landmarks"]) == 20


def test_radiograph_detect_shows_the_automatic_landmarks(xr, hand_data):
    """After Detect on a radiograph the panel shows the hand model's landmarks: without a
    point list, a new one with the 20 automatic points (each described as automatic, within
    5 mm of the phantom's true ones for at least 19); with a list where some are unplaced,
    those are placed and the reader's placed points are not moved."""
    from calcinosis import mrml
    from calcinosis.hand.landmarks import AUTOMATIC_DESCRIPTION
    from calcinosis.mrml import hand_session as sl

    node, vol = xr
    sl.apply_patient_spacing(node, sl.radiograph_spacing_advice(node))
    truth = dict(lmk.read_landmarks(hand_data / "xr" / "landmarks.csv").as_points())
    det = sl.detect(node, "auto")
    shown = det.landmarks_node
    assert shown is not None and shown.GetNumberOfControlPoints() == 20
    assert any("automatic" in w for w in det.warnings)
    near = 0
    for i in range(20):
        assert shown.GetNthControlPointDescription(i) == AUTOMATIC_DESCRIPTION
        p = np.zeros(3)
        shown.GetNthControlPointPositionWorld(i, p)
        near += np.linalg.norm(p - truth[shown.GetNthControlPointLabel(i)]) <= 5.0
    assert near >= 19
    # a list with three points unplaced: they are placed, the 17 others stay where the reader put them
    points = [(lab, None if n in (2, 7, 11) else ras) for n, (lab, ras) in enumerate(truth.items())]
    partial = mrml.markups_from_points(points, "reader")
    det = sl.detect(node, "auto", landmarks_node=partial)
    assert det.landmarks_node is partial
    for i in range(partial.GetNumberOfControlPoints()):
        lab = partial.GetNthControlPointLabel(i)
        assert partial.GetNthControlPointPositionStatus(i) != 0
        p = np.zeros(3)
        partial.GetNthControlPointPositionWorld(i, p)
        automatic = partial.GetNthControlPointDescription(i) == AUTOMATIC_DESCRIPTION
        assert automatic == (lab in {points[n][0] for n in (2, 7, 11)})
        if not automatic:
            np.testing.assert_allclose(p, truth[lab], atol=1e-6)


def test_monochrome1_radiograph_is_flagged(xr, hand_data, tmp_path):
    import slicer
    from calcinosis.core import dicom_write
    from calcinosis.mrml import hand_session as sl

    node, vol = xr
    dicom_write.write_dicom_radiograph(vol.array[0].max() - vol.array[0], tmp_path / "m1.dcm", (0.2, 0.2), "pixel",
                                       monochrome1=True)
    slicer.dicomDatabase.files["1.2.3.4"] = tmp_path / "m1.dcm"
    volume, _ = sl.read_image(node)
    assert any("MONOCHROME1" in w for w in volume.meta["warnings"])
    slicer.dicomDatabase.files["1.2.3.4"] = hand_data / "xr" / "xr.dcm"
    volume, _ = sl.read_image(node)
    assert not any("MONOCHROME1" in w for w in volume.meta.get("warnings", []))


def test_structural_form_round_trip(xr, hand_data, tmp_path):
    from calcinosis import mrml
    from calcinosis.mrml import hand_session as sl

    node, _ = xr
    sl.apply_patient_spacing(node, sl.radiograph_spacing_advice(node))
    outlines = mrml.load_segmentation(hand_data / "xr" / "outlines.seg.nrrd")
    landmarks = mrml.markups_from_points(lmk.read_landmarks(hand_data / "xr" / "landmarks.csv").as_points(), "lm")
    meas = sl.measure(node, outlines, "XR", landmarks)
    assert sl.form_sides(landmarks, node, meas) == ["R"]
    assert sl.form_sides(None, None, None) == ["R", "L"]
    form = sl.create_structural_form(sl.form_sides(landmarks, node, meas))
    table = form.GetTable()
    assert table.GetNumberOfRows() == len(FINDINGS) and not form.GetLocked()
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == \
        ["side", "finding", "pattern", *LOCATIONS]
    # blank = every cell not assessed (not absent)
    blank = sl.form_from_node(form)
    assert sl.form_cells_filled(blank) == 0
    # the reader fills some cells in the table view (text cells: "1", "0")
    col = {table.GetColumnName(c): c for c in range(table.GetNumberOfColumns())}
    row = {table.GetValue(r, col["finding"]).ToString(): r for r in range(table.GetNumberOfRows())}
    form.SetCellText(row["calcinosis"], col["DIP"], "1")
    form.SetCellText(row["calcinosis"], col["PIP"], "0")
    form.SetCellText(row["acro_osteolysis"], col["distal_phalanx"], "1")
    form.SetCellText(row["subluxation"], col["MCP"], "0")
    filled = sl.form_from_node(form)
    assert sl.form_cells_filled(filled) == 4

    sl.export(tmp_path / "out", meas, form_node=form)
    saved = read_form(tmp_path / "out" / "structural_form.csv")
    by = {r["finding"]: r for r in saved.rows}
    assert by["calcinosis"]["DIP"] == 1 and by["calcinosis"]["PIP"] == 0 and by["calcinosis"]["MCP"] is None
    assert by["acro_osteolysis"]["distal_phalanx"] == 1 and by["subluxation"]["MCP"] == 0
    summary = read(tmp_path / "out" / "structural_summary.csv").rows[0]
    assert summary["any_calcinosis"] == 1 and summary["any_subluxation"] == 0 and summary["any_flexion_contracture"] is None
    assert summary["locations_assessed"] == 4 and summary["any_bone_pattern"] == 1
    assert _provenance(tmp_path / "out")["results"]["structural_form"]["cells_filled"] == 4

    # a value that is not 1, 0 or empty: the error names the table row (1 = first finding) and column
    form.SetCellText(row["subluxation"], col["PIP"], "2")
    with pytest.raises(InputError, match=rf"row {row['subluxation'] + 1}, column PIP: '2'"):
        sl.export(tmp_path / "bad", meas, form_node=form)
    assert not (tmp_path / "bad").exists()
    form.SetCellText(row["subluxation"], col["PIP"], "")
    form.SetCellText(row["subluxation"], col["finding"], "subluxations")
    with pytest.raises(InputError, match="column finding: 'subluxations'"):
        sl.form_from_node(form)


# ---------------------------------------------------------------------- landmarks
def test_landmark_list_with_every_label_unplaced(mrml_scene):
    from calcinosis import mrml
    from calcinosis.mrml import hand_session as sl

    node = sl.create_landmark_list("both")
    labels = expected_landmark_labels("both")
    assert len(labels) == 40
    points = mrml.points_from_markups(node)
    assert [lab for lab, _ in points] == labels and all(p is None for _, p in points)
    # placing fills the unplaced labels in order from the first, and never adds points
    assert node.GetFixedNumberOfControlPoints() and node.GetControlPointPlacementStartIndex() == 0
    assert node.GetNumberOfUndefinedControlPoints() == 40 and not node.GetControlPointPlacementComplete()
    lm = sl.landmarks_from_node(node)
    assert len(lm) == 0 and any("no hand landmark placed" in w for w in lm.warnings)
    assert sl.landmark_progress(node) == (0, 40, "R_thumb_CMC")
    node.SetNthControlPointPositionWorld(0, 10.0, 20.0, 30.0)
    node.SetNthControlPointPositionWorld(1, 12.0, 40.0, 30.0)
    assert sl.landmark_progress(node) == (2, 40, "R_thumb_IP")
    node.UnsetNthControlPointPosition(0)   # the user clears a point: the next click places it again
    assert sl.landmark_progress(node) == (1, 40, "R_thumb_CMC")
    node.SetNthControlPointPositionWorld(0, 10.0, 20.0, 30.0)
    lm = sl.landmarks_from_node(node)
    assert len(lm) == 2 and np.allclose(lm.get("R", "thumb", "MCP"), [12.0, 40.0, 30.0])
    for n in range(2, 40):
        node.SetNthControlPointPositionWorld(n, float(n), 0.0, 0.0)
    assert node.GetControlPointPlacementComplete() and sl.landmark_progress(node) == (40, 40, None)
    # recreated on the same node, for one hand
    again = sl.create_landmark_list("L", node=node)
    assert again is node and [lab for lab, _ in mrml.points_from_markups(node)] == expected_landmark_labels("L")
    with pytest.raises(InputError, match="landmark sides"):
        sl.create_landmark_list("up")


# ---------------------------------------------------------------------- cancel, bad input
def _cancel_after(n_updates: int):
    seen = []
    return Progress(lambda f, msg: seen.append(f), cancel_requested=lambda: len(seen) >= n_updates), seen


def _cancel_at_last_chance(after: float):
    """Cancel pressed once the step reported ``after``: the next check is the step's last
    one (0.95), just before it makes or changes nodes."""
    seen = []
    return Progress(lambda f, msg: seen.append(f), cancel_requested=lambda: bool(seen) and seen[-1] >= after), seen


def test_cancel_leaves_no_half_made_nodes(ct, tmp_path):
    from calcinosis.mrml import hand_session as sl

    node, landmarks = ct
    scene = node.GetScene()
    before = scene.GetNumberOfNodes()
    # cancel at the first update, midway and at the very last chance
    for progress, seen in (_cancel_after(0), _cancel_after(3), _cancel_at_last_chance(0.85)):
        with pytest.raises(Cancelled):
            sl.detect(node, "CT", landmarks_node=landmarks, progress=progress)
        assert scene.GetNumberOfNodes() == before
    assert seen[-1] == pytest.approx(0.85)  # the last case stopped at the 0.95 check, after all the work
    det = sl.detect(node, "CT", landmarks_node=landmarks)
    with_det = scene.GetNumberOfNodes()
    segments = det.segmentation_node.GetSegmentation().GetNumberOfSegments()
    # re-detecting into the same node and cancelling leaves its segments as they were
    with pytest.raises(Cancelled):
        sl.detect(node, "CT", landmarks_node=landmarks, segmentation_node=det.segmentation_node,
                  progress=_cancel_after(2)[0])
    assert det.segmentation_node.GetSegmentation().GetNumberOfSegments() == segments
    for progress, seen in (_cancel_after(0), _cancel_after(2), _cancel_at_last_chance(0.9)):
        with pytest.raises(Cancelled):
            sl.measure(node, det.segmentation_node, "CT", landmarks, det, progress=progress)
        assert scene.GetNumberOfNodes() == with_det
    assert seen[-1] == pytest.approx(0.9)
    # progress is reported to the end when not cancelled
    seen = []
    m = sl.measure(node, det.segmentation_node, "CT", landmarks, det, progress=Progress(lambda f, m: seen.append(f)))
    assert seen[0] == 0.0 and max(seen) == pytest.approx(0.95) and seen == sorted(seen)
    # a cancelled export writes nothing (and leaves an earlier result as it was)
    for n in (0, 1, 2):
        with pytest.raises(Cancelled):
            sl.export(tmp_path / "out", m, progress=_cancel_after(n)[0])
        assert not (tmp_path / "out").exists()


def test_bad_inputs_give_the_clear_errors(ct, ct_volume, hand_data, tmp_path):
    from calcinosis import mrml
    from calcinosis.core.volume import Volume
    from calcinosis.mrml import hand_session as sl

    node, landmarks = ct
    scene = node.GetScene()
    with pytest.raises(InputError, match=r"'hand CT': a 3D image \(\d+ slices\) cannot be a radiograph; set Modality"):
        sl.detect(node, "XR")
    assert sl.image_summary(node, "XR").problem.startswith("'hand CT': a 3D image")
    flat = mrml.node_from_volume(Volume(ct_volume.array[100:101].copy(), _slab(ct_volume.geometry, 100)), "a slice")
    with pytest.raises(InputError, match="a 2D image cannot be a CT; it looks like a radiograph: set Modality to XR"):
        sl.detect(flat, "CT")
    with pytest.raises(InputError, match="cannot be an MRI"):
        sl.read_image(flat, "MRI")
    flat.RemoveAttribute("Calcinosis.Modality")
    with pytest.raises(InputError, match="does not say its modality.*choose XR, CT or MRI"):
        sl.read_image(flat, "auto")
    with pytest.raises(InputError, match="no image selected"):
        sl.detect(None)
    with pytest.raises(InputError, match="--min-size"):
        sl.detect_params(min_size=-1)
    with pytest.raises(InputError, match="--joint-radius"):
        sl.assign_params(joint_radius_mm=-2)
    with pytest.raises(InputError, match="Modality: expected"):
        sl.read_image(node, "PET")

    # a misspelt landmark label is an error naming it (or skipped with a warning when asked)
    landmarks.SetNthControlPointLabel(3, "R_thumb_tipp")
    with pytest.raises(InputError, match="R_thumb_tipp"):
        sl.detect(node, "CT", landmarks_node=landmarks)
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    det = sl.detect(node, "CT", landmarks_node=landmarks, ignore_unknown_landmarks=True)
    m = sl.measure(node, det.segmentation_node, "CT", landmarks, det, ignore_unknown_landmarks=True)
    assert any("R_thumb_tipp" in w for w in m.result.warnings)

    # landmarks placed on another image (far outside this one): a warning, lesions unassigned
    far = mrml.markups_from_points([(lab, p + 500.0) for lab, p in
                                    lmk.read_landmarks(hand_data / "ct" / "landmarks.mrk.json").as_points()], "far")
    m = sl.measure(node, det.segmentation_node, "CT", far, det)
    assert any("outside the image" in w for w in m.result.warnings)
    assert {r["digit"] for r in m.result.lesions_table.rows} == {"unassigned"}

    # a CT stored without its HU rescale (air at +24 instead of -1000): a warning, as on the command line
    raw = mrml.node_from_volume(Volume((ct_volume.array.astype(np.int32) + 1024).astype(np.int16),
                                       ct_volume.geometry), "raw CT")
    img, modality = sl.read_image(raw, "CT")
    assert modality == "CT"
    assert any("'raw CT': CT values start at" in w and "without its HU rescale" in w for w in img.meta["warnings"])
    assert not any("HU rescale" in w for w in sl.read_image(node, "CT")[0].meta["warnings"])

    # an empty segmentation: empty tables, not a crash
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "nothing")
    m0 = sl.measure(node, empty, "CT", landmarks, ignore_unknown_landmarks=True)
    assert _lesion_rows(m0.lesion_table_node) == 0 and any("holds no segment" in w for w in m0.result.warnings)
    assert m0.result.hand_table.rows[0]["lesion_count"] == 0

    # export: needs a measurement and a folder; never replaces an earlier result unless forced
    with pytest.raises(InputError, match="press Measure first"):
        sl.export(tmp_path / "x", None)
    with pytest.raises(InputError, match="choose an output folder"):
        sl.export("", m)
    out = tmp_path / "out"
    assert not sl.output_holds_result(out)
    sl.export(out, m)
    assert sl.output_holds_result(out)
    stamp = (out / "provenance.json").read_text()
    with pytest.raises(OutputExistsError):
        sl.export(out, m0)
    assert (out / "provenance.json").read_text() == stamp
    sl.export(out, m0, force=True)
    assert read(out / "lesions.csv").rows == []
    with pytest.raises(InputError, match="no lesion segmentation"):
        sl.measure(node, None, "CT")


def _slab(geometry, k):
    from calcinosis.core.geometry import Geometry

    origin = geometry.kji_to_ras(np.array([[k, 0, 0]]))[0]
    return Geometry.create((geometry.size_ijk[0], geometry.size_ijk[1], 1), geometry.spacing, tuple(origin),
                           geometry.direction)


# ---------------------------------------------------------------------- lesion row -> slice views
def test_lesion_row_centres_the_slice_views(ct):
    import slicer
    from calcinosis.mrml import hand_session as sl

    node, landmarks = ct
    scene = node.GetScene()
    det = sl.detect(node, "CT", landmarks_node=landmarks)
    m = sl.measure(node, det.segmentation_node, "CT", landmarks, det)
    views = []
    for name, orient in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        v = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        v.SetLayoutName(name)
        getattr(v, f"SetOrientationTo{orient}")()
        v.SetDimensions(256, 256, 1)
        v.SetFieldOfView(200.0, 200.0, 1.0)
        views.append(v)
    t = m.lesion_table_node
    row = 2
    assert sl.table_row(t, row) == row  # column titles are the header: model rows are table rows
    t.SetUseColumnTitleAsColumnHeader(False)
    assert sl.table_row(t, row + 1) == row and sl.table_row(t, 0) is None
    t.SetUseColumnTitleAsColumnHeader(True)
    ras = sl.lesion_position(t, row)
    expect = [m.result.lesions_table.rows[row][f"centroid_{a}_mm"] for a in "ras"]
    assert ras == pytest.approx(expect, abs=1e-9)
    sl.center_views_on(ras)
    for v in views:
        centre = np.array([v.GetSliceToRAS().GetElement(r, 3) for r in range(3)])
        assert centre == pytest.approx(ras, abs=1e-6), v.GetLayoutName()
    assert sl.lesion_position(t, 10_000) is None and sl.lesion_position(m.digit_table_node, 0) is None
    assert slicer.vtkMRMLSliceNode is not None


def test_panel_export_writes_dicom_seg_and_sr_on_the_source_series(ct, hand_data, tmp_path, monkeypatch, import_extra):
    """Export with *DICOM SEG* and *DICOM SR* ticked: the objects reference the DICOM files the
    node was loaded from (found through Slicer's DICOM database), one segment and one
    measurement group per lesion of the exported lesions.csv; a node not loaded from DICOM is
    refused naming it, before anything is written."""
    import pydicom
    import slicer
    from calcinosis import mrml
    from calcinosis.core import dicom_export
    from calcinosis.mrml import hand_session as sl

    hd = import_extra("highdicom")
    node, landmarks = ct
    files = sorted((hand_data / "ct" / "ct").iterdir())
    uids = [str(pydicom.dcmread(str(f), stop_before_pixels=True).SOPInstanceUID) for f in files]
    node.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
    monkeypatch.setattr(slicer, "dicomDatabase", _FakeDicomDatabase(dict(zip(uids, files))), raising=False)
    det = sl.detect(node, "auto", landmarks_node=landmarks)
    m = sl.measure(node, det.segmentation_node, "auto", landmarks, det)
    written = {p.name for p in sl.export(tmp_path / "p", m, case_id="P1", dicom_seg=True, dicom_sr=True,
                                         volume_node=node)}
    assert {dicom_export.SEG_NAME, dicom_export.SR_NAME} <= written
    rows = read(tmp_path / "p" / "lesions.csv").rows
    seg = hd.seg.segread(str(tmp_path / "p" / dicom_export.SEG_NAME))
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == [0] + [r["lesion_id"] for r in rows]
    assert {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence
            for i in s.ReferencedInstanceSequence} == set(uids)
    groups = hd.sr.srread(str(tmp_path / "p" / dicom_export.SR_NAME)).content.get_volumetric_roi_measurement_groups()
    assert sorted(g.get_measurements()[0].value for g in groups) == pytest.approx(
        sorted(r["volume_mm3"] for r in rows), rel=1e-9)
    plain = mrml.node_from_volume(image_io.load_image(hand_data / "ct" / "ct"), "plain CT")
    with pytest.raises(InputError, match="'plain CT' was not loaded from Slicer's DICOM database"):
        sl.export(tmp_path / "q", m, dicom_seg=True, volume_node=plain)
    assert not (tmp_path / "q").exists()


def test_dicom_export_offers_highdicom_where_slicer_has_none(monkeypatch):
    """Slicer 5.10 has no highdicom: ticking DICOM SEG/SR asks (with the reason) before
    installing it; declined, neither object is written; installed, both as ticked."""
    import sys

    from calcinosis.mrml import dicom_objects

    real = sys.modules.get("highdicom")
    monkeypatch.setitem(sys.modules, "highdicom", None)       # as in Slicer 5.10
    asked, installed = [], []
    assert dicom_objects.choose_outputs(False, False, asked.append, installed.append) == (False, False)
    assert not asked                                          # nothing ticked, nothing asked
    assert dicom_objects.choose_outputs(True, True, lambda q: asked.append(q) or False, installed.append) == \
        (False, False)
    assert "highdicom" in asked[0] and "Slicer 5.12 bundles" in asked[0] and not installed

    def install(name):
        installed.append(name)
        if real is not None:
            monkeypatch.setitem(sys.modules, "highdicom", real)
        else:
            monkeypatch.delitem(sys.modules, "highdicom")
    assert dicom_objects.choose_outputs(True, False, lambda q: True, install) == (True, False)
    assert installed == ["highdicom"]
