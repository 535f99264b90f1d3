"""Lesions -> segmentation node (fast shared layer) and back, checked with Slicer's own
per-segment accessors and exporters."""

import numpy as np
import pytest

from calcinosis.core.geometry import Geometry
from calcinosis.core.image_io import LabelImage, Segment
from calcinosis.core.lesions import LesionParams, lesions_from_segmentation
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.volume import Volume

pytestmark = pytest.mark.mrml


def _segment_voxel_count_by_slicer(node, segment_id):
    """Slicer's own per-segment labelmap (a copy of just this segment)."""
    import slicer
    from vtk.util import numpy_support

    img = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation(segment_id, img)
    scalars = img.GetPointData().GetScalars()
    if scalars is None:
        return 0
    return int(np.count_nonzero(numpy_support.vtk_to_numpy(scalars)))


def _export_segment(node, segment_id, reference_node):
    """Slicer's exporter: one segment on a reference volume's grid."""
    import slicer.util
    return slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, reference_node) != 0


def test_300_segments_one_shared_layer_counts_names_colours(mrml_scene, blob_lesions):
    from calcinosis import mrml
    from calcinosis.core import terminology
    from calcinosis.core.pipeline import lesion_colors

    lesions = blob_lesions
    names = [f"calc {k:03d}" for k in range(1, lesions.n + 1)]
    colors = lesion_colors(lesions.n)
    node = mrml.segmentation_from_lesions(lesions, names, colors)
    seg = node.GetSegmentation()
    assert seg.GetNumberOfSegments() == 300
    assert seg.GetNumberOfLayers() == 1  # one shared labelmap, not 300 images
    assert seg.GetSourceRepresentationName() == "Binary labelmap"
    core_counts = lesions.counts()
    for k in range(1, 301):
        sid = f"lesion_{k}"
        s = seg.GetSegment(sid)
        assert s.GetName() == names[k - 1]
        assert np.allclose(s.GetColor(), colors[k - 1], atol=1e-6)
        assert s.GetLabelValue() == k
        assert s.GetTerminology() == terminology.terminology_entry()     # a calcification, not "Tissue"
        assert _segment_voxel_count_by_slicer(node, sid) == core_counts[k - 1], sid
    # the layer is cropped to the lesions' extent, not the whole grid
    layer = seg.GetLayerDataObject(0)
    e = layer.GetExtent()
    k, j, i = lesions.voxel_kji()
    assert e == (i.min(), i.max(), j.min(), j.max(), k.min(), k.max())


def test_segment_voxels_land_where_the_lesions_are(mrml_scene, blob_lesions, oblique_geometry):
    """Positions, not only counts: Slicer's exporter puts each segment on the reference
    volume's voxels exactly where the core has the lesion."""
    from calcinosis import mrml

    ref = mrml.node_from_volume(Volume(np.zeros(oblique_geometry.shape, np.int16), oblique_geometry), "ref")
    node = mrml.segmentation_from_lesions(blob_lesions, reference_volume_node=ref)
    for k in (1, 2, 150, 299, 300):
        assert np.array_equal(_export_segment(node, f"lesion_{k}", ref), blob_lesions.labels == k), k


def test_round_trip_label_image(mrml_scene, blob_lesions, oblique_geometry):
    from calcinosis import mrml

    node = mrml.segmentation_from_lesions(blob_lesions)
    lab = mrml.label_image_from_segmentation(node, oblique_geometry)
    assert len(lab.layers) == 1
    assert np.array_equal(lab.layers[0], blob_lesions.labels)
    assert [s.name for s in lab.segments] == [f"lesion {k}" for k in range(1, 301)]
    assert [s.label_value for s in lab.segments] == list(range(1, 301))
    # and the engine measures the same lesions from it
    again = lesions_from_segmentation(lab, oblique_geometry, LesionParams(min_size=0, split_islands=False))
    assert np.array_equal(again.counts(), blob_lesions.counts())


