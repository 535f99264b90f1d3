"""The CalcinosisQuant panel's work, on MRML nodes: Detect -> review -> Measure -> Export.

The Slicer module (``CalcinosisQuant.py``) only wires widgets; its Logic delegates here,
so all of this runs - and is tested - headless on the ``slicer-core`` wheel.  The hand
science is :mod:`~calcinosis.hand.pipeline` (the same steps ``calcinosis hand``
chains); this module turns nodes into core objects and results back into nodes:

* :func:`read_image` - a volume node as a core :class:`Volume` with its modality (read
  from the node: ``Calcinosis.Modality``/``DICOM.Modality`` attributes, the DICOM series,
  Hounsfield voxel units; or the panel's override), checked (a 3D image is not a
  radiograph, a 2D image is not a CT or MRI) with messages in the panel's words;
* :func:`create_landmark_list` - a point list with every expected landmark label
  unplaced, set up so that placing visits the labels in order;
* :func:`detect` - candidate lesions as a segmentation node, one named (``3 R index PIP
  periarticular``), digit-coloured segment per lesion, for review in the Segment Editor;
* :func:`measure` - the segmentation *as it is now* (unedited: the detection itself,
  exactly as ``calcinosis hand`` measures it; edited: as ``calcinosis hand --mask`` would
  measure the saved segmentation) with the landmarks -> lesion, digit and hand table
  nodes (units, descriptions) and a per-digit bar chart;
* :func:`lesion_position`, :func:`center_views_on` - a lesion table row -> its RAS
  centroid -> slice views centred there;
* :func:`create_structural_form`, :func:`form_from_node` - the study-2 structural-lesion
  form as an editable table node, validated;
* :func:`export` - the files of ``calcinosis hand`` (plus the filled form), refusing to
  replace an earlier result unless ``force``.

Long steps take a :class:`~calcinosis.core.progress.Progress`; cancelling (its callback
raises :class:`~calcinosis.core.errors.Cancelled`) happens only before any node is made or
changed, and nodes made by a step that fails are removed, so nothing is left half-made.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from calcinosis import mrml
from calcinosis.core import provenance
from calcinosis.core.errors import InputError
from calcinosis.core.lesions import CONNECTIVITIES, LesionSet
from calcinosis.core.output import check_output_free
from calcinosis.core.progress import Progress, report
from calcinosis.core.tables import Column, Table
from calcinosis.core.volume import Volume, normalise_modality

from calcinosis.hand import pipeline as hand_pipeline
from calcinosis.hand.anatomy import DIGITS, expected_landmark_labels
from calcinosis.hand.assign import AssignParams
from calcinosis.hand.detect import BOUNDARIES, DEFAULT_CT_THRESHOLD_HU, Detection, DetectParams
from calcinosis.hand.landmarks import HandLandmarks, landmarks_from_points
from calcinosis.hand.structural_form import FINDINGS, LOCATIONS, blank_form, validate_form

from . import workflow
from .tablenodes import fill_table_node
from .views import center_views_on  # noqa: F401 (the panel centres its views through the session)

# ---------------------------------------------------------------------- panel choices and defaults
#: Modality combo box: ``auto`` reads it from the image.
MODALITY_CHOICES = ("auto", "XR", "CT", "MRI")
#: Sides offered by the panel's *Create and place* (landmark list).
LANDMARK_SIDES = ("both", "R", "L")
CONNECTIVITY_CHOICES = tuple(CONNECTIVITIES)
BOUNDARY_CHOICES = tuple(BOUNDARIES)
THUMB_IP_ZONES = ("DIP", "PIP")
#: Defaults come from the core's dataclasses (never repeated as numbers in the panel).
DETECT_DEFAULTS = DetectParams()
ASSIGN_DEFAULTS = AssignParams()
CT_THRESHOLD_DEFAULT = DEFAULT_CT_THRESHOLD_HU

COMMAND = "hand"  # provenance command: `calcinosis hand-compare` accepts the panel's exports
INTERFACE = "3D Slicer, CalcinosisQuant panel"
HAND_DETECTION_ATTRIBUTE = workflow.PARAMETERS_ATTRIBUTE  # also lets the panel release the node fast on scene close
HAND_MODALITY_ATTRIBUTE = "Calcinosis.HandModality"
DICOM_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
_PANEL_MODALITY = {"XR": "XR", "CT": "CT", "MRI": "MR", "MR": "MR"}
_MODALITY_WORD = {"XR": "radiograph", "CT": "CT", "MR": "MRI"}


def detect_params(threshold: float | None = None, min_size: float = DETECT_DEFAULTS.min_size,
                  connectivity: str = DETECT_DEFAULTS.connectivity, min_slices: int = DETECT_DEFAULTS.min_slices,
                  boundary: str = DETECT_DEFAULTS.boundary, remove_bone: bool = DETECT_DEFAULTS.exclude_bone) -> DetectParams:
    """Detection parameters from the panel's values (``threshold=None``: the modality's
    automatic threshold), validated with the core's messages."""
    p = replace(DETECT_DEFAULTS, threshold=None if threshold is None else float(threshold), min_size=float(min_size),
                connectivity=str(connectivity), min_slices=int(min_slices), boundary=str(boundary),
                exclude_bone=bool(remove_bone))
    p.validate()
    return p


#: the panel's parameter-node fields -> the detection and assignment parameters they set
#: (``calcinosis.hand.params``; the panel's ``threshold`` applies only with ``customThreshold``).
#: ``Testing/gui`` checks these against the module's parameter node.
PANEL_DETECT_FIELDS = {"minSize": "min_size", "connectivity": "connectivity", "minSlices": "min_slices",
                       "boundary": "boundary", "removeBone": "exclude_bone", "minConfidence": "xr_min_confidence"}
PANEL_ASSIGN_FIELDS = {"maxRayDistance": "max_ray_distance_mm", "jointRadius": "joint_radius_mm",
                       "periarticularDistance": "periarticular_mm", "wristReach": "wrist_reach_mm",
                       "sideReach": "side_reach_mm", "wristWidth": "wrist_width_mm",
                       "landmarkMargin": "landmark_margin_mm", "thumbIpZone": "thumb_ip_zone"}


