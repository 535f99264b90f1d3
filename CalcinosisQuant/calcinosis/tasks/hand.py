"""Task ``hand``: the calcinosis lesions of one hand image (radiograph, CT or MRI), measured
and placed on side, digit, zone and kind (:func:`calcinosis.hand.pipeline.run_hand`)."""

from __future__ import annotations

import argparse

from calcinosis.core.defaults import CONNECTIVITIES
from calcinosis.hand.params import BOUNDARIES, AssignParams, DetectParams

from .arguments import add_output_args, fraction, nonneg_float, number, positive_int, spacing_arg

HELP = "hand calcinosis on a radiograph, CT or MRI: lesions per digit, joint and hand"
DESCRIPTION = ("Find (or take from --mask) the calcinosis lesions of a hand image, measure them (area on "
               "radiographs, volume on CT/MRI), assign each to side, digit, zone and kind from landmarks, and "
               "write OUTDIR/lesions.csv, digits.csv, hand.csv, lesion_assignment.csv, lesion_labels.nrrd, "
               "lesions.seg.nrrd, provenance.json (and a blank structural_form.csv for radiographs).")
SUMMARY_FILE = "hand.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    d, a = DetectParams(), AssignParams()
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
    g.add_argument("--split-islands", action="store_true", help="with --mask: each island of a segment is a lesion "
                                                                "(default: each segment is one lesion)")
    g.add_argument("--threshold", type=number, metavar="T",
                   help="CT: HU (default 130); MRI: voxels at or below T (default: "
                        f"{d.mri_void_fraction:g} x the region border's median); radiograph: minimum peak contrast "
                        f"in pixel units (default {d.xr_noise_k:g} x the noise SD)")
    g.add_argument("--min-size", type=nonneg_float, default=d.min_size, metavar="SIZE",
                   help=f"smallest lesion, mm³ (CT/MRI) or mm² (radiograph) (default {d.min_size:g})")
    g.add_argument("--connectivity", choices=CONNECTIVITIES, default=d.connectivity)
    g.add_argument("--min-slices", type=positive_int, default=1, metavar="N")
    g.add_argument("--boundary", choices=BOUNDARIES, default=d.boundary,
                   help="lesion outline: half-max (local background to peak; default) or threshold (plain mask)")
    g.add_argument("--edge-fraction", type=fraction, default=d.edge_fraction,
                   help=f"CT/MRI outline level between background and plateau (default {d.edge_fraction:g})")
    g.add_argument("--xr-edge-fraction", type=fraction, default=d.xr_edge_fraction,
                   help=f"radiograph outline level, fraction of the peak above background (default {d.xr_edge_fraction:g})")
    g.add_argument("--keep-bone", action="store_true", help="CT: do not remove bone (everything above the threshold)")
    g.add_argument("--cortical-hu", type=number, default=d.cortical_hu,
                   help=f"CT: cortical bone level (default {d.cortical_hu:g} HU)")
    g.add_argument("--cortex-max", type=nonneg_float, default=d.cortex_max_mm, metavar="MM",
                   help=f"CT: thickest cortex around a marrow cavity (default {d.cortex_max_mm:g} mm)")
    g.add_argument("--bone-rim", type=nonneg_float, default=d.rim_mm, metavar="MM",
                   help=f"CT: partial-volume rim added to bone (default {d.rim_mm:g} mm)")
    g.add_argument("--mri-void-fraction", type=fraction, default=d.mri_void_fraction,
                   help=f"MRI default threshold as a fraction of the region border signal (default {d.mri_void_fraction:g})")
    g = p.add_argument_group("assignment (distances in mm)")
    g.add_argument("--max-ray-distance", type=nonneg_float, default=a.max_ray_distance_mm, metavar="MM",
                   help=f"farthest a lesion may lie from a digit's ray and be assigned to it (default {a.max_ray_distance_mm:g})")
    g.add_argument("--joint-radius", type=nonneg_float, default=a.joint_radius_mm, metavar="MM",
                   help=f"half-length of a joint zone along the ray (default {a.joint_radius_mm:g})")
    g.add_argument("--periarticular-distance", type=nonneg_float, default=a.periarticular_mm, metavar="MM",
                   help=f"a lesion within this distance of a joint centre is periarticular (default {a.periarticular_mm:g})")
    g.add_argument("--wrist-reach", type=nonneg_float, default=a.wrist_reach_mm, metavar="MM",
                   help=f"how far proximal to the metacarpal bases the wrist zone reaches (default {a.wrist_reach_mm:g})")
    g.add_argument("--side-reach", type=nonneg_float, default=a.side_reach_mm, metavar="MM",
                   help=f"farthest a lesion may lie from a hand's landmarks to take its side (default {a.side_reach_mm:g})")
    g.add_argument("--wrist-width", type=nonneg_float, default=a.wrist_width_mm, metavar="MM",
                   help=f"how far from a ray's line a lesion proximal to the metacarpal bases may lie and still be "
                        f"wrist (default {a.wrist_width_mm:g})")
    g.add_argument("--landmark-margin", type=nonneg_float, default=a.landmark_margin_mm, metavar="MM",
                   help=f"landmarks farther than this outside the image are ignored, with a warning "
                        f"(default {a.landmark_margin_mm:g})")
    g.add_argument("--thumb-ip-zone", choices=("DIP", "PIP"), default=a.thumb_ip_zone,
                   help="zone of the thumb's interphalangeal joint (default DIP, its homologue)")
    g = p.add_argument_group("image")
    g.add_argument("--spacing", type=spacing_arg, metavar="X,Y", help="pixel spacing (mm) of a radiograph without one")
    g.add_argument("--series", help="which DICOM series in a folder holding several")
    g.add_argument("--case-id", help="pseudonymous case identifier recorded in provenance")
    g.add_argument("--record-paths", action="store_true", help="record input paths in provenance (off by default)")
    add_output_args(p)


