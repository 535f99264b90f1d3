"""The measure pipeline shared by the command line, batch runs and the Slicer modules.

``load -> lesions (threshold or user segmentation) -> measure -> write``.  The hand
and spine pipelines call the same pieces and add their own columns and tables.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import image_io, provenance, terminology
from .defaults import DEFAULT_CT_THRESHOLD_HU  # always recorded with the result
from .dicom_meta import path_content_id
from .errors import InputError
from .lesions import LesionParams, LesionSet, candidate_mask, lesions_from_segmentation, split_lesions
from .measure import measure_lesions
from .output import OutputTransaction
from .progress import Progress, report
from .segnrrd import crop_to_labels, label_dtype, write_seg_nrrd_image
from .tables import Table
from .volume import Volume


@dataclass
class LesionResult:
    """Lesions found on one image, their table, and what the run had to say."""

    volume: Volume
    lesions: LesionSet
    table: Table
    params: LesionParams
    warnings: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    extra_parameters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PartialVolumeRequest:
    """Ask for the partial-volume columns (issue 14; :mod:`.partial_volume`): the in-plane
    blur if known (else measured on the skin), a HU-to-calcium line ``SLOPE,INTERCEPT``
    or calibration rods (a label map, one density in mg HA/cm³ per label value)."""

    in_plane_fwhm_mm: float | None = None
    calibration: str | None = None
    rods: str | Path | None = None
    rod_densities: tuple[float, ...] | None = None


def require_3d_ct(volume: Volume) -> None:
    """The partial-volume measures need a 3D CT: else a one-line error."""
    if volume.is_2d or str(volume.modality or "").upper() != "CT":
        raise InputError(f"--partial-volume: needs a 3D CT (this image is {'2D' if volume.is_2d else '3D'} "
                         f"{volume.modality or 'of unknown modality'}; --modality ct if it is a CT)")


def add_partial_volume(result: LesionResult, request: PartialVolumeRequest, exclude: np.ndarray | None = None,
                       progress: Progress | None = None, record_paths: bool = False) -> None:
    """The partial-volume columns added to ``result.table`` (after ``volume_mm3``) and the
    method, the scanner's blur and the calibration to ``result.extra_parameters``.  CT, 3D."""
    from . import calibration as cal
    from .partial_volume import add_partial_volume_columns, partial_volume_columns, partial_volume_record
    from .psf import scanner_psf_of

    volume = result.volume
    require_3d_ct(volume)
    if request.calibration is not None and request.rods is not None:
        raise InputError("--calibration and --calibration-rods: give one HU-to-calcium line, not both")
    calibration = None
    if request.calibration is not None:
        calibration = cal.calibration_from_text(request.calibration)
    elif request.rods is not None:
        if not request.rod_densities:
            raise InputError("--calibration-rods: give each rod's density with --rod-densities D1,D2,... (mg HA/cm³)")
        rods = image_io.load_label_image(request.rods, reference=volume.geometry)
        rod_numbers = np.zeros(volume.geometry.shape, np.int16)
        for number, segment in enumerate(rods.segments, start=1):   # rod k: the k-th segment (label value order)
            rod_numbers[rods.mask(segment)] = number
        calibration = cal.calibration_from_rods(volume.array, rod_numbers, request.rod_densities,
                                                where=f"--calibration-rods {Path(request.rods).name}")
        result.inputs["calibration_rods"] = {"input_id": path_content_id(request.rods),
                                             **({"path": str(request.rods)} if record_paths else {})}
    elif request.rod_densities:
        raise InputError("--rod-densities: give the rods' label map with --calibration-rods")
    report(progress, 0.0, "measuring the scanner's blur")
    try:
        psf, psf_record = scanner_psf_of(volume, request.in_plane_fwhm_mm)
    except ValueError as e:
        raise InputError(f"--in-plane-fwhm: {e}") from None
    if psf_record["in_plane_fwhm_source"].startswith("assumed"):
        result.warnings.append(f"partial volume: the scanner's in-plane blur could not be measured (no skin edge in "
                               f"the image) and is assumed {psf.in_plane_fwhm_mm:g} mm FWHM; give --in-plane-fwhm: "
                               "pv_volume_mm3 of lesions under 5 mm depends on it")
    lesions = result.lesions
    rows = partial_volume_columns(volume.array, lesions.labels, lesions.n, volume.geometry, psf, calibration,
                                  exclude, progress.sub(0.1, 1.0) if progress else None)
    add_partial_volume_columns(result.table, rows)
    result.extra_parameters["partial_volume"] = partial_volume_record(psf, psf_record, volume.geometry, calibration)


def resolve_threshold(volume: Volume, threshold: tuple[float, float | None] | None, below: bool,
                      from_segmentation: bool) -> tuple[float | None, float | None, bool]:
    if from_segmentation:
        return None, None, False
    if threshold is not None:
        return threshold[0], threshold[1], below
    if volume.modality == "CT" and not below:
        return DEFAULT_CT_THRESHOLD_HU, None, False
    raise InputError(f"--threshold: no default for modality {volume.modality or 'unknown'} "
                     f"(only CT has one, {DEFAULT_CT_THRESHOLD_HU:g} HU); give --threshold, or --modality ct")