def panel_parameter_defaults() -> dict:
    """The panel's parameter fields and their defaults (the command line's), for *Restore
    default parameters*: detection, assignment and the options around them; not the inputs,
    outputs or export folder."""
    out = {"customThreshold": False, "threshold": CT_THRESHOLD_DEFAULT, "magnification": 0.0,
           "ignoreUnknownLandmarks": False, "splitIslands": False}
    out.update({name: getattr(DETECT_DEFAULTS, param) for name, param in PANEL_DETECT_FIELDS.items()})
    out.update({name: getattr(ASSIGN_DEFAULTS, param) for name, param in PANEL_ASSIGN_FIELDS.items()})
    return out


def detect_params_from_node(node) -> DetectParams:
    """Detection parameters from the panel's parameter node (validated)."""
    values = {param: getattr(node, name) for name, param in PANEL_DETECT_FIELDS.items()}
    p = replace(DETECT_DEFAULTS, threshold=float(node.threshold) if node.customThreshold else None, **values)
    p.validate()
    return p


def assign_params_from_node(node) -> AssignParams:
    """Assignment parameters (distances in mm) from the panel's parameter node (validated)."""
    p = replace(ASSIGN_DEFAULTS, **{param: getattr(node, name) for name, param in PANEL_ASSIGN_FIELDS.items()})
    p.validate()
    return p


def assign_params(max_ray_distance_mm: float = ASSIGN_DEFAULTS.max_ray_distance_mm,
                  joint_radius_mm: float = ASSIGN_DEFAULTS.joint_radius_mm,
                  periarticular_mm: float = ASSIGN_DEFAULTS.periarticular_mm,
                  wrist_reach_mm: float = ASSIGN_DEFAULTS.wrist_reach_mm,
                  side_reach_mm: float = ASSIGN_DEFAULTS.side_reach_mm,
                  thumb_ip_zone: str = ASSIGN_DEFAULTS.thumb_ip_zone,
                  wrist_width_mm: float = ASSIGN_DEFAULTS.wrist_width_mm,
                  landmark_margin_mm: float = ASSIGN_DEFAULTS.landmark_margin_mm) -> AssignParams:
    """Assignment distances (mm) from the panel's values, validated."""
    p = replace(ASSIGN_DEFAULTS, max_ray_distance_mm=float(max_ray_distance_mm), joint_radius_mm=float(joint_radius_mm),
                periarticular_mm=float(periarticular_mm), wrist_reach_mm=float(wrist_reach_mm),
                side_reach_mm=float(side_reach_mm), thumb_ip_zone=str(thumb_ip_zone),
                wrist_width_mm=float(wrist_width_mm), landmark_margin_mm=float(landmark_margin_mm))
    p.validate()
    return p


# ---------------------------------------------------------------------- image
@dataclass
class ImageSummary:
    """What the panel shows about the selected image (cheap: no voxel copy)."""
    modality: str | None       # 'XR', 'CT', 'MR' or None (not known: choose one)
    source: str                # where it came from ('user', 'DICOM series', ...)
    is_2d: bool
    size_unit: str             # 'mm2' or 'mm3'
    problem: str | None = None  # why Detect/Measure would refuse it (None: fine)

    def text(self) -> str:
        if self.problem:
            return self.problem
        dims = "2D" if self.is_2d else "3D"
        return f"{_MODALITY_WORD[self.modality]} ({dims}; modality from {self.source})"


def _node_name(node) -> str:
    return node.GetName() if node is not None else "?"


def _check_modality(modality: str | None, is_2d: bool, nk: int, name: str, read_from: str) -> str:
    """'XR'/'CT'/'MR' or an InputError worded for the panel."""
    if modality is None:
        raise InputError(f"'{name}': the image does not say its modality (no DICOM modality, not in Hounsfield "
                         "units); choose XR, CT or MRI under Modality")
    if modality not in _MODALITY_WORD:
        raise InputError(f"'{name}': modality {modality} ({read_from}) is not CT, MRI or a radiograph; "
                         "choose XR, CT or MRI under Modality")
    if modality == "XR" and not is_2d:
        raise InputError(f"'{name}': a 3D image ({nk} slices) cannot be a radiograph; set Modality to CT or MRI, "
                         "or select the radiograph")
    if modality in ("CT", "MR") and is_2d:
        raise InputError(f"'{name}': a 2D image cannot be a{'n' if modality == 'MR' else ''} "
                         f"{_MODALITY_WORD[modality]}; it looks like a radiograph: set Modality to XR")
    return modality


def _override(modality: str | None) -> str | None:
    if modality is None or str(modality).strip().lower() in ("", "auto"):
        return None
    m = _PANEL_MODALITY.get(str(modality).strip().upper()) or normalise_modality(modality)
    if m not in _MODALITY_WORD:
        raise InputError(f"Modality: expected auto, XR, CT or MRI, got {modality!r}")
    return m


def image_summary(volume_node, modality: str | None = "auto") -> ImageSummary | None:
    """The image's modality (override or read from the node) and dimensionality, and the
    problem Detect would report; None without a node.  Reads no voxels (a view, hashed
    sparsely for the input id), so the panel can call it whenever a setting changes."""
    if volume_node is None:
        return None
    image = volume_node.GetImageData()
    is_2d = image is not None and image.GetDimensions()[2] == 1  # as the core's Geometry.is_2d
    unit = "mm2" if is_2d else "mm3"
    try:
        override = _override(modality)
        volume = mrml.volume_from_node(volume_node, modality=override, copy=False)
        m, source = _modality_of(volume, volume_node, override)
        _check_modality(m, volume.is_2d, volume.geometry.size_ijk[2], volume_node.GetName(), source)
    except InputError as e:
        return ImageSummary(None, "", is_2d, unit, str(e))
    return ImageSummary(m, source, is_2d, unit)


