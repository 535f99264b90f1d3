"""Task ``spine``: the calcifications of a spine CT mapped to disco-vertebral levels,
segments and sub-sites (:func:`calcinosis.spine.pipeline.run_spine`)."""

from __future__ import annotations

import argparse
import math
from dataclasses import fields, replace

from calcinosis.core.defaults import CONNECTIVITIES
from calcinosis.core.errors import InputError

from .arguments import (add_dicom_args, add_output_args, dicom_request, nonneg_float, number, positive_float,
                        positive_int)

HELP = "map spine CT calcifications to levels C7-T1 … L5-S1, segments and sub-sites"
DESCRIPTION = ("Find the calcifications near the spine on a CT (threshold, outside the vertebrae, the aorta "
               "and other vessels excluded), assign each to a disco-vertebral level, a segment (anterior, "
               "intracanal, posterior), a sub-site and a pattern, and write OUTDIR/lesions.csv, levels.csv, "
               "patient.csv, vertebrae.csv (+ .schema.csv), level_chart.png, lesion_labels.nrrd, "
               "lesions.seg.nrrd and provenance.json. Levels whose two vertebrae are not both in the scan "
               "are not_assessed.")
SUMMARY_FILE = "patient.csv"


def _contract_columns():
    from calcinosis.spine.anatomy import LEVELS, PATTERNS, SEGMENTS, SUBSITES

    # the segment "intracanal" and the sub-site "intracanal" give the same column names
    # (count_intracanal, any_intracanal): such a column is read as the segment (canal and
    # foramina); the duplicates are dropped here
    levels = tuple(dict.fromkeys(("level", "status", "count_total") + tuple(f"count_{s}" for s in SEGMENTS)
                                 + tuple(f"count_{s}" for s in SUBSITES)))
    patient = tuple(dict.fromkeys(
        ("coverage", "levels_assessed", "first_level_assessed", "last_level_assessed", "calcification_count",
         "any_calcification", "any_anterior", "any_intracanal", "any_posterior", "any_all_three_segments",
         "count_anterior", "count_intracanal", "count_posterior")
        + tuple(f"any_{s}" for s in SUBSITES) + tuple(f"count_{s}" for s in SUBSITES)
        + tuple(f"count_{p}" for p in PATTERNS)))
    return levels, patient, tuple(LEVELS)


#: the columns of levels.csv and patient.csv the cohort reads (the table contract)
LEVEL_COLUMNS, PATIENT_COLUMNS, _LEVELS = _contract_columns()
#: columns added since the first version (results written before them are read with them
#: empty): the facet-joint sub-site
ADDED_COLUMNS = ("count_facet_joint", "any_facet_joint")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from calcinosis.spine.params import CONVENTION_CHOICES, SpineParams
    d = SpineParams()
    p.add_argument("ct", help="CT: DICOM series folder, NRRD, NIfTI or MHA (values in HU)")
    src = p.add_argument_group("vertebrae (one of)")
    src.add_argument("--vertebrae", metavar="LABELS",
                     help="vertebra label map (TotalSegmentator total, TotalSpineSeg, VerSe or SPINEPS; any grid) or a "
                          "segmentation (.seg.nrrd) whose segment names carry the vertebra (vertebrae_T8, T8)")
    src.add_argument("--points", metavar="FILE",
                     help="one point per vertebral body labelled T8, L1 … (Slicer .mrk.json, .fcsv, or CSV with "
                          "label and r,a,s or l,p,s columns)")
    p.add_argument("--convention", choices=CONVENTION_CHOICES, default=d.convention,
                   help="label convention of --vertebrae (default auto: detected from the label values and their "
                        "order along the spine; 'names': from segment names)")
    p.add_argument("--subregions", metavar="LABELS",
                   help="SPINEPS sub-region mask (seg-spine: arch, spinous and costal processes, canal, discs ...) "
                        "beside its instance mask given as --vertebrae; used for segment and sub-site")
    p.add_argument("--aorta", metavar="MASK", help="an aorta mask (any non-zero label) when the vertebra labels "
                                                   "have none")
    p.add_argument("--overrides", metavar="CSV",
                   help="reader overrides to apply (delete/change calcifications, matched by centroid); see docs/spine.md")
    g = p.add_argument_group("calcifications")
    g.add_argument("--threshold", type=number, default=d.threshold_hu, metavar="HU",
                   help=f"CT threshold in HU (default {d.threshold_hu:g})")
    g.add_argument("--min-size", type=nonneg_float, default=d.min_size_mm3, metavar="MM3",
                   help=f"smallest calcification in mm³ (default {d.min_size_mm3:g})")
    g.add_argument("--connectivity", choices=CONNECTIVITIES, default=d.connectivity,
                   help="voxel neighbourhood joining a calcification (default face, as Slicer's Islands)")
    g.add_argument("--no-study-rule", action="store_true",
                   help="do not apply the study's rule (>= 2 contiguous axial slices and seen in another plane)")
    g.add_argument("--study-min-slices", type=positive_int, default=d.study_min_slices, metavar="N",
                   help=f"contiguous axial slices the study rule asks for (default {d.study_min_slices})")
    g.add_argument("--search-margin", type=positive_float, default=d.search_margin_mm, metavar="MM",
                   help=f"how far from the vertebrae calcifications are sought (default {d.search_margin_mm:g} mm)")
    g.add_argument("--vessel-margin", type=nonneg_float, default=d.vessel_margin_mm, metavar="MM",
                   help=f"zone excluded around labelled vessels (default {d.vessel_margin_mm:g} mm)")
    g.add_argument("--no-aorta-shape", action="store_true",
                   help="without an aorta label, do not look for the contrast-filled aorta by shape")
    g.add_argument("--pseudotumoral-diameter", type=positive_float, default=d.pseudotumoral_min_diameter_mm,
                   metavar="MM", help="equivalent diameter from which a calcification is pseudo-tumoral "
                                      f"(default {d.pseudotumoral_min_diameter_mm:g} mm)")
    g.add_argument("--linear-elongation", type=positive_float, default=d.linear_min_elongation, metavar="RATIO",
                   help=f"major/middle axis ratio of a linear calcification (default {d.linear_min_elongation:g})")
    g.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set any other parameter (listed in docs/spine.md), e.g. pll_back_mm=5")
    o = p.add_argument_group("outputs")
    o.add_argument("--no-chart", action="store_true", help="do not draw level_chart.png")
    o.add_argument("--no-images", action="store_true", help="do not write lesion_labels.nrrd and lesions.seg.nrrd")
    o.add_argument("--nifti", action="store_true", help="also write lesion_labels.nii.gz (NIfTI label map, value = lesion_id; for nnU-Net, TotalSegmentator and other NIfTI tools)")
    add_dicom_args(o)
    o.add_argument("--series", help="which DICOM series in a folder holding several (number or UID)")
    o.add_argument("--case-id", help="pseudonymous case identifier recorded in provenance")
    o.add_argument("--record-paths", action="store_true",
                   help="record input file paths in provenance (off by default: paths may carry names)")
    add_output_args(p)