def load_mask(path: str | Path, volume: Volume, what: str) -> np.ndarray:
    """A region/exclusion mask (any non-zero label) on the image grid."""
    lab = image_io.load_label_image(path, reference=volume.geometry)
    if not lab.segments:
        volume.warn(f"{what} {Path(path).name} is empty")
    return lab.union()


def find_lesions(volume: Volume, params: LesionParams, region: np.ndarray | None = None,
                 exclude: np.ndarray | None = None, segmentation=None,
                 progress: Progress | None = None) -> LesionSet:
    """Lesions from a threshold (with optional region/exclusion masks) or from a user
    segmentation already on the image grid."""
    if segmentation is not None:
        return lesions_from_segmentation(segmentation, volume.geometry, params, progress)
    if params.threshold_low is None:
        raise InputError("--threshold: a threshold (or a segmentation with --mask) is needed")
    report(progress, 0.0, "thresholding")
    mask = candidate_mask(volume.array, params.threshold_low, params.threshold_high, params.below, region, exclude)
    result = split_lesions(mask, volume.geometry, params, progress.sub(0.05, 1.0) if progress else None)
    return result


def measure_volume(volume: Volume, params: LesionParams, region: np.ndarray | None = None,
                   exclude: np.ndarray | None = None, segmentation=None,
                   progress: Progress | None = None) -> LesionResult:
    lesions = find_lesions(volume, params, region, exclude, segmentation,
                           progress.sub(0.0, 0.8) if progress else None)
    report(progress, 0.85, f"measuring {lesions.n} lesions")
    table = measure_lesions(lesions, volume)
    report(progress, 1.0, f"{lesions.n} lesions measured")
    warnings = list(volume.meta.get("warnings", [])) + list(lesions.notes)
    return LesionResult(volume, lesions, table, params, warnings)


def run_measure(image: str | Path, *, mask: str | Path | None = None, region: str | Path | None = None,
                exclude: str | Path | None = None, threshold: tuple[float, float | None] | None = None,
                below: bool = False, min_size: float = 1.0, connectivity: str = "face", min_slices: int = 1,
                keep_segments: bool = False, spacing: Sequence[float] | None = None, modality: str | None = None,
                series: str | None = None, record_paths: bool = False,
                progress: Progress | None = None, magnification: float | None = None,
                partial_volume: PartialVolumeRequest | None = None) -> LesionResult:
    """Load, find and measure (no writing).  Used by ``calcinosis measure``."""
    report(progress, 0.0, "loading image")
    volume = image_io.load_image(image, spacing=spacing, modality=modality, series=series,
                                 magnification=magnification)
    if mask is not None and threshold is not None:
        raise InputError("--mask gives the lesions already segmented; to threshold inside a drawn region use --region")
    low, high, below = resolve_threshold(volume, threshold, below, mask is not None)
    params = LesionParams(low, high, below, connectivity, float(min_size), int(min_slices), not keep_segments)
    params.validate()
    inputs = {"image": provenance.describe_volume(volume, str(image), record_paths)}
    report(progress, 0.15, "loading masks")
    seg = region_mask = exclude_mask = None
    if mask is not None:
        seg = image_io.load_label_image(mask, reference=volume.geometry)
        inputs["segmentation"] = _describe_label_input(mask, seg, record_paths)
        if not seg.segments:
            volume.warn(f"segmentation {Path(mask).name} holds no segment: no lesions")
        elif not seg.union().any():
            volume.warn("the --mask segmentation does not overlap the image (drawn on another image?): no lesions")
    if region is not None:
        region_mask = load_mask(region, volume, "region")
        inputs["region"] = {"input_id": path_content_id(region), **({"path": str(region)} if record_paths else {})}
    if exclude is not None:
        exclude_mask = load_mask(exclude, volume, "exclusion mask")
        inputs["exclude"] = {"input_id": path_content_id(exclude), **({"path": str(exclude)} if record_paths else {})}
    if partial_volume is not None:
        require_3d_ct(volume)      # before the lesions are found: a refusal costs nothing
    result = measure_volume(volume, params, region_mask, exclude_mask, seg,
                            progress.sub(0.2, 0.6 if partial_volume else 1.0) if progress else None)
    result.inputs = inputs
    if partial_volume is not None:
        add_partial_volume(result, partial_volume, exclude_mask, progress.sub(0.6, 1.0) if progress else None,
                           record_paths)
    return result


def _describe_label_input(path, seg, record_paths: bool) -> dict:
    d = {"input_id": path_content_id(path), "segments": [s.name for s in seg.segments], "layers": len(seg.layers)}
    if record_paths:
        d["path"] = str(path)
    return d


