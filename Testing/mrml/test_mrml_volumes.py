"""Volume node <-> core Volume, geometry exact both ways, checked against Slicer's own readers."""

import numpy as np
import pytest

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry, orientation_code
from calcinosis.core.phantoms import rotation_matrix
from calcinosis.core.volume import Volume

pytestmark = pytest.mark.mrml

GEOMETRIES = {
    "axis_aligned": Geometry.create((9, 7, 5), (0.5, 0.5, 0.5), (1.0, -2.0, 3.0)),
    "anisotropic_lps": Geometry.create((9, 7, 5), (0.31, 0.47, 1.25), (-120.5, 88.0, -40.0), np.diag([-1.0, -1.0, 1.0])),
    "oblique": Geometry.create((8, 6, 5), (0.4, 0.7, 1.1), (10.0, 20.0, -5.0), rotation_matrix((1, 2, 3), 27.0)),
    "permuted_pir": Geometry.create((6, 8, 7), (0.9, 0.6, 1.3), (5.0, 5.0, 5.0),
                                    np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])),
    "radiograph_2d": Geometry.create((40, 30, 1), (0.143, 0.143, 1.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0])),
}


def _matrix(node):
    import vtk
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8])
def test_round_trip_exact(mrml_scene, name, dtype):
    from calcinosis import mrml

    geom = GEOMETRIES[name]
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 200, size=geom.shape).astype(dtype)
    vol = Volume(arr, geom, {"modality": "MR"})
    node = mrml.node_from_volume(vol, name)
    # the node's IJKToRAS is the geometry's matrix (to double precision)
    assert np.allclose(_matrix(node), geom.ijk_to_ras_matrix(), atol=1e-12, rtol=0)
    assert node.GetImageData().GetDimensions() == geom.size_ijk
    back = mrml.volume_from_node(node)
    assert back.array.dtype == arr.dtype
    assert np.array_equal(back.array, arr)
    assert back.geometry.same_grid(geom, tol_mm=1e-9)
    assert orientation_code(back.geometry) == orientation_code(geom)
    assert back.is_2d == geom.is_2d
    assert back.meta["modality"] == "MR"
    # a voxel's position as Slicer computes it equals the core's
    ijk = np.array([geom.size_ijk[0] - 1, 1, geom.size_ijk[2] - 1, 1.0])
    assert np.allclose((_matrix(node) @ ijk)[:3], geom.ijk_to_ras(ijk[:3]), atol=1e-9)


@pytest.mark.parametrize("name", ["anisotropic_lps", "oblique", "permuted_pir"])
def test_slicer_reader_agrees_with_core_reader(mrml_scene, tmp_path, name):
    """A NRRD written by the core and read by Slicer's own volume storage node lands on the
    same voxels as the core's reader says, and a node saved by Slicer reads back in the core
    with the same geometry: LPS (files) and RAS (Slicer, core) never confused."""
    import slicer
    from calcinosis.core import image_io
    from calcinosis import mrml

    geom = GEOMETRIES[name]
    arr = np.arange(np.prod(geom.shape), dtype=np.int16).reshape(geom.shape)
    path = tmp_path / "image.nrrd"
    image_io.write_image(arr, geom, path)
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "read_by_slicer")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    mrml_scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    from_slicer = mrml.volume_from_node(node)
    from_core = image_io.load_image(path)
    assert from_slicer.geometry.same_grid(from_core.geometry, tol_mm=1e-6)
    assert np.array_equal(from_slicer.array, from_core.array)

    out = tmp_path / "saved_by_slicer.nrrd"
    node2 = mrml.node_from_volume(Volume(arr, geom), "to_save")
    storage2 = slicer.vtkMRMLVolumeArchetypeStorageNode()
    mrml_scene.AddNode(storage2)
    storage2.SetFileName(str(out))
    assert storage2.WriteData(node2)
    again = image_io.load_image(out)
    assert again.geometry.same_grid(geom, tol_mm=1e-6)
    assert np.array_equal(again.array, arr)


def test_labelmap_node_and_bool(mrml_scene):
    from calcinosis import mrml

    geom = GEOMETRIES["oblique"]
    mask = np.zeros(geom.shape, bool)
    mask[1:3, 2:4, 3:6] = True
    node = mrml.node_from_volume(Volume(mask, geom), "mask", labelmap=True)
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    back = mrml.volume_from_node(node)
    assert back.array.dtype == np.uint8 and np.array_equal(back.array != 0, mask)