def test_overlapping_lesions_go_to_separate_layers(mrml_scene):
    from calcinosis import mrml

    geom = Geometry.create((20, 16, 12), (0.5, 0.5, 0.5))
    a = np.zeros(geom.shape, np.uint8)
    b = np.zeros(geom.shape, np.uint8)
    a[2:6, 2:8, 2:8] = 1
    b[4:8, 5:10, 5:12] = 1  # overlaps a
    a[9:11, 12:14, 14:17] = 2  # a separate segment in the same layer
    user = LabelImage([a, b], geom, [Segment("A", 1, 0), Segment("B", 1, 1), Segment("C", 2, 0)])
    lesions = lesions_from_segmentation(user, geom, LesionParams(min_size=0, split_islands=False))
    assert lesions.n == 3
    node = mrml.segmentation_from_lesions(lesions, names=lesions.source)
    assert node.GetSegmentation().GetNumberOfLayers() == 2
    back = mrml.label_image_from_segmentation(node, geom)
    masks = {s.name: back.mask(s) for s in back.segments}
    assert np.array_equal(masks["A"], a == 1)
    assert np.array_equal(masks["B"], b == 1)
    assert np.array_equal(masks["C"], a == 2)
    assert _segment_voxel_count_by_slicer(node, "lesion_2") == int((b == 1).sum())


def _add_segment_on_grid(node, mask, geometry, name, color=(1, 0, 0)):
    from calcinosis.mrml.segmentations import image_array, oriented_image

    ni, nj, nk = geometry.size_ijk
    img = oriented_image(geometry, (0, ni - 1, 0, nj - 1, 0, nk - 1), np.uint8)
    image_array(img)[...] = mask.astype(np.uint8)
    return node.AddSegmentFromBinaryLabelmapRepresentation(img, name, color)


def test_segment_on_a_finer_grid_is_resampled_exactly(mrml_scene):
    """A segment drawn on a grid of half the spacing whose voxel centres include the
    reference's: nearest neighbour must pick fine[2k, 2j, 2i] (no ties), and Slicer's own
    exporter agrees."""
    from calcinosis import mrml

    R = rotation_matrix((1, 1, 0), 35.0)
    coarse = Geometry.create((14, 12, 10), (0.8, 0.6, 1.0), (3.0, 4.0, 5.0), R)
    fine = Geometry.create((28, 24, 20), (0.4, 0.3, 0.5), (3.0, 4.0, 5.0), R)
    rng = np.random.default_rng(1)
    fine_mask = rng.random(fine.shape) < 0.3
    node = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn")
    sid = _add_segment_on_grid(node, fine_mask, fine, "fine")
    lab = mrml.label_image_from_segmentation(node, coarse)
    got = lab.mask(lab.segments[0])
    assert np.array_equal(got, fine_mask[::2, ::2, ::2])
    ref = mrml.node_from_volume(Volume(np.zeros(coarse.shape, np.int16), coarse), "ref")
    assert np.array_equal(_export_segment(node, sid, ref), got)


def test_segments_on_an_oblique_other_grid_match_slicer_export(mrml_scene):
    """Segments drawn on a rotated, shifted grid, read onto the reference: same voxels as
    Slicer's exporter (both nearest neighbour through physical space)."""
    from calcinosis import mrml

    ref_geom = Geometry.create((30, 26, 20), (0.5, 0.5, 0.7), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    other = Geometry.create((24, 24, 24), (0.43, 0.51, 0.6), (-9.0, -8.0, 2.0), rotation_matrix((0.2, 1, 0.5), 17.0))
    ras = other.kji_to_ras(np.stack(np.meshgrid(*[np.arange(s) for s in other.shape], indexing="ij"), -1))
    blob1 = np.linalg.norm(ras - np.array([-6.0, -5.0, 6.0]), axis=-1) < 3.1
    blob2 = np.linalg.norm((ras - np.array([-3.0, -7.0, 9.0])) / np.array([2.5, 1.5, 3.5]), axis=-1) < 1.0
    node = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "other_grid")
    id1 = _add_segment_on_grid(node, blob1, other, "one", (0, 1, 0))
    id2 = _add_segment_on_grid(node, blob2, other, "two", (0, 0, 1))
    lab = mrml.label_image_from_segmentation(node, ref_geom)
    ref = mrml.node_from_volume(Volume(np.zeros(ref_geom.shape, np.int16), ref_geom), "ref")
    by_name = {s.name: s for s in lab.segments}
    assert np.allclose(by_name["one"].color, (0, 1, 0)) and np.allclose(by_name["two"].color, (0, 0, 1))
    for name, sid in (("one", id1), ("two", id2)):
        mine = lab.mask(by_name[name])
        slicers = _export_segment(node, sid, ref)
        assert mine.sum() > 50
        # ties (a reference centre exactly half-way between two voxels) have measure zero here
        assert np.array_equal(mine, slicers), (name, int((mine != slicers).sum()))


