"""Reader agreement: Cohen's kappa (simple and weighted), ICC(A,1) and Bland–Altman.

* **Cohen's kappa** κ = (p_o − p_e)/(1 − p_e) on the k×k table of the two readings, with
  agreement weights w_ij (1 on the diagonal; ``linear`` 1 − |i−j|/(k−1), ``quadratic``
  1 − (i−j)²/(k−1)² for ordinal grades — Cohen 1968).  Standard errors are the large-sample
  ones of **Fleiss, Cohen & Everitt (1969)**: the *non-null* SE gives the 95% CI
  (κ ± 1.96·SE), the SE *under H0: κ = 0* gives z = κ/SE₀ and the two-sided P (as SAS PROC
  FREQ, SPSS CROSSTABS and R's irr::kappa2 do).
* **ICC(A,1)** — two-way random effects, absolute agreement, single measures (McGraw & Wong
  1996 case 2A; Shrout & Fleiss 1979 ICC(2,1)), from the two-way ANOVA mean squares, with
  McGraw & Wong's F-based 95% CI and the test of ICC = 0 (F = MSR/MSE on n−1 and
  (n−1)(k−1) degrees of freedom).
* **Bland–Altman**: bias (mean of B − A), SD of the differences, limits of agreement bias ±
  1.96·SD, with t-based 95% CIs of the bias and of each limit (Bland & Altman 1999, SE of a
  limit ≈ √(3·SD²/n)); a regression of the difference on the mean flags proportional bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats as sps

from calcinosis.core.errors import InputError

WEIGHTS = ("linear", "quadratic")


@dataclass
class KappaResult:
    kappa: float
    se: float                # non-null SE (Fleiss, Cohen & Everitt 1969): for the CI
    se0: float               # SE under H0 kappa = 0: for z and P
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    n: int
    n_disagree: int
    p_observed: float
    p_expected: float
    categories: list
    table: np.ndarray        # rows: reading A, columns: reading B
    weights: str | None = None
    note: str = ""

    @property
    def pct_disagree(self) -> float:
        return 100.0 * self.n_disagree / self.n if self.n else float("nan")


def crosstab(a: Sequence, b: Sequence, categories: Sequence | None = None) -> tuple[np.ndarray, list]:
    """k×k counts of (a, b) pairs; ``categories`` fixes order (default: sorted union)."""
    if len(a) != len(b):
        raise ValueError("a and b differ in length")
    cats = list(categories) if categories is not None else sorted(set(a) | set(b), key=_sort_key)
    index = {c: i for i, c in enumerate(cats)}
    t = np.zeros((len(cats), len(cats)), dtype=np.int64)
    for x, y in zip(a, b):
        if x not in index or y not in index:
            raise InputError(f"value {x if x not in index else y!r} is not among the categories {cats}")
        t[index[x], index[y]] += 1
    return t, cats


def agreement_weights(k: int, weights: str | None) -> np.ndarray:
    i = np.arange(k)
    d = np.abs(i[:, None] - i[None, :]).astype(float)
    if weights is None:
        return (d == 0).astype(float)
    if k < 2:
        return np.ones((k, k))
    if weights == "linear":
        return 1.0 - d / (k - 1)
    if weights == "quadratic":
        return 1.0 - (d / (k - 1)) ** 2
    raise InputError(f"--weights: {weights!r} is not one of {', '.join(WEIGHTS)}")


def kappa_from_table(table: np.ndarray, weights: str | None = None, confidence: float = 0.95,
                     categories: Sequence | None = None) -> KappaResult:
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise InputError(f"kappa needs a square table, got {t.shape}")
    n = t.sum()
    if n < 1:
        raise InputError("kappa: no pairs of readings")
    k = t.shape[0]
    w = agreement_weights(k, weights)
    p = t / n
    pr, pc = p.sum(axis=1), p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(pr, pc)).sum())
    n_dis = int(n - np.trace(t))
    cats = list(categories) if categories is not None else list(range(k))
    if pe >= 1.0 - 1e-12:
        return KappaResult(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), float("nan"),
                           float("nan"), int(n), n_dis, po, pe, cats, t.astype(np.int64), weights,
                           "kappa undefined: both readings put every patient in the same category")
    kappa = (po - pe) / (1 - pe)
    wr = w @ pc          # w̄_i. = Σ_j p_.j w_ij
    wc = pr @ w          # w̄_.j = Σ_i p_i. w_ij
    term = (wr[:, None] + wc[None, :]) * (1 - kappa)
    var = ((p * (w - term) ** 2).sum() - (kappa - pe * (1 - kappa)) ** 2) / (n * (1 - pe) ** 2)
    var0 = ((np.outer(pr, pc) * (w - (wr[:, None] + wc[None, :])) ** 2).sum() - pe ** 2) / (n * (1 - pe) ** 2)
    se = math.sqrt(max(var, 0.0))
    se0 = math.sqrt(max(var0, 0.0))
    zc = float(sps.norm.ppf(0.5 + confidence / 2))
    z = kappa / se0 if se0 > 0 else float("nan")
    pval = float(2 * sps.norm.sf(abs(z))) if se0 > 0 else float("nan")
    return KappaResult(float(kappa), se, se0, float(kappa - zc * se), float(kappa + zc * se), float(z), pval,
                       int(n), n_dis, po, pe, cats, t.astype(np.int64), weights)


def cohen_kappa(a: Sequence, b: Sequence, weights: str | None = None, categories: Sequence | None = None,
                confidence: float = 0.95) -> KappaResult:
    """Kappa of paired readings ``a``, ``b`` (same patients, same order)."""
    t, cats = crosstab(list(a), list(b), categories)
    return kappa_from_table(t, weights, confidence, cats)


# ---------------------------------------------------------------------- ICC
#: why an ICC has no interval or F test (written in the table's ``note`` and in the printed line)
ICC_IDENTICAL_NOTE = ("no between-reading variance, the two readings are identical in every patient: ICC is 1 by "
                      "definition, its confidence interval and F test are undefined")
ICC_NO_RESIDUAL_NOTE = ("no residual variance, the readings differ by the same amount in every patient: the F test "
                        "of ICC = 0 is undefined, MSE = 0")


@dataclass
class ICCResult:
    icc: float
    ci_low: float
    ci_high: float
    f_value: float
    df1: int
    df2: int
    p_value: float
    n: int
    k: int
    ms_rows: float
    ms_cols: float
    ms_error: float
    note: str = ""


def icc_a1(ratings: np.ndarray, confidence: float = 0.95) -> ICCResult:
    """ICC(A,1) of an n×k matrix (rows: patients, columns: readings/readers)."""
    Y = np.asarray(ratings, dtype=float)
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise InputError("ICC needs at least 2 readings per patient")
    if np.isnan(Y).any():
        raise InputError("ICC: missing readings; give complete pairs")
    n, k = Y.shape
    if n < 2:
        raise InputError(f"ICC: {n} patient(s); at least 2 are needed")
    gm = Y.mean()
    ss_r = k * ((Y.mean(axis=1) - gm) ** 2).sum()
    ss_c = n * ((Y.mean(axis=0) - gm) ** 2).sum()
    ss_t = ((Y - gm) ** 2).sum()
    ss_e = ss_t - ss_r - ss_c
    if ss_e <= 1e-12 * ss_t:   # rounding of an exact 0 (every patient's readings differ by the same amount)
        ss_e = 0.0
    msr, msc = ss_r / (n - 1), ss_c / (k - 1)
    dfe = (n - 1) * (k - 1)
    mse = max(ss_e, 0.0) / dfe
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    if denom <= 0:
        return ICCResult(float("nan"), float("nan"), float("nan"), float("nan"), n - 1, dfe, float("nan"), n, k,
                         msr, msc, mse, "ICC undefined: no variation between patients or readings")
    if np.all(Y == Y[:, :1]):
        # F = MSR/MSE divides by 0 and the F-based interval has no degrees of freedom: state it, never inf or blank
        return ICCResult(1.0, float("nan"), float("nan"), float("nan"), n - 1, dfe, float("nan"), n, k, float(msr),
                         float(msc), float(mse), ICC_IDENTICAL_NOTE)
    icc = (msr - mse) / denom
    note = ""
    if mse == 0:
        f_val, p = float("nan"), float("nan")
        note = ICC_NO_RESIDUAL_NOTE
    else:
        f_val = msr / mse
        p = float(sps.f.sf(f_val, n - 1, dfe))
    # McGraw & Wong (1996), case 2A single measures: F-based CI with Satterthwaite df.
    alpha = 1 - confidence
    a = k * icc / (n * (1 - icc)) if icc < 1 else float("inf")
    b = 1 + k * icc * (n - 1) / (n * (1 - icc)) if icc < 1 else float("inf")
    if math.isfinite(a) and (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / dfe > 0:
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / dfe)
        fl = sps.f.ppf(1 - alpha / 2, n - 1, v)
        fu = sps.f.ppf(1 - alpha / 2, v, n - 1)
        c = k * msc + (k * n - k - n) * mse
        lo = n * (msr - fl * mse) / (fl * c + n * msr)
        hi = n * (fu * msr - mse) / (c + n * fu * msr)
    else:
        lo = hi = float("nan")
        note = "; ".join(x for x in (note, "the F-based confidence interval is undefined for these readings") if x)
    return ICCResult(float(icc), float(lo), float(hi), float(f_val), n - 1, dfe, p, n, k, float(msr), float(msc),
                     float(mse), note)


# ---------------------------------------------------------------------- Bland-Altman
@dataclass
class BlandAltmanResult:
    n: int
    mean_a: float
    mean_b: float
    bias: float                # mean of (b - a)
    sd: float
    loa_low: float
    loa_high: float
    bias_ci: tuple[float, float]
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    multiplier: float
    slope: float               # regression of difference on mean (proportional bias)
    slope_p: float
    differences: np.ndarray = field(repr=False, default=None)
    means: np.ndarray = field(repr=False, default=None)


def _past_one(ci_high: float, what: str) -> str:
    """The note for a kappa CI reaching beyond 1 (kept, as SAS and statsmodels report it)."""
    if ci_high is not None and not math.isnan(ci_high) and ci_high > 1.0:
        return f"the Wald 95% CI of {what} passes 1 (upper bound {ci_high:.3f}); kappa itself cannot exceed 1"
    return ""


def bland_altman(a: Sequence[float], b: Sequence[float], multiplier: float = 1.96,
                 confidence: float = 0.95) -> BlandAltmanResult:
    """Agreement of B with A: differences B − A against the means (A + B)/2."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if len(a) != len(b):
        raise ValueError("a and b differ in length")
    n = len(a)
    if n < 2:
        raise InputError(f"Bland-Altman: {n} pair(s); at least 2 are needed")
    d = b - a
    m = (a + b) / 2
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    t = float(sps.t.ppf(0.5 + confidence / 2, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = math.sqrt(3 * sd ** 2 / n)
    lo, hi = bias - multiplier * sd, bias + multiplier * sd
    if n >= 3 and np.ptp(m) > 0:
        lr = sps.linregress(m, d)
        slope, slope_p = float(lr.slope), float(lr.pvalue)
    else:
        slope, slope_p = float("nan"), float("nan")
    return BlandAltmanResult(n, float(a.mean()), float(b.mean()), bias, sd, lo, hi,
                             (bias - t * se_bias, bias + t * se_bias), (lo - t * se_loa, lo + t * se_loa),
                             (hi - t * se_loa, hi + t * se_loa), multiplier, slope, slope_p, d, m)


def _sort_key(v):
    try:
        return (0, float(v), str(v))
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


# ---------------------------------------------------------------------- table-level analysis
KINDS = ("auto", "categorical", "ordinal", "continuous")


def _pairs_long(table, var: str, between: str, levels, id_column: str):
    """Pairs of values of ``var`` (first, second reading), the patients, the labels of the
    two readings and the pairs' row indices in ``table``."""
    from .data import KEY_COLUMNS, is_blank, row_label, row_number, where_text
    labels = sorted({where_text(r[between]) for r in table.rows if not is_blank(r[between])}, key=_sort_key)
    if levels:
        for lv in levels:
            if lv not in labels:
                raise InputError(f"--levels: {lv!r} is not a value of column {between!r} (values: {', '.join(labels)})")
        a_lab, b_lab = levels
    else:
        if len(labels) != 2:
            raise InputError(f"column {between!r} has {len(labels)} value(s) ({', '.join(labels)}): agreement compares "
                             f"exactly two; choose them with --levels A,B")
        a_lab, b_lab = labels
    others = [k for k in KEY_COLUMNS if k not in (between, id_column) and table.has_column(k)]
    slots: dict[tuple, dict[str, tuple[int, object]]] = {}
    for i, r in enumerate(table.rows):
        lab = where_text(r[between])
        if lab not in (a_lab, b_lab):
            continue
        key = (where_text(r[id_column]),) + tuple(where_text(r[k]) for k in others)
        s = slots.setdefault(key, {})
        if lab in s:
            raise InputError(f"{row_label(table, i)}: patient {key[0]!r} has two rows with {between}={lab} "
                             f"(also row {row_number(table, s[lab][0])})")
        s[lab] = (i, r[var])
    pairs, ids, rows_ab = [], [], []
    per_patient: dict[str, tuple] = {}
    for key in sorted(slots, key=lambda k: tuple(_sort_key(x) for x in k)):
        s = slots[key]
        if a_lab in s and b_lab in s and not is_blank(s[a_lab][1]) and not is_blank(s[b_lab][1]):
            if key[0] in per_patient:
                diff = [others[j] for j in range(len(others)) if per_patient[key[0]][1 + j] != key[1 + j]]
                raise InputError(f"patient {key[0]!r} is paired more than once ({', '.join(diff)} differ); choose one "
                                 f"with e.g. --where {diff[0]}={per_patient[key[0]][1 + others.index(diff[0])]}")
            per_patient[key[0]] = key
            pairs.append((s[a_lab][1], s[b_lab][1]))
            ids.append(key[0])
            rows_ab.append((s[a_lab][0], s[b_lab][0]))
    return pairs, ids, (f"{between}={a_lab}", f"{between}={b_lab}"), rows_ab


def reader_agreement(table, variables, *, between: str | None = None, levels=None, pair_columns=None,
                     kind: str = "auto", weights: str | None = None, where=None, id_column: str = "patient_id",
                     categories=None, loa_multiplier: float = 1.96, skip_insufficient: bool = False):
    """Agreement of two readings per patient for each variable.

    Long form: ``between`` is the column whose two values are compared (``reader`` for
    inter-reader, ``read`` for intra-reader); rows pair on ``id_column`` and the other key
    columns.  Wide form: ``pair_columns = [(col_a, col_b), ...]``.
    """
    from calcinosis.core.tables import Column, Table
    from .data import apply_where, as_binary, describe_source, is_blank, is_number, numeric, require_column, stray_text, stray_text_error
    from .formatting import StatsResult, ci_text, fmt_ci, fmt_num, html_table, markdown_table, p_text

    if kind not in KINDS:
        raise InputError(f"--kind: {kind!r} is not one of {', '.join(KINDS)}")
    src = describe_source(table, where)
    table = apply_where(table, where)
    jobs = []
    if pair_columns:
        for a, b in pair_columns:
            require_column(table, a)
            require_column(table, b)
            both = [i for i, r in enumerate(table.rows) if not is_blank(r[a]) and not is_blank(r[b])]
            pairs = [(table.rows[i][a], table.rows[i][b]) for i in both]
            ids = [str(table.rows[i].get(id_column, i)) for i in both]
            jobs.append((f"{a} vs {b}", pairs, ids, (a, b), (a, b), [(i, i) for i in both]))
    else:
        if not between:
            raise InputError("agreement: give --between reader|read (long table) or --pair COL_A,COL_B (wide table)")
        require_column(table, between, "the column whose two values are compared")
        require_column(table, id_column)
        if not variables:
            raise InputError("agreement: give the variable(s) to compare with --var")
        for v in variables:
            require_column(table, v)
            pairs, ids, labs, rows_ab = _pairs_long(table, v, between, levels, id_column)
            jobs.append((v, pairs, ids, labs, (v, v), rows_ab))

    rows, crosstab_rows, md, ht, notes, plots = [], [], [], [], [], {}
    skipped = []
    for name, pairs, ids, labs, columns, rows_ab in jobs:
        if len(pairs) < 2 and skip_insufficient:
            skipped.append(name)
            continue
        if len(pairs) < 2:
            raise InputError(f"{name}: {len(pairs)} patient(s) read twice ({labs[0]} and {labs[1]}); at least 2 are needed")
        a_vals = [p[0] for p in pairs]
        b_vals = [p[1] for p in pairs]
        k = kind
        if k == "auto":
            try:
                [as_binary(v) for v in a_vals + b_vals]
                k = "categorical"
            except ValueError:
                # numbers with a stray text value are a typing error, not categories
                for col in dict.fromkeys(columns):
                    i = stray_text(table, col)
                    if i is not None:
                        raise stray_text_error(table, col, i, "give --kind categorical") from None
                k = "continuous" if all(is_number(v) for v in a_vals + b_vals) else "categorical"
        row = {"variable": name, "reading_a": labs[0], "reading_b": labs[1], "n": len(pairs), "kind": k}
        if k in ("categorical", "ordinal"):
            def norm(v):
                try:
                    return as_binary(v)
                except ValueError:
                    return v
            a_n = [norm(v) for v in a_vals]
            b_n = [norm(v) for v in b_vals]
            cats = list(categories) if categories else None
            if cats is not None:
                cats = [norm(c) if not isinstance(c, str) or not c.replace(".", "", 1).isdigit() else _num(c) for c in cats]
            res = cohen_kappa(a_n, b_n, None, cats)
            row.update({"kappa": res.kappa, "kappa_se": res.se, "kappa_ci_low": res.ci_low, "kappa_ci_high": res.ci_high,
                        "kappa_se0": res.se0, "kappa_z": res.z, "kappa_p": res.p_value, "n_disagree": res.n_disagree,
                        "pct_disagree": res.pct_disagree, "p_observed": res.p_observed, "p_expected": res.p_expected,
                        "method": "Cohen's kappa; SE Fleiss-Cohen-Everitt 1969 (CI: non-null SE, Wald, not capped "
                                  "at 1 as in SAS and statsmodels; P: null SE, z test, two-sided)",
                        "note": "; ".join(x for x in (res.note, _past_one(res.ci_high, "kappa")) if x)})
            if k == "ordinal":
                wres = cohen_kappa(a_n, b_n, weights or "linear", res.categories)
                row.update({"weighted_kappa": wres.kappa, "weights": weights or "linear", "weighted_kappa_se": wres.se,
                            "weighted_kappa_ci_low": wres.ci_low, "weighted_kappa_ci_high": wres.ci_high,
                            "weighted_kappa_p": wres.p_value})
                extra = _past_one(wres.ci_high, "weighted kappa")
                if extra:
                    row["note"] = "; ".join(x for x in (row.get("note"), extra) if x)
            for i, ca in enumerate(res.categories):
                for j, cb in enumerate(res.categories):
                    crosstab_rows.append({"variable": name, "category_a": str(ca), "category_b": str(cb),
                                          "count": int(res.table[i, j])})
            head = [f"{labs[0]} \\ {labs[1]}"] + [str(c) for c in res.categories] + ["total"]
            trows = [[str(ca)] + [str(int(x)) for x in res.table[i]] + [str(int(res.table[i].sum()))]
                     for i, ca in enumerate(res.categories)]
            trows.append(["total"] + [str(int(x)) for x in res.table.sum(axis=0)] + [str(int(res.table.sum()))])
            if math.isnan(res.kappa):
                line = f"{res.note}; disagreements {res.n_disagree}/{res.n} ({fmt_num(res.pct_disagree)}%)"
            else:
                line = (f"kappa = {fmt_num(res.kappa, 3)}{ci_text(res.ci_low, res.ci_high)}, "
                        f"{p_text(res.p_value)}; disagreements {res.n_disagree}/{res.n} ({fmt_num(res.pct_disagree)}%)")
            if k == "ordinal":
                line += (f"; weighted kappa ({row['weights']}) = {fmt_num(row['weighted_kappa'], 3)} "
                         f"{ci_text(row['weighted_kappa_ci_low'], row['weighted_kappa_ci_high'])}")
            md.append(f"#### {name}: {labs[0]} vs {labs[1]}\n\n{line}\n\n" + markdown_table(head, trows))
            ht.append(f"<h4>{name}: {labs[0]} vs {labs[1]}</h4><p>{line}</p>" + html_table(head, trows, css_class="crosstab"))
        else:
            try:
                a_f = numeric(table, columns[0], [ia for ia, _ in rows_ab])
                b_f = numeric(table, columns[1], [ib for _, ib in rows_ab])
            except InputError as e:
                raise InputError(f"{e} (--kind continuous needs numbers; --kind categorical compares categories)") from None
            icc = icc_a1(np.column_stack([a_f, b_f]))
            ba = bland_altman(a_f, b_f, loa_multiplier)
            row.update({"icc": icc.icc, "icc_ci_low": icc.ci_low, "icc_ci_high": icc.ci_high, "icc_f": icc.f_value,
                        "icc_df1": icc.df1, "icc_df2": icc.df2, "icc_p": icc.p_value, "mean_a": ba.mean_a,
                        "mean_b": ba.mean_b, "bias": ba.bias, "bias_ci_low": ba.bias_ci[0], "bias_ci_high": ba.bias_ci[1],
                        "sd_difference": ba.sd, "loa_low": ba.loa_low, "loa_high": ba.loa_high,
                        "loa_low_ci_low": ba.loa_low_ci[0], "loa_low_ci_high": ba.loa_low_ci[1],
                        "loa_high_ci_low": ba.loa_high_ci[0], "loa_high_ci_high": ba.loa_high_ci[1],
                        "proportional_bias_slope": ba.slope, "proportional_bias_p": ba.slope_p,
                        "method": f"ICC(A,1) two-way random, absolute agreement, single measures (McGraw & Wong 1996; "
                                  f"F-based CI; P: F test on (n − 1, n − 1) df); Bland-Altman: bias = mean({labs[1]} − {labs[0]}) "
                                  f"(second − first), limits bias ± {loa_multiplier:g} SD; proportional bias P: t test "
                                  f"of the slope on n − 2 df", "note": icc.note})
            if math.isnan(icc.icc):
                icc_text = icc.note
            elif math.isnan(icc.ci_low) or math.isnan(icc.f_value):
                ci = fmt_ci(icc.ci_low, icc.ci_high)
                icc_text = f"ICC(A,1) = {fmt_num(icc.icc, 3)} ({f'95% CI {ci}; ' if ci else ''}{icc.note})"
            else:
                icc_text = (f"ICC(A,1) = {fmt_num(icc.icc, 3)}{ci_text(icc.ci_low, icc.ci_high)}, "
                            f"F({icc.df1},{icc.df2}) = {fmt_num(icc.f_value, 2)}, {p_text(icc.p_value)}")
            line = (f"{icc_text}; Bland-Altman bias {fmt_num(ba.bias, 2)}"
                    f"{ci_text(*ba.bias_ci, digits=2)}, limits of agreement {fmt_num(ba.loa_low, 2)}"
                    f"{ci_text(*ba.loa_low_ci, digits=2)} to {fmt_num(ba.loa_high, 2)}"
                    f"{ci_text(*ba.loa_high_ci, digits=2)}")
            md.append(f"#### {name}: {labs[0]} vs {labs[1]} (n = {len(pairs)})\n\n{line}\n")
            ht.append(f"<h4>{name}: {labs[0]} vs {labs[1]} (n = {len(pairs)})</h4><p>{line}</p>")
            plots[name] = (a_f, b_f, ba, labs)
        rows.append(row)
    if not rows:
        raise InputError(f"no variable was read twice ({', '.join(skipped)}): nothing to compare")
    if skipped:
        notes.append(f"Not read twice by both readings (left out): {', '.join(skipped)}")
    cols = [Column("variable", "string", "", "Variable (or the two columns compared)"),
            Column("reading_a", "string", "", "First reading"), Column("reading_b", "string", "", "Second reading"),
            Column("kind", "string", "", "categorical | ordinal | continuous"),
            Column("n", "int", "", "Patients with both readings"),
            Column("kappa", "double", "", "Cohen's kappa"),
            Column("kappa_se", "double", "", "Asymptotic SE (non-null, Fleiss-Cohen-Everitt 1969), used for the CI"),
            Column("kappa_ci_low", "double", "", "95% CI lower bound"), Column("kappa_ci_high", "double", "", "95% CI upper bound"),
            Column("kappa_se0", "double", "", "SE under H0 kappa = 0, used for z and P"),
            Column("kappa_z", "double", "", "z = kappa / SE0"), Column("kappa_p", "double", "", "Two-sided P of H0 kappa = 0"),
            Column("n_disagree", "int", "", "Patients classed differently by the two readings"),
            Column("pct_disagree", "double", "%", "Share of disagreements"),
            Column("p_observed", "double", "", "Observed agreement"), Column("p_expected", "double", "", "Chance agreement"),
            Column("weighted_kappa", "double", "", "Weighted kappa (ordinal)"),
            Column("weights", "string", "", "linear | quadratic agreement weights"),
            Column("weighted_kappa_se", "double", "", "SE of weighted kappa (non-null)"),
            Column("weighted_kappa_ci_low", "double", "", "95% CI lower bound"),
            Column("weighted_kappa_ci_high", "double", "", "95% CI upper bound"),
            Column("weighted_kappa_p", "double", "", "Two-sided P of H0 weighted kappa = 0"),
            Column("icc", "double", "", "ICC(A,1): two-way random, absolute agreement, single measures"),
            Column("icc_ci_low", "double", "", "95% CI lower bound (McGraw & Wong 1996)"),
            Column("icc_ci_high", "double", "", "95% CI upper bound"),
            Column("icc_f", "double", "", "F = MSR / MSE"), Column("icc_df1", "int", "", "n - 1"),
            Column("icc_df2", "int", "", "(n - 1)(k - 1)"), Column("icc_p", "double", "", "P of H0 ICC = 0"),
            Column("mean_a", "double", "", "Mean of the first reading"), Column("mean_b", "double", "", "Mean of the second reading"),
            Column("bias", "double", "", "Mean difference (second - first)"),
            Column("bias_ci_low", "double", "", "95% CI of the bias, lower"), Column("bias_ci_high", "double", "", "95% CI of the bias, upper"),
            Column("sd_difference", "double", "", "SD of the differences"),
            Column("loa_low", "double", "", "Lower limit of agreement"), Column("loa_high", "double", "", "Upper limit of agreement"),
            Column("loa_low_ci_low", "double", "", "95% CI of the lower limit, lower (Bland & Altman 1999)"),
            Column("loa_low_ci_high", "double", "", "95% CI of the lower limit, upper"),
            Column("loa_high_ci_low", "double", "", "95% CI of the upper limit, lower"),
            Column("loa_high_ci_high", "double", "", "95% CI of the upper limit, upper"),
            Column("proportional_bias_slope", "double", "", "Slope of difference on mean (0 = no proportional bias)"),
            Column("proportional_bias_p", "double", "", "P of that slope"),
            Column("method", "string", "", "Statistics and standard errors used"),
            Column("note", "string", "", "Remarks")]
    t = Table(cols, rows, "agreement", f"Reader agreement ({src})")
    ct = Table([Column("variable", "string"), Column("category_a", "string", "", "Category in the first reading"),
                Column("category_b", "string", "", "Category in the second reading"), Column("count", "int", "", "Patients")],
               crosstab_rows, "agreement_crosstab", "k×k tables of the categorical variables")
    notes.append(f"Source: {src}. Kappa: 95% CI from the non-null asymptotic SE, P from z = kappa/SE0 under H0 kappa = 0 "
                 f"(Fleiss, Cohen & Everitt 1969). ICC(A,1) with McGraw & Wong's F-based CI. Bland-Altman limits "
                 f"= bias ± {loa_multiplier:g} SD.")
    res = StatsResult("agreement", {"agreement": t, "agreement_crosstab": ct}, "### Reader agreement\n\n" + "\n".join(md),
                      "<h3>Reader agreement</h3>" + "\n".join(ht), notes=notes,
                      parameters={"between": between, "levels": list(levels) if levels else None,
                                  "pairs": [list(p) for p in pair_columns] if pair_columns else None, "kind": kind,
                                  "weights": weights, "where": list(where or []), "loa_multiplier": loa_multiplier})
    res.plot_data = plots
    return res


def _num(s):
    try:
        f = float(s)
        return int(f) if f == int(f) else f
    except ValueError:
        return s
