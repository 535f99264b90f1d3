"""Hand phantoms: one synthetic SSc patient seen by CT (``hand-ct``), MRI (``hand-mri``)
and a PA radiograph (``hand-xr``), with exact truth tables and landmark files."""

from __future__ import annotations

import numpy as np

from calcinosis.core import dicom_write, image_io, provenance
from calcinosis.core.output import OutputTransaction, check_output_free
from calcinosis.core.segnrrd import write_seg_nrrd
from calcinosis.core.pipeline import lesion_colors
from calcinosis.hand import landmarks as lmk, phantom as ph

from .common import add_output_args, grid_size, in_range, positive_float, say, seed_int, spacing_arg

XR_MAGNIFICATION = 1.08
#: a noise SD beyond this swamps every structure of a phantom (HU, a.u. or pixel units)
PHANTOM_NOISE_MAX = 1000.0


def _common(p, spacing_default: str) -> None:
    p.add_argument("--side", choices=("R", "L"), default="R", help="which hand (default R)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed of the patient (lesion sizes, places)")
    p.add_argument("--spacing", type=spacing_arg, metavar="MM", help=f"voxel/pixel spacing in mm (default {spacing_default})")
    p.add_argument("--noise", type=in_range(0, PHANTOM_NOISE_MAX), metavar="NOISE",
                   help="noise SD (CT: HU, MRI: a.u., radiograph: pixel units)")
    p.add_argument("--no-laterality", action="store_true", help="leave the DICOM laterality tag out")


def register(kinds) -> None:
    p = kinds.add_parser("hand-ct", help="hand CT (DICOM series) of the synthetic SSc patient, with truth and landmarks")
    _common(p, "0.5,0.5,0.5")
    p.add_argument("--size", type=grid_size(3), metavar="NI,NJ,NK",
                   help="grid size (default: the hand's extent); 512,512,300 is the benchmark CT")
    p.add_argument("--format", choices=("dicom", "nrrd"), default="dicom")
    p.add_argument("--no-rescale", action="store_true", help="DICOM without Rescale Slope/Intercept")
    p.add_argument("--kernel", choices=("sharp", "standard", "soft"),
                   help="image the hand as a scanner does: in-plane blur of this reconstruction kernel (FWHM 0.6 / "
                        "0.9 / 1.3 mm) and a slice profile of --slice-thickness (default: no blur beyond the voxel)")
    p.add_argument("--slice-thickness", type=positive_float, metavar="MM",
                   help="with --kernel: the slice thickness (default: the slice spacing); written as Slice Thickness")
    add_output_args(p)
    p.set_defaults(func=run_ct)

    p = kinds.add_parser("hand-ct-pair", help="the hand CT at baseline and at a follow-up visit with known changes "
                                              "(lesions grown, shrunk, resolved, new; the hand moved, a finger bent)")
    _common(p, "0.6,0.6,0.6")
    p.add_argument("--turn", type=in_range(0, 30, "degrees"), default=8.0, metavar="DEG",
                   help="the hand turned this much in the scanner at follow-up (default 8)")
    p.add_argument("--bend", type=in_range(0, 20, "degrees"), default=12.0, metavar="DEG",
                   help="the middle finger bent this much at a joint at follow-up (default 12; 0: not bent)")
    add_output_args(p)
    p.set_defaults(func=run_ct_pair)

    p = kinds.add_parser("hand-mri", help="hand MRI (coronal DICOM series, T1-like, lesions as signal voids), "
                                          "with the regions a reader draws")
    _common(p, "0.5,0.5,1.5")
    p.add_argument("--format", choices=("dicom", "nrrd"), default="dicom",
                   help="DICOM series (folder mri/) or one NRRD file (mri.nrrd; give the modality to the readers)")
    add_output_args(p)
    p.set_defaults(func=run_mri)

    p = kinds.add_parser("hand-xr", help="PA hand radiograph (DICOM CR, detector spacing and magnification "
                                         "in the tags), with truth and landmarks")
    _common(p, "0.2")
    p.add_argument("--magnification", type=in_range(1.0, 2.0), default=XR_MAGNIFICATION,
                   help=f"Estimated Radiographic Magnification Factor written (default {XR_MAGNIFICATION})")
    add_output_args(p)
    p.set_defaults(func=run_xr)

    p = kinds.add_parser("hand-xr-hard", help="realistic PA hand radiograph: hand-xr's patient with trabecular texture, "
                                              "subchondral bone ends, tufts, sesamoids, a lead marker, text and "
                                              "collimation (and optionally a soft-tissue swelling), with truth of "
                                              "lesions and distractors; 8/12/16-bit, MONOCHROME1 and JPEG copies")
    _common(p, "0.2")
    p.add_argument("--magnification", type=in_range(1.0, 2.0), default=XR_MAGNIFICATION,
                   help=f"Estimated Radiographic Magnification Factor written (default {XR_MAGNIFICATION})")
    p.add_argument("--normal", action="store_true",
                   help="the same hand without calcinosis (every lesion a detector reports is false)")
    p.add_argument("--without", type=_distractor_list, default=(), metavar="KIND[,KIND...]",
                   help="leave distractors out: " + ", ".join(HARD_SWITCHES))
    p.add_argument("--swelling", action="store_true", help="add a gout-like soft-tissue swelling beside a finger joint")
    p.add_argument("--collimation", type=_collimation_mm, metavar="TOP,BOTTOM,LEFT,RIGHT",
                   help="blanked borders in mm (default 6,8,6,6; 0,0,0,0 or --without collimation: none)")
    p.add_argument("--copies", type=_copies_list, default=HARD_COPIES, metavar="LIST",
                   help="extra copies of xr.dcm: " + ", ".join(HARD_COPIES) + ", all (default) or none")
    add_output_args(p)
    p.set_defaults(func=run_xr_hard)