def test_linear_parent_transform_is_applied_not_hardened_in_node(mrml_scene):
    """Decision: a linear parent transform is applied to the geometry (as hardening would,
    no resampling), the node is left as it is."""
    import vtk
    from calcinosis import mrml

    geom = GEOMETRIES["anisotropic_lps"]
    node = mrml.node_from_volume(Volume(np.zeros(geom.shape, np.int16), geom), "ct")
    tnode = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "move")
    R = rotation_matrix((0, 0, 1), 30.0)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = (5.0, -7.0, 11.0)
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, T[r, c])
    tnode.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(tnode.GetID())
    before = _matrix(node)
    vol = mrml.volume_from_node(node)
    assert np.allclose(vol.geometry.ijk_to_ras_matrix(), T @ geom.ijk_to_ras_matrix(), atol=1e-9)
    # Slicer's own world position of a voxel agrees
    ijk = np.array([3.0, 2.0, 4.0])
    local = (geom.ijk_to_ras_matrix() @ np.r_[ijk, 1.0])[:3]
    world = [0.0, 0.0, 0.0]
    node.TransformPointToWorld(local.tolist(), world)  # applies the node's parent transforms
    assert np.allclose(vol.geometry.ijk_to_ras(ijk), world, atol=1e-9)
    assert np.array_equal(_matrix(node), before)  # node untouched
    assert node.GetParentTransformNode() is tnode
    assert any("transform" in w for w in vol.meta["warnings"])


def test_scaling_transform_changes_spacing(mrml_scene):
    import vtk
    from calcinosis import mrml

    geom = GEOMETRIES["axis_aligned"]
    node = mrml.node_from_volume(Volume(np.zeros(geom.shape, np.int16), geom), "ct")
    tnode = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "scale")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 0, 2.0)
    tnode.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(tnode.GetID())
    vol = mrml.volume_from_node(node)
    assert np.allclose(vol.geometry.spacing, (1.0, 0.5, 0.5))


def test_shear_and_nonlinear_transforms_are_refused(mrml_scene):
    import slicer
    import vtk
    from calcinosis import mrml

    geom = GEOMETRIES["axis_aligned"]
    node = mrml.node_from_volume(Volume(np.zeros(geom.shape, np.int16), geom), "ct")
    shear = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shear")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 1, 0.3)
    shear.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(shear.GetID())
    with pytest.raises(InputError, match="shear"):
        mrml.volume_from_node(node)

    grid = mrml_scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    gt = slicer.vtkOrientedGridTransform()
    disp = vtk.vtkImageData()
    disp.SetDimensions(3, 3, 3)
    disp.AllocateScalars(vtk.VTK_DOUBLE, 3)
    disp.GetPointData().GetScalars().Fill(0.5)
    gt.SetDisplacementGridData(disp)
    grid.SetAndObserveTransformFromParent(gt)
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(InputError, match="non-linear.*[Hh]arden"):
        mrml.volume_from_node(node)


def test_bad_nodes_are_refused(mrml_scene):
    import vtk
    from calcinosis import mrml

    empty = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(InputError, match="empty.*no image data"):
        mrml.volume_from_node(empty)
    rgb = mrml_scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    img = vtk.vtkImageData()
    img.SetDimensions(4, 4, 1)
    img.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    rgb.SetAndObserveImageData(img)
    with pytest.raises(InputError, match="3 components"):
        mrml.volume_from_node(rgb)
    with pytest.raises(InputError, match="no input volume"):
        mrml.volume_from_node(None)


def test_modality_from_units_attribute_or_user(mrml_scene):
    from calcinosis import mrml

    geom = GEOMETRIES["axis_aligned"]
    ct = mrml.node_from_volume(Volume(np.zeros(geom.shape, np.int16), geom, {"modality": "CT"}), "ct")
    ct.RemoveAttribute("Calcinosis.Modality")  # only the Hounsfield units remain
    v = mrml.volume_from_node(ct)
    assert v.modality == "CT" and v.intensity_unit == "HU"
    plain = mrml.node_from_volume(Volume(np.zeros(geom.shape, np.int16), geom), "plain")
    assert mrml.volume_from_node(plain).modality is None
    plain.SetAttribute("DICOM.Modality", "MR")
    assert mrml.volume_from_node(plain).modality == "MR"
    assert mrml.volume_from_node(plain, modality="ct").modality == "CT"
    # the pseudonymous input id is stable and says nothing about names
    assert mrml.volume_from_node(plain).meta["input_id"] == mrml.volume_from_node(plain).meta["input_id"]
    assert mrml.volume_from_node(plain).meta["input_id"].startswith("sha256:")
