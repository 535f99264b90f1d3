"""``calcinosis hand`` (one image), ``hand-compare`` (one hand across modalities),
``hand-form`` (the structural-lesion form) and ``hand-landmarks`` (a blank point list)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from calcinosis.core.errors import InputError, OutputExistsError
from calcinosis.core.lesions import CONNECTIVITIES
from calcinosis.core.output import OutputTransaction, check_output_free
from calcinosis.core import provenance
from calcinosis.hand import compare, pipeline as hand_pipeline, landmarks as lmk, structural_form
from calcinosis.hand.assign import AssignParams
from calcinosis.hand.detect import BOUNDARIES, DetectParams

from .common import add_output_args, nonneg_float, positive_int, progress_for, say, spacing_arg, warn_all

ORDER = 20


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return v


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def register(sub) -> None:
    d, a = DetectParams(), AssignParams()
    p = sub.add_parser(
        "hand", help="hand calcinosis on a radiograph, CT or MRI: lesions per digit, joint and hand",
        description="Find (or take from --mask) the calcinosis lesions of a hand image, measure them (area on "
                    "radiographs, volume on CT/MRI), assign each to side, digit, zone and kind from landmarks, and "
                    "write OUTDIR/lesions.csv, digits.csv, hand.csv, lesion_assignment.csv, lesion_labels.nrrd, "
                    "lesions.seg.nrrd, provenance.json (and a blank structural_form.csv for radiographs).")
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
    g.add_argument("--threshold", type=_number, metavar="T",
                   help="CT: HU (default 130); MRI: voxels at or below T (default: "
                        f"{d.mri_void_fraction:g} x the region border's median); radiograph: minimum peak contrast "
                        f"in pixel units (default {d.xr_noise_k:g} x the noise SD)")
    g.add_argument("--min-size", type=nonneg_float, default=d.min_size, metavar="SIZE",
                   help=f"smallest lesion, mm³ (CT/MRI) or mm² (radiograph) (default {d.min_size:g})")
    g.add_argument("--connectivity", choices=CONNECTIVITIES, default=d.connectivity)
    g.add_argument("--min-slices", type=positive_int, default=1, metavar="N")
    g.add_argument("--boundary", choices=BOUNDARIES, default=d.boundary,
                   help="lesion outline: half-max (local background to peak; default) or threshold (plain mask)")
    g.add_argument("--edge-fraction", type=_fraction, default=d.edge_fraction,
                   help=f"CT/MRI outline level between background and plateau (default {d.edge_fraction:g})")
    g.add_argument("--xr-edge-fraction", type=_fraction, default=d.xr_edge_fraction,
                   help=f"radiograph outline level, fraction of the peak above background (default {d.xr_edge_fraction:g})")
    g.add_argument("--keep-bone", action="store_true", help="CT: do not remove bone (everything above the threshold)")
    g.add_argument("--cortical-hu", type=_number, default=d.cortical_hu,
                   help=f"CT: cortical bone level (default {d.cortical_hu:g} HU)")
    g.add_argument("--cortex-max", type=nonneg_float, default=d.cortex_max_mm, metavar="MM",
                   help=f"CT: thickest cortex around a marrow cavity (default {d.cortex_max_mm:g} mm)")
    g.add_argument("--bone-rim", type=nonneg_float, default=d.rim_mm, metavar="MM",
                   help=f"CT: partial-volume rim added to bone (default {d.rim_mm:g} mm)")
    g.add_argument("--mri-void-fraction", type=_fraction, default=d.mri_void_fraction,
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
    p.set_defaults(func=run_hand)

    p = sub.add_parser("hand-compare", help="one hand across radiograph, CT and MRI results, per digit (study 1)",
                       description="Compare the `calcinosis hand` results of the same hand from two or three "
                                   "modalities: writes OUTDIR/compare_digits.csv (per digit: counts, radiograph area, "
                                   "CT and MRI volume, CT projected area, CT-MRI difference), compare_hand.csv and "
                                   "provenance.json.")
    p.add_argument("results", nargs="+", metavar="RESULT_DIR", help="output folders of `calcinosis hand`")
    p.add_argument("--side", choices=("L", "R"), help="which hand, when the results show both")
    add_output_args(p)
    p.set_defaults(func=run_compare)

    p = sub.add_parser("hand-form", help="the structural-lesion form of hand radiographs: write blank / check filled",
                       description="8 findings x 5 locations (Bauer et al. 2020), 1 present, 0 absent, empty not "
                                   "assessed. `hand-form blank -o FILE.csv` writes the form; `hand-form check FILE.csv` "
                                   "validates a filled one and prints the per-hand summary (with -o, writes it).")
    forms = p.add_subparsers(dest="action", metavar="ACTION")
    forms.required = True
    b = forms.add_parser("blank", help="write the blank form")
    b.add_argument("--side", choices=("R", "L", "both"), default="both")
    b.add_argument("-o", "--output", dest="outfile", required=True, metavar="FILE.csv")
    b.add_argument("--force", action="store_true", help="replace an existing file")
    b.set_defaults(func=run_form_blank)
    c = forms.add_parser("check", help="validate a filled form")
    c.add_argument("form", metavar="FILE.csv")
    c.add_argument("-o", "--output", dest="outfile", metavar="SUMMARY.csv", help="write the per-hand summary here")
    c.add_argument("--force", action="store_true", help="replace an existing file")
    c.set_defaults(func=run_form_check)

    p = sub.add_parser("hand-landmarks", help="write a blank hand landmark list (every label, unplaced) for Slicer",
                       description="Writes a Slicer point list (.mrk.json) or markups CSV with every expected label "
                                   "({L|R}_{digit}_{point}) unplaced, to place one by one in Slicer "
                                   "(Markups > Place).")
    p.add_argument("--side", choices=("R", "L", "both"), default="both")
    p.add_argument("-o", "--output", dest="outfile", required=True, metavar="FILE.mrk.json|FILE.csv")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=run_landmarks_template)


def _params(args) -> tuple[DetectParams, AssignParams]:
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


def run_hand(args) -> int:
    check_output_free(args.outdir, args.force)
    dparams, aparams = _params(args)
    progress = progress_for(args, "hand")
    result = hand_pipeline.run_hand(
        args.image, modality=args.modality, landmarks=args.landmarks, roi=args.roi, mask=args.mask,
        exclude=args.exclude, split_islands=args.split_islands, detect_params=dparams, assign_params=aparams,
        spacing=args.spacing, series=args.series, laterality=args.laterality,
        unknown_landmarks="warn" if args.ignore_unknown_landmarks else "error", record_paths=args.record_paths,
        progress=progress.sub(0.0, 0.85) if progress else None)
    hand_pipeline.write_hand_outputs(args.outdir, result, force=args.force, case_id=args.case_id,
                                     progress=progress.sub(0.85, 1.0) if progress else None)
    warn_all(result.warnings)
    unit, col = ("mm²", "total_area_mm2") if result.volume.is_2d else ("mm³", "total_volume_mm3")
    for r in result.hand_table.rows:
        say(args, f"{r['side']} hand ({result.modality}): {r['lesion_count']} lesions, total {r[col]:.1f} {unit}")
    say(args, f"results in {args.outdir}/ (lesions.csv, digits.csv, hand.csv, lesions.seg.nrrd)")
    return 0


def run_compare(args) -> int:
    check_output_free(args.outdir, args.force)
    runs = [compare.read_hand_result(f) for f in args.results]
    digits, hand, warnings = compare.compare_runs(runs, args.side)
    with OutputTransaction(args.outdir, force=args.force) as out:
        out.write_table(digits, "compare_digits.csv")
        out.write_table(hand, "compare_hand.csv")
        inputs = {r.modality: {"result_folder": r.folder.name, "case_id": r.case_id,
                               "image": (r.provenance.get("inputs") or {}).get("image", {}).get("input_id")}
                  for r in runs}
        out.write_json(provenance.build_record("hand-compare", inputs, {"side": args.side},
                                               {"rows": len(digits), "sides": sorted({r["side"] for r in hand.rows})},
                                               warnings, out.written + ["provenance.json"],
                                               case_id=next((r.case_id for r in runs if r.case_id), None)),
                       "provenance.json")
    warn_all(warnings)
    say(args, f"compared {', '.join(r.modality for r in runs)}: {args.outdir}/compare_digits.csv, compare_hand.csv")
    return 0


def write_file_atomic(path: str | Path, text: str, force: bool) -> Path:
    """Write one file all at once; an existing file is kept unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists; choose another -o or pass --force to replace it")
    if path.exists() and path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write_table_files(table, path: Path, force: bool) -> None:
    from calcinosis.core.tables import schema_path_for
    schema = schema_path_for(path)
    if not force:
        for p in (path, schema):
            if p.exists():
                raise OutputExistsError(f"{p}: exists; choose another -o or pass --force to replace it")
    write_file_atomic(path, table.to_csv_text(), force)
    write_file_atomic(schema, table.schema_csv_text(), True)