#: distractors ``--without`` can leave out (the keyword of :func:`phantom_xr_hard.hard_xr_phantom`)
HARD_SWITCHES = {"texture": "texture", "bone_end": "bone_ends", "tuft": "tufts", "sesamoid": "sesamoids",
                 "marker": "marker", "text": "text", "collimation": "collimation"}
#: copies ``--copies`` writes beside xr.dcm (16-bit MONOCHROME2)
HARD_COPIES = ("8bit", "12bit", "mono1", "jpg", "jpeg-dicom")
HARD_COPY_FILES = {"8bit": "xr-8bit.dcm", "12bit": "xr-12bit.dcm", "mono1": "xr-mono1.dcm", "jpg": "xr.jpg",
                   "jpeg-dicom": "xr-jpeg.dcm"}
JPEG_QUALITY = 90


def _word_list(text: str, allowed: tuple[str, ...], what: str, extra: str = "") -> tuple[str, ...]:
    """Comma-separated words, each one of ``allowed`` (an argparse error naming the first other)."""
    import argparse
    words = tuple(w for w in text.replace(" ", "").split(",") if w)
    bad = [w for w in words if w not in allowed]
    if bad or not words:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad[0] if bad else text!r} "
                                         f"(choose from {', '.join(allowed)}{extra})")
    return words


def _distractor_list(text: str) -> tuple[str, ...]:
    return _word_list(text, HARD_SWITCHES, "distractor")


def _copies_list(text: str) -> tuple[str, ...]:
    words = tuple(w for w in text.replace(" ", "").split(",") if w)
    if words == ("all",):
        return HARD_COPIES
    if words == ("none",):
        return ()
    return _word_list(text, HARD_COPIES, "copy", ", all or none")


def _collimation_mm(text: str) -> tuple[float, ...]:
    import argparse
    import math
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected four margins in mm like 6,8,6,6, got {text!r}") from None
    if len(vals) != 4 or not all(math.isfinite(v) and 0 <= v <= 60 for v in vals):
        raise argparse.ArgumentTypeError(f"expected four margins from 0 to 60 mm (top,bottom,left,right), got {text!r}")
    return vals


def _write_landmarks(out, points, image_name: str) -> None:
    out.write_text(lmk.markups_json_text(points, name="HandLandmarks"), "landmarks.mrk.json")
    out.write_text(lmk.landmarks_csv_text(points), "landmarks.csv")


def _record(out, kind: str, params: dict, results: dict) -> None:
    out.write_json(provenance.build_record(f"phantom {kind}", {}, params, results,
                                           outputs=out.written + ["provenance.json"]), "provenance.json")


