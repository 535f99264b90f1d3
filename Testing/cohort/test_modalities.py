"""Modality comparison (study 1): rank tests checked against hand computation and exact enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from calcinosis.cohort import modalities
from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table


def test_friedman_against_hand_computed_ranks():
    # 5 hands x 3 modalities, no ties within a hand: chi2_F = 12/(n k (k+1)) * sum R_j^2 - 3 n (k+1)
    Y = np.array([[5, 7, 4], [2, 3, 1], [9, 12, 8], [0, 2, 1], [6, 8, 5]], float)
    ranks = np.array([[2, 3, 1], [2, 3, 1], [2, 3, 1], [1, 3, 2], [2, 3, 1]], float)
    n, k = Y.shape
    R = ranks.sum(axis=0)
    chi2 = 12 / (n * k * (k + 1)) * (R ** 2).sum() - 3 * n * (k + 1)
    res = modalities.friedman(Y)
    assert res.statistic == pytest.approx(chi2, rel=1e-12)
    assert res.p_value == pytest.approx(sps.chi2.sf(chi2, k - 1), rel=1e-12)
    assert res.means == pytest.approx(Y.mean(axis=0).tolist())


def test_wilcoxon_exact_p_by_enumerating_sign_flips():
    a = np.array([120.0, 85.0, 300.0, 42.0, 16.0, 77.0, 210.0])
    b = np.array([100.0, 90.0, 240.0, 30.0, 15.0, 60.0, 150.0])
    d = b - a                                  # second - first, the one direction of every difference
    r = sps.rankdata(np.abs(d))                # |d| has a tie (60, 60): exact conditional on it
    w_plus = r[d > 0].sum()
    total = r.sum()
    stats = [sum(r[i] for i in range(len(d)) if s[i]) for s in itertools.product((0, 1), repeat=len(d))]
    mid = total / 2
    p = sum(1 for s in stats if abs(s - mid) >= abs(w_plus - mid) - 1e-12) / len(stats)
    res = modalities.paired(a, b)
    assert res.wilcoxon_p == pytest.approx(p, rel=1e-12)
    assert res.wilcoxon_method.startswith("exact")
    # paired t by formula
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert res.t_statistic == pytest.approx(t, rel=1e-12)
    assert res.t_p == pytest.approx(2 * sps.t.sf(abs(t), len(d) - 1), rel=1e-10)
    assert res.mean_diff == pytest.approx(d.mean()) and res.sd_diff == pytest.approx(d.std(ddof=1))


def test_spearman_against_d_squared_formula():
    x = np.array([12.0, 3.0, 45.0, 7.0, 30.0, 1.0, 18.0])
    y = np.array([150.0, 20.0, 400.0, 90.0, 260.0, 15.0, 100.0])
    rx, ry = sps.rankdata(x), sps.rankdata(y)
    n = len(x)
    rho = 1 - 6 * ((rx - ry) ** 2).sum() / (n * (n * n - 1))
    res = modalities.spearman(x, y)
    assert res.rho == pytest.approx(rho, rel=1e-12)
    t = rho * np.sqrt((n - 2) / (1 - rho ** 2))
    assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), n - 2), rel=1e-9)


def _cohort_tables(n: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    hands, digits = [], []
    truth_ct, truth_mri, truth_area = [], [], []
    for p in range(n):
        for mod in ("xr", "ct", "mri"):
            hands.append({"patient_id": f"P{p}", "reader": "R1", "read": 1, "time_point": "baseline", "side": "R",
                          "modality": mod, "lesion_count": int(rng.integers(0, 12))})
        for dg in ("thumb", "index"):
            v = float(rng.lognormal(5, 1))
            ct, mri, area = v * 1.3, v * rng.uniform(0.7, 1.0), v ** (2 / 3)
            truth_ct.append(ct)
            truth_mri.append(mri)
            truth_area.append(area)
            for mod, val in (("ct", ct), ("mri", mri), ("xr", None)):
                digits.append({"patient_id": f"P{p}", "reader": "R1", "read": 1, "time_point": "baseline", "side": "R",
                               "digit": dg, "modality": mod, "lesion_count": 1,
                               "total_volume_mm3": val, "total_area_mm2": area if mod == "xr" else None,
                               "total_projected_area_mm2": None})
    hc = [Column("patient_id", "string"), Column("reader", "string"), Column("read", "int"), Column("time_point", "string"),
          Column("side", "string"), Column("modality", "string"), Column("lesion_count", "int")]
    dc = hc[:5] + [Column("digit", "string"), Column("modality", "string"), Column("lesion_count", "int"),
                   Column("total_volume_mm3", "double"), Column("total_area_mm2", "double"),
                   Column("total_projected_area_mm2", "double")]
    return Table(hc, hands, "hands.csv"), Table(dc, digits, "digits.csv"), (truth_ct, truth_mri, truth_area)


def test_compare_modalities_on_cohort_tables():
    hands, digits, (ct, mri, area) = _cohort_tables()
    res = modalities.compare_modalities(hands, digits)
    rows = res.tables["modalities"].rows
    fr = next(r for r in rows if r["test"] == "Friedman")
    Y = np.array([[r["lesion_count"] for r in hands.rows if r["patient_id"] == f"P{p}"] for p in range(8)], float)
    assert fr["p_value"] == pytest.approx(sps.friedmanchisquare(*Y.T).pvalue)
    assert fr["n"] == 8
    w = next(r for r in rows if r["test"] == "Wilcoxon signed-rank")
    assert w["n"] == 16
    assert w["comparison"] == "MRI − CT"
    assert w["mean_difference"] == pytest.approx(np.mean(np.subtract(mri, ct)))
    assert w["p_value"] == pytest.approx(sps.wilcoxon(ct, mri, method="exact").pvalue)   # 16 pairs, no ties
    assert w["p_method"] == modalities.P_WILCOXON_EXACT
    t = next(r for r in rows if r["test"] == "paired t")
    assert t["statistic"] == pytest.approx(sps.ttest_rel(mri, ct).statistic) and t["p_method"] == modalities.P_PAIRED_T
    sp = [r for r in rows if r["test"] == "Spearman rho"]
    assert {r["comparison"] for r in sp} == {"XR area vs CT volume", "XR area vs MRI volume"}
    ref = sps.spearmanr(area, ct).statistic
    assert next(r for r in sp if r["comparison"] == "XR area vs CT volume")["statistic"] == pytest.approx(ref)


def test_compare_modalities_refuses_pooled_readings():
    hands, digits, _ = _cohort_tables(4)
    extra = [dict(r, reader="R2") for r in hands.rows]
    both = Table(hands.columns, hands.rows + extra, "hands.csv")
    with pytest.raises(InputError, match="several readings"):
        modalities.compare_modalities(both, None)
    res = modalities.compare_modalities(both, None, where=["reader=R2"])
    assert res.tables["modalities"].rows[0]["n"] == 4


def test_too_few_units():
    with pytest.raises(InputError, match="at least 2"):
        modalities.friedman(np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(InputError, match="at least 3"):
        modalities.spearman([1, 2], [2, 3])


def test_wilcoxon_from_50_pairs_is_the_named_normal_approximation():
    """From 50 non-zero differences the P is the normal approximation with continuity and tie
    correction (as R's wilcox.test(correct=TRUE)), checked against the formula."""
    rng = np.random.default_rng(3)
    a = rng.normal(100, 20, 60)
    b = a + rng.normal(3, 10, 60)
    b[:4] = a[:4]                                             # 4 zero differences, dropped
    b[10] = a[10] + (b[11] - a[11])                           # a tie among |d|
    res = modalities.paired(a, b)
    d = (b - a)[b != a]
    r = sps.rankdata(np.abs(d))
    n = len(d)
    w = r[d > 0].sum()
    _, tie_counts = np.unique(r, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - (tie_counts ** 3 - tie_counts).sum() / 48
    z = (abs(w - n * (n + 1) / 4) - 0.5) / np.sqrt(var)
    assert res.wilcoxon_p == pytest.approx(2 * sps.norm.sf(z), rel=1e-9)
    assert res.wilcoxon_method == modalities.P_WILCOXON_NORMAL
    assert res.mean_diff == pytest.approx((b - a).mean())


def test_wilcoxon_exact_matches_scipy_without_ties():
    rng = np.random.default_rng(5)
    for n in (2, 6, 11, 20):
        a, b = rng.normal(size=n), rng.normal(size=n)
        s, p = modalities.wilcoxon_exact(b - a)
        ref = sps.wilcoxon(b, a, method="exact")
        assert p == pytest.approx(ref.pvalue, rel=1e-12) and s == ref.statistic
