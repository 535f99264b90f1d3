"""Volume nodes <-> core :class:`~calcinosis.core.volume.Volume`, geometry kept exactly.

Geometry is Slicer's ``IJKToRAS`` matrix on both sides (the core :class:`Geometry` is in
RAS too), so no sign is flipped here.

Transforms: a volume node under a parent transform is read in world (RAS) coordinates.
A *linear* transform is applied to the geometry (as "Harden transform" would, exactly,
without resampling and without modifying the node); a rotation, translation or uniform or
anisotropic scaling keeps a valid grid.  A transform with shear, and any non-linear
(grid, B-spline, thin-plate) transform, is refused with a message saying how to harden
or resample in Slicer, because no voxel grid describes it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume, normalise_modality
from .scene import get_scene

#: UCUM code Slicer uses for Hounsfield units on CT volumes loaded from DICOM.
HU_CODE = "[hnsf'U]"
MODALITY_ATTRIBUTE = "Calcinosis.Modality"
DICOM_MODALITY_ATTRIBUTE = "DICOM.Modality"


def _matrix_to_numpy(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(a: np.ndarray):
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def node_to_world_matrix(node) -> np.ndarray:
    """4x4 matrix from the node's local coordinates to world RAS (identity without a
    parent transform).  Non-linear transforms raise :class:`InputError`."""
    tnode = node.GetParentTransformNode()
    if tnode is None:
        return np.eye(4)
    if not tnode.IsTransformToWorldLinear():
        raise InputError(f"'{node.GetName()}' is under the non-linear transform '{tnode.GetName()}'; "
                         "harden it in Slicer (Data module: right-click the node, 'Harden transform') "
                         "or resample the image first")
    m = vtk.vtkMatrix4x4()
    tnode.GetMatrixTransformToWorld(m)
    return _matrix_to_numpy(m)


def geometry_from_ijk_to_ras(matrix: np.ndarray, size_ijk, what: str) -> Geometry:
    try:
        return Geometry.from_ijk_to_ras(matrix, size_ijk)
    except ValueError as e:
        raise InputError(f"'{what}': its voxel grid in world coordinates is not a plain grid ({e}); "
                         "a transform with shear is applied to it - harden and resample it in Slicer first") from None


def node_geometry(volume_node) -> Geometry:
    """The node's voxel grid in world RAS (parent linear transform applied)."""
    image = volume_node.GetImageData()
    if image is None:
        raise InputError(f"volume '{volume_node.GetName()}' holds no image data")
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    world = node_to_world_matrix(volume_node) @ _matrix_to_numpy(m)
    return geometry_from_ijk_to_ras(world, image.GetDimensions(), volume_node.GetName())


def _node_modality(volume_node) -> tuple[str | None, str]:
    for attr in (MODALITY_ATTRIBUTE, DICOM_MODALITY_ATTRIBUTE):
        v = volume_node.GetAttribute(attr)
        if v:
            return normalise_modality(v), f"node attribute {attr}"
    sh = volume_node.GetScene().GetSubjectHierarchyNode() if volume_node.GetScene() else None
    if sh is not None:
        item = sh.GetItemByDataNode(volume_node)
        if item:
            # Slicer's DICOM loader puts the series' modality on the series item
            for attr in (DICOM_MODALITY_ATTRIBUTE,):
                v = sh.GetItemAttribute(item, attr)
                if v:
                    return normalise_modality(v), "DICOM series"
    units = volume_node.GetVoxelValueUnits() if hasattr(volume_node, "GetVoxelValueUnits") else None
    if units is not None and units.GetCodeValue() == HU_CODE:
        return "CT", "voxel value units (Hounsfield)"
    return None, ""