def run_form_blank(args) -> int:
    sides = ("R", "L") if args.side == "both" else (args.side,)
    path = Path(args.outfile)
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: the form is a CSV table; give a name ending in .csv")
    _write_table_files(structural_form.blank_form(sides), path, args.force)
    print(f"blank structural-lesion form ({len(sides) * 8} rows): {path}")
    return 0


def run_form_check(args) -> int:
    form = structural_form.read_form(args.form)
    summary = structural_form.summarise_form(form)
    filled = sum(1 for r in form.rows for loc in structural_form.LOCATIONS if r[loc] is not None)
    print(f"{args.form}: valid ({len(form)} rows, {filled} of {len(form) * 5} cells filled)")
    for r in summary.rows:
        present = [f for f, _ in structural_form.FINDINGS if r[f"any_{f}"] == 1]
        print(f"  {r['side']} hand: {', '.join(present) if present else 'no finding present'}")
    if args.outfile:
        _write_table_files(summary, Path(args.outfile), args.force)
        print(f"summary: {args.outfile}")
    return 0


def run_landmarks_template(args) -> int:
    path = Path(args.outfile)
    points = lmk.template_points(args.side)
    name = path.name.lower()
    if name.endswith(".mrk.json") or name.endswith(".json"):
        text = lmk.markups_json_text(points, name="HandLandmarks")
    elif name.endswith(".csv"):
        text = lmk.landmarks_csv_text(points)
    else:
        raise InputError(f"{path}: give a name ending in .mrk.json or .csv")
    write_file_atomic(path, text, args.force)
    print(f"{len(points)} unplaced landmarks: {path}")
    return 0
