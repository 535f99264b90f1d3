"""Comparison of modalities on the same hands and fingers (the analysis of study 1).

* lesion counts per hand across XR, CT and MRI: **Friedman** test (repeated measures,
  ranks within each hand), with mean (SD) per modality;
* CT vs MRI volume per finger: **paired** — mean difference (SD), **Wilcoxon signed-rank**
  and **paired t**;

Differences are **second − first** everywhere in the cohort statistics (here MRI − CT, the
modalities in the order XR, CT, MRI; in ``agreement`` the second reading − the first; in
``change`` follow-up − baseline).  Every P names how it was obtained (column ``p_method``).
* **Spearman ρ** with P between the radiographic area and CT/MRI volume or projected area.

The rank tests are scipy's (``friedmanchisquare``, ``wilcoxon``, ``spearmanr``); the tests
of this module check them against hand-computed values and exact enumeration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table
from .contract import modality_key
from .data import apply_where, describe_source, is_blank, numeric, require_column
from .formatting import StatsResult, fmt_mean_sd, fmt_num, fmt_p, html_table, markdown_table

MODALITY_LABEL = {"xr": "XR", "ct": "CT", "mri": "MRI"}

#: How each P is obtained, named on its row (column p_method)
P_FRIEDMAN = "chi-squared approximation, tie-corrected"
P_WILCOXON_EXACT = ("exact: all 2^n sign assignments of the midranks (two-sided; zero differences dropped, "
                    "n < 50; with ties conditional on them)")
P_WILCOXON_NORMAL = "normal approximation with continuity and tie correction (two-sided; zero differences dropped)"
P_PAIRED_T = "t distribution on n − 1 df (two-sided)"
P_SPEARMAN = "t approximation on n − 2 df (two-sided)"
#: Wilcoxon signed-rank P exact below this number of non-zero differences
WILCOXON_EXACT_BELOW = 50


@dataclass
class FriedmanResult:
    n: int
    k: int
    statistic: float
    df: int
    p_value: float
    means: list[float]
    sds: list[float]


@dataclass
class PairedResult:
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float      # mean of b - a (second - first)
    sd_diff: float
    wilcoxon_statistic: float | None
    wilcoxon_p: float | None
    t_statistic: float | None   # of b - a
    t_p: float | None
    note: str = ""
    wilcoxon_method: str = ""


@dataclass
class SpearmanResult:
    n: int
    rho: float
    p_value: float


def friedman(matrix: np.ndarray) -> FriedmanResult:
    """Friedman test on an n×k matrix (rows: hands, columns: modalities)."""
    Y = np.asarray(matrix, float)
    n, k = Y.shape
    if k < 3:
        raise InputError("Friedman test needs 3 or more modalities (use the Wilcoxon signed-rank test for 2)")
    if n < 2:
        raise InputError(f"Friedman test: {n} hand(s) seen by every modality; at least 2 are needed")
    if np.all(Y == Y[:, :1]):   # every hand the same under every modality: nothing to rank
        stat, p = 0.0, 1.0
    else:
        res = sps.friedmanchisquare(*[Y[:, j] for j in range(k)])
        stat, p = float(res.statistic), float(res.pvalue)
    return FriedmanResult(n, k, stat, k - 1, p, [float(Y[:, j].mean()) for j in range(k)],
                          [float(Y[:, j].std(ddof=1)) for j in range(k)])


def paired(a: Sequence[float], b: Sequence[float]) -> PairedResult:
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = len(a)
    if n < 2:
        raise InputError(f"paired comparison: {n} pair(s); at least 2 are needed")
    d = b - a
    note, w_method = "", ""
    if np.all(d == 0):
        w_s, w_p, t_s, t_p = 0.0, 1.0, 0.0, 1.0
        note = "all differences are zero"
    else:
        # exact below 50 pairs: every sign assignment of the (mid)ranks of |d|, zeros dropped
        # (Wilcoxon's method) - exact also with tied differences, conditional on the ties;
        # from 50 pairs the normal approximation with continuity and tie correction
        nz = d[d != 0]
        if len(nz) < WILCOXON_EXACT_BELOW:
            w_s, w_p = wilcoxon_exact(nz)
            w_method = P_WILCOXON_EXACT
        else:
            w = sps.wilcoxon(b, a, zero_method="wilcox", alternative="two-sided", correction=True, method="approx")
            w_s, w_p = float(w.statistic), float(w.pvalue)
            w_method = P_WILCOXON_NORMAL
        if d.std(ddof=1) == 0:
            t_s, t_p = math.copysign(float("inf"), float(d.mean())), 0.0
        else:
            t = sps.ttest_rel(b, a)
            t_s, t_p = float(t.statistic), float(t.pvalue)
        if int((d == 0).sum()):
            note = f"{int((d == 0).sum())} zero differences left out of the signed-rank test (Wilcoxon's method)"
    return PairedResult(n, float(a.mean()), float(b.mean()), float(d.mean()), float(d.std(ddof=1)), w_s, w_p, t_s,
                        t_p, note, w_method)


def wilcoxon_exact(d: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank test of the non-zero differences ``d``, exact: the null
    distribution of W+ over all 2^n sign assignments of the midranks of |d|, counted by
    dynamic programming on doubled ranks (integers).  Returns (min(W+, W-), two-sided P =
    share of assignments at least as far from n(n+1)/4 as the observed W+)."""
    d = np.asarray(d, float)
    r2 = np.rint(2 * sps.rankdata(np.abs(d))).astype(np.int64)    # doubled midranks are whole
    total = int(r2.sum())
    counts = np.zeros(total + 1)
    counts[0] = 1.0
    for r in r2:
        counts[r:] += counts[:-r].copy()          # r >= 2: a doubled rank
    w2 = int(r2[d > 0].sum())
    dev = np.abs(2 * np.arange(total + 1) - total)
    p = float(counts[dev >= abs(2 * w2 - total)].sum() / counts.sum())
    w_plus = w2 / 2
    return float(min(w_plus, total / 2 - w_plus)), min(1.0, p)


