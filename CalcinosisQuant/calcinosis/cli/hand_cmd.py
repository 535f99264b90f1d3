"""``calcinosis hand`` (one image; with ``--seeds`` one outline per point), ``hand-compare`` (one
hand across modalities), ``hand-form`` (the structural-lesion form) and ``hand-landmarks`` (a
blank point list)."""

from __future__ import annotations

from pathlib import Path

from calcinosis.core.errors import InputError, OutputExistsError
from calcinosis.core.output import OutputTransaction, check_output_free, write_file_atomic

from .common import add_output_args, run_task, say, warn_all


def register(sub) -> None:
    from calcinosis.tasks import hand as task
    p = sub.add_parser("hand", help=task.HELP, description=task.DESCRIPTION)
    task.add_arguments(p)
    p.set_defaults(func=lambda args: run_task("hand", args))

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


def run_compare(args) -> int:
    from calcinosis.core import provenance
    from calcinosis.hand import compare
    check_output_free(args.outdir, args.force)
    runs = [compare.read_hand_result(f) for f in args.results]
    digits, hand, warnings = compare.compare_runs(runs, args.side)
    with OutputTransaction(args.outdir, force=args.force) as out:
        out.write_table(digits, "compare_digits.csv")
        out.write_table(hand, "compare_hand.csv")
        inputs = {r.modality: {"result_folder": r.folder.name, "case_id": r.case_id,
                               "image": (r.provenance.get("inputs") or {}).get("image", {}).get("input_id")}
                  for r in runs}
        out.write_workbook()
        out.write_json(provenance.build_record("hand-compare", inputs, {"side": args.side},
                                               {"rows": len(digits), "sides": sorted({r["side"] for r in hand.rows})},
                                               warnings, out.written + ["provenance.json"],
                                               case_id=next((r.case_id for r in runs if r.case_id), None)),
                       "provenance.json")
    warn_all(warnings)
    say(args, f"compared {', '.join(r.modality for r in runs)}: {args.outdir}/compare_digits.csv, compare_hand.csv")
    return 0


def _write_table_files(table, path: Path, force: bool) -> None:
    from calcinosis.core.tables import csv_file_text, schema_path_for
    schema = schema_path_for(path)
    if not force:
        for p in (path, schema):
            if p.exists():
                raise OutputExistsError(f"{p}: exists; choose another -o or pass --force to replace it")
    write_file_atomic(path, csv_file_text(table), force)
    write_file_atomic(schema, table.schema_csv_text(), True)


def run_form_blank(args) -> int:
    from calcinosis.hand import structural_form
    sides = ("R", "L") if args.side == "both" else (args.side,)
    path = Path(args.outfile)
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: the form is a CSV table; give a name ending in .csv")
    _write_table_files(structural_form.blank_form(sides), path, args.force)
    print(f"blank structural-lesion form ({len(sides) * 8} rows): {path}")
    return 0


def run_form_check(args) -> int:
    from calcinosis.hand import structural_form
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
    from calcinosis.hand import landmarks as lmk
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
