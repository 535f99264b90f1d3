"""The panels' workflow (Detect -> review -> Measure -> Export), headless on slicer-core."""

import csv
import json

import numpy as np
import pytest

from calcinosis.core import image_io, phantoms, pipeline
from calcinosis.core.errors import Cancelled, InputError, OutputExistsError
from calcinosis.core.lesions import LesionParams
from calcinosis.core.progress import Progress
from calcinosis.core.volume import Volume

pytestmark = pytest.mark.mrml


@pytest.fixture(scope="module")
def phantom():
    arr, geom, ells = phantoms.spheres_phantom(diameters_mm=(2, 3, 4, 6), spacing=(0.5, 0.5, 0.6), seed=1)
    return Volume(np.round(arr).astype(np.int16), geom, {"modality": "CT"}), ells


@pytest.fixture
def ct_node(mrml_scene, phantom):
    from calcinosis import mrml
    return mrml.node_from_volume(phantom[0], "phantom CT")


def _rows_without_source(table):
    return [{k: v for k, v in r.items() if k != "source_segment"} for r in table.rows]


def test_detect_makes_one_segment_per_lesion(ct_node, phantom):
    from calcinosis.mrml import workflow

    vol, ells = phantom
    params = workflow.lesion_params(130.0, min_size=1.0)
    det = workflow.detect(ct_node, params)
    seg = det.segmentation_node.GetSegmentation()
    assert det.lesions.n == len(ells) == seg.GetNumberOfSegments()
    assert seg.GetNumberOfLayers() == 1
    assert workflow.detection_parameters(det.segmentation_node)["threshold_low"] == 130.0
    assert workflow.detection_parameters(det.segmentation_node)["min_size_unit"] == "mm3"
    assert det.segmentation_node.GetNodeReference(workflow.SOURCE_VOLUME_ROLE) is ct_node
    # same lesions as the command line's engine
    ref = pipeline.find_lesions(vol, params)
    assert np.array_equal(det.lesions.labels, ref.labels)


def test_measure_unedited_equals_the_engine(ct_node, phantom):
    from calcinosis import mrml
    from calcinosis.mrml import workflow

    vol, _ = phantom
    det = workflow.detect(ct_node, workflow.lesion_params(130.0, min_size=1.0))
    m = workflow.measure(ct_node, det.segmentation_node)
    ref = pipeline.measure_volume(vol, LesionParams(130.0, min_size=1.0))
    assert _rows_without_source(m.result.table) == _rows_without_source(ref.table)
    assert m.result.table.column("source_segment") == [f"lesion {k}" for k in range(1, len(ref.table) + 1)]
    # the table node shows the same numbers with units
    back = mrml.table_from_table_node(m.table_node)
    assert back.rows == m.result.table.rows
    assert m.table_node.GetColumnUnitLabel("volume_mm3") == "mm3"


def test_measure_follows_the_users_edits(ct_node, mrml_scene, phantom):
    from calcinosis.mrml import workflow

    vol, _ = phantom
    det = workflow.detect(ct_node, workflow.lesion_params(130.0, min_size=1.0))
    seg = det.segmentation_node.GetSegmentation()
    seg.RemoveSegment("lesion_1")
    seg.GetSegment("lesion_2").SetName("confirmed calcinosis")
    m = workflow.measure(ct_node, det.segmentation_node)
    assert len(m.result.table) == det.lesions.n - 1
    assert m.result.table.column("source_segment")[0] == "confirmed calcinosis"
    counts = dict(zip(m.result.table.column("source_segment"), m.result.table.column("voxel_count")))
    assert counts["confirmed calcinosis"] == int(det.lesions.counts()[1])
    # measuring again refills the same table node
    again = workflow.measure(ct_node, det.segmentation_node, table_node=m.table_node)
    assert again.table_node is m.table_node
    assert m.table_node.GetTable().GetNumberOfRows() == det.lesions.n - 1


def test_region_limits_detection(ct_node, mrml_scene, phantom):
    from calcinosis import mrml
    from calcinosis.core.lesions import split_lesions
    from calcinosis.mrml import workflow

    vol, ells = phantom
    region = np.zeros(vol.geometry.shape, bool)
    # the half of the grid holding the two smallest spheres (they sit at low R)
    centres = np.array([e.center_ras for e in ells])
    cut_ijk = vol.geometry.ras_to_ijk((centres[1] + centres[2]) / 2)
    region[:, :, : int(round(cut_ijk[0]))] = True
    region_node = mrml.segmentation_from_lesions(split_lesions(region, vol.geometry, LesionParams(min_size=0)),
                                                 name="region")
    det = workflow.detect(ct_node, workflow.lesion_params(130.0, min_size=1.0), region_node=region_node)
    assert det.lesions.n == 2
    empty = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty region")
    with pytest.raises(InputError, match="empty region.*no segment"):
        workflow.detect(ct_node, workflow.lesion_params(130.0), region_node=empty)