def _modality_of(volume: Volume, volume_node, override: str | None) -> tuple[str | None, str]:
    """Modality: the override, else what the node states (attributes, DICOM series, HU
    units, as the bridge reads them), else its DICOM file's header."""
    if override is not None:
        return override, "user"
    m = normalise_modality(volume.modality)
    if m is not None:
        return m, volume.meta.get("modality_source", "image")
    ds = dicom_header(volume_node)
    if ds is not None and ds.get("Modality"):
        return normalise_modality(str(ds.get("Modality"))), "DICOM header"
    return None, ""


def dicom_header(volume_node):
    """The pydicom header (no pixels) of the node's first DICOM instance, when the node was
    loaded from Slicer's DICOM database (None otherwise, e.g. headless or from NRRD)."""
    import slicer

    uids = volume_node.GetAttribute(DICOM_UIDS_ATTRIBUTE) if volume_node is not None else None
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return None
    try:
        path = database.fileForInstance(uids.split()[0])
    except Exception:  # noqa: BLE001 - a closed or foreign database: simply no header
        return None
    if not path or not Path(path).is_file():
        return None
    from calcinosis.core import dicom_meta
    try:
        return dicom_meta.read_header(Path(path))
    except InputError:
        return None


@dataclass
class SpacingAdvice:
    """A radiograph whose node spacing differs from the spacing at the patient."""
    node_spacing: tuple[float, float]
    patient_spacing: tuple[float, float]
    source: str
    magnification: float | None = None      # the user's (panel), None: from the file

    def text(self, name: str) -> str:
        return (f"'{name}': Slicer shows pixels of {self.node_spacing[0]:.4g} x {self.node_spacing[1]:.4g} mm, "
                f"but at the patient they are {self.patient_spacing[0]:.4g} x {self.patient_spacing[1]:.4g} mm "
                f"({self.source}); areas would be {self.area_ratio():.2f} times too large")

    def area_ratio(self) -> float:
        return (self.node_spacing[0] * self.node_spacing[1]) / (self.patient_spacing[0] * self.patient_spacing[1])


#: node attribute keeping a radiograph's spacing as loaded (the detector's, for an image
#: without a DICOM header) before ``--magnification`` was applied from the panel
DETECTOR_SPACING_ATTRIBUTE = "Calcinosis.DetectorSpacing"
#: node attribute: the magnification the user gave in the panel
MAGNIFICATION_ATTRIBUTE = "Calcinosis.Magnification"


def radiograph_spacing_advice(volume_node, magnification: float | None = None) -> SpacingAdvice | None:
    """For a radiograph: the core's spacing at the patient (Pixel Spacing, else Imager
    Pixel Spacing / Estimated Radiographic Magnification Factor, or / ``magnification``,
    the panel's field, which wins) when it differs from the node's (Slicer shows the
    detector's).  An image without a DICOM header has its spacing as loaded divided by
    ``magnification``.  None when they agree or nothing is known."""
    if volume_node is None or volume_node.GetImageData() is None:
        return None
    dims = volume_node.GetImageData().GetDimensions()
    if sum(d > 1 for d in dims) != 2:
        return None
    from calcinosis.core import dicom_meta
    if magnification is None and volume_node.GetAttribute(MAGNIFICATION_ATTRIBUTE):
        magnification = float(volume_node.GetAttribute(MAGNIFICATION_ATTRIBUTE))
    ds = dicom_header(volume_node)
    spacing = volume_node.GetSpacing()
    node = (float(spacing[0]), float(spacing[1]))
    if ds is not None:
        try:
            (sx, sy), source, _ = dicom_meta.radiograph_spacing(ds, Path(_node_name(volume_node)), None,
                                                                magnification)
        except InputError:
            return None
    elif magnification is not None:
        loaded = volume_node.GetAttribute(DETECTOR_SPACING_ATTRIBUTE)
        dx, dy = (float(v) for v in loaded.split(",")) if loaded else node
        sx, sy = dx / magnification, dy / magnification
        source = f"Slicer volume node geometry / magnification {magnification:g} (user)"
    else:
        return None
    if abs(node[0] - sx) <= 1e-4 * sx and abs(node[1] - sy) <= 1e-4 * sy:
        return None
    return SpacingAdvice(node, (float(sx), float(sy)), source, magnification)


def apply_patient_spacing(volume_node, advice: SpacingAdvice) -> None:
    """Set the node's in-plane spacing to the spacing at the patient (origin and axes kept)."""
    spacing = list(volume_node.GetSpacing())
    if not volume_node.GetAttribute(DETECTOR_SPACING_ATTRIBUTE):
        volume_node.SetAttribute(DETECTOR_SPACING_ATTRIBUTE, f"{spacing[0]!r},{spacing[1]!r}")
    spacing[0], spacing[1] = advice.patient_spacing
    volume_node.SetSpacing(*spacing)
    volume_node.SetAttribute("Calcinosis.SpacingSource", advice.source)
    if advice.magnification is not None:
        volume_node.SetAttribute(MAGNIFICATION_ATTRIBUTE, repr(float(advice.magnification)))


def read_image(volume_node, modality: str | None = "auto") -> tuple[Volume, str]:
    """(volume, 'XR'|'CT'|'MR'): the node as a core volume (a view of its voxels: use it
    within the call) with the modality checked as ``calcinosis hand`` checks it."""
    if volume_node is None:
        raise InputError("no image selected: choose the hand image under Inputs")
    override = _override(modality)
    volume = mrml.volume_from_node(volume_node, modality=override, copy=False)
    name = volume_node.GetName()
    m, source = _modality_of(volume, volume_node, override)
    m = _check_modality(m, volume.is_2d, volume.geometry.size_ijk[2], name, source)
    volume.meta["modality"] = m
    volume.meta["modality_source"] = source
    ds = dicom_header(volume_node)
    if ds is not None:
        from calcinosis.core import dicom_meta
        lat = dicom_meta.laterality(ds)
        if lat:
            volume.meta["laterality"] = lat
        volume.meta["dicom"] = dicom_meta.kept_attributes(ds)
    if m == "CT":
        volume.meta["intensity_unit"] = "HU"
        from calcinosis.core.image_io import check_ct_units
        check_ct_units(volume, f"'{name}'")
    else:
        volume.meta["intensity_unit"] = "a.u."
    if m == "XR":
        advice = radiograph_spacing_advice(volume_node)
        if advice is not None:
            volume.warn(advice.text(name) + "; use the spacing at the patient (the panel offers it) and measure again")
        elif volume_node.GetAttribute("Calcinosis.SpacingSource"):
            volume.meta["spacing_source"] = volume_node.GetAttribute("Calcinosis.SpacingSource")
        from calcinosis.core import dicom_meta
        user_m = volume_node.GetAttribute(MAGNIFICATION_ATTRIBUTE)
        volume.meta.update(dicom_meta.magnification_record(volume.meta.get("spacing_source") or "",
                                                           float(user_m) if user_m else None))
        if ds is not None and str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
            volume.warn(f"'{name}': the file is MONOCHROME1 (dense structures stored dark) and the radiograph "
                        "detector looks for bright deposits: if bone looks dark in Slicer, outline the lesions "
                        "by hand or invert the image first")
    hand_pipeline.resolve_modality(volume, None, name)  # the core's own check (passes: checked above)
    return volume, m


