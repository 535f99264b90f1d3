"""Group comparison in the layout of study 2's Tables 1 and 2.

Per variable: n (%) or mean ± SD in each group and in total, and P.  Defaults follow the
study (and SPSS/SAS defaults for such tables): **Pearson's chi-squared without continuity
correction** for categorical variables and **Student's t-test with pooled variance** for
continuous ones.  Options: Fisher's exact test, Welch's t-test, Mann–Whitney U.  With more
than two groups the same choices become chi-squared on the r×c table (Fisher: exact r×c
when scipy supports it), one-way ANOVA (the pooled-variance generalisation of Student's t),
Welch's ANOVA and Kruskal–Wallis.  The test that produced each P is named on its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table
from .data import ID_LIKE, apply_where, as_binary, check_finite, describe_source, is_blank, is_number, one_row_per, require_column, row_label, stray_text, stray_text_error
from .titles import human_title
from .formatting import StatsResult, digits_for, fmt_mean_sd, fmt_median_iqr, fmt_n_pct, fmt_p, html_table, markdown_table

CATEGORICAL_TESTS = ("chi2", "fisher")
CONTINUOUS_TESTS = ("student", "welch", "mannwhitney")

#: How each P is obtained, named on its row (column p_method)
P_CHI2 = "chi-squared distribution, no continuity correction"
P_FISHER = "exact: sum over tables with the observed margins no more probable than the observed one (two-sided)"
P_T = "t distribution (two-sided)"
P_F = "F distribution"
P_MW_EXACT = "exact: null distribution of U enumerated (two-sided; no ties, both groups < 50)"
P_MW_NORMAL = "normal approximation with continuity and tie correction (two-sided)"
P_KW = "chi-squared approximation, tie-corrected"
#: The level of the row that counts, per group, the patients without a value
MISSING_LEVEL = "(missing)"
#: Mann-Whitney P exact below this group size when there are no ties (as R's wilcox.test)
MW_EXACT_BELOW = 50


@dataclass
class TestResult:
    test: str            # the name printed on the row
    statistic: float | None
    df: float | None
    p_value: float | None
    note: str = ""
    p_method: str = ""   # how P was obtained: exact, which approximation, which correction


# ---------------------------------------------------------------------- categorical tests
def pearson_chi2(table: np.ndarray) -> TestResult:
    """Pearson's chi-squared test of independence, no continuity correction."""
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return TestResult("Pearson chi-squared", None, None, None, "not computed: a single category or group")
    n = t.sum()
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    df = (t.shape[0] - 1) * (t.shape[1] - 1)
    p = float(sps.chi2.sf(chi2, df))
    small = int((expected < 5).sum())
    note = (f"expected count < 5 in {small} of {expected.size} cells: consider Fisher's exact test"
            if small else "")
    return TestResult("Pearson chi-squared", chi2, float(df), p, note, P_CHI2)