def test_user_edits_are_read_and_node_not_modified(mrml_scene, oblique_geometry):
    """What the Segment Editor does - erase voxels in place, delete a segment, paint a new one
    (overlapping an old one) - is what comes back; reading changes nothing in the node."""
    import slicer.util
    from calcinosis import mrml
    from calcinosis.core.lesions import split_lesions

    labels = np.zeros(oblique_geometry.shape, bool)
    labels[5:9, 5:9, 5:9] = True
    labels[20:24, 30:34, 40:44] = True
    labels[30:33, 10:14, 60:66] = True
    lesions = split_lesions(labels, oblique_geometry, LesionParams(min_size=0))
    node = mrml.segmentation_from_lesions(lesions)
    seg = node.GetSegmentation()
    # erase the first slice of lesion 1 in the shared layer (as the Erase effect does)
    internal = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, "lesion_1")
    layer_offset = np.array(seg.GetLayerDataObject(0).GetExtent()[::2])[::-1]
    k0 = 5 - layer_offset[0]
    internal[k0][internal[k0] == 1] = 0
    seg.GetSegment("lesion_1").Modified()
    seg.RemoveSegment("lesion_3")
    painted = np.zeros(oblique_geometry.shape, bool)
    painted[20:26, 30:36, 40:46] = True  # overlaps lesion 2
    new_id = _add_segment_on_grid(node, painted, oblique_geometry, "painted", (1, 1, 0))

    mtime = node.GetMTime()
    seg_mtime = seg.GetMTime()
    before_layers = seg.GetNumberOfLayers()
    lab = mrml.label_image_from_segmentation(node, oblique_geometry)
    assert node.GetMTime() == mtime and seg.GetMTime() == seg_mtime
    assert seg.GetNumberOfLayers() == before_layers

    masks = {s.segment_id: lab.mask(s) for s in lab.segments}
    assert set(masks) == {"lesion_1", "lesion_2", new_id}
    expected1 = np.zeros_like(labels)
    expected1[6:9, 5:9, 5:9] = True
    assert np.array_equal(masks["lesion_1"], expected1)
    assert np.array_equal(masks["lesion_2"], lesions.labels == 2)
    assert np.array_equal(masks[new_id], painted)


def test_closed_surface_segmentation_converted_on_a_copy(mrml_scene):
    """A segmentation holding only closed surfaces is voxelised on a copy: the node keeps no
    labelmap, and the sphere's volume is right to within the polygon and voxel error."""
    import vtk
    from calcinosis import mrml

    sphere = vtk.vtkSphereSource()
    sphere.SetCenter(1.0, 2.0, 3.0)
    sphere.SetRadius(5.0)
    sphere.SetThetaResolution(64)
    sphere.SetPhiResolution(64)
    sphere.Update()
    node = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "surf")
    node.GetSegmentation().SetSourceRepresentationName("Closed surface")
    node.AddSegmentFromClosedSurfaceRepresentation(sphere.GetOutput(), "ball", (1, 0, 0))
    ref = Geometry.create((40, 40, 40), (0.4, 0.4, 0.4), (-9.0, -8.0, -7.0))
    lab = mrml.label_image_from_segmentation(node, ref)
    assert not node.GetSegmentation().ContainsRepresentation("Binary labelmap")
    assert node.GetSegmentation().ContainsRepresentation("Closed surface")  # the copy, not the node, was cleared
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    vol = lab.mask(lab.segments[0]).sum() * ref.voxel_volume_mm3
    truth = 4 / 3 * np.pi * 5.0 ** 3
    # 0.4 mm voxels on a 5 mm sphere: voxelisation error ~ surface x spacing / 10 ~ 2%; the
    # 64x64 polygon is ~0.3% smaller than the sphere
    assert vol == pytest.approx(truth, rel=0.04)
    kji = np.argwhere(lab.mask(lab.segments[0]))
    assert np.allclose(ref.kji_to_ras(kji).mean(axis=0), (1.0, 2.0, 3.0), atol=0.1)


