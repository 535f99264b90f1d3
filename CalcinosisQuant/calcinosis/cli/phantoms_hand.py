"""Hand phantoms: one synthetic SSc patient seen by CT (``hand-ct``), MRI (``hand-mri``)
and a PA radiograph (``hand-xr``), with exact truth tables and landmark files."""

from __future__ import annotations

import numpy as np

from calcinosis.core import dicom_write, image_io, provenance
from calcinosis.core.output import OutputTransaction, check_output_free
from calcinosis.core.segnrrd import write_seg_nrrd
from calcinosis.core.pipeline import lesion_colors
from calcinosis.hand import landmarks as lmk, phantom as ph

from .common import add_output_args, in_range, nonneg_float, say, seed_int, spacing_arg

XR_MAGNIFICATION = 1.08


def _common(p, spacing_default: str) -> None:
    p.add_argument("--side", choices=("R", "L"), default="R", help="which hand (default R)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed of the patient (lesion sizes, places)")
    p.add_argument("--spacing", type=spacing_arg, metavar="MM", help=f"voxel/pixel spacing in mm (default {spacing_default})")
    p.add_argument("--noise", type=nonneg_float, help="noise SD (CT: HU, MRI: a.u., radiograph: pixel units)")
    p.add_argument("--no-laterality", action="store_true", help="leave the DICOM laterality tag out")


def register(kinds) -> None:
    p = kinds.add_parser("hand-ct", help="hand CT (DICOM series) of the synthetic SSc patient, with truth and landmarks")
    _common(p, "0.5,0.5,0.5")
    p.add_argument("--size", type=lambda t: tuple(int(v) for v in t.split(",")), metavar="NI,NJ,NK",
                   help="grid size (default: the hand's extent); 512,512,300 is the benchmark CT")
    p.add_argument("--format", choices=("dicom", "nrrd"), default="dicom")
    p.add_argument("--no-rescale", action="store_true", help="DICOM without Rescale Slope/Intercept")
    add_output_args(p)
    p.set_defaults(func=run_ct)

    p = kinds.add_parser("hand-mri", help="hand MRI (coronal DICOM series, T1-like, lesions as signal voids), "
                                          "with the regions a reader draws")
    _common(p, "0.5,0.5,1.5")
    add_output_args(p)
    p.set_defaults(func=run_mri)

    p = kinds.add_parser("hand-xr", help="PA hand radiograph (DICOM CR, detector spacing and magnification "
                                         "in the tags), with truth and landmarks")
    _common(p, "0.2")
    p.add_argument("--magnification", type=in_range(1.0, 2.0), default=XR_MAGNIFICATION,
                   help=f"Estimated Radiographic Magnification Factor written (default {XR_MAGNIFICATION})")
    add_output_args(p)
    p.set_defaults(func=run_xr)


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
    ph_ = ph.ct_phantom(args.side, args.seed, sp, args.size, noise)
    extra = {} if args.no_laterality else {"Laterality": args.side, "BodyPartExamined": "HAND"}
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
                                 "format": args.format, "rescale": not args.no_rescale},
                {"image": name, "n_lesions": len(ph_.truth), "geometry": ph_.geometry.to_dict()})
    say(args, f"hand CT phantom ({len(ph_.truth)} lesions): {args.outdir}/{name}, truth.csv, landmarks.mrk.json")
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
        dicom_write.write_dicom_series(ph_.array, ph_.geometry, out.dir("mri"), "MR", seed=f"hand-{args.seed}",
                                       series_description="hand MRI phantom (T1)", extra=extra)
        out.write_table(ph_.truth, "truth.csv")
        _write_landmarks(out, ph_.landmarks, "mri")
        ids = [int(v) for v in np.unique(ph_.regions) if v]
        write_seg_nrrd(ph_.regions, ph_.geometry, out.path("regions.seg.nrrd"),
                       [f"region {i}" for i in ids], lesion_colors(len(ids)), label_values=ids)
        _record(out, "hand-mri", {"side": args.side, "seed": args.seed, "spacing_mm": list(sp), "noise_sd": noise,
                                  "hand_translation_mm": list(ph.MR_TRANSLATION)},
                {"image": "mri", "n_lesions": len(ph_.truth), "n_regions": len(ids),
                 "geometry": ph_.geometry.to_dict()})
    say(args, f"hand MRI phantom ({len(ph_.truth)} lesions): {args.outdir}/mri, regions.seg.nrrd (draw-like regions), "
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
