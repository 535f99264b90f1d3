"""What a task takes, as command-line options: argument types, the output options, and a
parser that raises :class:`~calcinosis.core.errors.InputError` instead of exiting.

The tasks define their options here, once, because a cohort manifest gives a case's extra
parameters in the same syntax (its ``options`` column): the command line and the batch parse
them with the same parser, so a flag means the same in both.
"""

from __future__ import annotations

import argparse
import math

from calcinosis.core.errors import InputError


#: pixel spacings outside this range (mm) are not a hand, a spine or any human anatomy at
#: the patient: a header or a typing error (a microscope slide is not calcinosis imaging)
SPACING_RANGE_MM = (0.01, 50.0)


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r} (not a finite number)")
    return v


def spacing_arg(text: str) -> tuple[float, ...]:
    """Pixel spacing in mm, e.g. ``0.1,0.1``: finite, within :data:`SPACING_RANGE_MM`."""
    vals = tuple(_float(v, "numbers in mm like 0.1,0.1") for v in text.replace(" ", "").split(","))
    lo, hi = SPACING_RANGE_MM
    if not vals or any(not (lo <= v <= hi) for v in vals):
        raise argparse.ArgumentTypeError(f"expected pixel spacings between {lo:g} and {hi:g} mm, got {text!r}")
    return vals