def test_segmentation_under_linear_transform_is_read_in_world(mrml_scene):
    import vtk
    from calcinosis import mrml
    from calcinosis.core.lesions import split_lesions

    geom = Geometry.create((20, 20, 20), (1.0, 1.0, 1.0))
    m = np.zeros(geom.shape, bool)
    m[3:6, 4:7, 5:8] = True
    node = mrml.segmentation_from_lesions(split_lesions(m, geom, LesionParams(min_size=0)))
    t = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    mat = vtk.vtkMatrix4x4()
    mat.SetElement(0, 3, 2.0)  # +2 mm in R = +2 voxels in i
    t.SetMatrixTransformToParent(mat)
    node.SetAndObserveTransformNodeID(t.GetID())
    lab = mrml.label_image_from_segmentation(node, geom)
    assert np.array_equal(lab.mask(lab.segments[0]), np.roll(m, 2, axis=2))


def test_empty_lesion_set_and_empty_segmentation(mrml_scene):
    from calcinosis import mrml
    from calcinosis.core.lesions import split_lesions

    geom = Geometry.create((8, 8, 8))
    lesions = split_lesions(np.zeros(geom.shape, bool), geom, LesionParams())
    node = mrml.segmentation_from_lesions(lesions)
    assert node.GetSegmentation().GetNumberOfSegments() == 0
    lab = mrml.label_image_from_segmentation(node, geom)
    assert lab.segments == [] and not lab.union().any()


def test_replacing_segments_of_an_existing_node(mrml_scene, blob_lesions):
    from calcinosis import mrml
    from calcinosis.core.lesions import split_lesions

    node = mrml.segmentation_from_lesions(blob_lesions)
    geom = blob_lesions.geometry
    m = np.zeros(geom.shape, bool)
    m[1:3, 1:3, 1:3] = True
    again = mrml.segmentation_from_lesions(split_lesions(m, geom, LesionParams(min_size=0)), node=node)
    assert again is node
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    with pytest.raises(ValueError, match="names"):
        mrml.segmentation_from_lesions(blob_lesions, names=["only one"])


def test_fast_clear_skips_slicers_per_segment_separation(mrml_scene, blob_lesions):
    """Slicer's RemoveSegment separates each segment from its shared layer first (two passes
    over the layer per segment: minutes for 300 lesions on a full CT).  clear_segments_fast
    must not: the shared image is left as it was (Slicer's path erases each label from it,
    shown on a second node as the control)."""
    from calcinosis import mrml
    from calcinosis.mrml.segmentations import clear_segments_fast, image_array, remove_segmentation_node

    ours = mrml.segmentation_from_lesions(blob_lesions)
    control = mrml.segmentation_from_lesions(blob_lesions, name="control")
    ours_layer = ours.GetSegmentation().GetLayerDataObject(0)
    control_layer = control.GetSegmentation().GetLayerDataObject(0)
    before = image_array(ours_layer).copy()
    clear_segments_fast(ours.GetSegmentation())
    assert ours.GetSegmentation().GetNumberOfSegments() == 0
    assert np.array_equal(image_array(ours_layer), before)  # no per-segment erase ran
    # the control: Slicer's own removal of a few segments erases them from the shared layer
    seg = control.GetSegmentation()
    for k in (1, 2, 3):
        seg.RemoveSegment(f"lesion_{k}")
    after = image_array(control_layer)
    assert not np.isin(after, [1, 2, 3]).any() and np.isin(before, [1, 2, 3]).any()
    # replacing the segments of a node goes through the fast path too
    again = mrml.segmentation_from_lesions(blob_lesions, node=control)
    assert again.GetSegmentation().GetNumberOfSegments() == blob_lesions.n
    remove_segmentation_node(control)
    assert mrml_scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 1