def params_from_args(args) -> tuple[DetectParams, AssignParams]:
    d = DetectParams(threshold=args.threshold, min_size=args.min_size, connectivity=args.connectivity,
                     min_slices=args.min_slices, boundary=args.boundary, edge_fraction=args.edge_fraction,
                     exclude_bone=not args.keep_bone, cortical_hu=args.cortical_hu, cortex_max_mm=args.cortex_max,
                     rim_mm=args.bone_rim, xr_edge_fraction=args.xr_edge_fraction,
                     mri_void_fraction=args.mri_void_fraction)
    d.validate()
    a = AssignParams(max_ray_distance_mm=args.max_ray_distance, joint_radius_mm=args.joint_radius,
                     periarticular_mm=args.periarticular_distance, wrist_reach_mm=args.wrist_reach,
                     side_reach_mm=args.side_reach, wrist_width_mm=args.wrist_width,
                     landmark_margin_mm=args.landmark_margin, thumb_ip_zone=args.thumb_ip_zone)
    a.validate()
    return d, a


def run(args, progress=None):
    """Compute and write the result folder ``args.outdir``; returns a :class:`TaskOutcome`."""
    from calcinosis.core.output import check_output_free
    from calcinosis.hand import pipeline as hand_pipeline

    from . import TaskOutcome

    check_output_free(args.outdir, args.force)
    dparams, aparams = params_from_args(args)
    result = hand_pipeline.run_hand(
        args.image, modality=args.modality, landmarks=args.landmarks, roi=args.roi, mask=args.mask,
        exclude=args.exclude, split_islands=args.split_islands, detect_params=dparams, assign_params=aparams,
        spacing=args.spacing, series=args.series, laterality=args.laterality,
        unknown_landmarks="warn" if args.ignore_unknown_landmarks else "error", record_paths=args.record_paths,
        progress=progress.sub(0.0, 0.85) if progress else None)
    hand_pipeline.write_hand_outputs(args.outdir, result, force=args.force, case_id=args.case_id,
                                     progress=progress.sub(0.85, 1.0) if progress else None)
    lines = []
    unit, col = ("mm²", "total_area_mm2") if result.volume.is_2d else ("mm³", "total_volume_mm3")
    for r in result.hand_table.rows:
        lines.append(f"{r['side']} hand ({result.modality}): {r['lesion_count']} lesions, total {r[col]:.1f} {unit}")
    lines.append(f"results in {args.outdir}/ (lesions.csv, digits.csv, hand.csv, lesions.seg.nrrd)")
    return TaskOutcome(list(result.warnings), lines)
