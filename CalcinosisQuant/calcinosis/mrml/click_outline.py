"""One-click outlines on MRML nodes: the logic of the Segment Editor effect *Calcinosis*
(``SegmentEditorCalcinosisLib``), usable from Slicer's Python console and headless on
``slicer-core``.

* :func:`outline_at_world_point` - a point (world RAS, as a slice view click gives it) on a
  volume node -> the outline of the deposit there (:func:`calcinosis.hand.click.outline_at_point`),
  the modality read from the node as the CalcinosisQuant panel reads it (or given), on the
  node's grid in world coordinates;
* :func:`outline_labelmap` - that outline as a binary ``vtkOrientedImageData`` in a
  segmentation node's coordinates (on the image grid, cropped to the outline, or resampled
  onto a reference such as the effect's modifier labelmap);
* :func:`new_lesion_segment` - an empty segment named and coloured as the panel names its
  lesion segments (``3 R index PIP periarticular``: the next lesion number, and the side,
  digit, zone and kind the landmarks give);
* :func:`add_outline_segment` - both: the outline as a new segment of a segmentation node;
* :func:`detect_params`, :func:`image_text`, :func:`outline_text` - the effect's options and
  messages.

The effect itself saves the state for undo and writes the labelmap through the Segment
Editor (``modifySegmentByLabelmap``, so the editor's masking settings apply).
"""

from __future__ import annotations

import numpy as np
import slicer

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry
from calcinosis.hand import click
from calcinosis.hand.click import ClickOutline
from calcinosis.hand.params import DEFAULT_CT_THRESHOLD_HU, DetectParams

from .segmentations import image_array, oriented_image, segment_ids
from .volumes import node_to_world_matrix

#: the effect's threshold box starts at the CT detector's threshold
CT_THRESHOLD_DEFAULT = DEFAULT_CT_THRESHOLD_HU


def detect_params(threshold: float | None = None) -> DetectParams:
    """The detector's parameters with the effect's threshold (None: the modality's automatic one)."""
    params = DetectParams(threshold=None if threshold is None else float(threshold))
    params.validate()
    return params


def image_text(volume_node, modality: str | None = "auto") -> str:
    """One line on the source volume: its modality and where it was read from, or why a click
    would be refused."""
    from . import hand_session

    if volume_node is None:
        return "Select the hand image as the source volume."
    try:
        summary = hand_session.image_summary(volume_node, modality)
    except InputError as e:
        return str(e)
    return summary.text() if summary is not None else ""


def outline_text(name: str, outline: ClickOutline) -> str:
    """What the effect reports after a click: the segment, its size (unit) and the method."""
    unit = "mm²" if outline.geometry.is_2d else "mm³"
    return f"{name}: {outline.size:.1f} {unit} ({outline.method})"


def outline_at_world_point(volume_node, world_ras, modality: str | None = "auto", params: DetectParams | None = None,
                           label: str | None = None) -> ClickOutline:
    """The deposit at ``world_ras`` on ``volume_node``.  ``modality`` 'auto' (read from the
    node: DICOM modality, Hounsfield units), 'XR', 'CT' or 'MRI'.  The outline's geometry is
    the node's voxel grid in world coordinates (a parent linear transform applied, as the
    module measures).  Raises :class:`~calcinosis.hand.click.NothingFound` or
    :class:`InputError` (one line)."""
    from . import hand_session

    if volume_node is None:
        raise InputError("no source volume: select the hand image as the Segment Editor's source volume")
    volume, m = hand_session.read_image(volume_node, modality)
    return click.outline_at_point(volume.array, volume.geometry, np.asarray(world_ras, float).reshape(3), m,
                                  params if params is not None else DetectParams(), label)


def outline_labelmap(outline: ClickOutline, reference=None, node=None):
    """The outline as a binary (0/1, uint8) ``vtkOrientedImageData`` on the image grid,
    cropped to the outline, in the coordinates of ``node`` (a segmentation node: its parent
    linear transform undone; None: world); with ``reference`` (a ``vtkOrientedImageData`` in
    those coordinates, e.g. the Segment Editor's modifier labelmap), resampled onto its
    geometry (nearest neighbour)."""
    geometry = outline.geometry
    if node is not None:
        to_world = node_to_world_matrix(node)
        if not np.allclose(to_world, np.eye(4)):
            local = np.linalg.solve(to_world, geometry.ijk_to_ras_matrix())
            geometry = Geometry.from_ijk_to_ras(local, geometry.size_ijk)
    img = oriented_image(geometry, outline.extent_ijk(), np.uint8)
    image_array(img)[...] = outline.mask
    img.Modified()
    if reference is None:
        return img
    out = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(img, reference, out, False):
        raise InputError("the outline could not be resampled onto the segmentation's grid")
    return out


def segment_names(segmentation_node) -> list[str]:
    seg = segmentation_node.GetSegmentation()
    return [seg.GetSegment(sid).GetName() for sid in segment_ids(seg)]


def new_lesion_segment(segmentation_node, outline: ClickOutline, landmarks_node=None,
                       laterality: str | None = None) -> tuple[str, str]:
    """Add an empty segment for the outline, named and coloured as the CalcinosisQuant panel
    names its lesions: the next lesion number, then side, digit, zone and kind from the
    landmarks (``landmarks_node``, a hand landmark point list; unknown labels are ignored)
    or ``unknown unassigned`` without them.  Returns (segment id, name)."""
    from . import hand_session

    landmarks = None
    if landmarks_node is not None:
        landmarks = hand_session.landmarks_from_node(landmarks_node, ignore_unknown=True)
    number = click.next_lesion_number(segment_names(segmentation_node))
    name, color = click.segment_label(number, click.outline_assignment(outline, landmarks, laterality=laterality))
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", name, color)
    return segment_id, name


def add_outline_segment(segmentation_node, outline: ClickOutline, landmarks_node=None,
                        laterality: str | None = None) -> str:
    """The outline as a new segment of ``segmentation_node`` (named by
    :func:`new_lesion_segment`), its labelmap resampled onto the segmentation's geometry when
    that differs.  Returns the segment id."""
    segment_id, _ = new_lesion_segment(segmentation_node, outline, landmarks_node, laterality)
    img = outline_labelmap(outline, node=segmentation_node)
    ok = slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        img, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE, img.GetExtent())
    if not ok:
        segmentation_node.GetSegmentation().RemoveSegment(segment_id)
        raise InputError(f"the outline could not be written into '{segmentation_node.GetName()}'")
    return segment_id


__all__ = ["outline_at_world_point", "outline_labelmap", "new_lesion_segment", "add_outline_segment", "segment_names",
           "detect_params", "image_text", "outline_text", "CT_THRESHOLD_DEFAULT"]
