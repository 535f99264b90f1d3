"""``calcinosis report``: self-contained HTML reports of a case or of a batch (cohort)."""

from __future__ import annotations

from calcinosis.cohort.batch import default_workers
from calcinosis.cohort.report import write_reports
from calcinosis.core.output import check_not_an_input, check_output_free

from .common import add_output_args, progress_for, say, spacing_arg



def register(sub) -> None:
    p = sub.add_parser(
        "report", help="HTML report of a case folder or of a batch folder (figures embedded)",
        description="DIR is a case output folder (measure, hand or spine), or a result of calcinosis follow: writes "
                    "OUTDIR/report.html. DIR is a batch "
                    "output folder: writes OUTDIR/cohort.html (cases, prevalence and level x segment chart, per-digit "
                    "bars, modality comparison, reader agreement with Bland-Altman plots, change) and "
                    "OUTDIR/cases/<case_id>.html. Every table names its source; provenance is included.")
    p.add_argument("source", metavar="DIR", help="case output folder or batch output folder")
    add_output_args(p)
    p.add_argument("--image", help="the case's image, for slice views with lesions outlined (a case folder)")
    p.add_argument("--followup-image", metavar="IMAGE",
                   help="DIR is a result of calcinosis follow: the follow-up image (--image: the baseline's), for "
                        "every lesion at both visits side by side")
    p.add_argument("--spacing", type=spacing_arg, metavar="X,Y", help="pixel spacing of --image when it has none")
    p.add_argument("--manifest", help="the batch manifest, to find each case's image for the slice views")
    p.add_argument("--by", metavar="COLUMN", help="add a group comparison by this column of patients.csv")
    p.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="which reading to use per patient (default: first reader, read 1, baseline)")
    p.add_argument("--no-case-reports", action="store_true", help="batch: only cohort.html")
    p.add_argument("--workers", type=int, metavar="N",
                   help="batch: processes writing the case pages (default: number of cores; 0 or 1 = in this process)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from calcinosis.core.errors import InputError

    if args.workers is not None and args.workers < 0:
        raise InputError("--workers: expected a whole number >= 0")
    for option, value in (("--image", args.image), ("--followup-image", args.followup_image)):
        if value is not None and not Path(value).exists():
            raise InputError(f"{option} {value}: no such file or folder")
    if args.manifest is not None:   # read (and so checked) here, naming the file, before anything is written
        from calcinosis.cohort.manifest import read_manifest
        read_manifest(args.manifest)
    check_not_an_input(args.outdir, [args.source if Path(args.source).is_dir() else None, args.image, args.manifest,
                                     args.followup_image])
    check_output_free(args.outdir, args.force)
    progress = progress_for(args, "report")
    files = write_reports(args.source, args.outdir, image=args.image, spacing=args.spacing, manifest=args.manifest,
                          by=args.by, where=args.where, case_reports=not args.no_case_reports, force=args.force,
                          progress=progress, workers=args.workers if args.workers is not None else default_workers(64),
                          followup_image=args.followup_image)
    main = next((f for f in files if f.name in ("cohort.html", "report.html")), files[0])
    say(args, f"{len([f for f in files if f.suffix == '.html'])} report(s); open {main}")
    return 0
