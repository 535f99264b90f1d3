"""``calcinosis follow BASELINE_RESULT FOLLOWUP_RESULT``: every lesion followed (issue 14)."""

from __future__ import annotations

from .common import add_output_args, in_range, progress_for, say, warn_all


def register(sub) -> None:
    from .main import COMMANDS
    p = sub.add_parser("follow", help=COMMANDS["follow"][1],
                       description="Register the follow-up image to the baseline's (rigid, then per lesion neighbourhood), match the lesions of two "
                                   "result folders of one patient (calcinosis measure, hand or spine) and class each "
                                   "one new, resolved, grown, shrunk or stable. Writes OUTDIR/lesion_changes.csv, "
                                   "change_summary.csv, followup_labels_on_baseline.nrrd and provenance.json.")
    p.add_argument("baseline", help="result folder of the baseline visit")
    p.add_argument("followup", help="result folder of the follow-up visit")
    p.add_argument("--baseline-image", metavar="IMAGE",
                   help="the image the baseline result was measured on (default: the path its provenance recorded)")
    p.add_argument("--followup-image", metavar="IMAGE", help="the image the follow-up result was measured on")
    p.add_argument("--registration", choices=("local", "rigid", "none"), default="local",
                   help="local: one rigid motion for the image, then one per baseline lesion's neighbourhood (a "
                        "finger or a vertebra that moved on its own; default); rigid: one motion for the image; "
                        "none: the images are already aligned (no images needed)")
    p.add_argument("--limit", type=in_range(1.0, 99.0, "%"), default=25.0, metavar="PCT",
                   help="a lesion (and the patient) grew or shrank beyond ± this %% (default 25)")
    p.add_argument("--case-id", help="pseudonymous case identifier recorded in provenance")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from calcinosis.core.output import check_output_free
    from calcinosis.follow.pipeline import follow, write_follow_outputs

    check_output_free(args.outdir, args.force)
    progress = progress_for(args, "follow")
    result = follow(args.baseline, args.followup, args.baseline_image, args.followup_image, args.registration,
                    args.limit, progress.sub(0.0, 0.9) if progress else None)
    write_follow_outputs(args.outdir, result, force=args.force, case_id=args.case_id,
                         progress=progress.sub(0.9, 1.0) if progress else None)
    warn_all(result.warnings)
    p = result.summary.rows[0]
    counts = ", ".join(f"{p['n_' + c]} {c}" for c in ("new", "resolved", "grown", "shrunk", "stable"))
    pct = "n/a" if p["change_pct"] is None else f"{p['change_pct']:+.1f}%"
    say(args, f"{len(result.groups)} lesion groups: {counts}; patient {pct} ({p['change_class']}); "
              f"results in {args.outdir}/lesion_changes.csv")
    return 0