def run_ct(args) -> int:
    check_output_free(args.outdir, args.force)
    sp = tuple(args.spacing) if args.spacing else (0.5, 0.5, 0.5)
    sp = (sp * 3)[:3] if len(sp) == 1 else sp
    if len(sp) != 3:
        from calcinosis.core.errors import InputError
        raise InputError("--spacing: give one value or three (X,Y,Z) in mm")
    noise = 18.0 if args.noise is None else args.noise
    scanner = None
    if args.kernel is not None:
        from calcinosis.core.acquisition_phantom import KERNEL_FWHM_MM
        from calcinosis.core.psf import ScannerPSF
        scanner = ScannerPSF(KERNEL_FWHM_MM[args.kernel], args.slice_thickness or sp[2])
    elif args.slice_thickness is not None:
        from calcinosis.core.errors import InputError
        raise InputError("--slice-thickness: applies with --kernel (a scanner's blur)")
    ph_ = ph.ct_phantom(args.side, args.seed, sp, args.size, noise, scanner=scanner)
    extra = {} if args.no_laterality else {"Laterality": args.side, "BodyPartExamined": "HAND"}
    if scanner is not None:
        extra.update({"SliceThickness": f"{scanner.slice_mm:g}", "ConvolutionKernel": args.kernel.upper()})
    with OutputTransaction(args.outdir, force=args.force) as out:
        if args.format == "dicom":
            dicom_write.write_dicom_series(ph_.array, ph_.geometry, out.dir("ct"), "CT", seed=f"hand-{args.seed}",
                                           rescale=not args.no_rescale, series_description="hand CT phantom",
                                           extra=extra)
            name = "ct"
        else:
            name = "ct.nrrd"
            image_io.write_image(ph_.array, ph_.geometry, out.path(name))
        out.write_table(ph_.truth, "truth.csv")
        _write_landmarks(out, ph_.landmarks, name)
        _record(out, "hand-ct", {"side": args.side, "seed": args.seed, "spacing_mm": list(sp), "noise_sd_hu": noise,
                                 "format": args.format, "rescale": not args.no_rescale,
                                 "scanner": None if scanner is None else {
                                     "kernel": args.kernel, "in_plane_fwhm_mm": scanner.in_plane_fwhm_mm,
                                     "slice_thickness_mm": scanner.slice_mm}},
                {"image": name, "n_lesions": len(ph_.truth), "geometry": ph_.geometry.to_dict()})
    say(args, f"hand CT phantom ({len(ph_.truth)} lesions): {args.outdir}/{name}, truth.csv, landmarks.mrk.json")
    return 0


#: the follow-up's changes (baseline lesion id -> change) and new lesions of ``hand-ct-pair``
PAIR_CHANGES = {1: "grown", 2: "resolved", 5: "shrunk", 7: "grown", 12: "resolved", 19: "shrunk"}
PAIR_NEW_SITES = (("middle", "distal_phalanx", "subcutaneous"), ("ring", "other", "subcutaneous"))


def run_ct_pair(args) -> int:
    from calcinosis.hand.phantom_followup import ct_followup_phantom
    check_output_free(args.outdir, args.force)
    sp = tuple(args.spacing) if args.spacing else (0.6, 0.6, 0.6)
    sp = (sp * 3)[:3] if len(sp) == 1 else sp
    noise = 18.0 if args.noise is None else args.noise
    patient = ph.make_patient(args.side, args.seed)
    base = ph.ct_phantom(patient=patient, seed=args.seed, spacing=sp, noise_sd=noise)
    fu, changes, pose = ct_followup_phantom(patient, PAIR_CHANGES, [ph.Site(*s) for s in PAIR_NEW_SITES],
                                            rotation=((0.0, 0.0, 1.0), args.turn), spacing=sp, noise_sd=noise,
                                            seed=args.seed + 1, flexion=("middle", args.bend) if args.bend else None)
    with OutputTransaction(args.outdir, force=args.force) as out:
        for name, p in (("baseline", base), ("followup", fu)):
            image_io.write_image(p.array, p.geometry, out.path(f"{name}.nrrd"))
            out.write_table(p.truth, f"{name}_truth.csv")
            out.write_text(lmk.markups_json_text(p.landmarks, name="HandLandmarks"), f"{name}_landmarks.mrk.json")
        out.write_table(changes, "changes.csv")
        _record(out, "hand-ct-pair", {"side": args.side, "seed": args.seed, "spacing_mm": list(sp),
                                      "noise_sd_hu": noise, "turn_deg": args.turn, "bend_deg": args.bend},
                {"pose": pose, "baseline_lesions": len(base.truth), "followup_lesions": len(fu.truth)})
    say(args, f"hand CT pair: {args.outdir}/baseline.nrrd, followup.nrrd (give --modality ct), their truth and "
              "landmarks, changes.csv (the true change of every lesion)")
    return 0


