"""The hand pipeline, in the three steps the Slicer panel offers and the command line chains:

1. :func:`detect_lesions` (*Detect*): candidate lesions on the image -> a
   :class:`~calcinosis.core.lesions.LesionSet` (the panel makes it a segmentation to edit);
2. :func:`measure_hand` (*Measure*): any lesion set - detected, or the user's edited
   segmentation through :func:`lesions_from_segmentation` - measured and assigned ->
   :class:`HandResult` with ``lesions``, ``digits``, ``hand`` tables;
3. :func:`write_hand_outputs` (*Export*): the files of ``calcinosis hand``.

:func:`run_hand` is the whole chain from file paths (the command line); with ``seeds`` (a point
list, one point per deposit) step 1 is one outline per point (:mod:`calcinosis.hand.click`)
instead of the automatic search.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calcinosis.core import image_io, provenance
from calcinosis.core.dicom_export import NO_LESION_WARNING, DicomExport, LesionEntry, write_dicom_objects
from calcinosis.core.dicom_meta import path_content_id
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import AXIS_A
from calcinosis.core.lesions import LesionParams, LesionSet
from calcinosis.core.lesions import lesions_from_segmentation as _engine_from_segmentation
from calcinosis.core.measure import measure_lesions
from calcinosis.core.output import OutputTransaction
from calcinosis.core import terminology
from calcinosis.core.pipeline import LesionResult, PartialVolumeRequest, add_partial_volume, write_lesion_images
from calcinosis.core.progress import Progress, report
from calcinosis.core.tables import Table
from calcinosis.core.volume import Volume, normalise_modality

from .assign import AssignParams, Assignment, assign_lesions
from .detect import Detection, DetectParams, detect
from .handmodel_ct import automatic_landmarks
from .landmarks import HandLandmarks, landmarks_json_text, read_landmarks
from .structural_form import LOCATIONS, blank_form, summarise_form, validate_form
from .summary import digit_table, hand_lesion_table, hand_table

MODALITY_CHOICES = {"xr": "XR", "cr": "XR", "dx": "XR", "radiograph": "XR", "ct": "CT", "mri": "MR", "mr": "MR"}


@dataclass
class HandResult:
    volume: Volume
    modality: str
    lesions: LesionSet
    engine_table: Table
    assignment: Assignment
    lesions_table: Table
    digits_table: Table
    hand_table: Table
    landmarks: HandLandmarks | None
    detection: Detection | None = None
    parameters: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)

    def segment_names(self) -> list[str]:
        return segment_names(self.lesions_table)

    def segment_colors(self) -> list[tuple[float, float, float]]:
        return segment_colors(self.lesions_table)

    def segment_terminologies(self) -> list[str]:
        """Each lesion coded as a calcification of its digit (thumb, finger), wrist or hand, with
        its side (:mod:`calcinosis.core.terminology`)."""
        return [terminology.terminology_entry(*terminology.hand_region(r["side"], r["digit"], r["zone"]))
                for r in self.lesions_table.rows]

    def dicom_entries(self) -> list[LesionEntry]:
        """What the DICOM SEG and SR say of each lesion (:mod:`calcinosis.core.dicom_export`):
        area (radiograph) or volume, digit, zone and kind, the region and side as in
        :meth:`segment_terminologies`."""
        planar = self.volume.is_2d
        out = []
        for r, label, color in zip(self.lesions_table.rows, self.segment_names(), self.segment_colors()):
            region, lat = terminology.hand_region(r["side"], r["digit"], r["zone"])
            out.append(LesionEntry(int(r["lesion_id"]), label, region, lat, "area" if planar else "volume",
                                   float(r["area_mm2"] if planar else r["volume_mm3"]),
                                   [("side", r["side"]), ("digit", r["digit"]), ("zone", r["zone"]),
                                    ("kind", r["kind"])], color))
        return out


# ---------------------------------------------------------------------- modality
def resolve_modality(volume: Volume, requested: str | None, source: str = "image") -> str:
    """'XR', 'CT' or 'MR' from the request (overrides) or the header; checks 2D vs 3D."""
    if requested:
        m = MODALITY_CHOICES.get(str(requested).strip().lower())
        if m is None:
            raise InputError(f"--modality: expected xr, ct or mri, got {requested!r}")
    else:
        m = normalise_modality(volume.modality)
        if m not in ("XR", "CT", "MR"):
            raise InputError(f"{source}: modality {volume.modality or 'unknown'} is not in the header as CT, MR or a "
                             "radiograph; give --modality xr, ct or mri")
    if m == "XR" and not volume.is_2d:
        raise InputError(f"{source}: a 3D image ({volume.geometry.size_ijk[2]} slices) cannot be a radiograph; "
                         "use --modality ct or mri, or give the radiograph file")
    if m in ("CT", "MR") and volume.is_2d:
        raise InputError(f"{source}: a 2D image cannot be a {'CT' if m == 'CT' else 'MRI'}; "
                         "it looks like a radiograph (--modality xr)")
    return m


# ---------------------------------------------------------------------- step 1
def detect_lesions(volume: Volume, modality: str, params: DetectParams = DetectParams(),
                   region: np.ndarray | None = None, exclude: np.ndarray | None = None,
                   progress: Progress | None = None, landmarks: HandLandmarks | None = None) -> Detection:
    """Candidate lesions on the image (the panel's *Detect*).  On radiographs the
    landmarks (optional) let the detector tell bone ends and carpal bones from deposits."""
    m = resolve_modality(volume, modality)
    if m == "CT" and volume.intensity_unit != "HU":
        volume.warn("CT values are not marked as Hounsfield units; the HU thresholds may not apply")
    return detect(volume, m, params, region, exclude, progress, landmarks)


def lesions_from_segmentation(label_image, volume: Volume, connectivity: str = "face", min_size: float = 0.0,
                              split_islands: bool = False, progress: Progress | None = None) -> LesionSet:
    """The user's (edited) segmentation as lesions: by default each segment is one
    lesion (the user's editing decides), with ``split_islands`` each island is one."""
    params = LesionParams(None, None, False, connectivity, float(min_size), 1, split_islands)
    return _engine_from_segmentation(label_image, volume.geometry, params, progress)


# ---------------------------------------------------------------------- step 2
def measure_hand(volume: Volume, modality: str, lesions: LesionSet, landmarks: HandLandmarks | None = None,
                 assign_params: AssignParams = AssignParams(), detection: Detection | None = None,
                 progress: Progress | None = None, partial_volume: PartialVolumeRequest | None = None,
                 exclude: np.ndarray | None = None, record_paths: bool = False) -> HandResult:
    """Measure and assign a lesion set (the panel's *Measure*).  ``partial_volume`` (CT):
    the partial-volume columns too (:func:`calcinosis.core.pipeline.add_partial_volume`),
    bone (the detection's, else found here) and ``exclude`` kept out of their integrals."""
    m = resolve_modality(volume, modality)
    report(progress, 0.0, f"measuring {lesions.n} lesions")
    vol = Volume(volume.array, volume.geometry, {**volume.meta, "modality": m})
    engine = measure_lesions(lesions, vol)
    pv_parameters, pv_inputs = {}, {}
    pv_warnings: list[str] = []
    if partial_volume is not None:
        holder = LesionResult(vol, lesions, engine, lesions.params)
        add_partial_volume(holder, partial_volume, _bone_for_partial_volume(vol, m, lesions, detection, exclude),
                           progress.sub(0.05, 0.55) if progress else None, record_paths)
        pv_parameters, pv_warnings, pv_inputs = holder.extra_parameters, holder.warnings, holder.inputs
    report(progress, 0.6, "assigning to digits and joints")
    if len(engine):
        cen = np.array([[r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]] for r in engine.rows])
    else:
        cen = np.zeros((0, 3))
    assignment = assign_lesions(lesions, cen, landmarks, assign_params, volume.meta.get("laterality"))
    if detection is not None and detection.touches_bone is not None and len(detection.touches_bone) == lesions.n:
        for row in assignment.details.rows:
            row["touches_bone"] = int(detection.touches_bone[row["lesion_id"] - 1])
    if detection is not None and detection.confidence is not None and len(detection.confidence) == lesions.n:
        for row in assignment.details.rows:
            conf = float(detection.confidence[row["lesion_id"] - 1])
            row["detection_confidence"] = round(conf, 4) if np.isfinite(conf) else None
    lt = hand_lesion_table(engine, assignment)
    dt = digit_table(lt, m, assignment, volume.is_2d)
    ht = hand_table(lt, m, assignment, volume.is_2d)
    warnings = list(volume.meta.get("warnings", [])) + list(lesions.notes)
    if landmarks is not None:
        warnings += list(landmarks.warnings)
    if detection is not None:
        warnings += list(detection.warnings)
    warnings += assignment.warnings + pv_warnings
    if landmarks is None or not landmarks.points:
        warnings.append("no landmarks: digits are unassigned and zones and kinds are left empty")
    for side, tilt in projection_tilts(volume, landmarks).items():
        if tilt > MAX_PROJECTION_TILT_DEG:
            warnings.append(f"{side} hand: its palm lies {tilt:.0f} degrees from the image's coronal plane, so "
                            "projected areas (total_projected_area_mm2) are not the shadow a PA radiograph of "
                            "this hand would show")
    params = {"assignment": assign_params.to_dict(), **pv_parameters}
    if detection is not None:
        params["detection"] = detection.parameters
    report(progress, 1.0, "measured")
    return HandResult(volume, m, lesions, engine, assignment, lt, dt, ht, landmarks, detection, params,
                      _dedupe(warnings), dict(pv_inputs))


def _bone_for_partial_volume(volume: Volume, modality: str, lesions: LesionSet, detection: Detection | None,
                             exclude: np.ndarray | None) -> np.ndarray | None:
    """What the partial-volume integrals leave out: the bone the CT detection found (or,
    for lesions given as a segmentation, the bone the detector finds now - lesion voxels
    never among it) and the user's exclusion mask."""
    if modality != "CT":
        return exclude
    bone = detection.bone_mask if detection is not None else None
    if bone is None:
        found = detect(volume, "CT", DetectParams()).bone_mask
        if found is not None:
            bone = found.copy()
            bone.reshape(-1)[lesions.voxel_index] = False
    if exclude is not None:
        bone = exclude if bone is None else (bone | exclude)
    return bone


#: a palm tilted further than this from the grid's coronal plane is warned about (degrees):
#: the projected area then differs from a PA radiograph's by more than 1 - cos(20°) = 6%
#: for a flat lesion in the palm's plane
MAX_PROJECTION_TILT_DEG = 20.0


def projection_tilts(volume: Volume, landmarks: HandLandmarks | None) -> dict[str, float]:
    """Per hand with enough landmarks: the angle (degrees) between the axis along which
    ``projected_area_mm2`` is cast (the grid axis nearest A-P) and the palm's normal -
    the direction a PA radiograph of that hand projects along.  Empty for 2D images."""
    if volume.is_2d or landmarks is None:
        return {}
    g = volume.geometry
    axis = g.direction_of_array_axis(g.ap_axis)
    out = {}
    for side in landmarks.sides:
        n = landmarks.palm_normal(side)
        if n is not None:
            out[side] = round(float(np.degrees(np.arccos(min(1.0, abs(float(n @ axis)))))), 1)
    return out


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for w in items:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


# ---------------------------------------------------------------------- naming and colours
DIGIT_HUES = {"thumb": 0.0, "index": 0.09, "middle": 0.16, "ring": 0.33, "little": 0.58, "unassigned": None}


def segment_names(lesions_table: Table) -> list[str]:
    """'3 R index PIP periarticular': lesion id, side, digit, zone, kind."""
    out = []
    for r in lesions_table.rows:
        parts = [str(r["lesion_id"]), r["side"], r["digit"]]
        if r["zone"]:
            parts.append(r["zone"])
        if r["kind"]:
            parts.append(r["kind"])
        out.append(" ".join(parts))
    return out


def segment_colors(lesions_table: Table) -> list[tuple[float, float, float]]:
    """One hue per digit (grey for unassigned), lightness varying between lesions."""
    out = []
    for n, r in enumerate(lesions_table.rows):
        h = DIGIT_HUES.get(r["digit"])
        v = 0.95 - 0.25 * ((n * 0.618) % 1.0)
        out.append((v * 0.8, v * 0.8, v * 0.8) if h is None else colorsys.hsv_to_rgb(h, 0.8, v))
    return out


# ---------------------------------------------------------------------- step 3
def write_hand_outputs(outdir: str | Path, result: HandResult, *, force: bool = False, command: str = "hand",
                       case_id: str | None = None, write_images: bool = True, nifti: bool = False,
                       dicom: DicomExport | None = None, form_sides: list[str] | None = None,
                       form: Table | None = None, progress: Progress | None = None) -> list[Path]:
    """``lesions.csv``, ``digits.csv``, ``hand.csv`` (+ schemas), ``lesion_assignment.csv``,
    ``structural_form.csv`` (blank, radiographs only), ``lesion_labels.nrrd``,
    ``lesions.seg.nrrd`` and ``provenance.json`` - all at once, nothing half-written.

    ``dicom``: also ``lesions.seg.dcm`` (and ``measurements.sr.dcm``) on the source DICOM
    images (:mod:`calcinosis.core.dicom_export`).

    ``form``: a structural-lesion form the reader filled (the Slicer panel's table), checked
    with :func:`~.structural_form.validate_form` before anything is written, and written as
    ``structural_form.csv`` (any modality) with its per-hand ``structural_summary.csv``."""
    if form is not None:
        form = validate_form(form)
    with OutputTransaction(outdir, force=force) as out:
        report(progress, 0.0, "writing tables")
        out.write_table(result.lesions_table, "lesions.csv")
        out.write_table(result.digits_table, "digits.csv")
        out.write_table(result.hand_table, "hand.csv")
        out.write_table(result.assignment.details, "lesion_assignment.csv")
        if form is not None:
            out.write_table(form, "structural_form.csv")
            out.write_table(summarise_form(form), "structural_summary.csv")
        elif result.modality == "XR":
            sides = form_sides or [s for s in ("R", "L") if s in {r["side"] for r in result.hand_table.rows}] or ["R", "L"]
            out.write_table(blank_form(sides), "structural_form.csv")
        if result.landmarks is not None and result.landmarks.automatic:
            out.write_text(landmarks_json_text(result.landmarks), "landmarks.mrk.json")
        if write_images:
            report(progress, 0.3, "writing label map and segmentation")
            write_lesion_images(out, result.lesions, result.segment_names(), result.segment_colors(),
                                terminologies=result.segment_terminologies(), nifti=nifti)
        if dicom is not None:
            report(progress, 0.6, "writing DICOM SEG" + (" and SR" if dicom.sr else ""))
            if not write_dicom_objects(out, dicom, result.lesions.labels, result.lesions.geometry,
                                       result.dicom_entries(), planar=result.volume.is_2d, case_id=case_id):
                result.warnings.append(NO_LESION_WARNING)
        results = _results(result)
        if form is not None:
            results["structural_form"] = {"hands": sorted({r["side"] for r in form.rows}),
                                          "cells_filled": sum(1 for r in form.rows for loc in LOCATIONS
                                                              if r[loc] is not None),
                                          "cells": len(form.rows) * len(LOCATIONS)}
        out.write_workbook()
        record = provenance.build_record(
            command, result.inputs, _parameters(result), results, result.warnings,
            outputs=out.written + ["provenance.json"], case_id=case_id)
        out.write_json(record, "provenance.json")
        written = [Path(outdir) / n for n in out.written]
        # the last progress report (where Cancel can still stop) comes before the files are moved
        # into place: a cancel after it would report "cancelled" with the result written
        report(progress, 1.0, "done")
    return written


def _parameters(result: HandResult) -> dict:
    p = dict(result.parameters)
    p["modality"] = result.modality
    return p


def _results(result: HandResult) -> dict:
    hands = {r["side"]: r["lesion_count"] for r in result.hand_table.rows}
    return {
        "modality": result.modality,
        "dimensionality": "2D" if result.volume.is_2d else "3D",
        "n_lesions": result.lesions.n,
        "lesions_per_hand": hands,
        "sides": [r["side"] for r in result.hand_table.rows],
        "digits_assessed": result.assignment.digits_covered,
        "landmarks": result.landmarks.describe() if result.landmarks is not None else None,
        **({} if result.volume.is_2d else {"projection": {
            "axis": "grid axis nearest A-P (projected_area_mm2 is the shadow along it)",
            "axis_tilt_from_AP_deg": round(result.volume.geometry.tilt_deg(result.volume.geometry.ap_axis,
                                                                          AXIS_A), 3),
            "axis_tilt_from_palm_normal_deg": projection_tilts(result.volume, result.landmarks)}}),
    }


# ---------------------------------------------------------------------- whole chain
def load_region(path: str | Path, volume: Volume, what: str = "--roi") -> np.ndarray:
    lab = image_io.load_label_image(path, reference=volume.geometry)
    mask = lab.union()
    if not mask.any():
        raise InputError(f"{what} {Path(path).name}: the region is empty (nothing drawn, or not over this image)")
    return mask


def read_seeds(path: str | Path) -> list:
    """The points of a seeds file (``.mrk.json``, ``.fcsv`` or markups ``.csv``) as
    ``[(label, RAS or None)]``; a file without a placed point is an error naming it."""
    from calcinosis.core.pointlists import read_point_list
    points = read_point_list(path, "seeds")
    if not any(p is not None for _, p in points):
        raise InputError(f"--seeds {Path(path).name}: no placed point in the file (one point per deposit is "
                         "expected)")
    return points


def run_hand(image: str | Path, *, modality: str | None = None, landmarks: str | Path | None = None,
             roi: str | Path | None = None, mask: str | Path | None = None, exclude: str | Path | None = None,
             split_islands: bool = False, detect_params: DetectParams = DetectParams(),
             assign_params: AssignParams = AssignParams(), spacing=None, series: str | None = None,
             laterality: str | None = None, unknown_landmarks: str = "error", record_paths: bool = False,
             progress: Progress | None = None, magnification: float | None = None,
             seeds: str | Path | None = None, partial_volume: PartialVolumeRequest | None = None) -> HandResult:
    """Load, detect (or take ``mask``, or outline one deposit at each point of ``seeds``),
    measure and assign.  No writing."""
    if seeds is not None and mask is not None:
        raise InputError("--seeds outlines the deposits at its points; --mask gives them already segmented "
                         "(give one of them)")
    if seeds is not None and roi is not None:
        raise InputError("--seeds outlines the deposits at its points; --roi is for the automatic search "
                         "(give one of them)")
    seed_points = read_seeds(seeds) if seeds is not None else None
    report(progress, 0.0, "loading image")
    volume = image_io.load_image(image, spacing=spacing, series=series, magnification=magnification)
    m = resolve_modality(volume, modality, str(image))
    if partial_volume is not None and m != "CT":
        raise InputError(f"--partial-volume: needs a CT (this image is {'a radiograph' if m == 'XR' else 'an MRI'})")
    volume.meta["modality"] = m
    if m == "CT":
        volume.meta["intensity_unit"] = "HU"
        if not any("HU" in w or "Hounsfield" in w for w in volume.meta.get("warnings", [])):
            image_io.check_ct_units(volume, Path(image).name)
    if laterality:
        lat = str(laterality).strip().upper()[:1]
        if lat not in ("L", "R"):
            raise InputError(f"--laterality: expected L or R, got {laterality!r}")
        volume.meta["laterality"] = lat
    inputs = {"image": provenance.describe_volume(volume, str(image), record_paths)}
    lm = None
    if landmarks is not None:
        lm = read_landmarks(landmarks, unknown=unknown_landmarks)
        inputs["landmarks"] = {"input_id": lm.input_id, "n_points": len(lm.points),
                               **({"path": str(landmarks)} if record_paths else {})}
    region = excl = None
    if roi is not None:
        region = load_region(roi, volume)
        inputs["roi"] = {"input_id": path_content_id(roi), "voxels": int(region.sum()),
                         **({"path": str(roi)} if record_paths else {})}
    if exclude is not None:
        excl = load_region(exclude, volume, "--exclude")
        inputs["exclude"] = {"input_id": path_content_id(exclude), **({"path": str(exclude)} if record_paths else {})}
    detection = None
    if mask is not None:
        if roi is not None:
            raise InputError("--mask gives the lesions already segmented; --roi is for detection (give one of them)")
        report(progress, 0.1, "reading the segmentation")
        seg = image_io.load_label_image(mask, reference=volume.geometry)
        inputs["segmentation"] = {"input_id": path_content_id(mask), "segments": [s.name for s in seg.segments],
                                  **({"path": str(mask)} if record_paths else {})}
        if not seg.segments:
            volume.warn(f"segmentation {Path(mask).name} holds no segment: no lesions")
        lesions = lesions_from_segmentation(seg, volume, detect_params.connectivity, detect_params.min_size,
                                            split_islands, progress.sub(0.1, 0.5) if progress else None)
        if excl is not None:
            volume.warn("--exclude is ignored with --mask (the segmentation is measured as it is)")
    elif seed_points is not None:
        from .click import detect_at_points
        report(progress, 0.1, f"outlining the deposits at the {len(seed_points)} points of {Path(seeds).name}")
        inputs["seeds"] = {"input_id": path_content_id(seeds), "n_points": len(seed_points),
                           "n_placed": sum(p is not None for _, p in seed_points),
                           **({"path": str(seeds)} if record_paths else {})}
        detection = detect_at_points(volume, m, seed_points, detect_params, excl, lm,
                                     progress=progress.sub(0.1, 0.7) if progress else None)
        lesions = detection.lesions
    else:
        report(progress, 0.1, "detecting lesions")
        detection = detect_lesions(volume, m, detect_params, region, excl, progress.sub(0.1, 0.7) if progress else None,
                                   landmarks=lm)
        lesions = detection.lesions
    model_record = None
    if detection is not None and detection.landmarks is not None:
        lm = detection.landmarks        # placed points completed by the radiograph detector's hand model
    else:                               # CT, or a segmentation given: the hand model completes them here
        report(progress, 0.7, "hand model")
        lm, model_warnings, model_record = automatic_landmarks(volume, m, lm)
        for w in model_warnings:
            volume.warn(w)
    result = measure_hand(volume, m, lesions, lm, assign_params, detection,
                          progress.sub(0.7, 1.0) if progress else None, partial_volume,
                          excl if mask is None else None, record_paths)
    if model_record is not None:
        result.parameters["hand_model"] = model_record
    if mask is not None:
        result.parameters["segmentation"] = {"split_islands": split_islands, "connectivity": detect_params.connectivity,
                                             "min_size": detect_params.min_size,
                                             "min_size_unit": "mm2" if volume.is_2d else "mm3"}
    result.inputs = {**inputs, **result.inputs}     # the calibration rods, if any
    return result


__all__ = ["HandResult", "resolve_modality", "detect_lesions", "lesions_from_segmentation", "measure_hand",
           "write_hand_outputs", "run_hand", "read_seeds", "segment_names", "segment_colors", "load_region"]