# ---------------------------------------------------------------------- landmarks
def create_landmark_list(sides: str = "both", name: str = "HandLandmarks", scene=None, node=None):
    """A point list with every expected landmark label (``R_thumb_CMC`` ... ``L_little_tip``)
    unplaced, in placement order.  The number of points is fixed and placing starts at the
    first one, so each click in Slicer's place mode fills the next unplaced label."""
    if str(sides).lower() not in [s.lower() for s in LANDMARK_SIDES]:
        raise InputError(f"landmark sides: expected {', '.join(LANDMARK_SIDES)}, got {sides!r}")
    labels = expected_landmark_labels(sides)
    if node is not None:
        node.SetFixedNumberOfControlPoints(False)  # else its points could not be replaced
    node = mrml.markups_from_points([(lab, None) for lab in labels], name, scene=scene, node=node)
    node.SetFixedNumberOfControlPoints(True)
    node.SetControlPointPlacementStartIndex(0)
    display = node.GetDisplayNode()
    if display is not None:
        display.SetPointLabelsVisibility(True)
    node.SetAttribute("Calcinosis.HandLandmarks", "1")
    return node


def landmark_progress(markups_node) -> tuple[int, int, str | None]:
    """(placed, total, label the next click places - None when every point is placed):
    the first unplaced point from the list's placement start index, as Slicer's place
    mode picks it."""
    import slicer

    total = markups_node.GetNumberOfControlPoints()
    defined = slicer.vtkMRMLMarkupsNode.PositionDefined
    status = [markups_node.GetNthControlPointPositionStatus(n) for n in range(total)]
    placed = sum(1 for s in status if s == defined)
    start = markups_node.GetControlPointPlacementStartIndex()
    start = start if 0 <= start < total else 0
    nxt = None
    for offset in range(total):
        n = (start + offset) % total
        if status[n] == slicer.vtkMRMLMarkupsNode.PositionUndefined:
            nxt = markups_node.GetNthControlPointLabel(n)
            break
    return placed, total, nxt


def landmarks_from_node(markups_node, ignore_unknown: bool = False) -> HandLandmarks | None:
    """Placed hand landmarks of a point list (None without a node).  A label that is not a
    hand landmark is an error naming it, unless ``ignore_unknown``."""
    if markups_node is None:
        return None
    points = mrml.points_from_markups(markups_node)
    lm = landmarks_from_points(points, source=f"point list '{markups_node.GetName()}'",
                               unknown="warn" if ignore_unknown else "error")
    placed = [(lab, p) for lab, p in points if p is not None]
    from calcinosis.core.dicom_meta import pseudonymous_id
    lm.input_id = pseudonymous_id("slicer-markups", json.dumps([[str(lab), [round(float(v), 6) for v in p]]
                                                                for lab, p in placed]))
    if not lm.points:
        lm.warnings.append(f"point list '{markups_node.GetName()}': no hand landmark placed yet; "
                           "digits, zones and kinds cannot be assigned")
    return lm


def _landmark_inputs(lm: HandLandmarks | None) -> dict | None:
    if lm is None:
        return None
    return {"input_id": lm.input_id, "n_points": len(lm.points), "source": "Slicer point list"}


# ---------------------------------------------------------------------- Detect
@dataclass
class HandDetection:
    """What *Detect* made: the segmentation node and the core detection behind it."""
    segmentation_node: object
    detection: Detection
    modality: str
    volume_node_id: str
    names: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    state: tuple = ()   # the segmentation's content signature right after Detect
    landmarks_node: object = None   # the point list holding the automatic landmarks (radiograph), if any

    @property
    def lesions(self) -> LesionSet:
        return self.detection.lesions


def _track_new(scene, before: set) -> list:
    nodes = []
    for n in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(n)
        if node.GetID() not in before:
            nodes.append(node)
    return nodes


def _node_ids(scene) -> set:
    return {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}


def _remove_nodes(scene, nodes) -> None:
    from .segmentations import clear_segments_fast

    for node in reversed(nodes):
        if node.GetScene() is None:
            continue
        if node.IsA("vtkMRMLSegmentationNode"):
            clear_segments_fast(node.GetSegmentation())
        scene.RemoveNode(node)


