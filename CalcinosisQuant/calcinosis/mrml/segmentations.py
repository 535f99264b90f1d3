"""Lesions -> segmentation nodes, and segmentation nodes (as the user edited them) -> label images.

Fast path (:func:`segmentation_from_lesions`): the lesion voxels go into one shared
labelmap layer cropped to the lesions' extent, and each lesion becomes a named, coloured
segment whose label value is its lesion id - hundreds of segments in milliseconds.  Never
``ImportLabelmapToSegmentationNode`` on a many-label volume (tens of seconds at 200 labels).
Lesions that share voxels (overlapping user segments) go to further layers, so each
segment keeps every voxel it had.

:func:`label_image_from_segmentation` reads every layer, in world coordinates (a parent
linear transform applied, a non-linear one refused), onto a reference grid: an exact index
paste when the layer lies on that grid (the usual case), nearest-neighbour resampling
through physical space otherwise.  The node is never modified: segmentations whose source
representation is not a binary labelmap are converted on a copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.core.image_io import LabelImage, Segment, resample_labels
from calcinosis.core.lesions import LesionSet
from .scene import get_scene
from .volumes import _matrix_to_numpy, _numpy_to_matrix, geometry_from_ijk_to_ras, node_to_world_matrix
from .vtklog import vtk_messages

BINARY_LABELMAP = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()


def _label_dtype(max_value: int):
    return np.uint8 if max_value < 256 else (np.uint16 if max_value < 65536 else np.uint32)


def oriented_image(geometry: Geometry, extent: Sequence[int] | None = None, dtype=None):
    """A ``vtkOrientedImageData`` on ``geometry`` (``extent`` = i0,i1,j0,j1,k0,k1 within it;
    the whole grid by default), allocated with ``dtype`` when given."""
    img = slicer.vtkOrientedImageData()
    if extent is None:
        ni, nj, nk = geometry.size_ijk
        extent = (0, ni - 1, 0, nj - 1, 0, nk - 1)
    img.SetExtent(*[int(e) for e in extent])
    img.SetGeometryFromImageToWorldMatrix(_numpy_to_matrix(geometry.ijk_to_ras_matrix()))
    if dtype is not None:
        img.AllocateScalars(numpy_support.get_vtk_array_type(np.dtype(dtype)), 1)
    return img


def image_array(img) -> np.ndarray:
    """numpy view ``[k, j, i]`` of an image's scalars."""
    e = img.GetExtent()
    shape = (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    return numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(shape)


def serialize_geometry(geometry: Geometry) -> str:
    """Slicer's reference-image-geometry string for a grid."""
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(oriented_image(geometry))


def clear_segments_fast(segmentation) -> None:
    """Remove every segment of a ``vtkSegmentation`` without Slicer's per-segment passes.

    ``vtkSegmentation.RemoveSegment`` (also run for every segment by ``RemoveAllSegments``
    and by the destructor, i.e. when a node is deleted or the scene closed) first separates
    the segment from its shared labelmap: two passes over the whole layer per segment.  For
    300 lesions in a layer spanning a 512x512x600 CT that is minutes (a known Slicer
    limitation).  Dropping each segment's representations first makes every removal
    trivial; the shared image itself is left untouched (it is released with the segments)."""
    ids = segment_ids(segmentation)
    for sid in ids:
        segmentation.GetSegment(sid).RemoveAllRepresentations()
    segmentation.RemoveAllSegments()


def remove_segmentation_node(node) -> None:
    """Delete a segmentation node from its scene quickly, however many segments it has."""
    was = node.StartModify()
    try:
        clear_segments_fast(node.GetSegmentation())
    finally:
        node.EndModify(was)
    if node.GetScene() is not None:
        node.GetScene().RemoveNode(node)


def _overlap_layers(lesions: LesionSet) -> np.ndarray:
    """Layer (0-based) per lesion, so that lesions sharing a voxel never share a layer
    (greedy colouring of the overlap graph; all 0 without overlaps)."""
    n = lesions.n
    layer = np.zeros(n + 1, dtype=np.int64)
    idx, lab = lesions.voxel_index, lesions.voxel_label
    if idx.size < 2:
        return layer[1:]
    if np.any(idx[1:] < idx[:-1]):
        order = np.argsort(idx, kind="stable")
        idx, lab = idx[order], lab[order]
    same = idx[1:] == idx[:-1]
    if not same.any():
        return layer[1:]
    # runs of equal indices -> the lesions sharing that voxel
    starts = np.flatnonzero(np.r_[True, ~same])
    lengths = np.diff(np.r_[starts, idx.size])
    neighbours: dict[int, set[int]] = {}
    groups = {tuple(sorted(set(lab[s:s + m].tolist()))) for s, m in zip(starts[lengths > 1], lengths[lengths > 1])}
    for g in groups:
        for a in g:
            neighbours.setdefault(a, set()).update(b for b in g if b != a)
    for a in sorted(neighbours):
        used = {int(layer[b]) for b in neighbours[a] if b < a}
        L = 0
        while L in used:
            L += 1
        layer[a] = L
    return layer[1:]


def segmentation_from_lesions(lesions: LesionSet, names: Sequence[str] | None = None,
                              colors: Sequence[Sequence[float]] | None = None, scene=None, node=None,
                              reference_volume_node=None, name: str = "lesions",
                              segment_ids: Sequence[str] | None = None, terminologies: Sequence[str] | None = None):
    """A ``vtkMRMLSegmentationNode`` with one named, coloured segment per lesion (label value =
    lesion id) in one shared, cropped labelmap layer (more layers only where lesions overlap).

    ``names``/``colors`` (RGB 0-1) per lesion, default ``lesion <id>`` and
    :func:`~calcinosis.core.pipeline.lesion_colors`.  ``node``: replace the segments of this
    node.  ``reference_volume_node``: the volume the Segment Editor should edit on (else the
    lesions' grid is set as reference geometry).  ``terminologies``: each segment's
    ``TerminologyEntry`` (default: a calcification, region not known)."""
    from calcinosis.core import terminology
    from calcinosis.core.pipeline import lesion_colors

    scene = get_scene(scene)
    n = lesions.n
    names = list(names) if names is not None else [f"lesion {k}" for k in range(1, n + 1)]
    colors = list(colors) if colors is not None else lesion_colors(n)
    ids = list(segment_ids) if segment_ids is not None else [f"lesion_{k}" for k in range(1, n + 1)]
    terms = list(terminologies) if terminologies is not None else [terminology.terminology_entry()] * n
    if not (len(names) == len(colors) == len(ids) == len(terms) == n):
        raise ValueError(f"{n} lesions but {len(names)} names, {len(colors)} colours, {len(ids)} ids")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    geom = lesions.geometry
    segmentation = node.GetSegmentation()
    was_modifying = node.StartModify()
    try:
        clear_segments_fast(segmentation)  # Detect run again on the same node: must not take minutes
        segmentation.SetSourceRepresentationName(BINARY_LABELMAP)
        if reference_volume_node is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        else:
            segmentation.SetConversionParameter(
                slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(), serialize_geometry(geom))
        if n:
            layer_of = _overlap_layers(lesions)
            k, j, i = lesions.voxel_kji()
            lab = lesions.voxel_label
            dtype = _label_dtype(n)
            images = []
            for L in range(int(layer_of.max()) + 1):
                sel = layer_of[lab - 1] == L
                kk, jj, ii = k[sel], j[sel], i[sel]
                extent = (int(ii.min()), int(ii.max()), int(jj.min()), int(jj.max()), int(kk.min()), int(kk.max()))
                img = oriented_image(geom, extent, dtype)
                arr = image_array(img)
                arr[...] = 0
                arr[kk - extent[4], jj - extent[2], ii - extent[0]] = lab[sel]
                images.append(img)
            for lesion_id in range(1, n + 1):
                seg = slicer.vtkSegment()
                seg.SetName(str(names[lesion_id - 1]))
                c = colors[lesion_id - 1]
                seg.SetColor(float(c[0]), float(c[1]), float(c[2]))
                seg.SetLabelValue(lesion_id)
                seg.SetTag(terminology.TAG_NAME, terms[lesion_id - 1])
                seg.AddRepresentation(BINARY_LABELMAP, images[int(layer_of[lesion_id - 1])])
                segmentation.AddSegment(seg, str(ids[lesion_id - 1]))
    finally:
        node.EndModify(was_modifying)
    return node


# ---------------------------------------------------------------------- reading back
def _layer_on_reference(img, to_world: np.ndarray, reference: Geometry, what: str) -> np.ndarray | None:
    """One labelmap layer (vtkOrientedImageData) on the reference grid."""
    e = img.GetExtent()
    if e[1] < e[0] or e[3] < e[2] or e[5] < e[4] or img.GetPointData().GetScalars() is None:
        return None
    m = vtk.vtkMatrix4x4()
    img.GetImageToWorldMatrix(m)
    world = to_world @ _matrix_to_numpy(m)
    start = world @ np.array([e[0], e[2], e[4], 1.0])
    world = world.copy()
    world[:3, 3] = start[:3]
    size = (e[1] - e[0] + 1, e[3] - e[2] + 1, e[5] - e[4] + 1)
    layer_geom = geometry_from_ijk_to_ras(world, size, what)
    arr = image_array(img)
    if not np.issubdtype(arr.dtype, np.integer):
        arr = np.rint(arr).astype(np.int32)
    out = np.zeros(reference.shape, dtype=arr.dtype)
    offset = _integer_offset(layer_geom, reference)
    if offset is not None:
        # same spacing and axes, shifted by whole voxels: paste the overlapping box
        oi = np.array(offset[::-1])  # (k, j, i) offset of the layer in the reference grid
        lo = np.maximum(oi, 0)
        hi = np.minimum(oi + np.array(arr.shape), np.array(reference.shape))
        if np.all(hi > lo):
            src = tuple(slice(int(a - o), int(b - o)) for a, b, o in zip(lo, hi, oi))
            dst = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            out[dst] = arr[src]
        return out
    return np.ascontiguousarray(resample_labels(np.ascontiguousarray(arr), layer_geom, reference)).astype(arr.dtype, copy=False)


def _integer_offset(layer: Geometry, reference: Geometry, tol: float = 1e-3) -> tuple[int, int, int] | None:
    if not np.allclose(layer.spacing, reference.spacing, rtol=1e-6, atol=1e-6):
        return None
    if not np.allclose(layer.direction, reference.direction, atol=1e-6):
        return None
    ijk = reference.ras_to_ijk(np.asarray(layer.origin_ras))
    r = np.rint(ijk)
    if np.any(np.abs(ijk - r) > tol):
        return None
    if reference.is_2d and layer.is_2d:
        r[2] = 0
    return int(r[0]), int(r[1]), int(r[2])


def segment_ids(segmentation) -> list[str]:
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    return [ids.GetValue(n) for n in range(ids.GetNumberOfValues())]


def label_image_from_segmentation(segmentation_node, reference: Geometry) -> LabelImage:
    """The segments of a segmentation node, as the user edited them, on ``reference``:
    one label layer per labelmap layer of the node (overlapping segments live in different
    layers), with each segment's name, colour, label value and layer.  The node is not
    modified."""
    if segmentation_node is None:
        raise InputError("no segmentation selected")
    what = segmentation_node.GetName()
    to_world = node_to_world_matrix(segmentation_node)
    segmentation = segmentation_node.GetSegmentation()
    ids = segment_ids(segmentation)
    if not ids:
        return LabelImage([np.zeros(reference.shape, np.uint8)], reference, [], source=what)
    work = segmentation
    if not segmentation.ContainsRepresentation(BINARY_LABELMAP):
        # e.g. a segmentation made of closed surfaces: convert a copy on the reference grid
        work = slicer.vtkSegmentation()
        work.DeepCopy(segmentation)
        local = np.linalg.inv(to_world) @ reference.ijk_to_ras_matrix()
        ref_local = geometry_from_ijk_to_ras(local, reference.size_ijk, what)
        work.SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                                    serialize_geometry(ref_local))
        with vtk_messages():
            ok = work.CreateRepresentation(BINARY_LABELMAP)
        if not ok:
            raise InputError(f"segmentation '{what}': cannot make a binary labelmap from its "
                             f"{segmentation.GetSourceRepresentationName()} representation")
    try:
        return _read_layers(work, ids, to_world, reference, what)
    finally:
        if work is not segmentation:
            clear_segments_fast(work)


