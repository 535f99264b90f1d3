"""Slicer's own route to per-lesion numbers, run on the ``slicer-core`` wheel.

What a Slicer user does without this extension, step by step:

1. threshold the CT (``vtkImageThreshold``, as the Threshold effect does);
2. split it into islands (``vtkITKIslandMath``, as the Islands effect does: face
   connectivity unless asked otherwise, a minimum size in voxels);
3. import the islands as segments (``vtkSlicerSegmentationsModuleLogic.
   ImportLabelmapToSegmentationNode``);
4. Segment Statistics: for every segment its binary labelmap, resampled onto the
   grey-level volume, thresholded into a stencil, then ``vtkImageAccumulate`` over the
   grey-level volume with that stencil (the "Scalar Volume" plugin) and over the binary
   labelmap (the "Label Map" plugin's voxel count).

Written for this project after reading Slicer's SegmentStatistics plugins (no code copied).
The hand and spine benchmarks and the cross-check tests call it; the functions:

``native_measure(labels, geometry, intensity, scene=None) -> {label: stats}``
    steps 3-4 for a label image (0 = background) on ``geometry``.
``native_islands(mask, geometry, connectivity='face', min_size_voxels=0) -> (labels, n)``
    step 2 (input cast to uint16 first: on uint8 input with more than 255 islands
    ``vtkITKIslandMath`` aborts the process; uint16 holds up to 65535 islands).
``native_route(intensity, geometry, threshold, min_size_mm3=0, connectivity='face') -> {label: stats}``
    steps 1-4.
``native_end_to_end(ct_path, labels, geometry, outdir) -> {label: stats}``
    from file to file: Slicer reads the CT, steps 3-4, Slicer writes the ``.seg.nrrd``
    and the table (what our end-to-end benchmarks time on our side).

``stats`` keys: ``voxel_count`` and ``volume_mm3`` (Scalar Volume plugin),
``labelmap_voxel_count`` (Label Map plugin), ``mean``, ``min``, ``max`` and ``stdev``
(``vtkImageAccumulate``'s standard deviation, which divides by N-1: the sample SD).
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.volume import Volume


def _vtk():
    import slicer
    import vtk
    return slicer, vtk


def _image_to_numpy(img) -> np.ndarray:
    from vtk.util import numpy_support
    e = img.GetExtent()
    shape = (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    return numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(shape)


def native_islands(mask: np.ndarray, geometry: Geometry, connectivity: str = "face",
                   min_size_voxels: int = 0) -> tuple[np.ndarray, int]:
    """Islands of a mask by ``vtkITKIslandMath`` (labels sorted by size, largest = 1)."""
    slicer, vtk = _vtk()
    from calcinosis.mrml.volumes import image_data_from_array

    # cast first: uint8 input with >255 islands aborts the process inside ITK; 16 bits hold
    # 65535 islands at a quarter of int32's memory on a full CT
    image = image_data_from_array(np.asarray(mask).astype(np.uint16))
    islands = slicer.vtkITKIslandMath()
    islands.SetInputData(image)
    islands.SetFullyConnected(1 if connectivity == "full" else 0)
    islands.SetMinimumSize(int(min_size_voxels))
    islands.Update()
    out = _image_to_numpy(islands.GetOutput()).copy()
    return out, int(islands.GetNumberOfIslands())


def import_labelmap_as_segments(labels: np.ndarray, geometry: Geometry, scene):
    """Step 3: a labelmap volume node imported into a new segmentation node."""
    slicer, _ = _vtk()
    from calcinosis import mrml
    from calcinosis.mrml.vtklog import COLOR_TABLE_RANGE_NOISE

    labelmap_node = mrml.node_from_volume(Volume(labels, geometry), "islands", labelmap=True, scene=scene)
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "islands")
    with mrml.vtk_messages(expected=COLOR_TABLE_RANGE_NOISE):
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, seg_node, "")
    if not ok:
        raise RuntimeError("ImportLabelmapToSegmentationNode failed")
    return seg_node, labelmap_node


def _segment_stencil(seg_node, segment_id, grey_node):
    """The segment's binary labelmap on the grey-level volume's grid, as an image stencil."""
    slicer, vtk = _vtk()
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(grey_node.GetImageData().GetExtent())
    ijk_to_ras = vtk.vtkMatrix4x4()
    grey_node.GetIJKToRASMatrix(ijk_to_ras)
    reference.SetGeometryFromImageToWorldMatrix(ijk_to_ras)
    seg_to_grey = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(seg_node.GetParentTransformNode(),
                                                         grey_node.GetParentTransformNode(), seg_to_grey)
    segment_labelmap = slicer.vtkOrientedImageData()
    seg_node.GetBinaryLabelmapRepresentation(segment_id, segment_labelmap)
    on_grey = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        segment_labelmap, reference, on_grey, False, False, seg_to_grey)
    binary = vtk.vtkImageThreshold()
    binary.SetInputData(on_grey)
    binary.ThresholdByLower(0)
    binary.SetInValue(0)
    binary.SetOutValue(1)
    binary.SetOutputScalarType(vtk.VTK_UNSIGNED_CHAR)
    binary.Update()
    stencil = vtk.vtkImageToImageStencil()
    stencil.SetInputData(binary.GetOutput())
    stencil.ThresholdByUpper(1)
    stencil.Update()
    return stencil, segment_labelmap


def _labelmap_voxel_count(segment_labelmap) -> int:
    """The Label Map plugin's count: accumulate over the segment's own binary labelmap."""
    _, vtk = _vtk()
    binary = vtk.vtkImageThreshold()
    binary.SetInputData(segment_labelmap)
    binary.ThresholdByLower(0)
    binary.SetInValue(0)
    binary.SetOutValue(1)
    binary.SetOutputScalarType(vtk.VTK_UNSIGNED_CHAR)
    binary.Update()
    stencil = vtk.vtkImageToImageStencil()
    stencil.SetInputData(binary.GetOutput())
    stencil.ThresholdByUpper(1)
    stencil.Update()
    acc = vtk.vtkImageAccumulate()
    acc.SetInputData(binary.GetOutput())
    acc.SetStencilData(stencil.GetOutput())
    acc.Update()
    return int(acc.GetVoxelCount())


def segment_statistics(seg_node, grey_node) -> dict[int, dict[str, float]]:
    """Step 4 for every segment, keyed by the segment's label value."""
    _, vtk = _vtk()
    from calcinosis.mrml.segmentations import segment_ids

    voxel_mm3 = reduce(lambda a, b: a * b, grey_node.GetSpacing())
    out: dict[int, dict[str, float]] = {}
    segmentation = seg_node.GetSegmentation()
    for sid in segment_ids(segmentation):
        stencil, own = _segment_stencil(seg_node, sid, grey_node)
        acc = vtk.vtkImageAccumulate()
        acc.SetInputData(grey_node.GetImageData())
        acc.SetStencilData(stencil.GetOutput())
        acc.Update()
        n = int(acc.GetVoxelCount())
        stats = {"voxel_count": n, "volume_mm3": n * voxel_mm3, "labelmap_voxel_count": _labelmap_voxel_count(own)}
        if n:
            stats.update(mean=acc.GetMean()[0], min=acc.GetMin()[0], max=acc.GetMax()[0],
                         stdev=acc.GetStandardDeviation()[0])
        out[int(segmentation.GetSegment(sid).GetLabelValue())] = stats
    return out