def detect(volume_node, modality: str | None = "auto", params: DetectParams = DETECT_DEFAULTS, region_node=None,
           landmarks_node=None, assign: AssignParams = ASSIGN_DEFAULTS, segmentation_node=None,
           ignore_unknown_landmarks: bool = False, progress: Progress | None = None, scene=None) -> HandDetection:
    """Candidate lesions (``hand_pipeline.detect_lesions``: CT bone removed, MRI voids
    inside the region, radiograph blobs) as a segmentation node with one segment per
    lesion, named and coloured as ``calcinosis hand`` names them in ``lesions.seg.nrrd``
    (from a first assignment with the landmarks, when placed).  ``segmentation_node``:
    refill this node; else a new one, ``<image> lesions``."""
    params.validate()
    assign.validate()
    report(progress, 0.0, "reading image")
    volume, m = read_image(volume_node, modality)
    landmarks = landmarks_from_node(landmarks_node, ignore_unknown_landmarks)
    region = workflow.region_mask(region_node, volume, "region") if region_node is not None else None
    detection = hand_pipeline.detect_lesions(volume, m, params, region, None,
                                             progress.sub(0.05, 0.85) if progress else None, landmarks=landmarks)
    report(progress, 0.85, f"naming {detection.lesions.n} lesions")
    first = hand_pipeline.measure_hand(volume, m, detection.lesions, landmarks, assign, detection)
    names, colors = first.segment_names(), first.segment_colors()
    warnings = list(first.warnings)
    if detection.lesions.n == 0:
        warnings.append("no lesion found: lower the threshold or the minimum size, or check the region")
    report(progress, 0.95, "building segments")  # the last point where Cancel stops the step
    scene = scene or volume_node.GetScene()
    before = _node_ids(scene)
    try:
        if segmentation_node is None:
            segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volume_node.GetName()} lesions")
        mrml.segmentation_from_lesions(detection.lesions, names, colors, node=segmentation_node,
                                       reference_volume_node=volume_node,
                                       terminologies=first.segment_terminologies())
        record = dict(detection.parameters)
        record["modality"] = m
        segmentation_node.SetAttribute(HAND_DETECTION_ATTRIBUTE, json.dumps(record, sort_keys=True, default=str))
        segmentation_node.SetAttribute(HAND_MODALITY_ATTRIBUTE, m)
        segmentation_node.SetNodeReferenceID(workflow.SOURCE_VOLUME_ROLE, volume_node.GetID())
        shown = show_automatic_landmarks(detection.landmarks, volume_node, landmarks_node, scene)
    except BaseException:
        _remove_nodes(scene, _track_new(scene, before))
        raise
    if shown is not None:
        n_auto = len(detection.landmarks.automatic)
        warnings.append(f"{n_auto} landmark(s) placed automatically from the hand model in '{shown.GetName()}' "
                        "(described 'automatic'): review them, move any that is wrong, and measure")
    return HandDetection(segmentation_node, detection, m, volume_node.GetID(), names, warnings,
                         workflow.segmentation_state(segmentation_node), shown)


def show_automatic_landmarks(landmarks, volume_node, landmarks_node=None, scene=None):
    """The automatic landmarks of a detection (``HandLandmarks.automatic``, radiographs) in a
    point list the reader reviews: added to ``landmarks_node`` where it has no placed point
    of that label (an unplaced point of the label is placed; placed points are never
    moved), else in a new list ``<image> landmarks``.  Each is described as automatic.
    Returns the node, or None when there is nothing automatic."""
    if landmarks is None or not getattr(landmarks, "automatic", None):
        return None
    import vtk

    from calcinosis.hand.landmarks import AUTOMATIC_DESCRIPTION
    auto = {k.label: np.asarray(v, float) for k, v in landmarks.points.items() if k in landmarks.automatic}
    if landmarks_node is None:
        scene = scene or volume_node.GetScene()
        name = scene.GenerateUniqueName(f"{volume_node.GetName()} landmarks")
        landmarks_node = mrml.markups_from_points(landmarks.as_points(), name, scene=scene)
    else:
        was = landmarks_node.StartModify()
        try:
            index = {landmarks_node.GetNthControlPointLabel(i): i
                     for i in range(landmarks_node.GetNumberOfControlPoints())}
            for label, ras in auto.items():
                i = index.get(label)
                if i is not None and landmarks_node.GetNthControlPointPositionStatus(i) != 0:
                    continue     # placed (or being placed) by the reader: theirs wins
                if i is None:
                    i = landmarks_node.AddControlPointWorld(vtk.vtkVector3d(*ras.tolist()), label)
                else:
                    landmarks_node.SetNthControlPointPositionWorld(i, *ras.tolist())
        finally:
            landmarks_node.EndModify(was)
    for i in range(landmarks_node.GetNumberOfControlPoints()):
        if landmarks_node.GetNthControlPointLabel(i) in auto:
            landmarks_node.SetNthControlPointDescription(i, AUTOMATIC_DESCRIPTION)
    return landmarks_node


# ---------------------------------------------------------------------- Measure
@dataclass
class HandMeasurement:
    """What *Measure* made: the core result and the nodes showing it."""
    result: hand_pipeline.HandResult
    lesion_table_node: object
    digit_table_node: object
    hand_table_node: object
    chart_node: object
    segmentation_node: object
    landmarks_node: object = None
    from_detection: bool = False
    state: tuple = ()
    settings: tuple = ()

    @property
    def table_nodes(self) -> tuple:
        return self.lesion_table_node, self.digit_table_node, self.hand_table_node


def _state(segmentation_node, landmarks_node) -> tuple:
    lm = None
    if landmarks_node is not None:
        lm = tuple((lab, None if p is None else tuple(np.round(p, 6).tolist()))
                   for lab, p in mrml.points_from_markups(landmarks_node))
    return workflow.segmentation_state(segmentation_node), lm


def settings_key(volume_node, modality, params: DetectParams, assign: AssignParams, split_islands: bool,
                 landmarks_node, ignore_unknown_landmarks: bool, partial_volume=None) -> tuple:
    """What a measurement depends on besides the segmentation and the landmark positions."""
    return (volume_node.GetID() if volume_node is not None else None, str(modality), params.connectivity,
            float(params.min_size), bool(split_islands), json.dumps(assign.to_dict(), sort_keys=True),
            landmarks_node.GetID() if landmarks_node is not None else None, bool(ignore_unknown_landmarks),
            repr(partial_volume))


def partial_volume_request(enabled: bool, in_plane_fwhm_mm: float = 0.0, calibration: str = ""):
    """The panel's partial-volume settings as a :class:`~calcinosis.core.pipeline.PartialVolumeRequest`
    (None when off): a blur of 0 is measured on the skin, an empty calibration gives no mass."""
    from calcinosis.core.pipeline import PartialVolumeRequest
    if not enabled:
        return None
    text = str(calibration or "").strip()
    return PartialVolumeRequest(float(in_plane_fwhm_mm) if in_plane_fwhm_mm and in_plane_fwhm_mm > 0 else None,
                                text or None)


