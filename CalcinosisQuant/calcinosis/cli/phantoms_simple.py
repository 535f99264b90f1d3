"""Simple phantoms: spheres/ellipsoids in soft tissue (3D) and ellipses on a radiograph (2D)."""

from __future__ import annotations

from calcinosis.core import dicom_write, image_io, phantoms, provenance
from calcinosis.core.geometry import Geometry
from calcinosis.core.output import OutputTransaction, check_output_free

from .common import add_output_args, in_range, number, positive_list_upto, say, seed_int, spacing_arg


def register(kinds) -> None:
    p = kinds.add_parser("spheres", help="spheres (or ellipsoids) of known volume in noisy soft tissue (CT-like)")
    p.add_argument("--diameters", type=positive_list_upto(50), default=(2, 3, 4, 6, 8, 12), metavar="D1,D2,...",
                   help="sphere diameters in mm (default 2,3,4,6,8,12)")
    p.add_argument("--spacing", type=spacing_arg, default=(0.4, 0.4, 0.6), metavar="X,Y,Z",
                   help="voxel spacing in mm (default 0.4,0.4,0.6: anisotropic)")
    p.add_argument("--oblique", type=number, default=0.0, metavar="DEG",
                   help="rotate the voxel grid by DEG degrees about a skew axis (oblique acquisition)")
    p.add_argument("--elongate", action="store_true", help="tilted ellipsoids instead of spheres")
    p.add_argument("--intensity", type=in_range(-1000, 30000, "HU"), default=400.0,
                   help="lesion HU, -1000 to 30000 (default 400)")
    p.add_argument("--noise", type=in_range(0, 1000, "HU"), default=10.0, metavar="NOISE", help="noise SD in HU (default 10)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--format", choices=("nrrd", "nifti", "dicom"), default="nrrd")
    p.add_argument("--no-rescale", action="store_true", help="DICOM without Rescale Slope/Intercept")
    add_output_args(p)
    p.set_defaults(func=run_spheres)

    p = kinds.add_parser("radiograph", help="ellipses of known area on a radiograph-like 2D image (DICOM CR)")
    p.add_argument("--diameters", type=positive_list_upto(50), default=(1.5, 2, 3, 5, 8, 12), metavar="D1,D2,...")
    p.add_argument("--spacing", type=spacing_arg, default=(0.1, 0.1), metavar="X,Y",
                   help="pixel spacing at the patient in mm (default 0.1,0.1)")
    p.add_argument("--spacing-tag", choices=("pixel", "imager", "none", "zero"), default="pixel",
                   help="which DICOM tag carries the spacing (default Pixel Spacing)")
    p.add_argument("--magnification", type=in_range(1.0, 2.0), default=None,
                   help="with --spacing-tag imager: Estimated Radiographic Magnification Factor to write")
    p.add_argument("--monochrome1", action="store_true", help="store inverted (MONOCHROME1)")
    p.add_argument("--rle", action="store_true", help="RLE-compress the pixel data")
    p.add_argument("--noise", type=in_range(0, 1000), default=20.0, metavar="NOISE")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--format", choices=("dicom", "png"), default="dicom")
    add_output_args(p)
    p.set_defaults(func=run_radiograph)


def run_spheres(args) -> int:
    check_output_free(args.outdir, args.force)
    sp = tuple(args.spacing) + (args.spacing[-1],) * (3 - len(args.spacing))
    arr, geom, ells = phantoms.spheres_phantom(args.diameters, args.intensity, sp[:3], args.oblique,
                                               noise_sd=args.noise, seed=args.seed, elongate=args.elongate)
    truth = phantoms.ellipsoid_truth(ells)
    with OutputTransaction(args.outdir, force=args.force) as out:
        if args.format == "dicom":
            dicom_write.write_dicom_series(arr, geom, out.dir("ct"), "CT", seed=str(args.seed),
                                           rescale=not args.no_rescale)
            image_name = "ct"
        else:
            image_name = "ct.nrrd" if args.format == "nrrd" else "ct.nii.gz"
            image_io.write_image(arr.round().astype("int16"), geom, out.path(image_name))
        out.write_table(truth, "truth.csv")
        out.write_json(provenance.build_record(
            "phantom spheres", {}, {"diameters_mm": list(args.diameters), "spacing_mm": list(sp[:3]),
                                    "oblique_deg": args.oblique, "elongate": args.elongate,
                                    "intensity_hu": args.intensity, "noise_sd_hu": args.noise, "seed": args.seed,
                                    "format": args.format},
            {"image": image_name, "n_lesions": len(truth), "geometry": geom.to_dict()},
            outputs=out.written + ["provenance.json"]), "provenance.json")
    say(args, f"phantom with {len(truth)} lesions: {args.outdir}/{image_name}, truth in {args.outdir}/truth.csv")
    return 0


def run_radiograph(args) -> int:
    check_output_free(args.outdir, args.force)
    sx, sy = (tuple(args.spacing) * 2)[:2]
    img, ells = phantoms.radiograph_phantom(args.diameters, (sx, sy), noise_sd=args.noise, seed=args.seed)
    geom = Geometry.create((img.shape[1], img.shape[0], 1), (sx, sy, 1.0), (0, 0, 0), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]])
    truth = phantoms.ellipse_truth(ells, geom)
    with OutputTransaction(args.outdir, force=args.force) as out:
        if args.format == "dicom":
            name = "xr.dcm"
            dicom_write.write_dicom_radiograph(img, out.path(name), (sx, sy), args.spacing_tag, args.magnification,
                                               seed=str(args.seed), monochrome1=args.monochrome1,
                                               compress_rle=args.rle)
        else:
            from PIL import Image
            import numpy as np
            name = "xr.png"
            Image.fromarray(np.clip(img, 0, 65535).astype("uint16")).save(out.path(name))
        out.write_table(truth, "truth.csv")
        out.write_json(provenance.build_record(
            "phantom radiograph", {}, {"diameters_mm": list(args.diameters), "spacing_mm": [sx, sy],
                                       "spacing_tag": args.spacing_tag, "magnification": args.magnification,
                                       "seed": args.seed, "format": args.format},
            {"image": name, "n_lesions": len(truth)}, outputs=out.written + ["provenance.json"]), "provenance.json")
    say(args, f"radiograph phantom with {len(truth)} lesions: {args.outdir}/{name}, truth in {args.outdir}/truth.csv")
    return 0