def params_from_args(args):
    from calcinosis.spine.params import SpineParams
    p = SpineParams(threshold_hu=args.threshold, min_size_mm3=args.min_size, connectivity=args.connectivity,
                    study_rule=not args.no_study_rule, study_min_slices=args.study_min_slices,
                    search_margin_mm=args.search_margin, vessel_margin_mm=args.vessel_margin,
                    detect_aorta=not args.no_aorta_shape,
                    pseudotumoral_min_diameter_mm=args.pseudotumoral_diameter,
                    linear_min_elongation=args.linear_elongation, convention=args.convention)
    types = {f.name: f.type for f in fields(SpineParams)}
    for item in args.param:
        if "=" not in item:
            raise InputError(f"--param {item!r}: expected NAME=VALUE")
        name, value = (s.strip() for s in item.split("=", 1))
        if name not in types:
            raise InputError(f"--param {name}: unknown parameter (known: {', '.join(sorted(types))})")
        t = str(types[name])
        try:
            if t in ("bool", "<class 'bool'>"):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                v = value.lower() in ("1", "true", "yes")
            elif t in ("int", "<class 'int'>"):
                v = int(value)
            elif t in ("float", "<class 'float'>"):
                v = float(value)
                if not math.isfinite(v):
                    raise InputError(f"--param {name}: {value!r} is not a finite number")
            else:
                v = value
        except ValueError:
            raise InputError(f"--param {name}: {value!r} is not a valid {t}") from None
        p = replace(p, **{name: v})
    p.validate()
    return p


def run(args, progress=None):
    """Compute and write the result folder ``args.outdir``; returns a :class:`TaskOutcome`."""
    from calcinosis.core.output import check_output_free
    from calcinosis.spine import pipeline

    from . import TaskOutcome, redact_warnings

    if (args.vertebrae is None) == (args.points is None):
        raise InputError("give the vertebrae with --vertebrae LABELS or --points FILE (one of them)")
    params = params_from_args(args)
    check_output_free(args.outdir, args.force)
    dicom = dicom_request(args, args.ct)
    if args.subregions is not None and args.vertebrae is None:
        raise InputError("--subregions: give it with the SPINEPS instance mask as --vertebrae")
    result = pipeline.run_spine(args.ct, vertebrae=args.vertebrae, points=args.points, aorta=args.aorta,
                                subregions=args.subregions,
                                overrides=args.overrides, params=params, series=args.series,
                                record_paths=args.record_paths,
                                progress=progress.sub(0.0, 0.85) if progress else None)
    redact_warnings(result, args, ('ct', 'vertebrae', 'points', 'aorta', 'overrides', 'subregions'))
    pipeline.write_spine_outputs(args.outdir, result, force=args.force, case_id=args.case_id,
                                 write_images=not args.no_images, chart=not args.no_chart, nifti=args.nifti,
                                 dicom=dicom, progress=progress.sub(0.85, 1.0) if progress else None)
    p = result.patient.rows[0]
    applied = sum(a.status == "applied" for a in result.applied)
    extra = f"; {applied} of {len(result.applied)} reader overrides applied" if result.overrides else ""
    return TaskOutcome(list(result.warnings), [
        f"{p['calcification_count']} calcifications on {p['levels_assessed']} assessed levels "
        f"({p['first_level_assessed']} to {p['last_level_assessed']}, coverage {p['coverage']}): "
        f"anterior {p['count_anterior']}, intracanal {p['count_intracanal']}, posterior {p['count_posterior']}"
        f"{extra}; results in {args.outdir}/"])


def summarise(case_dir, case_id: str) -> dict:
    """What the cohort joins from a spine result folder: ``patient`` (the one row of
    patient.csv, as a table) and ``levels`` (levels.csv), checked against the contract."""
    from . import ContractError, read_summary_table

    what = f"case {case_id}"
    patient = read_summary_table(case_dir / "patient.csv", PATIENT_COLUMNS, what, ADDED_COLUMNS)
    if len(patient.rows) != 1:
        raise ContractError(f"{what}: patient.csv has {len(patient.rows)} rows (expected 1)")
    levels = read_summary_table(case_dir / "levels.csv", LEVEL_COLUMNS, what, ADDED_COLUMNS)
    for r in levels.rows:
        if r["level"] not in _LEVELS:
            raise ContractError(f"{what}: levels.csv level {r['level']!r} is not C7-T1 ... L5-S1")
    return {"patient": patient, "levels": levels}
