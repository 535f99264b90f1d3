"""Task ``measure``: the lesions of one image, by threshold or from a segmentation, each
measured in physical units (:func:`calcinosis.core.pipeline.run_measure`)."""

from __future__ import annotations

import argparse

from calcinosis.core.defaults import CONNECTIVITIES, DEFAULT_CT_THRESHOLD_HU

from .arguments import (add_output_args, add_partial_volume_args, magnification_arg, nonneg_float, partial_volume_request,
                        positive_int, spacing_arg)

HELP = "find and measure lesions in one image"
DESCRIPTION = ("Find lesions by threshold (inside --region, outside --exclude) or take them from a segmentation "
               "(--mask), and measure each in physical units. Writes OUTDIR/lesions.csv (+ .schema.csv), "
               "lesion_labels.nrrd, lesions.seg.nrrd and provenance.json.")
SUMMARY_FILE = "lesions.csv"


def add_lesion_args(p: argparse.ArgumentParser, threshold_help: str | None = None) -> None:
    g = p.add_argument_group("lesion finding")
    g.add_argument("--threshold", metavar="LOW[:HIGH]",
                   help=threshold_help or "intensity threshold: voxels >= LOW (<= HIGH), or <= LOW with --below "
                                          f"(default for CT: {DEFAULT_CT_THRESHOLD_HU:g} HU)")
    g.add_argument("--below", action="store_true", help="lesions are darker than the threshold (MRI signal voids)")
    g.add_argument("--min-size", type=nonneg_float, default=1.0, metavar="SIZE",
                   help="smallest lesion kept, in mm³ for 3D images and mm² for 2D images (default 1)")
    g.add_argument("--connectivity", choices=CONNECTIVITIES, default="face",
                   help="voxel neighbourhood joining a lesion: face (Slicer Islands default) or full")
    g.add_argument("--min-slices", type=positive_int, default=1, metavar="N",
                   help="keep lesions present on at least N contiguous axial slices (default 1)")


def add_image_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image")
    g.add_argument("--spacing", type=spacing_arg, metavar="X,Y",
                   help="pixel spacing in mm (column, row) for radiographs/PNG without a usable spacing tag")
    g.add_argument("--magnification", type=magnification_arg, metavar="M",
                   help="radiograph: geometric magnification (1.0-2.0) dividing a detector-plane spacing to the "
                        "patient's; wins over the file's Estimated Radiographic Magnification Factor")
    g.add_argument("--modality", help="override the modality (ct, mr, xr)")
    g.add_argument("--series", help="which DICOM series in a folder holding several (number or UID)")
    g.add_argument("--case-id", help="pseudonymous case identifier recorded in provenance")
    g.add_argument("--record-paths", action="store_true",
                   help="record input file paths in provenance (off by default: paths may carry names)")
    g.add_argument("--nifti", action="store_true", help="also write lesion_labels.nii.gz (NIfTI label map, value = lesion_id; for nnU-Net, TotalSegmentator and other NIfTI tools)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="DICOM folder or file, NRRD, NIfTI, MHA, or PNG/TIFF with --spacing")
    p.add_argument("--mask", metavar="SEG", help="lesions already segmented (.seg.nrrd or label map; never modified)")
    p.add_argument("--keep-segments", action="store_true",
                   help="with --mask: each segment is one lesion (default: each island of a segment is one)")
    p.add_argument("--region", metavar="SEG", help="threshold only inside this region (label map or .seg.nrrd)")
    p.add_argument("--exclude", metavar="SEG", help="never count voxels in this mask (e.g. bone, vessels)")
    add_lesion_args(p)
    add_partial_volume_args(p)
    add_image_args(p)
    add_output_args(p)


def run(args, progress=None):
    """Compute and write the result folder ``args.outdir``; returns a :class:`TaskOutcome`."""
    from calcinosis.core import pipeline
    from calcinosis.core.lesions import parse_threshold
    from calcinosis.core.output import check_output_free

    from . import TaskOutcome, redact_warnings

    check_output_free(args.outdir, args.force)
    threshold = parse_threshold(args.threshold) if args.threshold is not None else None
    pv = partial_volume_request(args)
    result = pipeline.run_measure(
        args.image, mask=args.mask, region=args.region, exclude=args.exclude, threshold=threshold,
        below=args.below, min_size=args.min_size, connectivity=args.connectivity, min_slices=args.min_slices,
        keep_segments=args.keep_segments, spacing=args.spacing, modality=args.modality, series=args.series,
        record_paths=args.record_paths, magnification=args.magnification, partial_volume=pv,
        progress=progress.sub(0.0, 0.8) if progress else None)
    redact_warnings(result, args, ('image', 'mask', 'region', 'exclude', 'calibration_rods'))
    pipeline.write_measure_outputs(args.outdir, result, force=args.force, case_id=args.case_id,
                                   nifti=args.nifti, progress=progress.sub(0.8, 1.0) if progress else None)
    unit = "mm²" if result.volume.is_2d else "mm³"
    col = "area_mm2" if result.volume.is_2d else "volume_mm3"
    total = sum(result.table.column(col)) if len(result.table) else 0.0
    lines = [f"{result.lesions.n} lesions, total {total:.1f} {unit}; results in {args.outdir}/lesions.csv"]
    if pv is not None and len(result.table):
        pv_total = sum(v for v in result.table.column("pv_volume_mm3") if v is not None)
        blur = result.extra_parameters["partial_volume"]["scanner_blur"]
        lines.append(f"partial-volume corrected total {pv_total:.1f} mm³ (scanner blur {blur['in_plane_fwhm_mm']:g} mm "
                     f"in plane, {blur['in_plane_fwhm_source']}; slices {blur['slice_thickness_mm']:g} mm)")
    return TaskOutcome(list(result.warnings), lines)


def summarise(case_dir, case_id: str) -> dict:
    """What the cohort joins from a measure result folder: ``lesions`` (lesions.csv) and
    the image's ``modality`` as its provenance records it (None when unknown)."""
    import json

    from calcinosis.core.tables import Table

    try:
        record = json.loads((case_dir / "provenance.json").read_text(encoding="utf-8"))
        modality = record.get("inputs", {}).get("image", {}).get("modality")
    except (OSError, ValueError, AttributeError):
        modality = None
    return {"lesions": Table.read_csv(case_dir / "lesions.csv"), "modality": modality}