def positive_list(text: str) -> tuple[float, ...]:
    """Positive finite numbers separated by commas (``2,3,4``)."""
    vals = tuple(_float(v, "positive numbers like 2,3,4") for v in text.replace(" ", "").split(","))
    if not vals or any(not (v > 0) for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive numbers like 2,3,4, got {text!r}")
    return vals


def nonneg_list(text: str) -> tuple[float, ...]:
    """Finite numbers >= 0 separated by commas (``0,100,200``)."""
    vals = tuple(_float(v, "numbers >= 0 like 0,100,200") for v in text.replace(" ", "").split(","))
    if not vals or any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected numbers >= 0 like 0,100,200, got {text!r}")
    return vals


def add_partial_volume_args(p: argparse.ArgumentParser) -> None:
    """The partial-volume options (CT; issue 14, docs/methods/ct-volume.md)."""
    g = p.add_argument_group("partial-volume measures (CT)")
    g.add_argument("--partial-volume", action="store_true",
                   help="add per-lesion measures that do not depend on the scanner's blur or slice thickness: "
                        "pv_volume_mm3, half_maximum_volume_mm3, excess_hu_mm3, background_hu, density_hu (and "
                        "calcium_mass_mg with a calibration); about 0.1 s per lesion under 5 mm")
    g.add_argument("--in-plane-fwhm", type=positive_float, metavar="MM",
                   help="with --partial-volume: the scanner's in-plane blur (FWHM, mm) for this kernel; default: "
                        "measured on the skin")
    g.add_argument("--calibration", metavar="SLOPE,INTERCEPT",
                   help="with --partial-volume: HU-to-calcium line, mg HA/cm³ = SLOPE x HU + INTERCEPT "
                        "(gives calcium_mass_mg)")
    g.add_argument("--calibration-rods", metavar="SEG",
                   help="with --partial-volume: calibration rods imaged with the patient (label map or .seg.nrrd, "
                        "one segment per rod); the line is fitted to their mean HU")
    g.add_argument("--rod-densities", type=nonneg_list, metavar="D1,D2,...",
                   help="with --calibration-rods: each rod's density in mg HA/cm³, in label-value order")


def partial_volume_request(args):
    """The :class:`~calcinosis.core.pipeline.PartialVolumeRequest` of the options, or None."""
    from calcinosis.core.pipeline import PartialVolumeRequest

    given = [name for name in ("in_plane_fwhm", "calibration", "calibration_rods", "rod_densities")
             if getattr(args, name, None) is not None]
    if not getattr(args, "partial_volume", False):
        if given:
            raise InputError(f"--{given[0].replace('_', '-')}: applies to the partial-volume measures; add "
                             "--partial-volume")
        return None
    return PartialVolumeRequest(args.in_plane_fwhm, args.calibration, args.calibration_rods, args.rod_densities)


def positive_list_upto(hi: float, unit: str = "mm"):
    """Positive finite numbers up to ``hi`` separated by commas (an argparse type)."""
    def convert(text: str) -> tuple[float, ...]:
        vals = positive_list(text)
        if max(vals) > hi:
            raise argparse.ArgumentTypeError(f"expected positive numbers up to {hi:g} {unit}, got {text!r}")
        return vals
    return convert


def grid_size(n: int, hi: int = 4096):
    """``n`` whole numbers from 1 to ``hi`` separated by commas: a grid size (an argparse type)."""
    example = ",".join(["64"] * n)

    def convert(text: str) -> tuple[int, ...]:
        try:
            vals = tuple(int(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {n} whole numbers like {example}, got {text!r}") from None
        if len(vals) != n or not all(1 <= v <= hi for v in vals):
            raise argparse.ArgumentTypeError(f"expected {n} whole numbers from 1 to {hi} like {example}, got {text!r}")
        return vals
    return convert


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def seed_int(text: str) -> int:
    """A random seed: a whole number >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if not 0 <= v < 2 ** 32:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 4294967295, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    v = _float(text, "a number")
    if not (v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = nonneg_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def fraction(text: str) -> float:
    v = _float(text, "a fraction between 0 and 1")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return v


def magnification_arg(text: str) -> float:
    """A radiograph's geometric magnification, 1.0 to 2.0 (source-detector over source-object distance)."""
    v = _float(text, "a magnification from 1.0 to 2.0")
    if not 1.0 <= v <= 2.0:
        raise argparse.ArgumentTypeError(f"expected a radiograph's magnification from 1.0 to 2.0, got {text!r}")
    return v


def unit_interval(text: str) -> float:
    """A number from 0 to 1, both included (a confidence, a probability)."""
    v = _float(text, "a number from 0 to 1")
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return v


def number(text: str) -> float:
    """Any finite number."""
    return _float(text, "a number")


def in_range(lo: float, hi: float, unit: str = ""):
    """A finite number between ``lo`` and ``hi`` (an argparse type)."""
    def convert(text: str) -> float:
        v = _float(text, "a number")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected a number from {lo:g} to {hi:g}{' ' + unit if unit else ''}, "
                                             f"got {text!r}")
        return v
    return convert


def add_dicom_args(group) -> None:
    """``--dicom-seg`` / ``--dicom-sr`` / ``--dicom-keep-patient`` (:mod:`calcinosis.core.dicom_export`)."""
    group.add_argument("--dicom-seg", action="store_true",
                       help="also write lesions.seg.dcm: DICOM SEG of the lesions (one coded segment each) on the "
                            "source DICOM images (needs a DICOM input and highdicom)")
    group.add_argument("--dicom-sr", action="store_true",
                       help="also write measurements.sr.dcm: DICOM SR measurement report (TID 1500) with each "
                            "lesion's size and site, referencing lesions.seg.dcm (written too)")
    group.add_argument("--dicom-keep-patient", action="store_true",
                       help="copy the source's patient name, ID and other patient attributes into the SEG/SR "
                            "(default: the --case-id as patient ID, nothing identifying)")


def dicom_request(args, image):
    """The :class:`~calcinosis.core.dicom_export.DicomExport` the options ask for, or ``None``."""
    from calcinosis.core import dicom_export
    return dicom_export.request(image, getattr(args, "series", None), seg=getattr(args, "dicom_seg", False),
                                sr=getattr(args, "dicom_sr", False),
                                keep_patient=getattr(args, "dicom_keep_patient", False))


def add_output_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-o", "--output", dest="outdir", required=required, metavar="OUTDIR",
                   help="output folder (created; an earlier result there is kept unless --force)")
    p.add_argument("--force", action="store_true", help="replace an earlier result in OUTDIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")


class TaskArgumentParser(argparse.ArgumentParser):
    """An argument parser for use inside a program (the batch): a bad option raises
    :class:`InputError` with argparse's message instead of printing usage and exiting."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise InputError(message)

    def exit(self, status: int = 0, message: str | None = None):
        raise InputError((message or f"exit {status}").strip())
