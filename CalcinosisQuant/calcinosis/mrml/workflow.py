"""The generic lesion workflow behind the Slicer panels: Detect -> review -> Measure -> Export.

The module Logic classes (``CalcinosisQuant.py``, ``SpineCalcMap.py``) only delegate here,
so everything is tested headless on ``slicer-core``:

* :func:`detect` - threshold the volume (inside an optional region segmentation, outside an
  optional exclusion segmentation), split connected lesions, drop those below the minimum
  size (mm³, mm² for 2D) or present on fewer contiguous axial slices, and show them as a
  segmentation node with one named, coloured segment per lesion, ready for review in the
  Segment Editor;
* :func:`measure` - measure the segmentation *as it is now* (after the user's edits): each
  segment is one lesion by default (``split_islands=True`` makes each island one, like
  ``calcinosis measure --mask``), into a lesion table node;
* :func:`export` - the files ``calcinosis measure`` writes: ``lesions.csv`` (+ schema),
  ``lesion_labels.nrrd``, ``lesions.seg.nrrd``, ``provenance.json``.

Detection parameters travel with the segmentation node (attribute
``Calcinosis.DetectionParameters``, JSON) into the provenance of the export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from calcinosis.core import pipeline, provenance
from calcinosis.core.errors import InputError
from calcinosis.core.lesions import LesionParams, LesionSet
from calcinosis.core.progress import Progress, report
from calcinosis.core.volume import Volume
from .segmentations import label_image_from_segmentation, segment_ids, segmentation_from_lesions  # noqa: F401
from .tablenodes import table_node_from_table
from .volumes import volume_from_node

PARAMETERS_ATTRIBUTE = "Calcinosis.DetectionParameters"
SOURCE_VOLUME_ROLE = "calcinosisSourceVolume"


def lesion_params(threshold_low: float | None, threshold_high: float | None = None, below: bool = False,
                  connectivity: str = "face", min_size: float = 1.0, min_slices: int = 1) -> LesionParams:
    """Validated detection parameters (a clear :class:`InputError` otherwise)."""
    if threshold_low is None:
        raise InputError("threshold: a threshold is needed to detect lesions")
    p = LesionParams(float(threshold_low), None if threshold_high is None else float(threshold_high), bool(below),
                     str(connectivity), float(min_size), int(min_slices))
    p.validate()
    return p


def region_mask(segmentation_node, volume: Volume, what: str = "region") -> np.ndarray | None:
    """Union of a segmentation's segments on the volume grid (None without a node)."""
    if segmentation_node is None:
        return None
    lab = label_image_from_segmentation(segmentation_node, volume.geometry)
    if not lab.segments:
        raise InputError(f"{what} segmentation '{segmentation_node.GetName()}' holds no segment")
    mask = lab.union()
    if not mask.any():
        raise InputError(f"{what} segmentation '{segmentation_node.GetName()}' does not overlap the volume")
    return mask


@dataclass
class Detection:
    segmentation_node: object
    lesions: LesionSet
    params: LesionParams
    warnings: list[str] = field(default_factory=list)


def detect(volume_node, params: LesionParams, region_node=None, exclude_node=None, segmentation_node=None,
           names: Sequence[str] | None = None, colors: Sequence[Sequence[float]] | None = None,
           modality: str | None = None, progress: Progress | None = None, scene=None) -> Detection:
    """Candidate lesions of a volume node as a segmentation node (one segment per lesion).
    ``segmentation_node``: reuse this node (its segments are replaced)."""
    params.validate()
    report(progress, 0.0, "reading volume")
    volume = volume_from_node(volume_node, modality=modality, copy=False)
    region = region_mask(region_node, volume, "region")
    exclude = region_mask(exclude_node, volume, "exclusion") if exclude_node is not None else None
    lesions = pipeline.find_lesions(volume, params, region, exclude,
                                    progress=progress.sub(0.05, 0.85) if progress else None)
    report(progress, 0.85, f"building {lesions.n} segments")
    if segmentation_node is None:
        scene = scene or volume_node.GetScene()
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volume_node.GetName()} lesions")
    segmentation_from_lesions(lesions, names, colors, node=segmentation_node, reference_volume_node=volume_node)
    record = dict(params.to_dict())
    record["min_size_unit"] = "mm2" if volume.is_2d else "mm3"
    segmentation_node.SetAttribute(PARAMETERS_ATTRIBUTE, json.dumps(record, sort_keys=True))
    segmentation_node.SetNodeReferenceID(SOURCE_VOLUME_ROLE, volume_node.GetID())
    warnings = list(volume.meta.get("warnings", [])) + list(lesions.notes)
    if lesions.n == 0:
        warnings.append("no lesion found: lower the threshold or the minimum size, or check the region")
    report(progress, 1.0, f"{lesions.n} lesions")
    return Detection(segmentation_node, lesions, params, warnings)


def detection_parameters(segmentation_node) -> dict | None:
    """The parameters :func:`detect` recorded on a segmentation node (None when absent)."""
    text = segmentation_node.GetAttribute(PARAMETERS_ATTRIBUTE) if segmentation_node is not None else None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass
