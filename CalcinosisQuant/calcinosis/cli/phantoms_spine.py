"""Spine phantom: a realistic spine CT with vertebra labels and the truth of every
calcification (``calcinosis phantom spine-ct``)."""

from __future__ import annotations

import argparse

import numpy as np

from calcinosis.core import dicom_write, image_io, provenance
from calcinosis.core.output import OutputTransaction, check_output_free

from .common import add_output_args, in_range, positive_int, say, seed_int, spacing_arg


def _size_arg(text: str) -> tuple[int, int]:
    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two whole numbers like 512,512, got {text!r}") from None
    if len(vals) != 2 or min(vals) < 16:
        raise argparse.ArgumentTypeError(f"expected two whole numbers >= 16 like 512,512, got {text!r}")
    return vals  # type: ignore[return-value]


def register(kinds) -> None:
    p = kinds.add_parser(
        "spine-ct", help="spine CT (C7 to S1) with vertebra labels and mapped calcifications",
        description="A realistic spine CT: vertebral bodies (cortex, trabecular core), discs, canal, pedicles, "
                    "laminae, spinous and transverse processes, ribs, kyphosis/lordosis with mild rotation, a "
                    "contrast-enhanced aorta and iliac arteries with wall calcifications (distractors), lungs, "
                    "noise and partial volume, 1.25 mm slices; calcifications in named sub-sites with the three "
                    "patterns. Writes the CT (DICOM series or NRRD/NIfTI), vertebrae.nii.gz (label map in the "
                    "chosen convention), points.mrk.json (one point per vertebral body), truth.csv, "
                    "truth_labels.nrrd (calcification number per voxel) and provenance.json.")
    p.add_argument("--coverage", choices=("chest", "tap", "lumbar"), default="tap",
                   help="chest (C7 to L1), tap (thoraco-abdomino-pelvic, C7 to S1) or lumbar (T12 to S1)")
    p.add_argument("--convention", choices=("totalsegmentator", "totalspineseg", "verse", "totalsegmentator_v1",
                                            "spineps"),
                   default="totalsegmentator",
                   help="label convention of vertebrae.nii.gz (totalsegmentator also labels aorta, iliac "
                        "arteries, ribs, cord, lungs; totalspineseg adds discs, cord and canal; verse: vertebrae; "
                        "spineps: the instance mask with discs and end plates, and its sub-region mask "
                        "subregions.nii.gz)")
    p.add_argument("--spacing", type=spacing_arg, default=(0.7, 0.7, 1.25), metavar="X,Y,Z",
                   help="voxel spacing in mm (default 0.7,0.7,1.25: a 512 matrix over 36 cm, 1.25 mm slices)")
    p.add_argument("--size", type=_size_arg, default=None, metavar="NI,NJ",
                   help="matrix (columns, rows); default 512,512, or with --fit a field of view around the spine")
    p.add_argument("--fit", action="store_true", help="field of view fitted to the spine (smaller, faster)")
    p.add_argument("--slices", type=positive_int, default=None, metavar="N",
                   help="at least N slices (the scan goes on below the spine's coverage, into the pelvis)")
    p.add_argument("--no-contrast", action="store_true", help="aorta not enhanced (no contrast medium)")
    p.add_argument("--hard", action="store_true",
                   help="the cases real anatomy has: calcifications against bone at every sub-site, thoracic discs "
                        "3-5 mm, 6 osteophytes/spurs outside the labels (truth kind 'osteophyte'), enhanced vena "
                        "cava, iliac and renal veins, renal arteries and azygos, 45 HU noise at the shoulders, "
                        "vertebra labels off by up to 1 mm")
    p.add_argument("--noise", type=in_range(0, 1000, "HU"), default=12.0, metavar="NOISE",
                   help="noise SD in HU (default 12)")
    p.add_argument("--per-level", type=in_range(0, 50), default=2.5, metavar="N",
                   help="spinal calcifications per disco-vertebral level, on average (default 2.5; 0 = none)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--format", choices=("dicom", "nrrd", "nifti"), default="dicom",
                   help="CT format (default dicom: a series in OUTDIR/ct/)")
    add_output_args(p)
    p.set_defaults(func=run_spine_ct)


def run_spine_ct(args) -> int:
    from calcinosis.spine import phantom, points
    check_output_free(args.outdir, args.force)
    sp = tuple(args.spacing) + (args.spacing[-1],) * (3 - len(args.spacing))
    size = None if args.fit else (args.size or (512, 512))
    from calcinosis.spine.phantom_hard import hard_spec_kwargs
    r = phantom.make_spine_phantom(args.coverage, spacing=sp[:3], size_xy=size, seed=args.seed,
                                   convention=args.convention, contrast=not args.no_contrast, noise_sd=args.noise,
                                   n_slices=args.slices, calcifications_per_level=args.per_level,
                                   **(hard_spec_kwargs() if args.hard else {}))
    g = r.geometry
    truth_labels = np.zeros(g.shape, dtype=np.uint16)
    for n, vox in enumerate(r.truth_voxels, start=1):
        truth_labels.ravel()[vox] = n
    with OutputTransaction(args.outdir, force=args.force) as out:
        if args.format == "dicom":
            dicom_write.write_dicom_series(r.ct, g, out.dir("ct"), "CT", seed=f"spine-{args.seed}",
                                           series_description=f"spine phantom {args.coverage}")
            image_name = "ct"
        else:
            image_name = "ct.nrrd" if args.format == "nrrd" else "ct.nii.gz"
            image_io.write_image(r.ct, g, out.path(image_name))
        image_io.write_image(r.labels, g, out.path("vertebrae.nii.gz"))
        if args.convention == "spineps":
            image_io.write_image(phantom.subregion_labels(r), g, out.path("subregions.nii.gz"))
        image_io.write_image(truth_labels, g, out.path("truth_labels.nrrd"))
        points.write_points_mrk_json(phantom.vertebra_body_points(r.phantom, g), out.path("points.mrk.json"))
        out.write_table(r.truth, "truth.csv")
        params = {"coverage": args.coverage, "convention": args.convention, "spacing_mm": list(sp[:3]),
                  "size": list(g.size_ijk), "fit": args.fit, "contrast": not args.no_contrast,
                  "noise_sd_hu": args.noise, "seed": args.seed, "format": args.format, "hard": args.hard}
        spinal = sum(row["kind"] == "spinal" for row in r.truth.rows)
        vascular = sum(row["kind"] == "vascular" for row in r.truth.rows)
        out.write_json(provenance.build_record(
            "phantom spine-ct", {}, params,
            {"image": image_name, "labels": "vertebrae.nii.gz", "n_spinal_calcifications": spinal,
             "n_vascular_calcifications": vascular, "n_osteophytes": len(r.truth) - spinal - vascular,
             "geometry": g.to_dict(),
             "label_values": {str(k): v for k, v in sorted(r.label_names.items())}},
            outputs=out.written + ["provenance.json"]), "provenance.json")
    say(args, f"spine phantom ({args.coverage}, {g.size_ijk[0]}x{g.size_ijk[1]}x{g.size_ijk[2]}) with {spinal} "
              f"spinal and {vascular} vascular calcifications: {args.outdir}/{image_name}, labels in "
              f"{args.outdir}/vertebrae.nii.gz, truth in {args.outdir}/truth.csv")
    return 0