def test_export_writes_what_the_command_line_writes(ct_node, phantom, tmp_path, cli):
    from calcinosis.mrml import workflow

    vol, _ = phantom
    image = tmp_path / "ct.nrrd"
    image_io.write_image(vol.array, vol.geometry, image)
    code, _, err = cli("measure", image, "--modality", "ct", "--threshold", "130", "--min-size", "1",
                       "-o", tmp_path / "cli", "-q")
    assert code == 0, err

    det = workflow.detect(ct_node, workflow.lesion_params(130.0, min_size=1.0))
    m = workflow.measure(ct_node, det.segmentation_node)
    out = tmp_path / "slicer"
    written = workflow.export(out, m)
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert names == ["lesion_labels.nrrd", "lesions.csv", "lesions.schema.csv", "lesions.seg.nrrd", "provenance.json",
                     "tables.xlsx"]

    def rows(path):
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [{k: v for k, v in r.items() if k != "source_segment"} for r in csv.DictReader(f)]
    assert rows(out / "lesions.csv") == rows(tmp_path / "cli" / "lesions.csv")
    assert (out / "lesions.schema.csv").read_text() == (tmp_path / "cli" / "lesions.schema.csv").read_text()
    assert np.array_equal(image_io.load_label_image(out / "lesion_labels.nrrd", reference=vol.geometry).layers[0],
                          det.lesions.labels)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["parameters"]["detection"]["threshold_low"] == 130.0
    assert prov["inputs"]["image"]["modality"] == "CT"
    assert "path" not in prov["inputs"]["image"]
    with pytest.raises(OutputExistsError):
        workflow.export(out, m)
    workflow.export(out, m, force=True)


def test_cancel_stops_detection_before_any_node(ct_node, mrml_scene):
    from calcinosis.mrml import workflow

    seen = []
    progress = Progress(lambda f, msg: seen.append(f), cancel_requested=lambda: len(seen) >= 2)
    before = mrml_scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems()
    with pytest.raises(Cancelled):
        workflow.detect(ct_node, workflow.lesion_params(130.0), progress=progress)
    assert mrml_scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == before


def test_progress_reaches_the_end(ct_node):
    from calcinosis.mrml import workflow

    seen = []
    det = workflow.detect(ct_node, workflow.lesion_params(130.0), progress=Progress(lambda f, m: seen.append((f, m))))
    workflow.measure(ct_node, det.segmentation_node, progress=Progress(lambda f, m: seen.append((f, m))))
    assert seen[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in seen)


def test_parameter_errors(ct_node):
    from calcinosis.mrml import workflow

    with pytest.raises(InputError, match="threshold"):
        workflow.lesion_params(None)
    with pytest.raises(InputError, match="connectivity"):
        workflow.lesion_params(130.0, connectivity="corner")
    with pytest.raises(InputError, match="min-size"):
        workflow.lesion_params(130.0, min_size=-1)
    with pytest.raises(InputError, match="no lesion segmentation"):
        workflow.measure(ct_node, None)


def test_release_lesion_segmentations_only_touches_ours(ct_node, mrml_scene):
    from calcinosis.mrml import workflow

    det = workflow.detect(ct_node, workflow.lesion_params(130.0, min_size=1.0))
    other = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "user's own")
    other.GetSegmentation().AddEmptySegment("kept")
    assert workflow.release_lesion_segmentations(mrml_scene) == 1
    assert det.segmentation_node.GetSegmentation().GetNumberOfSegments() == 0
    assert other.GetSegmentation().GetNumberOfSegments() == 1


def test_export_after_the_volume_node_is_gone(mrml_scene, phantom, tmp_path):
    from calcinosis import mrml
    from calcinosis.mrml import workflow

    node = mrml.node_from_volume(phantom[0], "short-lived")
    det = workflow.detect(node, workflow.lesion_params(130.0, min_size=1.0))
    m = workflow.measure(node, det.segmentation_node)
    assert m.result.volume.array.strides == (0, 0, 0)  # holds no view of the node's voxels
    mrml_scene.RemoveNode(node)
    del node
    written = workflow.export(tmp_path / "out", m)
    assert (tmp_path / "out" / "lesions.csv").read_text().count("\n") == det.lesions.n + 1
    assert len(written) == 6                      # with tables.xlsx


def test_measurement_goes_stale_when_the_lesions_are_edited(ct_node):
    import slicer.util
    from calcinosis.mrml import workflow

    det = workflow.detect(ct_node, workflow.lesion_params(130.0, min_size=1.0))
    node = det.segmentation_node
    m = workflow.measure(ct_node, node)
    assert workflow.measurement_is_current(m)
    workflow.label_image_from_segmentation(node, m.result.volume.geometry)  # reading is not editing
    assert workflow.measurement_is_current(m)
    # an in-place voxel edit, as the Segment Editor's effects make
    arr = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, "lesion_2")
    arr[arr == 2] = 0
    node.GetSegmentation().GetSegment("lesion_2").GetRepresentation("Binary labelmap").Modified()
    assert not workflow.measurement_is_current(m)
    m = workflow.measure(ct_node, node)
    node.GetSegmentation().GetSegment("lesion_1").SetName("renamed")
    assert not workflow.measurement_is_current(m)
    m = workflow.measure(ct_node, node)
    node.GetSegmentation().RemoveSegment("lesion_3")
    assert not workflow.measurement_is_current(m)