def run_mri(args) -> int:
    check_output_free(args.outdir, args.force)
    sp = tuple(args.spacing) if args.spacing else (0.5, 0.5, 1.5)
    sp = (sp * 3)[:3] if len(sp) == 1 else sp
    noise = 15.0 if args.noise is None else args.noise
    ph_ = ph.mr_phantom(args.side, args.seed, sp, noise)
    extra = {} if args.no_laterality else {"Laterality": args.side, "BodyPartExamined": "HAND",
                                           "MRAcquisitionType": "2D", "SequenceName": "T1_SE"}
    with OutputTransaction(args.outdir, force=args.force) as out:
        if args.format == "dicom":
            name = "mri"
            dicom_write.write_dicom_series(ph_.array, ph_.geometry, out.dir(name), "MR", seed=f"hand-{args.seed}",
                                           series_description="hand MRI phantom (T1)", extra=extra)
        else:
            name = "mri.nrrd"
            image_io.write_image(ph_.array, ph_.geometry, out.path(name))
        out.write_table(ph_.truth, "truth.csv")
        _write_landmarks(out, ph_.landmarks, name)
        ids = [int(v) for v in np.unique(ph_.regions) if v]
        write_seg_nrrd(ph_.regions, ph_.geometry, out.path("regions.seg.nrrd"),
                       [f"region {i}" for i in ids], lesion_colors(len(ids)), label_values=ids)
        _record(out, "hand-mri", {"side": args.side, "seed": args.seed, "spacing_mm": list(sp), "noise_sd": noise,
                                  "hand_translation_mm": list(ph.MR_TRANSLATION), "format": args.format},
                {"image": name, "n_lesions": len(ph_.truth), "n_regions": len(ids),
                 "geometry": ph_.geometry.to_dict()})
    say(args, f"hand MRI phantom ({len(ph_.truth)} lesions): {args.outdir}/{name}, regions.seg.nrrd (draw-like regions), "
              "truth.csv, landmarks.mrk.json")
    return 0


def run_xr(args) -> int:
    check_output_free(args.outdir, args.force)
    sp = float(args.spacing[0]) if args.spacing else 0.2
    noise = 6.0 if args.noise is None else args.noise
    ph_ = ph.xr_phantom(args.side, args.seed, sp, noise)
    with OutputTransaction(args.outdir, force=args.force) as out:
        dicom_write.write_dicom_radiograph(ph_.array[0], out.path("xr.dcm"), (sp, sp), "imager", args.magnification,
                                           seed=f"hand-{args.seed}",
                                           laterality=None if args.no_laterality else args.side)
        out.write_table(ph_.truth, "truth.csv")
        _write_landmarks(out, ph_.landmarks, "xr.dcm")
        ids = [int(v) for v in np.unique(ph_.outlines) if v]
        write_seg_nrrd(ph_.outlines, ph_.geometry, out.path("outlines.seg.nrrd"),
                       [f"lesion {i}" for i in ids], lesion_colors(len(ids)), label_values=ids)
        _record(out, "hand-xr", {"side": args.side, "seed": args.seed, "spacing_at_patient_mm": sp,
                                 "magnification": args.magnification, "detector_spacing_mm": sp * args.magnification,
                                 "noise_sd": noise},
                {"image": "xr.dcm", "n_lesions": len(ph_.truth), "size": list(ph_.array.shape[1:])})
    say(args, f"hand radiograph phantom ({len(ph_.truth)} lesions): {args.outdir}/xr.dcm, truth.csv, "
              "landmarks.mrk.json, outlines.seg.nrrd (each lesion's true shadow)")
    return 0


