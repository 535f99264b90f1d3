"""``calcinosis stats``: the studies' statistics on cohort tables.

Sub-commands: ``groups`` (Tables 1-2 of study 2), ``agreement`` (kappa, ICC, Bland-Altman),
``modalities`` (study 1), ``prevalence`` (spine, Figure 3 of study 2), ``change``.  Each
prints a Markdown table and, with ``-o``, writes ``<name>.csv`` (+ schema), ``.md``,
``.html``, figures and ``provenance.json``.
"""

from __future__ import annotations

from pathlib import Path

from calcinosis.cohort import agreement, change, groups, modalities, outcomes, prevalence
from calcinosis.cohort.data import batch_sibling, load_table
from calcinosis.cohort.formatting import StatsResult
from calcinosis.core.errors import InputError
from calcinosis.core.output import OutputTransaction, check_not_an_input, check_output_free
from calcinosis.core.provenance import build_record

from .common import add_output_args, in_range



def _common(p, table_help: str) -> None:
    p.add_argument("table", metavar="TABLE", help=table_help)
    p.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="keep rows where COLUMN equals VALUE (or COLUMN!=VALUE; VALUE may be A|B); repeatable")
    add_output_args(p, required=False)


def _pair(text: str) -> tuple[str, str]:
    parts = [x.strip() for x in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise InputError(f"expected two column names A,B, got {text!r}")
    return parts[0], parts[1]


def _list(text: str | None) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def run_outcomes(args) -> int:
    src = Path(args.table)
    path = src / "lesion_outcomes.csv" if src.is_dir() else src
    if src.is_dir() and not path.is_file():
        raise InputError(f"{src}: no lesion_outcomes.csv (no patient of the batch has two time points of one task "
                         "and modality)")
    t = load_table(path, "lesion outcomes table")
    res = outcomes.lesion_outcomes(t, where=args.where)
    return _finish(args, res, _inputs(t))


def register(sub) -> None:
    p = sub.add_parser("stats", help="cohort statistics: groups, agreement, modalities, prevalence, change, outcomes",
                       description="Statistics of the two source studies on a cohort table (patients.csv of a batch, "
                                   "or any CSV with one row per patient).")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    g = kinds.add_parser("groups", help="variables by group: n (%%) / mean ± SD and P (study 2 Tables 1-2)",
                         description="Per variable, n (%) or mean ± SD in each group and in total, and P with the test "
                                     "named. Default tests as study 2: Pearson chi-squared without continuity "
                                     "correction, Student's t with pooled variance.")
    _common(g, "patients.csv, a batch folder, or any CSV with one row per patient")
    g.add_argument("--by", required=True, metavar="COLUMN", help="the group column (e.g. subset: lcSSc/dcSSc)")
    g.add_argument("--vars", metavar="A,B,...", help="variables to compare (default: every other column)")
    g.add_argument("--categorical", metavar="A,B,...", help="treat these numeric columns as categories")
    g.add_argument("--groups", metavar="G1,G2,...", help="which groups, in this order")
    g.add_argument("--categorical-test", choices=groups.CATEGORICAL_TESTS, default="chi2")
    g.add_argument("--continuous-test", choices=groups.CONTINUOUS_TESTS, default="student")
    g.set_defaults(func=run_groups)

    a = kinds.add_parser("agreement", help="reader agreement: kappa (CI, P, disagreements, k×k), ICC, Bland-Altman",
                         description="Intra-reader (--between read) or inter-reader (--between reader) agreement per "
                                     "patient, or two columns of a wide table (--pair A,B).")
    _common(a, "patients.csv, a batch folder, or a CSV")
    a.add_argument("--var", action="append", metavar="COLUMN", help="variable read twice (repeatable)")
    a.add_argument("--between", metavar="COLUMN", help="reader (inter-reader) or read (intra-reader)")
    a.add_argument("--levels", metavar="A,B", help="the two values of --between to compare")
    a.add_argument("--pair", action="append", metavar="A,B", help="wide table: compare column A with column B")
    a.add_argument("--kind", choices=agreement.KINDS, default="auto",
                   help="auto: 0/1 or text -> kappa, numbers -> ICC + Bland-Altman; ordinal adds weighted kappa")
    a.add_argument("--weights", choices=agreement.WEIGHTS, help="weighted kappa weights for --kind ordinal (default linear)")
    a.add_argument("--categories", metavar="C1,C2,...", help="ordered categories (ordinal grades)")
    a.add_argument("--loa-multiplier", type=in_range(0.1, 10), default=1.96, metavar="K", help="limits of agreement = bias ± this × SD (1.96)")
    a.set_defaults(func=run_agreement)

    m = kinds.add_parser("modalities", help="XR vs CT vs MRI: Friedman, Wilcoxon/paired t, Spearman (study 1)",
                         description="With a batch folder (or hands.csv/digits.csv): lesions per hand across "
                                     "modalities (Friedman), CT vs MRI volume per finger (Wilcoxon signed-rank and "
                                     "paired t), Spearman rho of XR area with CT/MRI volume and projected area. With "
                                     "--friedman/--pair/--correlate: the same tests on columns of any table.")
    _common(m, "a batch folder, hands.csv, or any wide CSV")
    m.add_argument("--digits", metavar="CSV", help="per-finger table (default: digits.csv beside TABLE)")
    m.add_argument("--friedman", metavar="A,B,C", help="wide table: Friedman test across these columns")
    m.add_argument("--pair", action="append", metavar="A,B", help="wide table: paired comparison of two columns")
    m.add_argument("--correlate", action="append", metavar="A,B", help="wide table: Spearman rho of two columns")
    m.set_defaults(func=run_modalities)

    v = kinds.add_parser("prevalence", help="spine: patients with >= 1 calcification per segment, sub-site, level "
                                            "(n/N, %%, Wilson 95%% CI) and the level × segment chart",
                         description="N counts only patients in whom the level was assessed. Subgroups with --where "
                                     "(e.g. --where spine_coverage=TAP).")
    _common(v, "patients.csv or a batch folder")
    v.add_argument("--levels", metavar="CSV", help="per-level table (default: levels.csv beside TABLE)")
    v.set_defaults(func=run_prevalence)

    c = kinds.add_parser("change", help="baseline vs follow-up per patient: %% change and progression/stable/improvement",
                         description="% change = 100 (follow-up - baseline)/baseline; progression > +LIMIT%, "
                                     "improvement < -LIMIT%, stable in between (limits included). Baseline 0: 0 -> 0 "
                                     "stable, 0 -> >0 progression without a %.")
    _common(c, "patients.csv, a batch folder, or a CSV with patient_id and time_point")
    c.add_argument("--value", required=True, metavar="COLUMN", help="total calcinosis, e.g. hand_xr_total_area_mm2")
    c.add_argument("--baseline", metavar="TIME", help="baseline time point (default: 'baseline')")
    c.add_argument("--followup", metavar="TIME", help="follow-up time point (default: the other one)")
    c.add_argument("--time-column", default="time_point")
    c.add_argument("--limit", type=in_range(0.001, 1000, "%"), default=25.0, metavar="PCT", help="class limit in %% (default 25)")
    c.set_defaults(func=run_change)

    o = kinds.add_parser("outcomes", help="per-lesion outcomes per follow-up: new, resolved, grown, shrunk lesions; "
                                          "totals stable while lesions changed",
                         description="From lesion_outcomes.csv of a batch (each later time point's lesions followed "
                                     "from the patient's baseline): per follow-up time point, patients with new / "
                                     "resolved lesions (n, %, Wilson 95% CI), lesions per patient, lesion classes, "
                                     "patient classes, patients whose total is stable while their lesions changed, "
                                     "and the change split into matched, new and resolved lesions.")
    _common(o, "a batch folder or its lesion_outcomes.csv")
    o.set_defaults(func=run_outcomes)


def _finish(args, res: StatsResult, inputs: dict) -> int:
    if args.outdir:
        check_not_an_input(args.outdir, [args.table, getattr(args, "levels", None), getattr(args, "digits", None)])
        check_output_free(args.outdir, args.force)
    if not getattr(args, "quiet", False) or not args.outdir:
        print(res.full_markdown())
    if args.outdir:
        _figures(res)
        with OutputTransaction(args.outdir, force=args.force) as out:
            for name, t in res.tables.items():
                out.write_table(t, f"{name}.csv")
            out.write_text(res.full_markdown(), f"{res.name}.md")
            from calcinosis.cohort.report import ANALYSIS_TITLES, HtmlDoc
            import datetime as _dt
            title = ANALYSIS_TITLES.get(res.name, res.name)
            doc = HtmlDoc(title)
            doc.h(1, title)
            doc.p(f"calcinosis stats {res.name}; made {_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}"
                  f"; tables in {res.name}.csv and tables.xlsx.", "meta")
            doc.h(2, "Results")
            doc.stats(res)
            if res.figures:
                doc.h(2, "Figures")
            for fname, png in res.figures.items():
                doc.img(png, fname)
            if res.parameters:
                doc.h(2, "Parameters")
                doc.params(res.parameters)
            out.write_text(doc.render(), f"{res.name}.html")
            for fname, png in res.figures.items():
                out.write_bytes(png, fname)
            out.write_workbook()
            out.write_json(build_record(f"stats {res.name}", inputs, res.parameters,
                                        {k: v for k, v in res.summary.items() if isinstance(v, (int, float, str, dict))},
                                        res.notes, outputs=out.written + ["provenance.json"]), "provenance.json")
        if not getattr(args, "quiet", False):
            print(f"results in {args.outdir}/{res.name}.csv (.md, .html)")
    return 0


def _figures(res: StatsResult) -> None:
    from calcinosis.cohort import figures
    planned = {}
    if res.name == "prevalence":
        lr = [r for r in res.tables["prevalence"].rows if r["scope"] in ("level", "level_segment")]
        if lr:
            planned["levels_by_segment.png"] = lambda: figures.level_segment_chart(lr, "Level × segment")
    elif res.name == "agreement":
        for name, (a, b, ba, labs) in res.plot_data.items():
            planned[f"bland_altman_{name}.png"] = lambda a=a, b=b, ba=ba, labs=labs, name=name: \
                figures.bland_altman_plot(a, b, ba, labs, name)
    elif res.name == "change":
        planned["change.png"] = lambda: figures.change_plot(res.tables["change"].rows, res.parameters["value"],
                                                            res.parameters["limit_pct"])
    left_out, reason = [], ""
    for fname, make in planned.items():
        try:
            res.figures[fname] = make()
        except figures.FiguresUnavailable as e:
            left_out.append(fname)
            reason = str(e)
    if left_out:
        res.notes.append(f"Figures left out, {reason}: {', '.join(left_out)}")


def _inputs(*tables) -> dict:
    from calcinosis.core.dicom_meta import file_content_id
    out = {}
    for t in tables:
        if t is not None and t.name and Path(t.name).is_file():
            out[Path(t.name).name] = {"input_id": file_content_id([Path(t.name)])}
    return out


def run_groups(args) -> int:
    t = load_table(args.table)
    res = groups.compare_groups(t, args.by, _list(args.vars) or None, categorical_test_name=args.categorical_test,
                                continuous_test_name=args.continuous_test, categorical=_list(args.categorical),
                                group_order=_list(args.groups) or None, where=args.where)
    return _finish(args, res, _inputs(t))


def run_agreement(args) -> int:
    t = load_table(args.table)
    pairs = [_pair(x) for x in args.pair] if args.pair else None
    res = agreement.reader_agreement(t, args.var or [], between=args.between,
                                     levels=list(_pair(args.levels)) if args.levels else None, pair_columns=pairs,
                                     kind=args.kind, weights=args.weights, where=args.where,
                                     categories=_list(args.categories) or None, loa_multiplier=args.loa_multiplier)
    return _finish(args, res, _inputs(t))


def run_modalities(args) -> int:
    if args.friedman or args.pair or args.correlate:
        t = load_table(args.table)
        res = modalities.compare_columns(t, friedman_columns=_list(args.friedman),
                                         pairs=[_pair(x) for x in args.pair or []],
                                         correlations=[_pair(x) for x in args.correlate or []], where=args.where)
        return _finish(args, res, _inputs(t))
    src = Path(args.table)
    hands_path = src / "hands.csv" if src.is_dir() else src
    hands = load_table(hands_path, "per-hand table") if hands_path.is_file() else None
    if src.is_dir() and hands is None:
        raise InputError(f"{src}: no hands.csv (the batch ran no hand case)")
    dpath = Path(args.digits) if args.digits else (src / "digits.csv" if src.is_dir() else src.with_name("digits.csv"))
    digits = load_table(dpath, "per-finger table") if dpath.is_file() else None
    if args.digits and digits is None:
        raise InputError(f"{dpath}: not found")
    res = modalities.compare_modalities(hands, digits, where=args.where)
    return _finish(args, res, _inputs(hands, digits))


def run_prevalence(args) -> int:
    t = load_table(args.table)
    lp = Path(args.levels) if args.levels else batch_sibling(t, "levels.csv")
    levels = load_table(lp, "levels table") if lp is not None else None
    res = prevalence.prevalence(t, levels, where=args.where)
    return _finish(args, res, _inputs(t, levels))


def run_change(args) -> int:
    t = load_table(args.table)
    res = change.change_table(t, args.value, baseline=args.baseline, followup=args.followup,
                              time_column=args.time_column, limit_pct=args.limit, where=args.where)
    return _finish(args, res, _inputs(t))