def _read_layers(work, ids, to_world, reference: Geometry, what: str) -> LabelImage:
    # one label layer per distinct labelmap object (segments in a shared layer share it)
    layers: list[np.ndarray] = []
    layer_of_image: dict[str, int] = {}
    segments = []
    for sid in ids:
        seg = work.GetSegment(sid)
        img = seg.GetRepresentation(BINARY_LABELMAP)
        key = img.GetAddressAsString("") if img is not None else f"empty:{sid}"
        if key not in layer_of_image:
            arr = _layer_on_reference(img, to_world, reference, what) if img is not None else None
            layers.append(arr if arr is not None else np.zeros(reference.shape, np.uint8))
            layer_of_image[key] = len(layers) - 1
        segments.append(Segment(seg.GetName(), int(seg.GetLabelValue()), layer_of_image[key],
                                tuple(float(c) for c in seg.GetColor()), sid))
    return LabelImage(layers, reference, segments, source=what)


# ---------------------------------------------------------------------- files
SEG_SUFFIXES = (".seg.nrrd", ".seg.nhdr", ".nrrd", ".nhdr")


def save_segmentation(node, path: str | Path) -> Path:
    """Write a segmentation node to a ``.seg.nrrd`` through Slicer's segmentation storage node
    (compressed; the node keeps no link to the file)."""
    path = Path(path)
    if not path.name.lower().endswith(SEG_SUFFIXES):
        raise InputError(f"{path}: a segmentation is saved as .seg.nrrd")
    scene = node.GetScene() or get_scene()
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(1)
    scene.AddNode(storage)
    try:
        with vtk_messages():
            ok = storage.WriteData(node)
    finally:
        scene.RemoveNode(storage)
    if not ok:
        raise InputError(f"{path}: cannot write the segmentation (is the folder writable?)")
    return path


def load_segmentation(path: str | Path, scene=None, name: str | None = None):
    """Read a ``.seg.nrrd`` into a new segmentation node (its storage node kept, as Slicer's
    loader does)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    scene = get_scene(scene)
    if name is None:
        name = path.name
        for s in (".seg.nrrd", ".seg.nhdr", ".nrrd", ".nhdr"):
            if name.lower().endswith(s):
                name = name[: -len(s)]
                break
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    with vtk_messages():
        ok = storage.ReadData(node)
    if not ok:
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError(f"{path}: cannot read it as a Slicer segmentation")
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node