def spearman(a: Sequence[float], b: Sequence[float]) -> SpearmanResult:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        raise InputError(f"Spearman correlation: {len(a)} pair(s); at least 3 are needed")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return SpearmanResult(len(a), float("nan"), float("nan"))
    r = sps.spearmanr(a, b)
    return SpearmanResult(len(a), float(r.statistic), float(r.pvalue))


# ---------------------------------------------------------------------- cohort tables
def pivot(table: Table, keys: Sequence[str], across: str, value: str) -> dict[tuple, dict[str, float]]:
    """{key tuple: {modality: value}} from a long table (one row per unit × modality)."""
    for c in list(keys) + [across, value]:
        require_column(table, c)
    vals = numeric(table, value)
    out: dict[tuple, dict[str, float]] = {}
    for i, r in enumerate(table.rows):
        if vals[i] is None:
            continue
        m = modality_key(r[across]) or str(r[across])
        key = tuple(r[k] for k in keys)
        slot = out.setdefault(key, {})
        slot[m] = slot.get(m, 0.0) + vals[i]
    return out


def compare_modalities(hands: Table | None = None, digits: Table | None = None, *,
                       where: Sequence[str] | None = None, count_column: str = "lesion_count",
                       volume_column: str = "total_volume_mm3", area_column: str = "total_area_mm2",
                       projected_column: str = "total_projected_area_mm2") -> StatsResult:
    """Study 1's analysis from the cohort ``hands.csv`` (one row per hand × modality) and
    ``digits.csv`` (one row per finger × modality)."""
    if hands is None and digits is None:
        raise InputError("modality comparison: give the per-hand table (hands.csv) and/or the per-finger table (digits.csv)")
    rows_out: list[dict] = []
    notes: list[str] = []
    md, ht = [], []
    keys_h = [c for c in ("patient_id", "reader", "read", "time_point", "side") if hands is not None and hands.has_column(c)]
    if hands is not None:
        src = describe_source(hands, where)
        hands = apply_where(hands, where)
        piv = pivot(hands, keys_h, "modality", count_column)
        mods = [m for m in ("xr", "ct", "mri") if any(m in v for v in piv.values())]
        complete = [(k, v) for k, v in sorted(piv.items(), key=lambda kv: tuple(str(x) for x in kv[0])) if all(m in v for m in mods)]
        _one_reading(list(piv.items()), keys_h)
        if len(mods) >= 3:
            fr = friedman(np.array([[v[m] for m in mods] for _, v in complete]))
            label = " vs ".join(MODALITY_LABEL[m] for m in mods)
            rows_out.append({"analysis": "lesions per hand", "comparison": label, "unit": "hand", "n": fr.n,
                             "summary": "; ".join(f"{MODALITY_LABEL[m]} {fmt_mean_sd(fr.means[j], fr.sds[j])}"
                                                  for j, m in enumerate(mods)),
                             "statistic": fr.statistic, "df": fr.df, "p_value": fr.p_value, "test": "Friedman",
                             "p_method": P_FRIEDMAN, "source": f"{src}: {count_column}"})
        elif len(mods) == 2:
            pr = paired([v[mods[0]] for _, v in complete], [v[mods[1]] for _, v in complete])
            rows_out.append({"analysis": "lesions per hand", "comparison": f"{MODALITY_LABEL[mods[1]]} − {MODALITY_LABEL[mods[0]]}",
                             "unit": "hand", "n": pr.n,
                             "summary": f"{MODALITY_LABEL[mods[0]]} {pr.mean_a:.1f}, {MODALITY_LABEL[mods[1]]} {pr.mean_b:.1f}",
                             "mean_difference": pr.mean_diff, "sd_difference": pr.sd_diff,
                             "statistic": pr.wilcoxon_statistic, "p_value": pr.wilcoxon_p, "p_method": pr.wilcoxon_method,
                             "test": "Wilcoxon signed-rank (only 2 modalities: no Friedman)", "source": f"{src}: {count_column}"})
            notes.append("Only two modalities in the per-hand table: counts compared with the Wilcoxon signed-rank test.")
        else:
            notes.append("Per-hand counts: fewer than two modalities, no comparison.")
    if digits is not None:
        src = describe_source(digits, where)
        digits = apply_where(digits, where)
        keys_d = [c for c in ("patient_id", "reader", "read", "time_point", "side", "digit") if digits.has_column(c)]
        if digits.has_column("digit"):
            digits = Table(digits.columns, [r for r in digits.rows if r["digit"] != "unassigned"], digits.name)
        vol = pivot(digits, keys_d, "modality", volume_column)
        pairs = [(v["ct"], v["mri"]) for _, v in sorted(vol.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
                 if "ct" in v and "mri" in v]
        _one_reading(list(vol.items()), keys_d)
        if len(pairs) >= 2:
            pr = paired([p[0] for p in pairs], [p[1] for p in pairs])
            base = {"analysis": "volume per finger", "comparison": "MRI − CT", "unit": "finger", "n": pr.n,
                    "summary": f"CT {pr.mean_a:.1f} mm³, MRI {pr.mean_b:.1f} mm³",
                    "mean_difference": pr.mean_diff, "sd_difference": pr.sd_diff, "source": f"{src}: {volume_column}",
                    "note": pr.note}
            rows_out.append(dict(base, statistic=pr.wilcoxon_statistic, p_value=pr.wilcoxon_p, test="Wilcoxon signed-rank",
                                 p_method=pr.wilcoxon_method))
            rows_out.append(dict(base, statistic=pr.t_statistic, df=pr.n - 1, p_value=pr.t_p, test="paired t",
                                 p_method=P_PAIRED_T))
        else:
            notes.append("Volume per finger: fewer than 2 fingers measured by both CT and MRI, no paired comparison.")
        area = pivot(digits, keys_d, "modality", area_column) if digits.has_column(area_column) else {}
        targets = [("ct", volume_column, "CT volume"), ("mri", volume_column, "MRI volume")]
        if digits.has_column(projected_column):
            targets += [("ct", projected_column, "CT projected area"), ("mri", projected_column, "MRI projected area")]
        for mod, col, label in targets:
            other = pivot(digits, keys_d, "modality", col)
            xy = [(area[k]["xr"], other[k][mod]) for k in sorted(area, key=lambda kk: tuple(str(x) for x in kk))
                  if "xr" in area[k] and k in other and mod in other[k]]
            if len(xy) < 3:
                continue
            sp = spearman([p[0] for p in xy], [p[1] for p in xy])
            rows_out.append({"analysis": "correlation per finger", "comparison": f"XR area vs {label}", "unit": "finger",
                             "n": sp.n, "summary": f"rho = {fmt_num(sp.rho, 2)}", "statistic": sp.rho,
                             "p_value": sp.p_value, "test": "Spearman rho", "p_method": P_SPEARMAN,
                             "source": f"{src}: {area_column} vs {col}"})
    if not rows_out:
        raise InputError("modality comparison: nothing to compare (need the same hands or fingers measured by at least "
                         "two modalities)")
    cols = [Column("analysis", "string", "", "What is compared"), Column("comparison", "string", "", "Modalities"),
            Column("unit", "string", "", "Unit of analysis (hand or finger)"),
            Column("n", "int", "", "Units measured by all compared modalities"),
            Column("summary", "string", "", "Mean (SD) per modality, or rho"),
            Column("mean_difference", "double", "", "Mean of the paired differences (second − first, as in comparison)"),
            Column("sd_difference", "double", "", "SD of the paired differences"),
            Column("statistic", "double", "", "Test statistic (Friedman chi-squared, Wilcoxon W, t, or rho)"),
            Column("df", "double", "", "Degrees of freedom"), Column("p_value", "double", "", "P value (two-sided)"),
            Column("p", "string", "", "P as printed"), Column("test", "string", "", "Test that produced P"),
            Column("p_method", "string", "", "How P was obtained: exact, or which approximation and correction"),
            Column("source", "string", "", "Table and column(s) the numbers come from"),
            Column("note", "string", "", "Remarks")]
    for r in rows_out:
        r["p"] = fmt_p(r.get("p_value"))
    t = Table(cols, rows_out, "modalities", "Comparison of modalities (study 1)")
    header = ["Analysis", "Comparison", "n", "Summary", "Mean diff (SD)", "Statistic", "P", "Test"]
    text = [[r["analysis"], r["comparison"], str(r["n"]), r["summary"],
             (f"{r['mean_difference']:.1f} ({r['sd_difference']:.1f})" if r.get("mean_difference") is not None else ""),
             fmt_num(r.get("statistic"), 2), r["p"], r["test"]] for r in t.rows]
    md.append("### Modality comparison\n\n" + markdown_table(header, text))
    ht.append("<h3>Modality comparison</h3>\n" + html_table(header, text))
    notes.insert(0, "Units: hands (patient × side) and fingers (patient × side × digit) seen by every compared "
                    "modality; unassigned lesions are left out of the per-finger analysis.")
    return StatsResult("modalities", {"modalities": t}, "\n".join(md), "\n".join(ht), notes=notes,
                       parameters={"where": list(where or []), "count_column": count_column,
                                   "volume_column": volume_column, "area_column": area_column})


def compare_columns(table: Table, *, friedman_columns: Sequence[str] = (), pairs: Sequence[tuple[str, str]] = (),
                    correlations: Sequence[tuple[str, str]] = (), where: Sequence[str] | None = None) -> StatsResult:
    """The same tests on columns of any wide table (one row per unit)."""
    src = describe_source(table, where)
    table = apply_where(table, where)
    rows_out: list[dict] = []

    def complete(cols):
        vals = [numeric(table, c) for c in cols]
        return [list(x) for x in zip(*vals) if all(v is not None for v in x)]

    if friedman_columns:
        m = np.array(complete(friedman_columns))
        fr = friedman(m.reshape(-1, len(friedman_columns)))
        rows_out.append({"analysis": "repeated measures", "comparison": " vs ".join(friedman_columns), "unit": "row",
                         "n": fr.n, "summary": "; ".join(f"{c} {fmt_mean_sd(fr.means[j], fr.sds[j])}"
                                                          for j, c in enumerate(friedman_columns)),
                         "statistic": fr.statistic, "df": fr.df, "p_value": fr.p_value, "test": "Friedman",
                         "p_method": P_FRIEDMAN, "source": src})
    for a, b in pairs:
        xy = complete([a, b])
        pr = paired([p[0] for p in xy], [p[1] for p in xy])
        base = {"analysis": "paired", "comparison": f"{b} − {a}", "unit": "row", "n": pr.n,
                "summary": f"{a} {pr.mean_a:.2f}, {b} {pr.mean_b:.2f}", "mean_difference": pr.mean_diff,
                "sd_difference": pr.sd_diff, "source": src, "note": pr.note}
        rows_out.append(dict(base, statistic=pr.wilcoxon_statistic, p_value=pr.wilcoxon_p, test="Wilcoxon signed-rank",
                             p_method=pr.wilcoxon_method))
        rows_out.append(dict(base, statistic=pr.t_statistic, df=pr.n - 1, p_value=pr.t_p, test="paired t",
                             p_method=P_PAIRED_T))
    for a, b in correlations:
        xy = complete([a, b])
        sp = spearman([p[0] for p in xy], [p[1] for p in xy])
        rows_out.append({"analysis": "correlation", "comparison": f"{a} vs {b}", "unit": "row", "n": sp.n,
                         "summary": f"rho = {fmt_num(sp.rho, 2)}", "statistic": sp.rho, "p_value": sp.p_value,
                         "test": "Spearman rho", "p_method": P_SPEARMAN, "source": src})
    if not rows_out:
        raise InputError("give --friedman COLS, --pair A,B or --correlate A,B")
    cols = [Column("analysis", "string"), Column("comparison", "string"), Column("unit", "string"), Column("n", "int"),
            Column("summary", "string"), Column("mean_difference", "double"), Column("sd_difference", "double"),
            Column("statistic", "double"), Column("df", "double"), Column("p_value", "double"), Column("p", "string"),
            Column("test", "string"), Column("p_method", "string"), Column("source", "string"), Column("note", "string")]
    for r in rows_out:
        r["p"] = fmt_p(r.get("p_value"))
    t = Table(cols, rows_out, "modalities")
    header = ["Analysis", "Comparison", "n", "Summary", "Mean diff (SD)", "Statistic", "P", "Test"]
    text = [[r["analysis"], r["comparison"], str(r["n"]), r["summary"],
             (f"{r['mean_difference']:.2f} ({r['sd_difference']:.2f})" if r.get("mean_difference") is not None else ""),
             fmt_num(r.get("statistic"), 2), r["p"], r["test"]] for r in t.rows]
    return StatsResult("modalities", {"modalities": t}, "### Paired comparisons\n\n" + markdown_table(header, text),
                       "<h3>Paired comparisons</h3>\n" + html_table(header, text),
                       notes=[f"Source: {src}; rows with a missing value in a compared column are left out."],
                       parameters={"friedman": list(friedman_columns), "pairs": [list(p) for p in pairs],
                                   "correlations": [list(c) for c in correlations], "where": list(where or [])})


def _one_reading(items, keys) -> None:
    """A hand or finger must appear under one reader, read and time point only: pooling
    several readings of the same hand would count it twice."""
    reading = [i for i, k in enumerate(keys) if k in ("reader", "read", "time_point")]
    unit = [i for i, k in enumerate(keys) if k not in ("reader", "read", "time_point")]
    if not reading:
        return
    seen: dict = {}
    for key, _ in items:
        u = tuple(key[i] for i in unit)
        rd = tuple(key[i] for i in reading)
        if u in seen and seen[u] != rd:
            diff = [keys[i] for j, i in enumerate(reading) if seen[u][j] != rd[j]]
            raise InputError(f"patient {u[0]!r} appears under several readings ({', '.join(diff)} differ); choose one "
                             f"with e.g. --where {diff[0]}={seen[u][reading.index(keys.index(diff[0]))]}")
        seen[u] = rd


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and not is_blank(x)
