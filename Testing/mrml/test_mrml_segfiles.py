""".seg.nrrd files between the core (no Slicer) and Slicer's segmentation storage node."""

import numpy as np
import pytest

from calcinosis.core import image_io, segnrrd
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.lesions import LesionParams, split_lesions
from calcinosis.core.phantoms import rotation_matrix

pytestmark = pytest.mark.mrml


def _read_with_slicer(scene, path):
    import slicer
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    return node


def _write_with_slicer(scene, node, path):
    import slicer
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1


def test_core_seg_nrrd_opens_in_slicer(mrml_scene, tmp_path, blob_lesions, oblique_geometry):
    """Written by the core (SimpleITK, no Slicer), read by vtkMRMLSegmentationStorageNode:
    same segments, names, colours, label values and voxels."""
    from calcinosis import mrml
    from calcinosis.core.pipeline import lesion_colors

    n = blob_lesions.n
    names = [f"calcification {k}" for k in range(1, n + 1)]
    colors = lesion_colors(n)
    path = segnrrd.write_seg_nrrd(blob_lesions.labels, oblique_geometry, tmp_path / "core.seg.nrrd", names, colors,
                                  ids=[f"lesion_{k}" for k in range(1, n + 1)])
    node = _read_with_slicer(mrml_scene, path)
    seg = node.GetSegmentation()
    assert seg.GetNumberOfSegments() == n
    for k in (1, 77, 300):
        s = seg.GetSegment(f"lesion_{k}")
        assert s.GetName() == names[k - 1]
        assert np.allclose(s.GetColor(), colors[k - 1], atol=1e-5)  # written with 6 significant digits
    lab = mrml.label_image_from_segmentation(node, oblique_geometry)
    masks = {s.segment_id: lab.mask(s) for s in lab.segments}
    for k in range(1, n + 1):
        assert np.array_equal(masks[f"lesion_{k}"], blob_lesions.labels == k), k


def test_slicer_seg_nrrd_read_by_core_multilayer_overlapping(mrml_scene, tmp_path):
    """Written by Slicer's storage node with overlapping segments in two layers, read by
    segnrrd.read_seg_nrrd and image_io.load_label_image (onto a reference grid)."""
    from calcinosis import mrml
    from calcinosis.mrml.segmentations import image_array, oriented_image

    geom = Geometry.create((30, 24, 18), (0.5, 0.6, 0.9), (4.0, -3.0, 2.0), rotation_matrix((1, 0, 1), 15.0))
    a = np.zeros(geom.shape, bool)
    b = np.zeros(geom.shape, bool)
    c = np.zeros(geom.shape, bool)
    a[3:9, 4:12, 5:15] = True
    b[6:12, 8:16, 10:20] = True  # overlaps a
    c[14:16, 18:21, 22:27] = True
    node = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "overlap")
    ids = []
    for name, m, color in (("a", a, (1, 0, 0)), ("b", b, (0, 1, 0)), ("c", c, (0, 0, 1))):
        img = oriented_image(geom, None, np.uint8)
        image_array(img)[...] = m
        ids.append(node.AddSegmentFromBinaryLabelmapRepresentation(img, name, color))
    node.GetSegmentation().CollapseBinaryLabelmaps(False)  # what Slicer does before saving: >1 layer only where needed
    assert node.GetSegmentation().GetNumberOfLayers() == 2
    path = tmp_path / "slicer.seg.nrrd"
    mrml.save_segmentation(node, path)

    raw = segnrrd.read_seg_nrrd(path)
    assert len(raw.layers) == 2
    assert {s.name for s in raw.segments} == {"a", "b", "c"}
    lab = image_io.load_label_image(path, reference=geom)
    masks = {s.name: lab.mask(s) for s in lab.segments}
    colors = {s.name: s.color for s in lab.segments}
    assert np.array_equal(masks["a"], a) and np.array_equal(masks["b"], b) and np.array_equal(masks["c"], c)
    assert np.allclose(colors["b"], (0, 1, 0))


def test_save_and_load_through_the_bridge(mrml_scene, tmp_path, blob_lesions, oblique_geometry):
    from calcinosis import mrml

    node = mrml.segmentation_from_lesions(blob_lesions, names=[f"L{k}" for k in range(1, 301)])
    path = mrml.save_segmentation(node, tmp_path / "lesions.seg.nrrd")
    assert node.GetStorageNode() is None  # saving did not re-point the node at the file
    loaded = mrml.load_segmentation(path)
    assert loaded.GetName() == "lesions"
    assert loaded.GetStorageNode() is not None
    lab = mrml.label_image_from_segmentation(loaded, oblique_geometry)
    assert [s.name for s in lab.segments] == [f"L{k}" for k in range(1, 301)]
    assert np.array_equal(lab.layers[0], blob_lesions.labels)
    # and the core reads Slicer's file the same way
    core = image_io.load_label_image(path, reference=oblique_geometry)
    assert np.array_equal(core.layers[0], blob_lesions.labels)


def test_file_errors(mrml_scene, tmp_path):
    from calcinosis import mrml

    with pytest.raises(InputError, match="no such file"):
        mrml.load_segmentation(tmp_path / "missing.seg.nrrd")
    bad = tmp_path / "bad.seg.nrrd"
    bad.write_text("not a nrrd")
    with pytest.raises(InputError, match="cannot read"):
        mrml.load_segmentation(bad)
    assert mrml_scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    geom = Geometry.create((5, 5, 5))
    m = np.zeros(geom.shape, bool)
    m[1:3, 1:3, 1:3] = True
    node = mrml.segmentation_from_lesions(split_lesions(m, geom, LesionParams(min_size=0)))
    with pytest.raises(InputError, match=r"\.seg\.nrrd"):
        mrml.save_segmentation(node, tmp_path / "x.png")
