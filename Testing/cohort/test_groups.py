"""Group comparison (study 2 Tables 1-2 layout) against published P values and independent formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from calcinosis.cohort import groups
from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

# Study 2 (Bauer et al., Medicine 2020), Table 2: hand radiograph lesions, lcSSc n=55 vs dcSSc n=22.
# (name, n lcSSc, n dcSSc, published P).  All rows whose counts are internally consistent are used;
# "Subluxation" is left out because its published counts (11 + 3) do not add up to its total (15).
TABLE2 = [("calcinosis", 16, 4, 0.324), ("acro_osteolysis", 11, 5, 0.79), ("periarticular", 19, 3, 0.066),
          ("subchondral_erosions", 5, 2, 1.0), ("marginal_erosions", 9, 3, 0.766), ("narrowing", 22, 11, 0.423),
          ("flexion", 10, 11, 0.005)]
# Study 2 Table 1 (lcSSc n=58, dcSSc n=19): continuous rows, published mean, SD (rounded) and P.
TABLE1_CONT = [("age_years", 57.3, 14.0, 55.5, 15.5, 0.644, 0.05, 0.5), ("duration_years", 5.7, 5.5, 6.1, 7.2, 0.788, 0.05, 0.05),
               ("esr_mm", 25.0, 23.9, 31.7, 29.5, 0.31, 0.5, 0.05), ("crp_mg_l", 10.0, 19.0, 14.0, 24.0, 0.4, 0.5, 0.5),
               ("corticosteroid_mg", 3.5, 7.2, 5.4, 3.9, 0.28, 0.05, 0.05)]


def _exact_sample(mean: float, sd: float, n: int, rng) -> np.ndarray:
    x = rng.normal(size=n)
    x = (x - x.mean()) / x.std(ddof=1)
    return mean + sd * x


def _table2_cohort() -> Table:
    rows = []
    n1, n2 = 55, 22
    for i in range(n1 + n2):
        g = "lcSSc" if i < n1 else "dcSSc"
        k = i if i < n1 else i - n1
        r = {"patient_id": f"P{i:03d}", "subset": g}
        for name, a, b, _ in TABLE2:
            r[name] = int(k < (a if g == "lcSSc" else b))
        rows.append(r)
    cols = [Column("patient_id", "string"), Column("subset", "string")] + [Column(n, "int") for n, *_ in TABLE2]
    return Table(cols, rows, "table2")


def test_table2_chi2_reproduces_published_p_values():
    """Synthetic cohort with study 2's Table 2 counts: Pearson chi-squared without continuity
    correction gives the published P to the 3 decimals printed (the paper's default test).
    Tolerance 0.001: the last printed digit (periarticular: P = 0.06650 is printed .066, i.e.
    truncated rather than rounded); the continuity-corrected or Fisher P differ by far more."""
    res = groups.compare_groups(_table2_cohort(), "subset", group_order=["lcSSc", "dcSSc"])
    t = res.tables["groups"]
    by_var = {r["variable"]: r for r in t.rows}
    for name, a, b, published in TABLE2:
        row = by_var[name]
        assert row["test"] == "Pearson chi-squared"
        assert abs(row["p_value"] - published) < 0.001, name
        assert row["subset=lcSSc"] == f"{a} ({100 * a / 55:.1f})"
        assert row["subset=dcSSc"] == f"{b} ({100 * b / 22:.1f})"
        assert row["total"] == f"{a + b} ({100 * (a + b) / 77:.1f})"


def test_pearson_chi2_matches_hand_formula_and_scipy():
    t = np.array([[16, 39], [4, 18]])
    res = groups.pearson_chi2(t)
    e = np.outer(t.sum(1), t.sum(0)) / t.sum()
    chi2 = ((t - e) ** 2 / e).sum()
    assert res.statistic == pytest.approx(chi2, rel=1e-12)
    assert res.p_value == pytest.approx(sps.chi2.sf(chi2, 1), rel=1e-12)
    assert res.p_value == pytest.approx(sps.chi2_contingency(t, correction=False).pvalue, rel=1e-12)
    # the continuity-corrected value differs: proves no Yates correction is applied
    assert abs(res.p_value - sps.chi2_contingency(t, correction=True).pvalue) > 0.05


def test_fisher_exact_2x2_against_hypergeometric_enumeration():
    t = np.array([[10, 45], [11, 11]])   # study 2 'flexion'
    a, b, c, d = t.ravel()
    r1, c1, n = a + b, a + c, t.sum()
    pmf = {x: math.comb(c1, x) * math.comb(n - c1, r1 - x) / math.comb(n, r1) for x in range(max(0, r1 + c1 - n), min(r1, c1) + 1)}
    p_obs = pmf[a]
    p_two = sum(p for p in pmf.values() if p <= p_obs * (1 + 1e-7))
    res = groups.fisher_exact(t)
    assert res.test == "Fisher exact"
    assert res.p_value == pytest.approx(p_two, rel=1e-9)


def test_table1_continuous_student_t_matches_summary_statistics():
    """Synthetic groups with exactly the published mean and SD: the pooled t-test P equals the
    P computed from the summary statistics (scipy's ttest_ind_from_stats, a separate route),
    and the published P lies within what rounding of the printed means/SDs allows."""
    rng = np.random.default_rng(1)
    rows = [{"patient_id": f"P{i}", "subset": "lcSSc" if i < 58 else "dcSSc"} for i in range(77)]
    for name, m1, s1, m2, s2, _, dm, ds in TABLE1_CONT:
        x1, x2 = _exact_sample(m1, s1, 58, rng), _exact_sample(m2, s2, 19, rng)
        for i, v in enumerate(np.r_[x1, x2]):
            rows[i][name] = float(v)
    t = Table([Column("patient_id", "string"), Column("subset", "string")] + [Column(n, "double") for n, *_ in TABLE1_CONT],
              rows)
    res = groups.compare_groups(t, "subset", group_order=["lcSSc", "dcSSc"])
    by_var = {r["variable"]: r for r in res.tables["groups"].rows}
    for name, m1, s1, m2, s2, published, dm, ds in TABLE1_CONT:
        row = by_var[name]
        assert row["test"] == "Student t (pooled)"
        ref = sps.ttest_ind_from_stats(m1, s1, 58, m2, s2, 19, equal_var=True).pvalue
        assert row["p_value"] == pytest.approx(ref, rel=1e-9)
        corners = [sps.ttest_ind_from_stats(m1 + a * dm, s1 + b * ds, 58, m2 + c * dm, s2 + d * ds, 19).pvalue
                   for a, b, c, d in itertools.product((-1, 1), repeat=4)]
        assert min(corners) <= published <= max(corners), name
        assert row["subset=lcSSc"] == f"{m1:.1f} ± {s1:.1f}"


def test_welch_and_mann_whitney_options_against_independent_routes():
    rng = np.random.default_rng(3)
    a = rng.normal(10, 2, 12)
    b = rng.normal(12, 5, 7)
    w = groups.welch_t(a, b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    assert w.statistic == pytest.approx(t, rel=1e-10)
    assert w.p_value == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    # Mann-Whitney: exact two-sided P by enumerating every split of the pooled ranks (no ties)
    a, b = np.array([1.1, 2.3, 3.7, 8.2]), np.array([4.4, 5.0, 6.1, 9.9, 7.3])
    pooled = np.r_[a, b]
    ranks = sps.rankdata(pooled)
    u_obs = ranks[:4].sum() - 4 * 5 / 2
    us = [ranks[list(c)].sum() - 10 for c in itertools.combinations(range(9), 4)]
    mean_u = 4 * 5 / 2
    p = sum(1 for u in us if abs(u - mean_u) >= abs(u_obs - mean_u) - 1e-12) / len(us)
    mw = groups.mann_whitney(a, b)
    assert mw.p_value == pytest.approx(p, rel=1e-12)
    assert mw.test == "Mann-Whitney U" and mw.p_method == groups.P_MW_EXACT


def test_mann_whitney_with_ties_or_50_per_group_is_the_named_normal_approximation():
    """scipy's 'auto' would be exact only below 8 per group; here the choice is R's
    (exact without ties and below 50 per group), and the approximation is checked against
    the formula: z = (|U - mn/2| - 0.5) / sqrt(mn/12 (N + 1 - sum(t^3 - t)/(N(N - 1))))."""
    rng = np.random.default_rng(8)
    for a, b in ((np.round(rng.normal(10, 3, 9)), np.round(rng.normal(12, 3, 11))),   # ties
                 (rng.normal(0, 1, 55), rng.normal(0.4, 1, 60))):                     # 55 and 60, no ties
        mw = groups.mann_whitney(a, b)
        m, n = len(a), len(b)
        r = sps.rankdata(np.r_[a, b])
        u = r[:m].sum() - m * (m + 1) / 2
        _, t = np.unique(r, return_counts=True)
        var = m * n / 12 * ((m + n + 1) - (t ** 3 - t).sum() / ((m + n) * (m + n - 1)))
        z = (abs(u - m * n / 2) - 0.5) / math.sqrt(var)
        assert mw.p_value == pytest.approx(2 * sps.norm.sf(z), rel=1e-9)
        assert mw.p_method == groups.P_MW_NORMAL
    a, b = rng.normal(0, 1, 30), rng.normal(1, 1, 40)                                   # exact at 30 and 40
    mw = groups.mann_whitney(a, b)
    assert mw.p_method == groups.P_MW_EXACT
    assert mw.p_value == pytest.approx(sps.mannwhitneyu(a, b, method="exact").pvalue, rel=1e-12)


def test_every_p_names_its_method_and_missing_is_counted_per_group():
    t = _table2_cohort()
    missing = (0, 1, 60)                     # two lcSSc patients, one dcSSc
    t.add_column(Column("age_years", "double"), [None if i in missing else 30.0 + i % 37 for i in range(77)])
    for cat, cont in (("chi2", "student"), ("fisher", "mannwhitney"), ("chi2", "welch")):
        rows = groups.compare_groups(t, "subset", ["calcinosis", "age_years"], categorical_test_name=cat,
                                     continuous_test_name=cont).tables["groups"].rows
        assert all(r["p_method"] for r in rows if r["p_value"] is not None)
        miss = [r for r in rows if r["level"] == groups.MISSING_LEVEL]
        assert [r["variable"] for r in miss] == ["age_years"]
        assert miss[0]["subset=lcSSc"] == "2" and miss[0]["subset=dcSSc"] == "1"
        assert miss[0]["total"] == "3" and miss[0]["p_value"] is None


def test_welch_anova_two_groups_equals_welch_t():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 9), rng.normal(1, 3, 14)
    wa = groups.welch_anova([a, b])
    wt = groups.welch_t(a, b)
    assert wa.statistic == pytest.approx(wt.statistic ** 2, rel=1e-10)
    assert wa.p_value == pytest.approx(wt.p_value, rel=1e-8)


def test_options_name_the_test_on_every_row_and_categorical_levels():
    t = _table2_cohort()
    t.add_column(Column("stage", "string"), [("I-II" if i % 3 else "III-IV") for i in range(77)])
    t.add_column(Column("age_years", "double"), list(np.linspace(30, 80, 77)))
    res = groups.compare_groups(t, "subset", ["calcinosis", "stage", "age_years"], categorical_test_name="fisher",
                                continuous_test_name="welch")
    rows = res.tables["groups"].rows
    tests = {r["variable"]: r["test"] for r in rows if r["test"]}
    assert tests == {"calcinosis": "Fisher exact", "stage": "Fisher exact", "age_years": "Welch t"}
    levels = [r["level"] for r in rows if r["variable"] == "stage"]
    assert levels == ["", "I-II", "III-IV"]
    md = res.full_markdown()
    assert "Fisher exact" in md and "| Variable |" in md
    assert "<table" in res.html


def test_bad_input_one_group_and_too_few_patients():
    t = Table([Column("patient_id", "string"), Column("subset", "string"), Column("x", "double")],
              [{"patient_id": f"P{i}", "subset": "lcSSc", "x": float(i)} for i in range(5)], "t.csv")
    with pytest.raises(InputError, match="single group"):
        groups.compare_groups(t, "subset")
    t1 = Table(t.columns, t.rows[:1], "t.csv")
    with pytest.raises(InputError, match="at least 2"):
        groups.compare_groups(t1, "subset")
    with pytest.raises(InputError, match="no column 'grp'"):
        groups.compare_groups(t, "grp")
    dup = Table(t.columns, t.rows + [dict(t.rows[0], subset="dcSSc")], "t.csv")
    with pytest.raises(InputError, match="row 7.*also on row 2"):
        groups.compare_groups(dup, "subset")


def _brute_force_fisher(t: np.ndarray) -> float:
    """Every table with the margins of ``t`` (itertools over the free cells) weighed by
    scipy.stats.random_table's pmf - an enumeration independent of the one under test."""
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    dist = sps.random_table(rows, cols)
    p_obs = dist.pmf(t)
    r, c = t.shape
    total = 0.0
    ranges = [range(min(rows[i], cols[j]) + 1) for i in range(r - 1) for j in range(c - 1)]
    for free in itertools.product(*ranges):
        m = np.zeros((r, c), dtype=np.int64)
        m[:r - 1, :c - 1] = np.array(free).reshape(r - 1, c - 1)
        m[:r - 1, c - 1] = rows[:r - 1] - m[:r - 1, :c - 1].sum(axis=1)
        m[r - 1, :] = cols - m[:r - 1, :].sum(axis=0)
        if (m < 0).any() or m[r - 1].sum() != rows[r - 1]:
            continue
        pm = dist.pmf(m)
        if pm <= p_obs * (1 + 1e-7):
            total += pm
    return total


def test_fisher_exact_rxc_is_exact_against_brute_force():
    """Issue 13: the r×c test was a Monte Carlo estimate labelled exact. Now the P of tables
    small enough to enumerate is exact: equal (1e-9) to a brute-force enumeration weighed by
    scipy's random_table pmf, named exact on the row, and the same on every run; 2×2 as
    scipy's exact test."""
    rng = np.random.default_rng(11)
    for shape in ((2, 3), (3, 3), (3, 2), (2, 4)):
        for _ in range(4):
            t = rng.integers(0, 5, shape) + (rng.random(shape) < 0.3)
            if (t.sum(axis=0) == 0).any() or (t.sum(axis=1) == 0).any():
                continue
            res = groups.fisher_exact(t)
            assert res.test.startswith("Fisher exact (r×c") and "exact" in res.test
            assert res.p_value == pytest.approx(_brute_force_fisher(t), rel=1e-9, abs=1e-15)
            assert groups.fisher_exact(t).p_value == res.p_value
    for _ in range(20):
        t = rng.integers(0, 15, (2, 2))
        if (t.sum(axis=0) > 0).all() and (t.sum(axis=1) > 0).all():
            assert groups.fisher_exact_rxc(t) == pytest.approx(sps.fisher_exact(t).pvalue, rel=1e-9)


def test_fisher_rxc_too_large_is_named_monte_carlo():
    """Agresti's job-satisfaction table (4×4, n = 96): R's fisher.test gives P = 0.7827 by the
    network algorithm; beyond the enumeration limit the row says Monte Carlo, with its seed
    and standard error, and the estimate lies within 4 SE of R's exact value."""
    job = np.array([[1, 2, 1, 0], [3, 3, 6, 1], [10, 10, 14, 9], [6, 7, 12, 11]])
    res = groups.fisher_exact(job)
    assert "Monte Carlo" in res.test and "seed 0" in res.test and "SE" in res.test and "not exact" in res.note
    se = math.sqrt(0.7827 * (1 - 0.7827) / groups.FISHER_MC_RESAMPLES)
    assert abs(res.p_value - 0.7827) < 4 * se


def test_groups_csv_has_the_statistic_and_its_degrees_of_freedom():
    """Issue 13: groups.csv carries each test's statistic and df (chi-squared on (r-1)(c-1),
    Student t on n-2), equal to scipy's."""
    t = _table2_cohort()
    t.add_column(Column("age_years", "double"), list(np.linspace(30, 80, 77)))
    res = groups.compare_groups(t, "subset", ["calcinosis", "age_years"])
    rows = {r["variable"]: r for r in res.tables["groups"].rows if r["test"]}
    assert rows["calcinosis"]["df"] == 1.0 and rows["calcinosis"]["statistic"] > 0
    assert rows["age_years"]["df"] == 75.0
    by = {}
    for r in t.rows:
        by.setdefault(r["subset"], []).append(r["age_years"])
    a, b = (by[k] for k in sorted(by))
    assert abs(rows["age_years"]["statistic"]) == pytest.approx(abs(sps.ttest_ind(a, b).statistic), rel=1e-10)
