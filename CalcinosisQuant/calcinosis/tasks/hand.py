"""Task ``hand``: the calcinosis lesions of one hand image (radiograph, CT or MRI), measured
and placed on side, digit, zone and kind (:func:`calcinosis.hand.pipeline.run_hand`)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from calcinosis.core.defaults import CONNECTIVITIES
from calcinosis.hand.params import BOUNDARIES, THUMB_IP_ZONES, AssignParams, DetectParams

from .arguments import (add_dicom_args, add_output_args, add_partial_volume_args, dicom_request, fraction,
                        magnification_arg, nonneg_float, number, partial_volume_request, positive_int, spacing_arg,
                        unit_interval)

HELP = "hand calcinosis on a radiograph, CT or MRI: lesions per digit, joint and hand"
DESCRIPTION = ("Find (or take from --mask) the calcinosis lesions of a hand image, measure them (area on "
               "radiographs, volume on CT/MRI), assign each to side, digit, zone and kind from landmarks, and "
               "write OUTDIR/lesions.csv, digits.csv, hand.csv, lesion_assignment.csv, lesion_labels.nrrd, "
               "lesions.seg.nrrd, provenance.json (and a blank structural_form.csv for radiographs).")
SUMMARY_FILE = "hand.csv"

#: the columns of hand.csv and digits.csv the cohort reads (the table contract)
HAND_COLUMNS = (
    "side", "modality", "lesion_count", "total_area_mm2", "total_volume_mm3", "largest_area_mm2",
    "largest_volume_mm3", "total_projected_area_mm2", "n_subcutaneous", "n_periarticular",
    "zone_distal_phalanx_count", "zone_dip_count", "zone_pip_count", "zone_mcp_count", "zone_wrist_count",
    "zone_other_count", "digits_affected",
)
DIGIT_COLUMNS = (
    "side", "digit", "modality", "lesion_count", "total_area_mm2", "largest_area_mm2", "total_volume_mm3",
    "largest_volume_mm3", "total_projected_area_mm2",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="DICOM folder/file (CT or MR series, CR/DX radiograph), NRRD, NIfTI, MHA, PNG/TIFF")
    p.add_argument("--modality", choices=("xr", "ct", "mri"), help="override the modality read from the header")
    p.add_argument("--landmarks", metavar="FILE", help="hand landmarks (.mrk.json, Slicer markups .csv or .fcsv); "
                                                       "labels like R_index_PIP (see hand-landmarks)")
    p.add_argument("--ignore-unknown-landmarks", action="store_true",
                   help="skip points whose label is not a hand landmark (default: an error naming the label)")
    p.add_argument("--laterality", choices=("L", "R"), help="which hand, when neither landmarks nor DICOM say it")
    g = p.add_argument_group("lesions")
    g.add_argument("--roi", metavar="SEG", help="search only inside this region (required for MRI)")
    g.add_argument("--exclude", metavar="SEG", help="never count voxels in this mask")
    g.add_argument("--mask", metavar="SEG", help="measure this segmentation instead of detecting "
                                                 "(e.g. the edited lesions.seg.nrrd); never modified")
    g.add_argument("--seeds", metavar="POINTS",
                   help="outline one deposit at each point of this point list (.mrk.json, markups .csv or .fcsv; "
                        "RAS or LPS as the file says; one point per deposit, placed on its middle) instead of "
                        "searching the image; measured, assigned and written as usual (not with --mask or --roi)")
    g.add_argument("--split-islands", action="store_true", help="with --mask: each island of a segment is a lesion "
                                                                "(default: each segment is one lesion)")
    add_parameter_options(g, DetectParams)
    add_parameter_options(p.add_argument_group("assignment (distances in mm)"), AssignParams)
    add_partial_volume_args(p)
    g = p.add_argument_group("image")
    g.add_argument("--spacing", type=spacing_arg, metavar="X,Y", help="pixel spacing (mm) of a radiograph without one")
    g.add_argument("--magnification", type=magnification_arg, metavar="M",
                   help="radiograph: the geometric magnification (source-detector / source-hand distance, 1.0-2.0) "
                        "dividing a detector-plane spacing (Imager Pixel Spacing, or --spacing) to the hand's; "
                        "wins over the file's Estimated Radiographic Magnification Factor")
    g.add_argument("--series", help="which DICOM series in a folder holding several")
    g.add_argument("--case-id", help="pseudonymous case identifier recorded in provenance")
    g.add_argument("--record-paths", action="store_true", help="record input paths in provenance (off by default)")
    g.add_argument("--nifti", action="store_true", help="also write lesion_labels.nii.gz (NIfTI label map, value = lesion_id; for nnU-Net, TotalSegmentator and other NIfTI tools)")
    add_dicom_args(g)
    add_output_args(p)


#: how each kind of parameter (``hand.params``) is read from the command line
_KINDS = {"number": (number, "T"), "size": (nonneg_float, "SIZE"), "distance": (nonneg_float, "MM"),
          "fraction": (fraction, "F"), "count": (positive_int, "N"), "unit-interval": (unit_interval, "P")}
_CHOICES = {"connectivity": CONNECTIVITIES, "boundary": BOUNDARIES, "thumb_ip_zone": THUMB_IP_ZONES}


def add_parameter_options(group, cls) -> None:
    """One option per parameter of ``cls`` that has one (``hand.params``): its name, type,
    default and help come from the parameter's definition."""
    for f in fields(cls):
        option, kind = f.metadata["option"], f.metadata["kind"]
        if option is None:
            continue
        unit = f.metadata["unit"]
        if kind == "off-switch":
            group.add_argument(option, dest=f.name, action="store_false",
                               help=f"{f.metadata['help']}: this option switches it off")
            continue
        if f.default is None:
            default = ""
        elif isinstance(f.default, str):
            default = f" (default {f.default})"
        else:
            default = f" (default {f.default:g}{' ' + unit if unit else ''})"
        if kind == "choice":
            group.add_argument(option, dest=f.name, choices=_CHOICES[f.name], default=f.default,
                               help=f.metadata["help"] + default)
        else:
            convert, metavar = _KINDS[kind]
            group.add_argument(option, dest=f.name, type=convert, default=f.default, metavar=metavar,
                               help=f.metadata["help"] + default)