def _input_id(volume_node, array: np.ndarray, geometry: Geometry) -> str:
    from calcinosis.core.dicom_meta import pseudonymous_id
    uids = volume_node.GetAttribute("DICOM.instanceUIDs")
    if uids:
        return pseudonymous_id("dicom-instances", uids)
    # a sample of the voxel values and the grid: cheap, stable for the same image
    step = max(1, array.size // 1_000_003)
    sample = np.ascontiguousarray(array.ravel()[::step])
    digest = hashlib.sha256(sample.tobytes()).hexdigest()
    return pseudonymous_id("slicer-volume", str(array.dtype), repr(geometry.to_dict()), digest)


def volume_from_node(volume_node, modality: str | None = None, copy: bool = True) -> Volume:
    """A core :class:`Volume` from a scalar (or labelmap) volume node.

    ``modality`` overrides what the node says (node attribute ``Calcinosis.Modality`` or
    ``DICOM.Modality``, its DICOM series, or Hounsfield voxel units -> CT).  With
    ``copy=False`` the array shares VTK's memory (do not keep it beyond the node)."""
    if volume_node is None:
        raise InputError("no input volume selected")
    image = volume_node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise InputError(f"volume '{volume_node.GetName()}' holds no image data")
    scalars = image.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise InputError(f"volume '{volume_node.GetName()}' has {scalars.GetNumberOfComponents()} components per "
                         "voxel (colour or vector image); a scalar volume is needed")
    geometry = node_geometry(volume_node)
    arr = numpy_support.vtk_to_numpy(scalars).reshape(geometry.shape)
    if copy:
        arr = arr.copy()
    meta: dict = {"source_format": "Slicer volume node", "spacing_source": "Slicer volume node geometry"}
    if modality is not None:
        meta["modality"] = normalise_modality(modality)
        meta["modality_source"] = "user"
    else:
        mod, source = _node_modality(volume_node)
        if mod is not None:
            meta["modality"] = mod
            meta["modality_source"] = source
    meta["intensity_unit"] = "HU" if meta.get("modality") == "CT" else "a.u."
    meta["input_id"] = _input_id(volume_node, arr, geometry)
    vol = Volume(arr, geometry, meta)
    if volume_node.GetParentTransformNode() is not None:
        vol.warn(f"'{volume_node.GetName()}' is under the linear transform "
                 f"'{volume_node.GetParentTransformNode().GetName()}': measured in world coordinates (transform applied)")
    return vol


def _vtk_type_for(array: np.ndarray) -> tuple[np.ndarray, int]:
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    return a, numpy_support.get_vtk_array_type(a.dtype)


def image_data_from_array(array: np.ndarray):
    """A ``vtkImageData`` (origin 0, spacing 1: geometry lives in the node) holding a copy
    of ``array[k, j, i]``."""
    a, vtk_type = _vtk_type_for(array)
    if a.ndim == 2:
        a = a[np.newaxis]
    image = vtk.vtkImageData()
    image.SetDimensions(a.shape[2], a.shape[1], a.shape[0])
    image.AllocateScalars(vtk_type, 1)
    view = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(a.shape)
    view[...] = a
    return image


def set_node_geometry(node, geometry: Geometry) -> None:
    node.SetIJKToRASMatrix(_numpy_to_matrix(geometry.ijk_to_ras_matrix()))


def node_from_volume(volume: Volume, name: str, labelmap: bool = False, scene=None, node=None):
    """A new ``vtkMRMLScalarVolumeNode`` (or ``vtkMRMLLabelMapVolumeNode``) holding a copy of
    the volume, placed by its geometry.  ``node``: fill this existing node instead."""
    scene = get_scene(scene)
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    if node is None:
        node = scene.AddNewNodeByClass(cls, name)
    elif name:
        node.SetName(name)
    node.SetAndObserveImageData(image_data_from_array(volume.array))
    set_node_geometry(node, volume.geometry)
    modality = volume.meta.get("modality")
    if modality:
        node.SetAttribute(MODALITY_ATTRIBUTE, str(modality))
    if modality == "CT" and not labelmap and hasattr(node, "SetVoxelValueUnits"):
        units = slicer.vtkCodedEntry()
        units.SetValueSchemeMeaning(HU_CODE, "UCUM", "Hounsfield unit")
        node.SetVoxelValueUnits(units)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node
