"""``calcinosis batch``: every case of a manifest, in parallel, resumable, then the cohort tables."""

from __future__ import annotations

from calcinosis.cohort.batch import run_batch

from .common import add_output_args, progress_for, say, warn_all



def register(sub) -> None:
    p = sub.add_parser(
        "batch", help="run every case of a manifest (hand, spine, measure) and build the cohort tables",
        description="Run the cases of MANIFEST.csv (one row per case: case_id, patient_id, task hand|spine|measure, "
                    "image, modality, landmarks/labels, reader, read, time_point, parameters) in parallel worker "
                    "processes, or on a Dask cluster with --scheduler. Cases already done are skipped (unless --force); "
                    "a failed case is recorded with its reason and the others go on. Writes OUTDIR/cases/<case_id>/, "
                    "cases.csv, patients.csv (one row per patient x reader x read x time point), hands.csv, digits.csv, "
                    "levels.csv, lesions.csv and provenance.json. Exit code 3 when some cases failed.")
    p.add_argument("manifest", metavar="MANIFEST.csv", help="the case list (see docs/cohort.md, The manifest)")
    add_output_args(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes on this machine (default: number of cores; 0 = in this process)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on a Dask distributed cluster (workers need this package and the same file paths)")
    p.add_argument("--only", metavar="CASE[,CASE...]", help="run only these case ids (the tables still cover all)")
    p.add_argument("--clinical", metavar="CSV", help="clinical variables per patient_id, joined into patients.csv")
    p.add_argument("--record-paths", action="store_true", help="record input paths in cases.csv and provenance")
    p.add_argument("--report", metavar="DIR", help="also write the HTML reports into DIR (see calcinosis report)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.workers is not None and args.workers < 0:
        from calcinosis.core.errors import InputError
        raise InputError("--workers: expected a whole number >= 0")
    only = [c.strip() for c in args.only.split(",") if c.strip()] if args.only else None
    progress = progress_for(args, "batch")
    summary = run_batch(args.manifest, args.outdir, workers=args.workers, scheduler=args.scheduler, force=args.force,
                        only=only, record_paths=args.record_paths, clinical=args.clinical, progress=progress)
    warn_all(summary.warnings)
    kept = sum(1 for s in summary.states.values() if s.run == "kept")
    say(args, f"{summary.n_ok} of {len(summary.specs)} cases ok ({kept} kept from an earlier run); "
              f"{len(summary.tables['patients'])} readings in {args.outdir}/patients.csv")
    for st in summary.failed:
        print(f"calcinosis: case {st.case_id} failed: {st.reason}")
    if args.report:
        from calcinosis.cohort.batch import default_workers
        from calcinosis.cohort.report import write_reports
        write_reports(args.outdir, args.report, manifest=args.manifest, force=args.force,
                      workers=args.workers if args.workers is not None else default_workers(len(summary.specs)))
        say(args, f"reports: {args.report}/cohort.html")
    return 3 if summary.failed else 0