def measurement_is_current(measurement: HandMeasurement | None, settings: tuple | None = None) -> bool:
    """False when the segmentation was edited, a landmark moved, renamed, placed or removed,
    or (given ``settings``) a setting changed after the measurement: measure again."""
    if measurement is None or measurement.segmentation_node is None:
        return False
    if measurement.segmentation_node.GetScene() is None:
        return False
    if settings is not None and settings != measurement.settings:
        return False
    try:
        return _state(measurement.segmentation_node, measurement.landmarks_node) == measurement.state
    except InputError:
        return False


def _segments_with_voxels(labels) -> int:
    """How many segments hold at least one voxel (one counting pass per layer)."""
    counts = [np.bincount(layer.ravel()) if layer.size else np.zeros(1, np.int64) for layer in labels.layers]
    n = 0
    for s in labels.segments:
        c = counts[s.layer]
        n += int(0 < s.label_value < c.size and c[s.label_value] > 0)
    return n


def _same_lesions(a: LesionSet, b: LesionSet) -> bool:
    return (a.n == b.n and a.geometry.shape == b.geometry.shape and np.array_equal(a.voxel_index, b.voxel_index)
            and np.array_equal(a.voxel_label, b.voxel_label))


def _placeholder(volume: Volume) -> Volume:
    """Geometry and meta without the voxels (a zero-strided array): the result outlives the
    call and must not keep a view of the node's memory, which Slicer may free."""
    return Volume(np.broadcast_to(np.zeros((), volume.array.dtype), volume.geometry.shape), volume.geometry,
                  dict(volume.meta))


def plot_table(digits: Table, is_2d: bool, name: str = "digits plot") -> Table:
    """One bar per side x digit (``R index`` ...): lesion count and total area/volume."""
    size = ("total_area_mm2", "mm2", "Sum of lesion areas") if is_2d else \
        ("total_volume_mm3", "mm3", "Sum of lesion volumes")
    t = Table([Column("digit", "string", "", "Side and digit"),
               Column("lesion_count", "int", "lesions", "Lesions on this digit"),
               Column(size[0], "double", size[1], size[2])], name=name,
              description="Per-digit totals for the chart (from the digit table)")
    for r in digits.rows:
        t.append({"digit": f"{r['side']} {r['digit']}", "lesion_count": r["lesion_count"], size[0]: r[size[0]]})
    return t


def _fill_chart(digits: Table, is_2d: bool, title: str, chart_node, scene):
    """The per-digit bar chart (its data table reused)."""
    data_node = fill_table_node(plot_table(digits, is_2d, f"{title} data"), mrml.chart_table_node(chart_node),
                                f"{title} data", scene)
    data_node.SetHideFromEditors(True)
    y = "total_area_mm2" if is_2d else "total_volume_mm3"
    return mrml.plot_chart_from_table(data_node, "digit", [y], title, scene=scene, chart_type="bar",
                                      chart_node=chart_node)


def measure(volume_node, segmentation_node, modality: str | None = "auto", landmarks_node=None,
            detection: HandDetection | None = None, params: DetectParams = DETECT_DEFAULTS,
            split_islands: bool = False, assign: AssignParams = ASSIGN_DEFAULTS,
            ignore_unknown_landmarks: bool = False, lesion_table_node=None, digit_table_node=None,
            hand_table_node=None, chart_node=None, progress: Progress | None = None, scene=None,
            partial_volume=None) -> HandMeasurement:
    """Measure the lesion segmentation as it is now, assign each lesion with the landmarks,
    and show the lesion, digit and hand tables (refilled when given) and a per-digit chart.

    Each segment is one lesion (``split_islands``: each island), segments smaller than
    ``params.min_size`` are left out, as ``calcinosis hand --mask`` does.  When the
    segmentation still holds exactly what ``detection`` found, the detection itself is
    measured (its bone contact and parameters kept), as ``calcinosis hand`` measures it."""
    if segmentation_node is None:
        raise InputError("no lesion segmentation: press Detect first, or choose a segmentation under Lesion segmentation")
    params.validate()
    assign.validate()
    report(progress, 0.0, "reading image")
    volume, m = read_image(volume_node, modality)
    landmarks = landmarks_from_node(landmarks_node, ignore_unknown_landmarks)
    state = _state(segmentation_node, landmarks_node)
    mine = (detection is not None and detection.segmentation_node is segmentation_node
            and detection.volume_node_id == volume_node.GetID() and detection.modality == m)
    same_rules = (mine and not split_islands and params.connectivity == detection.detection.parameters.get("connectivity")
                  and float(params.min_size) == float(detection.detection.parameters.get("min_size", -1)))
    used, labels = None, None
    if same_rules and state[0] == detection.state:
        # untouched since Detect (same segments, same voxels): the detection itself, no re-reading
        used, lesions = detection.detection, detection.lesions
        report(progress, 0.5, "segmentation unchanged since Detect")
    else:
        report(progress, 0.05, "reading the segmentation")
        labels = mrml.label_image_from_segmentation(segmentation_node, volume.geometry)
        if not labels.segments:
            volume.warn(f"segmentation '{segmentation_node.GetName()}' holds no segment: no lesions")
        lesions = hand_pipeline.lesions_from_segmentation(labels, volume, params.connectivity, params.min_size,
                                                          split_islands, progress.sub(0.1, 0.5) if progress else None)
        nonempty = _segments_with_voxels(labels)
        if not split_islands and lesions.n < nonempty:
            unit = "mm²" if volume.is_2d else "mm³"
            volume.warn(f"{nonempty - lesions.n} segment(s) smaller than the minimum size ({params.min_size:g} {unit}) "
                        "were not measured")
        if mine and _same_lesions(lesions, detection.lesions):
            # touched (e.g. renamed, or a representation added for 3D display) but the same voxels
            used, lesions = detection.detection, detection.lesions
    if partial_volume is not None and m != "CT":
        raise InputError(f"Partial-volume measures need a CT (this image is {m}); untick them")
    result = hand_pipeline.measure_hand(volume, m, lesions, landmarks, assign, used,
                                        progress.sub(0.5, 0.9) if progress else None, partial_volume)
    result.inputs = {"image": provenance.describe_volume(volume)}
    result.inputs["image"]["interface"] = INTERFACE
    if landmarks is not None:
        result.inputs["landmarks"] = _landmark_inputs(landmarks)
    if used is None:
        result.inputs["segmentation"] = {"segments": [s.name for s in labels.segments],
                                         "source": "Slicer segmentation node (as reviewed)"}
        result.parameters["segmentation"] = {"split_islands": bool(split_islands), "connectivity": params.connectivity,
                                             "min_size": params.min_size,
                                             "min_size_unit": "mm2" if volume.is_2d else "mm3"}
        before = workflow.detection_parameters(segmentation_node)
        if before is not None:
            result.parameters["review"] = {"detection_before_review": before,
                                           "note": "lesions detected, then reviewed and edited in Slicer"}
    result.volume = _placeholder(volume)
    report(progress, 0.95, "filling tables")  # the last point where Cancel stops the step
    scene = scene or volume_node.GetScene()
    before_ids = _node_ids(scene)
    base = segmentation_node.GetName()
    try:
        lt = fill_table_node(result.lesions_table, lesion_table_node, f"{base} table", scene)
        dt = fill_table_node(result.digits_table, digit_table_node, f"{base} digits", scene)
        ht = fill_table_node(result.hand_table, hand_table_node, f"{base} hand", scene)
        what = "area" if volume.is_2d else "volume"
        chart = _fill_chart(result.digits_table, volume.is_2d, f"{base}: lesion {what} per digit", chart_node, scene)
    except BaseException:
        _remove_nodes(scene, _track_new(scene, before_ids))
        raise
    settings = settings_key(volume_node, modality, params, assign, split_islands, landmarks_node,
                            ignore_unknown_landmarks, partial_volume)
    return HandMeasurement(result, lt, dt, ht, chart, segmentation_node, landmarks_node, used is not None, state,
                           settings)