def params_from_args(args) -> tuple[DetectParams, AssignParams]:
    """The parameters the options set (the others keep their defaults), validated."""
    d = DetectParams(**{f.name: getattr(args, f.name) for f in fields(DetectParams) if f.metadata["option"]})
    d.validate()
    a = AssignParams(**{f.name: getattr(args, f.name) for f in fields(AssignParams) if f.metadata["option"]})
    a.validate()
    return d, a


def run(args, progress=None):
    """Compute and write the result folder ``args.outdir``; returns a :class:`TaskOutcome`."""
    from calcinosis.core.output import check_output_free
    from calcinosis.hand import pipeline as hand_pipeline

    from . import TaskOutcome, redact_warnings

    check_output_free(args.outdir, args.force)
    dparams, aparams = params_from_args(args)
    dicom = dicom_request(args, args.image)
    result = hand_pipeline.run_hand(
        args.image, modality=args.modality, landmarks=args.landmarks, roi=args.roi, mask=args.mask,
        exclude=args.exclude, split_islands=args.split_islands, detect_params=dparams, assign_params=aparams,
        spacing=args.spacing, series=args.series, laterality=args.laterality, magnification=args.magnification,
        unknown_landmarks="warn" if args.ignore_unknown_landmarks else "error", record_paths=args.record_paths,
        seeds=getattr(args, "seeds", None), partial_volume=partial_volume_request(args),
        progress=progress.sub(0.0, 0.85) if progress else None)
    redact_warnings(result, args, ('image', 'landmarks', 'roi', 'mask', 'exclude', 'seeds', 'calibration_rods'))
    hand_pipeline.write_hand_outputs(args.outdir, result, force=args.force, case_id=args.case_id,
                                     nifti=args.nifti, dicom=dicom,
                                     progress=progress.sub(0.85, 1.0) if progress else None)
    lines = []
    if result.inputs.get("seeds"):
        lines.append(f"{result.lesions.n} deposits outlined at the {result.inputs['seeds']['n_points']} points "
                     "of the seeds file")
    unit, col = ("mm²", "total_area_mm2") if result.volume.is_2d else ("mm³", "total_volume_mm3")
    for r in result.hand_table.rows:
        pv = r.get("total_pv_volume_mm3")
        pv_text = "" if pv is None else f" ({pv:.1f} {unit} partial-volume corrected)"
        lines.append(f"{r['side']} hand ({result.modality}): {r['lesion_count']} lesions, total {r[col]:.1f} {unit}"
                     f"{pv_text}")
    lines.append(f"results in {args.outdir}/ (lesions.csv, digits.csv, hand.csv, lesions.seg.nrrd)")
    return TaskOutcome(list(result.warnings), lines)


def summarise(case_dir, case_id: str) -> dict:
    """What the cohort joins from a hand result folder: ``hands`` (hand.csv) and ``digits``
    (digits.csv, None when the folder has none), checked against the contract."""
    from . import read_summary_table

    what = f"case {case_id}"
    digits = case_dir / "digits.csv"
    return {"hands": read_summary_table(case_dir / "hand.csv", HAND_COLUMNS, what),
            "digits": read_summary_table(digits, DIGIT_COLUMNS, what) if digits.is_file() else None}