class Measurement:
    table_node: object
    result: pipeline.LesionResult
    segmentation_node: object = None
    segmentation_state: tuple = ()


def segmentation_state(segmentation_node) -> tuple:
    """A cheap signature of a segmentation's content: segment ids, and the modification times
    of each segment and of its labelmap (edits, renames, additions and removals change it)."""
    if segmentation_node is None:
        return ()
    seg = segmentation_node.GetSegmentation()
    state = []
    for sid in segment_ids(seg):
        segment = seg.GetSegment(sid)
        rep = segment.GetRepresentation(seg.GetSourceRepresentationName())
        state.append((sid, segment.GetMTime(), rep.GetMTime() if rep is not None else 0))
    return (seg.GetSourceRepresentationName(), tuple(state))


def measurement_is_current(measurement: "Measurement") -> bool:
    """False when the segmentation was edited after the measurement (measure again)."""
    return measurement.segmentation_node is not None and \
        segmentation_state(measurement.segmentation_node) == measurement.segmentation_state


def measure(volume_node, segmentation_node, table_node=None, split_islands: bool = False,
            connectivity: str = "face", modality: str | None = None, progress: Progress | None = None,
            scene=None) -> Measurement:
    """Measure every segment of ``segmentation_node`` (as edited) on ``volume_node``'s
    voxels into a lesion table node (``table_node`` is refilled when given).

    The returned ``result.volume`` keeps the geometry and meta but no voxels (a zero
    placeholder), so a measurement can be exported after the volume node is gone."""
    if segmentation_node is None:
        raise InputError("no lesion segmentation selected: run Detect first or choose a segmentation")
    report(progress, 0.0, "reading volume")
    volume = volume_from_node(volume_node, modality=modality, copy=False)  # a view: no second copy of the CT
    report(progress, 0.1, "reading segments")
    labels = label_image_from_segmentation(segmentation_node, volume.geometry)
    if not labels.segments:
        volume.warn(f"segmentation '{segmentation_node.GetName()}' holds no segment: no lesions")
    params = LesionParams(connectivity=connectivity, min_size=0.0, min_slices=1, split_islands=split_islands)
    result = pipeline.measure_volume(volume, params, segmentation=labels,
                                     progress=progress.sub(0.2, 0.9) if progress else None)
    result.inputs = {
        "image": provenance.describe_volume(volume),
        "segmentation": {"segments": [s.name for s in labels.segments], "layers": len(labels.layers),
                         "source": "Slicer segmentation node (as reviewed)"},
    }
    # the result outlives this call (Export comes later) but must not keep a view of the
    # node's voxels, which Slicer may free: keep the geometry and meta, drop the voxels
    result.volume = Volume(np.broadcast_to(np.zeros((), volume.array.dtype), volume.geometry.shape),
                           volume.geometry, volume.meta)
    detection = detection_parameters(segmentation_node)
    if detection is not None:
        result.inputs["detection_parameters"] = detection
    report(progress, 0.9, "filling table")
    scene = scene or volume_node.GetScene()
    table_node = table_node_from_table(result.table, scene=scene, node=table_node,
                                       name=None if table_node is not None else f"{segmentation_node.GetName()} table")
    report(progress, 1.0, f"{result.lesions.n} lesions measured")
    return Measurement(table_node, result, segmentation_node, segmentation_state(segmentation_node))


def export(outdir: str | Path, measurement: Measurement | pipeline.LesionResult, force: bool = False,
           command: str = "CalcinosisQuant (Slicer): measure", case_id: str | None = None,
           progress: Progress | None = None) -> list[Path]:
    """Write the files of ``calcinosis measure`` for a measurement.  Refuses to replace an
    earlier result unless ``force``."""
    result = measurement.result if isinstance(measurement, Measurement) else measurement
    extra = {"measured_from": "reviewed segmentation: each segment one lesion"
             if not result.params.split_islands else "reviewed segmentation: each island one lesion"}
    if "detection_parameters" in result.inputs:
        extra["detection"] = result.inputs["detection_parameters"]
    return pipeline.write_measure_outputs(outdir, result, force=force, command=command, case_id=case_id,
                                          extra_parameters=extra, progress=progress)


def release_lesion_segmentations(scene) -> int:
    """Empty, quickly, the lesion segmentations :func:`detect` made (the panels call this when
    the scene is about to close: Slicer would otherwise spend minutes separating hundreds
    of segments from their shared labelmap one by one).  Returns how many were emptied."""
    from .segmentations import clear_segments_fast

    nodes = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    count = 0
    for n in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(n)
        if node.GetAttribute(PARAMETERS_ATTRIBUTE):
            was = node.StartModify()
            try:
                clear_segments_fast(node.GetSegmentation())
            finally:
                node.EndModify(was)
            count += 1
    return count


__all__ = ["release_lesion_segmentations", "segmentation_state", "measurement_is_current", "lesion_params", "region_mask", "detect", "Detection", "detection_parameters", "measure",
           "Measurement", "export", "segment_ids"]