def _with_scene(scene, work):
    from calcinosis import mrml
    own = scene is None
    if own:
        scene = mrml.headless_scene()
    try:
        return work(scene)
    finally:
        if own:
            mrml.close_headless_scene(scene)


def native_measure(labels: np.ndarray, geometry: Geometry, intensity: np.ndarray, scene=None) -> dict[int, dict[str, float]]:
    """Slicer's route from a label image (0 = background, any integer labels) to per-label
    statistics: import as segments + SegmentStatistics-style ``vtkImageAccumulate``.
    ``scene``: a headless scene to work in (a fresh one, released afterwards, by default)."""
    from calcinosis import mrml

    def work(sc):
        seg_node, _ = import_labelmap_as_segments(labels, geometry, sc)
        grey = mrml.node_from_volume(Volume(intensity, geometry), "grey", scene=sc)
        return segment_statistics(seg_node, grey)

    return _with_scene(scene, work)


def native_end_to_end(ct_path, labels: np.ndarray, geometry: Geometry, outdir, scene=None,
                      timings: dict | None = None) -> dict[int, dict[str, float]]:
    """Slicer's route for the same lesions from file to file, step for step with ours:
    read the CT with Slicer's volume storage node, import the lesion label image as
    segments, Segment Statistics (steps 3-4), then save the segmentation with Slicer's
    segmentation storage node (``.seg.nrrd``) and the statistics as a CSV table.
    ``timings``: filled with the seconds of each step (read, import, statistics, write)."""
    import csv
    import time
    from pathlib import Path

    slicer, _ = _vtk()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    steps = timings if timings is not None else {}

    def work(sc):
        t0 = time.perf_counter()
        grey = sc.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
        reader = sc.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        reader.SetFileName(str(ct_path))
        if not reader.ReadData(grey):
            raise RuntimeError(f"Slicer could not read {ct_path}")
        t1 = time.perf_counter()
        seg_node, _ = import_labelmap_as_segments(labels, geometry, sc)
        t2 = time.perf_counter()
        stats = segment_statistics(seg_node, grey)
        t3 = time.perf_counter()
        writer = slicer.vtkMRMLSegmentationStorageNode()
        sc.AddNode(writer)
        writer.SetFileName(str(outdir / "lesions.seg.nrrd"))
        if not writer.WriteData(seg_node):
            raise RuntimeError("Slicer could not write the segmentation")
        keys = sorted({k for st in stats.values() for k in st})
        with open(outdir / "statistics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label"] + keys)
            for label in sorted(stats):
                w.writerow([label] + [stats[label].get(k, "") for k in keys])
        steps.update(read=t1 - t0, import_segments=t2 - t1, statistics=t3 - t2, write=time.perf_counter() - t3)
        return stats

    return _with_scene(scene, work)


def native_route(intensity: np.ndarray, geometry: Geometry, threshold: float, min_size_mm3: float = 0.0,
                 connectivity: str = "face", scene=None) -> dict[int, dict[str, float]]:
    """Threshold (>= ``threshold``) -> islands (``min_size_mm3`` as whole voxels) -> import ->
    statistics, all with Slicer's classes."""
    _, vtk = _vtk()
    from calcinosis.mrml.volumes import image_data_from_array

    thresh = vtk.vtkImageThreshold()
    thresh.SetInputData(image_data_from_array(intensity))
    thresh.ThresholdByUpper(float(threshold))
    thresh.SetInValue(1)
    thresh.SetOutValue(0)
    thresh.SetOutputScalarType(vtk.VTK_UNSIGNED_SHORT)  # not uint8: see native_islands
    thresh.Update()
    mask = _image_to_numpy(thresh.GetOutput())
    min_voxels = math.ceil(min_size_mm3 / geometry.voxel_volume_mm3 - 1e-9) if min_size_mm3 > 0 else 0
    labels, _ = native_islands(mask, geometry, connectivity, min_voxels)
    return native_measure(labels, geometry, intensity, scene=scene)
