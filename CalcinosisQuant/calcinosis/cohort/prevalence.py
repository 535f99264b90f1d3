"""Prevalence and distribution of spine calcifications (study 2, section 3.3 and Figure 3).

Per segment, sub-site and disco-vertebral level: patients with ≥ 1 calcification, n/N (%)
with a **Wilson score 95% CI** (Wilson 1927; Newcombe 1998 method 3, no continuity
correction).  N counts **only patients in whom that level was assessed** (a level outside
the scan is *not assessed*, never "no calcification"); for whole-spine findings N is the
patients with at least one level assessed.  Also the number of calcifications per segment,
sub-site, pattern and level × segment (the Figure 3 chart).
"""

from __future__ import annotations

import math
from typing import Sequence

from scipy import stats as sps

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table
from .contract import LEVELS, PATTERNS, SEGMENTS, SUBSITES, level_index
from .data import KEY_COLUMNS, apply_where, as_binary, describe_source, is_blank, one_row_per, row_label
from .formatting import StatsResult, fmt_num, html_table, markdown_table


def wilson_ci(n: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for n successes out of ``total`` (as proportions)."""
    if total <= 0:
        return float("nan"), float("nan")
    if n < 0 or n > total:
        raise ValueError(f"n={n} outside 0..{total}")
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = n / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    if n == 0:
        lo = 0.0
    if n == total:
        hi = 1.0
    return lo, hi


PREVALENCE_COLUMNS = [
    Column("scope", "string", "", "patient | segment | subsite | pattern | level | level_segment"),
    Column("item", "string", "", "Finding (segment, sub-site, pattern, or 'any calcification')"),
    Column("level", "string", "", "Disco-vertebral level (per-level rows)"),
    Column("n", "int", "", "Patients with >= 1 calcification"),
    Column("N", "int", "", "Patients in whom it could be seen (level assessed)"),
    Column("percent", "double", "%", "n / N x 100"),
    Column("ci_low_pct", "double", "%", "Wilson 95% CI, lower bound"),
    Column("ci_high_pct", "double", "%", "Wilson 95% CI, upper bound"),
    Column("calcifications", "int", "", "Number of calcifications (all patients in N)"),
    Column("calcifications_pct", "double", "%", "Share of all calcifications of the cohort"),
    Column("source", "string", "", "Columns the numbers come from"),
]


def _col(table: Table, name: str) -> str | None:
    for cand in (f"spine_{name}", name):
        if table.has_column(cand):
            return cand
    return None


def prevalence(patients: Table, levels: Table | None = None, *, where: Sequence[str] | None = None,
               confidence: float = 0.95, id_column: str = "patient_id") -> StatsResult:
    """Prevalence tables from the cohort ``patients.csv`` (columns ``spine_any_*`` /
    ``spine_count_*``, or the bare ``any_*`` of spine ``patient.csv`` rows) and the cohort
    ``levels.csv`` (one row per patient × level)."""
    src = describe_source(patients, where)
    patients = apply_where(patients, where)
    one_row_per(patients, id_column, "prevalence needs one reading per patient")
    la = _col(patients, "levels_assessed")
    anycol = _col(patients, "any_calcification")
    if anycol is None:
        raise InputError(f"{patients.name or 'table'}: no spine columns (spine_any_calcification ...): run spine "
                         f"cases in the batch, or give a table of spine patient.csv rows")
    rows = []
    for i, r in enumerate(patients.rows):
        if is_blank(r[anycol]):
            continue
        if la is not None and not is_blank(r[la]) and float(r[la]) <= 0:
            continue
        rows.append((i, r))
    if len(rows) < 2:
        raise InputError(f"{src}: {len(rows)} patient(s) with a spine reading (at least one level assessed); at least 2 "
                         f"are needed")
    N = len(rows)
    out: list[dict] = []

    def flag(i, r, col):
        try:
            return as_binary(r[col])
        except ValueError:
            raise InputError(f"{row_label(patients, i)}, column {col}: {r[col]!r} is not 0/1") from None

    def count(r, col):
        v = r.get(col)
        return 0 if is_blank(v) else int(float(v))

    total_col = _col(patients, "calcification_count")
    total_calc = sum(count(r, total_col) for _, r in rows) if total_col else None

    def add(scope, item, anyname, countname, level=""):
        ac = _col(patients, anyname)
        cc = _col(patients, countname) if countname else None
        if ac is None and cc is None:
            return
        vals = [(flag(i, r, ac) if ac else int(count(r, cc) > 0)) for i, r in rows]
        vals = [v for v in vals if v is not None]
        n = int(sum(vals))
        lo, hi = wilson_ci(n, len(vals), confidence)
        calc = sum(count(r, cc) for _, r in rows) if cc else None
        out.append({"scope": scope, "item": item, "level": level, "n": n, "N": len(vals),
                    "percent": 100.0 * n / len(vals) if vals else None, "ci_low_pct": 100 * lo, "ci_high_pct": 100 * hi,
                    "calcifications": calc,
                    "calcifications_pct": (100.0 * calc / total_calc if calc is not None and total_calc else None),
                    "source": ", ".join(c for c in (ac, cc) if c)})

    add("patient", "any calcification", "any_calcification", "calcification_count")
    for s in SEGMENTS:
        add("segment", s, f"any_{s}", f"count_{s}")
    add("segment", "all three segments", "any_all_three_segments", None)
    for s in SUBSITES:
        if s in SEGMENTS:
            continue  # same column names as the segment (contract): reported on the segment row
        add("subsite", s, f"any_{s}", f"count_{s}")
    for p in PATTERNS:
        add("pattern", p, f"any_{p}", f"count_{p}")

    level_rows: list[dict] = []
    if levels is not None:
        level_rows = _level_prevalence(levels, [r for _, r in rows], confidence)
        out += level_rows
    t = Table(PREVALENCE_COLUMNS, out, "prevalence", f"Prevalence of spine calcifications ({src})")

    header = ["Finding", "n/N", "% (95% CI)", "Calcifications (%)"]
    text = []
    for r in out:
        if r["scope"] in ("level", "level_segment"):
            continue
        text.append([_label(r), f"{r['n']}/{r['N']}", f"{fmt_num(r['percent'])} ({fmt_num(r['ci_low_pct'])}–{fmt_num(r['ci_high_pct'])})",
                     "" if r["calcifications"] is None else (f"{r['calcifications']}" + (
                         f" ({fmt_num(r['calcifications_pct'])})" if r["calcifications_pct"] is not None else ""))])
    md = ["### Prevalence of spine calcifications\n", markdown_table(header, text)]
    ht = ["<h3>Prevalence of spine calcifications</h3>", html_table(header, text)]
    if level_rows:
        lh = ["Level", "N assessed", "any: n (%)"] + [f"{s}: n (%)" for s in SEGMENTS] + ["calcifications"] + \
             [f"{s} calcifications" for s in SEGMENTS]
        ltext = []
        for lv in LEVELS:
            rr = [r for r in level_rows if r["level"] == lv]
            if not rr:
                continue
            tot = next(r for r in rr if r["scope"] == "level")
            segs = {r["item"]: r for r in rr if r["scope"] == "level_segment"}
            ltext.append([lv, str(tot["N"]), _np(tot)] + [_np(segs[s]) if s in segs else "" for s in SEGMENTS]
                         + [str(tot["calcifications"] or 0)]
                         + [str(segs[s]["calcifications"] or 0) if s in segs else "" for s in SEGMENTS])
        md += ["\n### Per level (N = patients in whom the level was assessed)\n", markdown_table(lh, ltext)]
        ht += ["<h3>Per level (N = patients in whom the level was assessed)</h3>", html_table(lh, ltext)]
    notes = [f"Sub-site 'intracanal' shares its column names with the intracanal segment in the table contract "
             f"(count_intracanal, any_intracanal): it is reported once, as the segment (intracanal + foraminal).",
             f"Source: {src}; {N} patients with at least one level assessed. 95% CI: Wilson score interval.",
             "Per level, only patients in whom that level was assessed count in N (a level outside the scan is not "
             "assessed, never 'no calcification')."]
    return StatsResult("prevalence", {"prevalence": t}, "\n".join(md), "\n".join(ht), notes=notes,
                       parameters={"where": list(where or []), "confidence": confidence},
                       summary={"n_patients": N, "total_calcifications": total_calc})


def _np(r: dict) -> str:
    return f"{r['n']} ({fmt_num(r['percent'])})" if r["N"] else "-"


def _label(r: dict) -> str:
    item = r["item"].replace("_", " ")
    return {"patient": item, "segment": f"segment: {item}", "subsite": f"  sub-site: {item}",
            "pattern": f"pattern: {item}"}.get(r["scope"], item)


def _level_prevalence(levels: Table, patient_rows: list[dict], confidence: float) -> list[dict]:
    for c in ("level", "status", "count_total"):
        if not levels.has_column(c):
            raise InputError(f"{levels.name or 'levels table'}: no column {c!r} (the spine levels.csv contract)")
    keys = [k for k in KEY_COLUMNS if levels.has_column(k) and patient_rows and k in patient_rows[0]]
    chosen = {tuple(str(r[k]) for k in keys) for r in patient_rows}
    by_level: dict[str, list[dict]] = {}
    unknown = set()
    for i, r in enumerate(levels.rows):
        if keys and tuple(str(r[k]) for k in keys) not in chosen:
            continue
        lv = r["level"]
        if lv not in LEVELS:
            unknown.add(lv)
            continue
        st = str(r["status"]).strip()
        if st not in ("assessed", "not_assessed"):
            raise InputError(f"{row_label(levels, i)}, column status: {r['status']!r} is not assessed|not_assessed")
        if st == "assessed":
            by_level.setdefault(lv, []).append(r)
    if unknown:
        raise InputError(f"{levels.name or 'levels table'}: unknown level(s) {sorted(unknown)} (expected C7-T1 ... L5-S1)")
    out = []
    for lv in sorted(by_level, key=level_index):
        rs = by_level[lv]
        N = len(rs)

        def cnt(r, c):
            v = r.get(c)
            return 0 if is_blank(v) else int(float(v))
        n = sum(1 for r in rs if cnt(r, "count_total") > 0)
        lo, hi = wilson_ci(n, N, confidence)
        out.append({"scope": "level", "item": "any calcification", "level": lv, "n": n, "N": N,
                    "percent": 100.0 * n / N, "ci_low_pct": 100 * lo, "ci_high_pct": 100 * hi,
                    "calcifications": sum(cnt(r, "count_total") for r in rs), "source": "levels.csv count_total"})
        for s in SEGMENTS:
            c = f"count_{s}"
            if not levels.has_column(c):
                continue
            n = sum(1 for r in rs if cnt(r, c) > 0)
            lo, hi = wilson_ci(n, N, confidence)
            out.append({"scope": "level_segment", "item": s, "level": lv, "n": n, "N": N, "percent": 100.0 * n / N,
                        "ci_low_pct": 100 * lo, "ci_high_pct": 100 * hi, "calcifications": sum(cnt(r, c) for r in rs),
                        "source": f"levels.csv {c}"})
    return out