# ---------------------------------------------------------------------- writing
def _result_summary(result: LesionResult) -> dict:
    from .geometry import AXIS_A, AXIS_S
    g = result.volume.geometry
    d = {"n_lesions": result.lesions.n, "dimensionality": "2D" if g.is_2d else "3D"}
    if not g.is_2d:
        d["projection_axis_tilt_from_AP_deg"] = round(g.tilt_deg(g.ap_axis, AXIS_A), 3)
        d["axial_axis_tilt_from_SI_deg"] = round(g.tilt_deg(g.axial_axis, AXIS_S), 3)
    return d


def lesion_colors(n: int) -> list[tuple[float, float, float]]:
    """Distinct colours for n lesions (golden-ratio hues), deterministic."""
    out = []
    for k in range(n):
        h = (0.08 + k * 0.618033988749895) % 1.0
        out.append(colorsys.hsv_to_rgb(h, 0.75, 0.95))
    return out


def write_lesion_images(out: OutputTransaction, lesions: LesionSet, names: Sequence[str] | None = None,
                        colors: Sequence[Sequence[float]] | None = None, stem: str = "lesion",
                        terminologies: Sequence[str] | None = None, nifti: bool = False) -> list[str]:
    """``{stem}_labels.nrrd`` (label value = lesion_id) and ``{stem}s.seg.nrrd`` (the same
    voxels, cropped to the lesions' box when it is under half the grid).  The label image
    is converted once for both.  ``terminologies``: each segment's ``TerminologyEntry``
    (default: a calcification, region not known; :mod:`calcinosis.core.terminology`).
    ``nifti``: also ``{stem}_labels.nii.gz``, the same label map as NIfTI (the geometry in
    its qform/sform, as ITK writes it)."""
    n = lesions.n
    values = list(range(1, n + 1))
    dtype = label_dtype(values)
    labels = lesions.labels if lesions.labels.dtype == dtype else lesions.labels.astype(dtype)
    image = image_io.array_to_sitk(labels, lesions.geometry)
    label_name = f"{stem}_labels.nrrd"
    image_io.write_sitk_image(image, out.path(label_name), True)
    written = [label_name]
    if nifti:
        nifti_name = f"{stem}_labels.nii.gz"
        image_io.write_sitk_image(image, out.path(nifti_name), True)
        written.append(nifti_name)
    if lesions.voxel_index.size:   # the box of every lesion voxel, from the voxel list (no pass over the grid)
        kji = np.unravel_index(lesions.voxel_index[[0, -1]], lesions.geometry.shape)
        k_lo, k_hi = int(kji[0][0]), int(kji[0][1])
        j, i = np.unravel_index(lesions.voxel_index, lesions.geometry.shape)[1:]
        box = (k_lo, int(j.min()), int(i.min())), (k_hi, int(j.max()), int(i.max()))
    else:                          # an empty segmentation keeps one voxel
        box = (0, 0, 0), (0, 0, 0)
    lo, hi = np.array(box[0]), np.array(box[1])
    if np.prod(hi - lo + 1) < 0.5 * labels.size:    # cropped when that saves much; a copy costs time
        seg_image, offset = crop_to_labels(image, *box)
    else:
        seg_image, offset = image, (0, 0, 0)
    seg_name = f"{stem}s.seg.nrrd"
    write_seg_nrrd_image(seg_image, offset, out.path(seg_name),
                         names if names is not None else [f"{stem} {k}" for k in range(1, n + 1)],
                         colors if colors is not None else lesion_colors(n),
                         values, ids=[f"{stem}_{k}" for k in range(1, n + 1)],
                         tags=[terminology.segment_tags(e) for e in
                               (terminologies if terminologies is not None else [terminology.terminology_entry()] * n)])
    return written + [seg_name]


def write_measure_outputs(outdir: str | Path, result: LesionResult, *, force: bool = False,
                          command: str = "measure", case_id: str | None = None,
                          extra_parameters: dict | None = None, write_images: bool = True, nifti: bool = False,
                          progress: Progress | None = None) -> list[Path]:
    """``lesions.csv`` (+ schema), label map, ``.seg.nrrd`` and ``provenance.json``."""
    with OutputTransaction(outdir, force=force) as out:
        report(progress, 0.0, "writing tables")
        out.write_table(result.table, "lesions.csv")
        if write_images:
            report(progress, 0.3, "writing label map and segmentation")
            write_lesion_images(out, result.lesions, nifti=nifti)
        params = dict(result.params.to_dict())
        params["min_size_unit"] = "mm2" if result.volume.is_2d else "mm3"
        params.update(result.extra_parameters)
        params.update(extra_parameters or {})
        out.write_workbook()
        record = provenance.build_record(
            command, result.inputs, params,
            _result_summary(result),
            result.warnings, outputs=out.written + ["provenance.json"], case_id=case_id)
        out.write_json(record, "provenance.json")
        written = [Path(outdir) / n for n in out.written]
        # the last progress report (where Cancel can still stop) comes before the files are moved
        # into place: a cancel after it would report "cancelled" with the result written
        report(progress, 1.0, "done")
    return written