def run_xr_hard(args) -> int:
    from calcinosis.core.errors import InputError
    from calcinosis.hand import phantom_xr_hard as hx

    check_output_free(args.outdir, args.force)
    sp = float(args.spacing[0]) if args.spacing else 0.2
    if args.spacing and len(set(args.spacing)) > 1:
        raise InputError("--spacing: give one pixel spacing in mm (square pixels), e.g. 0.2")
    if not 0.05 <= sp <= 1.0:
        raise InputError(f"--spacing: expected a pixel spacing from 0.05 to 1 mm for a hand radiograph, got {sp:g}")
    switches = {kw: name not in args.without for name, kw in HARD_SWITCHES.items()}
    coll = args.collimation if args.collimation is not None else hx.COLLIMATION_MM
    if args.collimation is not None and not any(coll):
        switches["collimation"] = False
    try:
        ph_ = hx.hard_xr_phantom(args.side, args.seed, sp, lesions=not args.normal, noise_sd=args.noise,
                                 swelling=args.swelling, collimation_mm=coll, **switches)
    except ValueError as e:
        if "collimation" in str(e):
            raise InputError(f"--collimation: {e}") from None
        raise
    image = ph_.array[0]
    lat = None if args.no_laterality else args.side
    seed = f"hand-hard-{args.seed}{'-normal' if args.normal else ''}"
    scale8 = 255.0 / hx.WHITE_LEVEL
    with OutputTransaction(args.outdir, force=args.force) as out:
        common = dict(spacing_xy=(sp, sp), spacing_tag="imager", magnification=args.magnification, seed=seed,
                      laterality=lat)
        dicom_write.write_dicom_radiograph(image, out.path("xr.dcm"), **common)
        written = {"xr.dcm": "16-bit stored, MONOCHROME2"}
        for copy in args.copies:
            name = HARD_COPY_FILES[copy]
            if copy == "8bit":
                dicom_write.write_dicom_radiograph(image * scale8, out.path(name), bits_stored=8, **common)
                written[name] = "8-bit, values x 255/4095, MONOCHROME2"
            elif copy == "12bit":
                dicom_write.write_dicom_radiograph(image, out.path(name), bits_stored=12, **common)
                written[name] = "12-bit stored (the same values), MONOCHROME2"
            elif copy == "mono1":
                dicom_write.write_dicom_radiograph(image, out.path(name), monochrome1=True, **common)
                written[name] = "16-bit, MONOCHROME1 (stored 65535 - value)"
            elif copy == "jpeg-dicom":
                dicom_write.write_dicom_radiograph(image * scale8, out.path(name), bits_stored=8,
                                                   jpeg_quality=JPEG_QUALITY, **common)
                written[name] = f"8-bit JPEG Baseline (1.2.840.10008.1.2.4.50), quality {JPEG_QUALITY}"
            elif copy == "jpg":
                import io

                from PIL import Image
                buf = io.BytesIO()
                Image.fromarray(np.clip(np.round(image * scale8), 0, 255).astype(np.uint8), mode="L").save(
                    buf, format="JPEG", quality=JPEG_QUALITY)
                out.write_bytes(buf.getvalue(), name)
                written[name] = f"plain 8-bit JPEG, quality {JPEG_QUALITY}, no spacing (give --spacing {sp:g},{sp:g})"
        out.write_table(ph_.truth, "truth.csv")
        out.write_table(ph_.distractors, "distractors.csv")
        _write_landmarks(out, ph_.landmarks, "xr.dcm")
        ids = [int(v) for v in np.unique(ph_.outlines) if v]
        if ids:
            write_seg_nrrd(ph_.outlines, ph_.geometry, out.path("outlines.seg.nrrd"),
                           [f"lesion {i}" for i in ids], lesion_colors(len(ids)), label_values=ids)
        st = ph_.settings
        _record(out, "hand-xr-hard", {"side": args.side, "seed": args.seed, "spacing_at_patient_mm": sp,
                                      "magnification": args.magnification,
                                      "detector_spacing_mm": sp * args.magnification,
                                      "noise_sd": st["noise_sd"], "lesions": not args.normal,
                                      "distractors_left_out": list(args.without), "swelling": args.swelling,
                                      "collimation_mm": st["collimation_mm"] if st["collimation"] else None,
                                      "calibration": st["calibration"], "white_level": st["white_level"]},
                {"image": "xr.dcm", "copies": written, "n_lesions": len(ph_.truth),
                 "n_distractors": len(ph_.distractors),
                 "distractor_kinds": sorted({r["kind"] for r in ph_.distractors.rows}),
                 "size": list(image.shape), "notes": st["notes"]})
    say(args, f"hard hand radiograph phantom ({len(ph_.truth)} lesions, {len(ph_.distractors)} distractors): "
              f"{args.outdir}/xr.dcm ({len(written) - 1} copies), truth.csv, distractors.csv, landmarks.mrk.json")
    return 0