# ---------------------------------------------------------------------- lesion rows -> slice views
def table_row(table_node, model_row: int) -> int | None:
    """The table row shown on row ``model_row`` of a (source) qMRMLTableModel: with column
    titles as header they are the same, otherwise the first model row holds the names."""
    row = int(model_row) - (0 if table_node.GetUseColumnTitleAsColumnHeader() else 1)
    return row if 0 <= row < table_node.GetTable().GetNumberOfRows() else None


def lesion_position(table_node, row: int) -> np.ndarray | None:
    """RAS centroid (mm) of a lesion table row (None for a row without one)."""
    if table_node is None or row is None:
        return None
    table = table_node.GetTable()
    if not 0 <= row < table.GetNumberOfRows():
        return None
    out = []
    for axis in "ras":
        column = table.GetColumnByName(f"centroid_{axis}_mm")
        if column is None:
            return None
        v = float(column.GetVariantValue(row).ToDouble())
        if not math.isfinite(v):
            return None
        out.append(v)
    return np.array(out)


# ---------------------------------------------------------------------- structural-lesion form
FORM_ATTRIBUTE = "Calcinosis.StructuralForm"


def form_sides(landmarks_node=None, volume_node=None, measurement: HandMeasurement | None = None) -> list[str]:
    """Hands the form should have rows for: the measured hands, else the landmarks' sides,
    else the DICOM laterality, else both."""
    sides: list[str] = []
    if measurement is not None:
        sides = [r["side"] for r in measurement.result.hand_table.rows if r["side"] in ("R", "L")]
    if not sides and landmarks_node is not None:
        try:
            lm = landmarks_from_node(landmarks_node, ignore_unknown=True)
            sides = list(lm.sides) if lm is not None else []
        except InputError:
            sides = []
    if not sides and volume_node is not None:
        ds = dicom_header(volume_node)
        if ds is not None:
            from calcinosis.core import dicom_meta
            lat = dicom_meta.laterality(ds)
            sides = [lat] if lat else []
    return sides or ["R", "L"]


def _form_editing_table(sides: Sequence[str]) -> Table:
    """The blank form with text cells for the locations, so an empty cell stays *not
    assessed* (a number cell would turn it into 0, absent) and 1/0 are typed as such."""
    blank = blank_form(tuple(sides))
    cols = [c if c.name not in LOCATIONS else Column(c.name, "string", "", c.description) for c in blank.columns]
    t = Table(cols, name=blank.name, description=blank.description)
    for r in blank.rows:
        t.append({k: ("" if k in LOCATIONS else v) for k, v in r.items()})
    return t


def create_structural_form(sides: Sequence[str] = ("R", "L"), name: str = "Structural lesions", scene=None, node=None):
    """The study-2 structural-lesion form (8 findings x 5 locations per hand) as an editable
    table node: type 1 (present) or 0 (absent), leave empty when not assessed."""
    node = mrml.table_node_from_table(_form_editing_table(sides), scene=scene, node=node,
                                      name=None if node is not None else name)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetLocked(False)
    node.SetAttribute(FORM_ATTRIBUTE, "1")
    return node


def form_from_node(node) -> Table:
    """The filled form of a table node, validated (errors name the table row, 1 = first
    finding row, and column); values as ``structural_form.csv`` holds them."""
    if node is None:
        raise InputError("no structural-lesion form selected")
    table = mrml.table_from_table_node(node)
    for r in table.rows:
        for loc in LOCATIONS:
            v = r.get(loc)
            if isinstance(v, float) and math.isnan(v):
                r[loc] = None
    return validate_form(table, f"structural-lesion form '{node.GetName()}'", first_row=1)


def form_cells_filled(form: Table) -> int:
    return sum(1 for r in form.rows for loc in LOCATIONS if r[loc] is not None)


def form_summary_text(form: Table) -> str:
    """One line per hand: the findings present (or none), and how much was assessed."""
    from calcinosis.hand.structural_form import summarise_form

    lines = [f"form valid: {form_cells_filled(form)} of {len(form.rows) * len(LOCATIONS)} cells filled"]
    for r in summarise_form(form).rows:
        present = [f for f, _ in FINDINGS if r[f"any_{f}"] == 1]
        lines.append(f"{r['side']} hand: " + (", ".join(present) + " present" if present else "no finding present"))
    return "\n".join(lines)