def fisher_exact(table: np.ndarray) -> TestResult:
    """Fisher's exact test (2×2; r×c where scipy offers it)."""
    t = np.asarray(table, dtype=np.int64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return TestResult("Fisher exact", None, None, None, "not computed: a single category or group")
    if t.shape == (2, 2):
        res = sps.fisher_exact(t)
        return TestResult("Fisher exact", None, None, float(res.pvalue), "", P_FISHER)
    p = fisher_exact_rxc(t)
    if p is not None:
        return TestResult("Fisher exact (r×c, Freeman-Halton, exact)", None, None, p, "", P_FISHER)
    # too many tables to enumerate: a Monte Carlo estimate, named as one
    try:
        res = sps.fisher_exact(t, method=sps.MonteCarloMethod(n_resamples=FISHER_MC_RESAMPLES,
                                                               rng=np.random.default_rng(FISHER_MC_SEED)))
    except (ValueError, TypeError, NotImplementedError, AttributeError) as e:
        raise InputError(f"Fisher's exact test on a {t.shape[0]}×{t.shape[1]} table is too large to enumerate and "
                         f"this scipy has no Monte Carlo version ({e}); use the chi-squared test") from None
    pv = float(res.pvalue)
    se = math.sqrt(max(pv * (1 - pv), 0.0) / FISHER_MC_RESAMPLES)
    return TestResult(f"Fisher (r×c, Monte Carlo: {FISHER_MC_RESAMPLES:,} tables, seed {FISHER_MC_SEED}, SE {se:.2g})",
                      None, None, pv, f"more than {FISHER_MAX_TABLES:,} tables with these margins: P estimated by "
                                      "Monte Carlo, not exact",
                      f"Monte Carlo estimate ({FISHER_MC_RESAMPLES:,} random tables with the observed margins, seed "
                      f"{FISHER_MC_SEED}, SE {se:.2g})")


#: Tables with the observed margins enumerated at most for the exact r×c test …
FISHER_MAX_TABLES = 1_000_000
#: … beyond which the P is a Monte Carlo estimate with these settings (named on the row)
FISHER_MC_RESAMPLES, FISHER_MC_SEED = 99_999, 0


def fisher_exact_rxc(table: np.ndarray, max_tables: int = FISHER_MAX_TABLES) -> float | None:
    """Fisher's exact test of an r×c table (Freeman-Halton): the probability, under fixed
    margins, of every table no more probable than the observed one (relative tolerance
    1e-7, as R's fisher.test), by enumerating the tables column by column.  None when the
    margins allow more than ``max_tables`` tables (about a second per 400,000 here)."""
    t = np.asarray(table, dtype=np.int64)
    if t.shape[0] > t.shape[1]:
        t = t.T                                    # compositions over the shorter side
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    lf = [math.lgamma(k + 1) for k in range(int(t.sum()) + 1)]
    const = sum(lf[int(r)] for r in rows) + sum(lf[int(c)] for c in cols) - lf[int(t.sum())]
    log_obs = const - sum(lf[int(x)] for x in t.ravel())
    limit = log_obs + math.log1p(1e-7)
    total = 0.0
    visited = 0

    class _TooMany(Exception):
        pass

    def parts(n: int, caps: tuple) -> list:
        """Every way to put n into len(caps) cells, cell i at most caps[i]."""
        if len(caps) == 1:
            return [(n,)] if n <= caps[0] else []
        out = []
        rest_cap = sum(caps[1:])
        for k in range(max(0, n - rest_cap), min(n, caps[0]) + 1):
            for tail in parts(n - k, caps[1:]):
                out.append((k,) + tail)
        return out

    def walk(j: int, remaining: tuple, logp: float) -> None:
        nonlocal total, visited
        if j == len(cols) - 1:                      # the last column is what remains
            visited += 1
            if visited > max_tables:
                raise _TooMany
            lp = logp - sum(lf[x] for x in remaining)
            if lp <= limit:
                total += math.exp(lp)
            return
        for col in parts(int(cols[j]), remaining):
            walk(j + 1, tuple(r - x for r, x in zip(remaining, col)), logp - sum(lf[x] for x in col))

    try:
        walk(0, tuple(int(r) for r in rows), const)
    except _TooMany:
        return None
    return min(1.0, total)


# ---------------------------------------------------------------------- continuous tests
def student_t(a: Sequence[float], b: Sequence[float]) -> TestResult:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return TestResult("Student t (pooled)", None, None, None, "not computed: fewer than 2 values in a group")
    res = sps.ttest_ind(a, b, equal_var=True)
    return TestResult("Student t (pooled)", float(res.statistic), float(len(a) + len(b) - 2), _p(res.pvalue), "", P_T)


def welch_t(a: Sequence[float], b: Sequence[float]) -> TestResult:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return TestResult("Welch t", None, None, None, "not computed: fewer than 2 values in a group")
    res = sps.ttest_ind(a, b, equal_var=False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else float("nan")
    return TestResult("Welch t", float(res.statistic), float(df), _p(res.pvalue), "", P_T + ", Welch-Satterthwaite df")


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> TestResult:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 1 or len(b) < 1:
        return TestResult("Mann-Whitney U", None, None, None, "not computed: an empty group")
    # the method chosen here, not by scipy's "auto" (exact only below 8): exact as R's
    # wilcox.test when there are no ties and both groups are under 50, else the normal
    # approximation with continuity and tie correction
    ties = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
    exact = not ties and len(a) < MW_EXACT_BELOW and len(b) < MW_EXACT_BELOW
    res = sps.mannwhitneyu(a, b, alternative="two-sided", method="exact" if exact else "asymptotic",
                           use_continuity=True)
    note = "" if exact or not ties else "ties: P from the normal approximation"
    return TestResult("Mann-Whitney U", float(res.statistic), None, _p(res.pvalue), note,
                      P_MW_EXACT if exact else P_MW_NORMAL)


def anova_oneway(groups: Sequence[Sequence[float]]) -> TestResult:
    gs = [np.asarray(g, float) for g in groups]
    if any(len(g) < 1 for g in gs) or sum(len(g) for g in gs) - len(gs) < 1:
        return TestResult("one-way ANOVA", None, None, None, "not computed: too few values")
    res = sps.f_oneway(*gs)
    return TestResult("one-way ANOVA", float(res.statistic), float(len(gs) - 1), _p(res.pvalue), "",
                      f"{P_F} on ({len(gs) - 1}, {sum(len(g) for g in gs) - len(gs)}) df")


def welch_anova(groups: Sequence[Sequence[float]]) -> TestResult:
    """Welch's heteroscedastic one-way ANOVA (Welch 1951); for two groups it equals Welch's t (F = t²)."""
    gs = [np.asarray(g, float) for g in groups]
    if any(len(g) < 2 for g in gs):
        return TestResult("Welch ANOVA", None, None, None, "not computed: fewer than 2 values in a group")
    k = len(gs)
    n = np.array([len(g) for g in gs], float)
    m = np.array([g.mean() for g in gs])
    v = np.array([g.var(ddof=1) for g in gs])
    if np.any(v <= 0):
        return TestResult("Welch ANOVA", None, None, None, "not computed: a group without spread")
    w = n / v
    mw = (w * m).sum() / w.sum()
    lam = ((1 - w / w.sum()) ** 2 / (n - 1)).sum()
    f = ((w * (m - mw) ** 2).sum() / (k - 1)) / (1 + 2 * (k - 2) / (k ** 2 - 1) * lam)
    df2 = (k ** 2 - 1) / (3 * lam)
    return TestResult("Welch ANOVA", float(f), float(k - 1), float(sps.f.sf(f, k - 1, df2)), "",
                      f"{P_F} on ({k - 1}, {df2:.2f}) df (Welch 1951)")


def kruskal(groups: Sequence[Sequence[float]]) -> TestResult:
    gs = [np.asarray(g, float) for g in groups]
    try:
        res = sps.kruskal(*gs)
    except ValueError as e:
        return TestResult("Kruskal-Wallis", None, None, None, f"not computed: {e}")
    return TestResult("Kruskal-Wallis", float(res.statistic), float(len(gs) - 1), _p(res.pvalue), "", P_KW)


def _p(p) -> float | None:
    p = float(p)
    return None if math.isnan(p) else p


def categorical_test(table: np.ndarray, which: str) -> TestResult:
    if which == "fisher":
        return fisher_exact(table)
    return pearson_chi2(table)


def continuous_test(groups: Sequence[Sequence[float]], which: str) -> TestResult:
    if len(groups) == 2:
        return {"student": student_t, "welch": welch_t, "mannwhitney": mann_whitney}[which](*groups)
    return {"student": anova_oneway, "welch": welch_anova, "mannwhitney": kruskal}[which](groups)


# ---------------------------------------------------------------------- the table
def _kind_of(values: list) -> str:
    vals = [v for v in values if not is_blank(v)]
    if not vals:
        return "empty"
    try:
        if all(as_binary(v) is not None for v in vals):
            return "binary"
    except ValueError:
        pass
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return "continuous"
    return "categorical"


def compare_groups(table: Table, by: str, variables: Sequence[str] | None = None, *,
                   categorical_test_name: str = "chi2", continuous_test_name: str = "student",
                   categorical: Sequence[str] = (), group_order: Sequence[str] | None = None,
                   where: Sequence[str] | None = None, id_column: str = "patient_id") -> StatsResult:
    """Study-2-style table of ``variables`` by the groups of column ``by``."""
    if categorical_test_name not in CATEGORICAL_TESTS:
        raise InputError(f"--categorical-test: {categorical_test_name!r} is not one of {', '.join(CATEGORICAL_TESTS)}")
    if continuous_test_name not in CONTINUOUS_TESTS:
        raise InputError(f"--continuous-test: {continuous_test_name!r} is not one of {', '.join(CONTINUOUS_TESTS)}")
    source = describe_source(table, where)
    table = apply_where(table, where)
    require_column(table, by, "the group column given with --by")
    one_row_per(table, id_column, "a group comparison needs one row per patient")
    rows = [r for r in table.rows if not is_blank(r[by])]
    if len(rows) < 2:
        raise InputError(f"{table.name or 'table'}: {len(rows)} patient(s) with a value in {by!r}; at least 2 are needed")
    labels = sorted({_label(r[by]) for r in rows}, key=_natural)
    if group_order:
        unknown = [g for g in group_order if g not in labels]
        if unknown:
            raise InputError(f"--groups: {unknown[0]!r} is not a value of column {by!r} (values: {', '.join(labels)})")
        labels = list(group_order)
        rows = [r for r in rows if _label(r[by]) in labels]
    if len(labels) < 2:
        raise InputError(f"column {by!r} has a single group ({labels[0]!r}) in {source}: a comparison needs at least 2")
    if variables:
        for v in variables:
            require_column(table, v, "a variable given with --vars")
        variables = list(variables)
    else:
        variables = [c for c in table.column_names if c != by and c not in ID_LIKE and c != id_column]
    grouped = {g: [r for r in rows if _label(r[by]) == g] for g in labels}
    n_groups = {g: len(grouped[g]) for g in labels}

    out_rows: list[dict] = []
    detail_rows: list[dict] = []
    notes: list[str] = []
    for var in variables:
        values = [r[var] for r in rows]
        kind = "categorical" if var in categorical else _kind_of(values)
        if kind == "categorical" and var not in categorical:
            i = stray_text(table, var)
            if i is not None:
                raise stray_text_error(table, var, i, f"give --categorical {var}")
        if kind == "empty":
            notes.append(f"{var}: no values, left out")
            continue
        n_missing = sum(1 for v in values if is_blank(v))
        if kind == "binary":
            counts = {g: [as_binary(r[var]) for r in grouped[g] if not is_blank(r[var])] for g in labels}
            ct = np.array([[sum(counts[g]), len(counts[g]) - sum(counts[g])] for g in labels])
            res = categorical_test(ct, categorical_test_name)
            allv = [x for g in labels for x in counts[g]]
            row = {"variable": var, "level": "yes (1)", "kind": "binary", "summary": "n (%)",
                   "total": fmt_n_pct(sum(allv), len(allv))}
            for g in labels:
                row[g] = fmt_n_pct(sum(counts[g]), len(counts[g]))
                detail_rows.append({"variable": var, "level": "1", "group": g, "n": sum(counts[g]),
                                    "N": len(counts[g]), "percent": _pct(sum(counts[g]), len(counts[g]))})
            detail_rows.append({"variable": var, "level": "1", "group": "total", "n": sum(allv), "N": len(allv),
                                "percent": _pct(sum(allv), len(allv))})
            out_rows.append(_with_test(row, res, n_missing))
        elif kind == "categorical":
            levels = sorted({_label(v) for v in values if not is_blank(v)}, key=_natural)
            if len(levels) > 30:
                raise InputError(f"column {var!r} has {len(levels)} different values: it looks like an identifier or a "
                                 f"number stored as text; leave it out of --vars")
            by_g = {g: [_label(r[var]) for r in grouped[g] if not is_blank(r[var])] for g in labels}
            ct = np.array([[by_g[g].count(lv) for g in labels] for lv in levels])
            res = categorical_test(ct.T, categorical_test_name)
            head = {"variable": var, "level": "", "kind": "categorical", "summary": "n (%)", "total": ""}
            for g in labels:
                head[g] = ""
            out_rows.append(_with_test(head, res, n_missing))
            all_l = [x for g in labels for x in by_g[g]]
            for li, lv in enumerate(levels):
                row = {"variable": var, "level": lv, "kind": "categorical", "summary": "n (%)",
                       "total": fmt_n_pct(all_l.count(lv), len(all_l)), "p_value": None, "p": "", "test": "",
                       "statistic": None, "df": None,
                       "n_missing": None, "note": ""}
                for gi, g in enumerate(labels):
                    row[g] = fmt_n_pct(int(ct[li, gi]), len(by_g[g]))
                    detail_rows.append({"variable": var, "level": lv, "group": g, "n": int(ct[li, gi]),
                                        "N": len(by_g[g]), "percent": _pct(int(ct[li, gi]), len(by_g[g]))})
                detail_rows.append({"variable": var, "level": lv, "group": "total", "n": all_l.count(lv),
                                    "N": len(all_l), "percent": _pct(all_l.count(lv), len(all_l))})
                out_rows.append(row)
        else:
            check_finite(table, var)
            try:
                vals = {g: [float(r[var]) for r in grouped[g] if not is_blank(r[var])] for g in labels}
            except (TypeError, ValueError):
                bad = next(i for i, r in enumerate(table.rows) if not is_blank(r[var]) and not is_number(r[var]))
                raise InputError(f"{row_label(table, bad)}, column {var}: {table.rows[bad][var]!r} is not a number") from None
            res = continuous_test([vals[g] for g in labels], continuous_test_name)
            allv = [x for g in labels for x in vals[g]]
            dig = digits_for(allv)
            nonpar = continuous_test_name == "mannwhitney"
            row = {"variable": var, "level": "", "kind": "continuous",
                   "summary": "median [IQR]" if nonpar else "mean ± SD", "total": _cont(allv, nonpar, dig)}
            for g in labels:
                row[g] = _cont(vals[g], nonpar, dig)
                detail_rows.append(_cont_detail(var, g, vals[g]))
            detail_rows.append(_cont_detail(var, "total", allv))
            out_rows.append(_with_test(row, res, n_missing))
        if n_missing:
            row = {"variable": var, "level": MISSING_LEVEL, "kind": kind, "summary": "n", "total": str(n_missing),
                   "n_missing": n_missing}
            for g in labels:
                row[g] = str(sum(1 for r in grouped[g] if is_blank(r[var])))
            out_rows.append(row)

    if not out_rows:
        raise InputError(f"{source}: no variable to compare (give --vars)")
    # ------------------------------------------------------------ tables
    cols = [Column("variable", "string", "", "Variable (column of the input table)"),
            Column("level", "string", "", "Category shown on this row (binary: the 'yes'/1 count; "
                                          "'(missing)': patients without a value, per group)"),
            Column("kind", "string", "", "binary | categorical | continuous"),
            Column("summary", "string", "", "What the cells show: n (%) or mean ± SD (median [IQR] with Mann-Whitney)"),
            Column("total", "string", "", f"All patients (n={len(rows)})", f"Total (n={len(rows)})")]
    gcol = {g: f"{by}={g}" for g in labels}
    for g in labels:
        cols.append(Column(gcol[g], "string", "", f"Patients with {by} = {g} (n={n_groups[g]})", f"{g} (n={n_groups[g]})"))
    cols += [Column("p_value", "double", "", "P value of the test named in column test"),
             Column("p", "string", "", "P value as printed (3 decimals, <0.001)"),
             Column("test", "string", "", "Test that produced the P value"),
             Column("p_method", "string", "", "How the P value was obtained: exact, or which approximation and correction"),
             Column("statistic", "double", "", "Test statistic: chi-squared, t, F, U or H (empty for Fisher's test)"),
             Column("df", "double", "", "Degrees of freedom of the statistic (Welch: fractional; empty where none)"),
             Column("n_missing", "int", "", "Patients without a value for this variable (left out of its counts)"),
             Column("note", "string", "", "Warnings about this row")]
    renamed = []
    for r in out_rows:
        r = dict(r)
        for g in labels:
            r[gcol[g]] = r.pop(g, None)
        renamed.append({c.name: r.get(c.name) for c in cols})
    t = Table(cols, renamed, "groups", f"Group comparison by {by} ({source})")
    detail = Table([Column("variable", "string", "", "Variable"), Column("level", "string", "", "Category (binary: 1)"),
                    Column("group", "string", "", f"Value of {by}, or total"),
                    Column("n", "int", "", "Patients in the category"), Column("N", "int", "", "Patients with a value"),
                    Column("percent", "double", "%", "n / N × 100"), Column("mean", "double", "", "Mean"),
                    Column("sd", "double", "", "Standard deviation (n-1)"), Column("median", "double", "", "Median"),
                    Column("q1", "double", "", "25th percentile"), Column("q3", "double", "", "75th percentile")],
                   detail_rows, "groups_detail", "Numbers behind groups.csv")

    header = ["Variable", f"Total (n={len(rows)})"] + [f"{g} (n={n_groups[g]})" for g in labels] + ["P", "Test"]
    text_rows, classes, tips = [], [], []
    for r in renamed:
        title = human_title(r["variable"], table.column_spec(r["variable"]).unit if table.has_column(r["variable"]) else "")
        name = title if not r["level"] or r["kind"] == "binary" else f"  {r['level']}"
        if r["level"] == MISSING_LEVEL:
            name = "  missing, n"
        elif r["kind"] == "continuous":
            name = f"{title}, {r['summary']}"
        elif r["kind"] == "binary":
            name = f"{title}, n (%)"
        elif not r["level"]:
            name = f"{title}, n (%)"
        tips.append(r["variable"] if not r["level"] or r["kind"] == "binary" else "")
        text_rows.append([name, r["total"] or ""] + [r[gcol[g]] or "" for g in labels] + [r["p"] or "", r["test"] or ""])
        classes.append("sub" if (r["kind"] == "categorical" and r["level"]) or r["level"] == MISSING_LEVEL else "")
    ctest = {"chi2": "Pearson chi-squared without continuity correction", "fisher": "Fisher's exact test"}[categorical_test_name]
    ntest = {"student": "Student's t-test with pooled variance (one-way ANOVA for >2 groups)",
             "welch": "Welch's t-test (Welch ANOVA for >2 groups)",
             "mannwhitney": "Mann-Whitney U (Kruskal-Wallis for >2 groups)"}[continuous_test_name]
    title = f"Comparison by {by}"
    for r in renamed:
        if r["note"]:
            notes.append(f"{r['variable']}: {r['note']}")
    notes.insert(0, f"Source: {source}; {len(rows)} patients. Categorical: {ctest}; continuous: {ntest}; α = 0.05. "
                    "Percentages are of patients with a value; a 'missing' row under a variable counts, per group, the "
                    "patients without one.")
    md = f"### {title}\n\n" + markdown_table(header, text_rows)
    ht = f"<h3>{title}</h3>\n" + html_table(header, text_rows, row_classes=classes, first_column_tips=tips)
    return StatsResult("groups", {"groups": t, "groups_detail": detail}, md, ht, notes=notes,
                       parameters={"by": by, "groups": labels, "categorical_test": categorical_test_name,
                                   "continuous_test": continuous_test_name, "where": list(where or []),
                                   "variables": variables, "forced_categorical": list(categorical)},
                       summary={"n_patients": len(rows), "n_groups": len(labels)})


def _with_test(row: dict, res: TestResult, n_missing: int) -> dict:
    row.update({"p_value": res.p_value, "p": fmt_p(res.p_value), "test": res.test, "p_method": res.p_method,
                "statistic": res.statistic, "df": res.df, "n_missing": n_missing, "note": res.note})
    return row


def _cont(vals: list[float], nonpar: bool, dig: int) -> str:
    if not vals:
        return ""
    a = np.asarray(vals)
    if nonpar:
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return fmt_median_iqr(float(med), float(q1), float(q3), dig)
    return fmt_mean_sd(float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else None, dig)


def _cont_detail(var: str, g: str, vals: list[float]) -> dict:
    a = np.asarray(vals, float)
    if len(a) == 0:
        return {"variable": var, "level": "", "group": g, "N": 0}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"variable": var, "level": "", "group": g, "N": len(a), "mean": float(a.mean()),
            "sd": float(a.std(ddof=1)) if len(a) > 1 else None, "median": float(med), "q1": float(q1), "q3": float(q3)}


def _pct(n: int, N: int) -> float | None:
    return 100.0 * n / N if N else None


def _label(v) -> str:
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    return str(v)


def _natural(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s.lower())