# ---------------------------------------------------------------------- Export
def output_holds_result(outdir) -> bool:
    """True when the folder holds an earlier result (Export then asks before replacing it)."""
    from calcinosis.core.errors import OutputExistsError
    if not outdir or str(outdir) in ("", "."):
        return False
    try:
        check_output_free(outdir, force=False)
    except OutputExistsError:
        return True
    return False


def export(outdir, measurement: HandMeasurement | None, form_node=None, force: bool = False,
           case_id: str | None = None, progress: Progress | None = None, dicom_seg: bool = False,
           dicom_sr: bool = False, volume_node=None) -> list[Path]:
    """Write the files of ``calcinosis hand`` (``lesions.csv``, ``digits.csv``, ``hand.csv``,
    ``lesion_assignment.csv`` with schemas, ``lesion_labels.nrrd``, ``lesions.seg.nrrd``,
    ``provenance.json``; the blank structural form for radiographs) into ``outdir``, all at
    once.  ``form_node``: the filled structural-lesion form, validated first, saved as
    ``structural_form.csv`` with its per-hand summary ``structural_summary.csv``.
    An earlier result is kept (:class:`OutputExistsError`) unless ``force``.
    ``dicom_seg`` / ``dicom_sr``: also ``lesions.seg.dcm`` / ``measurements.sr.dcm`` on the DICOM
    images ``volume_node`` was loaded from (:mod:`calcinosis.mrml.dicom_objects`)."""
    if measurement is None:
        raise InputError("nothing to export: press Measure first")
    if not outdir or str(outdir) in ("", "."):
        raise InputError("choose an output folder under Export")
    check_output_free(outdir, force)
    form = form_from_node(form_node) if form_node is not None else None
    case = (case_id or "").strip() or None
    from .dicom_objects import export_request
    dicom = export_request(volume_node, dicom_seg, dicom_sr)
    return hand_pipeline.write_hand_outputs(outdir, measurement.result, force=force, command=COMMAND, case_id=case,
                                            form=form, dicom=dicom, progress=progress)


class HandSession:
    """The CalcinosisQuant panel's steps that keep state between them, as the spine panel's
    :class:`~calcinosis.mrml.spine_session.SpineSession` does: the last detection per
    segmentation node, so that *Measure* on an unedited detection measures it exactly as
    ``calcinosis hand`` does (bone contact kept).  The module's Logic is this session; the
    steps without state are this module's functions."""

    def __init__(self) -> None:
        self.detections: dict[str, HandDetection] = {}

    def forget_detections(self) -> None:
        """Drop the remembered detections (the scene closes)."""
        self.detections = {}

    def detect(self, volume_node, modality: str | None = "auto", params: DetectParams | None = None,
               region_node=None, landmarks_node=None, assign: AssignParams | None = None, segmentation_node=None,
               ignore_unknown_landmarks: bool = False, progress: Progress | None = None) -> HandDetection:
        """:func:`detect`, remembered for *Measure*."""
        detection = detect(volume_node, modality, params or DETECT_DEFAULTS, region_node, landmarks_node,
                           assign or ASSIGN_DEFAULTS, segmentation_node, ignore_unknown_landmarks, progress)
        self.detections[detection.segmentation_node.GetID()] = detection
        logging.info(f"CalcinosisQuant: {detection.lesions.n} lesions detected ({detection.modality})")
        return detection

    def measure(self, volume_node, segmentation_node, modality: str | None = "auto", landmarks_node=None,
                params: DetectParams | None = None, split_islands: bool = False, assign: AssignParams | None = None,
                ignore_unknown_landmarks: bool = False, lesion_table=None, digit_table=None, hand_table=None,
                chart=None, progress: Progress | None = None, partial_volume=None) -> HandMeasurement:
        """:func:`measure` of the segmentation as it is now, with the detection that made it."""
        detection = self.detections.get(segmentation_node.GetID()) if segmentation_node is not None else None
        return measure(volume_node, segmentation_node, modality, landmarks_node, detection,
                       params or DETECT_DEFAULTS, split_islands, assign or ASSIGN_DEFAULTS, ignore_unknown_landmarks,
                       lesion_table, digit_table, hand_table, chart, progress, partial_volume=partial_volume)

    def export(self, outdir, measurement: HandMeasurement | None, form_node=None, force: bool = False,
               case_id: str | None = None, progress: Progress | None = None, dicom_seg: bool = False,
               dicom_sr: bool = False, volume_node=None) -> list[Path]:
        """:func:`export`: the files of ``calcinosis hand``; an earlier result only with ``force``."""
        return export(outdir, measurement, form_node, force, case_id, progress, dicom_seg, dicom_sr, volume_node)


__all__ = [
    "MODALITY_CHOICES", "LANDMARK_SIDES", "CONNECTIVITY_CHOICES", "BOUNDARY_CHOICES", "THUMB_IP_ZONES",
    "DETECT_DEFAULTS", "ASSIGN_DEFAULTS", "CT_THRESHOLD_DEFAULT", "detect_params", "assign_params",
    "partial_volume_request",
    "PANEL_DETECT_FIELDS", "PANEL_ASSIGN_FIELDS", "panel_parameter_defaults", "detect_params_from_node", "assign_params_from_node",
    "ImageSummary", "image_summary", "read_image", "dicom_header", "SpacingAdvice", "radiograph_spacing_advice",
    "apply_patient_spacing", "show_automatic_landmarks", "create_landmark_list", "landmark_progress", "landmarks_from_node", "HandDetection", "detect",
    "HandMeasurement", "measure", "measurement_is_current", "settings_key", "plot_table", "table_row",
    "lesion_position", "center_views_on", "form_sides", "create_structural_form", "form_from_node",
    "form_cells_filled", "form_summary_text", "output_holds_result", "export", "FINDINGS", "DIGITS", "HandSession",
]
