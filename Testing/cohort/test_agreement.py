"""Reader agreement against published worked examples and an independent library."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from calcinosis.cohort import agreement
from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

# SAS/STAT PROC FREQ documentation, "Agreement Study" (two dermatologists, 88 patients, 4 ordered grades).
SKIN = np.array([[10, 4, 1, 0], [5, 10, 12, 2], [2, 4, 12, 5], [0, 2, 6, 13]])
# Published SAS output: simple kappa 0.3449, ASE 0.0724, 95% CL 0.2030-0.4868; ASE under H0 0.0612, Z 5.6366;
# weighted kappa (Cicchetti-Allison = linear weights) 0.5082, ASE 0.0655, 95% CL 0.3798-0.6366.

# R package irr, data set 'anxiety' (20 subjects, 3 raters; Gamer et al.), used in irr's documentation:
# icc(anxiety, model="twoway", type="agreement") -> ICC(A,1) = 0.198, F(19, 39.7) = 1.83, 95% CI -0.039 to 0.494;
# kappa2(anxiety[,1:2], "squared") -> weighted kappa 0.297, z = 1.34, p = 0.180.
ANX1 = [3, 3, 3, 4, 5, 5, 2, 3, 5, 2, 2, 6, 1, 5, 2, 2, 1, 2, 4, 3]
ANX2 = [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4]
ANX3 = [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2]

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; published ICC(2,1) = .29;
# R psych::ICC on these data gives the 95% CI 0.019 to 0.76 for ICC2 (single random raters).
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)

# Bland & Altman (Lancet 1986): PEFR (l/min) of 17 subjects, first reading with the Wright and the mini
# Wright meter.  Published: mean difference -2.1, SD 38.8, limits (mean ± 2 SD) -79.7 to 75.5.
WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
MINI = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]


def test_kappa_perfect_agreement():
    a = [0, 1, 1, 0, 1, 1, 0, 1]
    r = agreement.cohen_kappa(a, a)
    assert r.kappa == 1.0 and r.n_disagree == 0 and r.pct_disagree == 0.0
    assert r.ci_low == 1.0 and r.ci_high == 1.0
    assert r.p_value < 0.05


def test_kappa_chance_level_agreement_is_zero():
    # the table is the outer product of its margins: agreement exactly as expected by chance
    t = np.array([[4, 6], [6, 9]])
    r = agreement.kappa_from_table(t)
    assert r.kappa == pytest.approx(0.0, abs=1e-12)
    assert r.p_value == pytest.approx(1.0, abs=1e-9)
    assert r.ci_low < 0 < r.ci_high


def test_kappa_sas_skin_condition_worked_example():
    r = agreement.kappa_from_table(SKIN)
    # hand computation of p_o and p_e from the table
    n = SKIN.sum()
    po = np.trace(SKIN) / n
    pe = (SKIN.sum(1) * SKIN.sum(0)).sum() / n ** 2
    assert r.kappa == pytest.approx((po - pe) / (1 - pe), rel=1e-12)
    # SAS's printed values (4 decimals)
    assert round(r.kappa, 4) == 0.3449 and round(r.se, 4) == 0.0724
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (0.2030, 0.4868)
    assert round(r.se0, 4) == 0.0612 and round(r.z, 4) == 5.6366
    w = agreement.kappa_from_table(SKIN, "linear")
    assert round(w.kappa, 4) == 0.5082 and round(w.se, 4) == 0.0655
    assert (round(w.ci_low, 4), round(w.ci_high, 4)) == (0.3798, 0.6366)
    assert r.n_disagree == n - np.trace(SKIN)


def test_kappa_standard_errors_match_statsmodels_on_random_tables(import_extra):
    """statsmodels' cohens_kappa (Fleiss-Cohen-Everitt SEs) as an independent implementation."""
    inter_rater = import_extra("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(5)
    for k in (2, 3, 5):
        for _ in range(5):
            t = rng.integers(0, 15, (k, k)) + np.diag(rng.integers(5, 30, k))
            for wt, ours in ((None, None), ("linear", "linear"), ("quadratic", "quadratic")):
                if wt is None:
                    ref = inter_rater.cohens_kappa(t)
                else:
                    ref = inter_rater.cohens_kappa(t, wt=wt)
                r = agreement.kappa_from_table(t, ours)
                assert r.kappa == pytest.approx(ref.kappa, rel=1e-10)
                assert r.se == pytest.approx(ref.std_kappa, rel=1e-8)
                assert r.se0 == pytest.approx(ref.std_kappa0, rel=1e-8)
                assert r.p_value == pytest.approx(ref.pvalue_two_sided, rel=1e-7, abs=1e-15)


def test_weighted_kappa_irr_anxiety_example():
    r = agreement.cohen_kappa(ANX1, ANX2, "quadratic", categories=[1, 2, 3, 4, 5, 6])
    assert round(r.kappa, 3) == 0.297
    assert round(r.z, 2) == 1.34
    assert round(r.p_value, 3) == 0.180


def test_icc_shrout_fleiss_and_irr_examples():
    sf = agreement.icc_a1(SF)
    assert round(sf.icc, 2) == 0.29
    assert (round(sf.ci_low, 3), round(sf.ci_high, 2)) == (0.019, 0.76)
    anx = agreement.icc_a1(np.column_stack([ANX1, ANX2, ANX3]))
    assert round(anx.icc, 3) == 0.198
    assert round(anx.f_value, 2) == 1.83
    assert (round(anx.ci_low, 3), round(anx.ci_high, 3)) == (-0.039, 0.494)
    # our P is McGraw & Wong's test of ICC = 0: F = MSR/MSE on (n-1, (n-1)(k-1)) df.  (irr prints
    # p = .0543 because it uses the Satterthwaite df of the CI, 39.7, as the test's second df.)
    assert anx.p_value == pytest.approx(sps.f.sf(anx.f_value, 19, 38), rel=1e-12)
    assert anx.df2 == 38


def test_icc_of_identical_readings_is_one():
    x = np.array([1.0, 5.0, 2.5, 9.0])
    r = agreement.icc_a1(np.column_stack([x, x]))
    assert r.icc == pytest.approx(1.0)


def test_bland_altman_published_pefr_example():
    r = agreement.bland_altman(MINI, WRIGHT, multiplier=2.0)  # differences Wright - mini Wright
    assert round(r.bias, 1) == -2.1 and round(r.sd, 1) == 38.8
    # the paper computed its limits from the rounded -2.1 and 38.8: allow that rounding (0.15)
    assert abs(r.loa_low - (-79.7)) < 0.15 and abs(r.loa_high - 75.5) < 0.15
    d = np.array(WRIGHT, float) - np.array(MINI, float)
    t = sps.t.ppf(0.975, len(d) - 1)
    assert r.bias_ci == pytest.approx((d.mean() - t * d.std(ddof=1) / math.sqrt(17), d.mean() + t * d.std(ddof=1) / math.sqrt(17)))
    r196 = agreement.bland_altman(MINI, WRIGHT)
    assert r196.loa_high == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))


def _long_table(a, b, between="reader", labels=("A", "B"), extra=None):
    rows = []
    for i, (x, y) in enumerate(zip(a, b)):
        rows.append({"patient_id": f"P{i}", "reader": labels[0] if between == "reader" else "A", "read": 1 if between == "reader" else 1, "v": x})
        rows.append({"patient_id": f"P{i}", "reader": labels[1] if between == "reader" else "A", "read": 1 if between == "reader" else 2, "v": y})
    return Table([Column("patient_id", "string"), Column("reader", "string"), Column("read", "int"),
                  Column("v", "int" if isinstance(a[0], int) else "double")], rows, "patients.csv")


def test_reader_agreement_long_table_pairs_patients():
    a = [1, 1, 0, 1, 0, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 1, 0, 1, 1, 1, 0, 1]
    res = agreement.reader_agreement(_long_table(a, b), ["v"], between="reader")
    row = res.tables["agreement"].rows[0]
    ref = agreement.cohen_kappa(a, b)
    assert row["kappa"] == pytest.approx(ref.kappa)
    assert row["n_disagree"] == 2 and row["pct_disagree"] == pytest.approx(20.0)
    assert row["n"] == 10
    ct = res.tables["agreement_crosstab"].rows
    assert sum(r["count"] for r in ct) == 10
    assert "kappa" in res.markdown and "disagreements 2/10" in res.markdown
    # continuous: ICC + Bland-Altman
    x = [10.0, 20.0, 35.0, 12.0, 50.0]
    y = [11.0, 19.0, 37.0, 12.5, 47.0]
    res = agreement.reader_agreement(_long_table(x, y, "read"), ["v"], between="read")
    row = res.tables["agreement"].rows[0]
    assert row["kind"] == "continuous"
    assert row["icc"] == pytest.approx(agreement.icc_a1(np.column_stack([x, y])).icc)
    assert row["bias"] == pytest.approx(np.mean(np.subtract(y, x)))


def test_reader_agreement_bad_input():
    t = _long_table([1, 0], [1, 0])
    with pytest.raises(InputError, match="at least 2"):
        agreement.reader_agreement(Table(t.columns, t.rows[:2], "p.csv"), ["v"], between="reader")
    t3 = _long_table([1, 0, 1], [1, 0, 1], labels=("A", "B"))
    t3.rows.append({"patient_id": "P9", "reader": "C", "read": 1, "v": 1})
    with pytest.raises(InputError, match="3 value"):
        agreement.reader_agreement(t3, ["v"], between="reader")
    res = agreement.reader_agreement(t3, ["v"], between="reader", levels=["A", "B"])
    assert res.tables["agreement"].rows[0]["n"] == 3


def test_icc_identical_readings_state_why_there_is_no_interval(cli, tmp_path):
    """Identical readings: ICC 1 by definition, the CI and F test undefined - said in the line and in the
    table's note column, never an empty '(95% CI )' or 'F = inf' (issue 12)."""
    x = np.array([10.0, 20.0, 35.0, 5.0, 50.0])
    r = agreement.icc_a1(np.column_stack([x, x]))
    assert r.icc == 1.0 and r.note == agreement.ICC_IDENTICAL_NOTE
    assert math.isnan(r.ci_low) and math.isnan(r.ci_high) and math.isnan(r.f_value) and math.isnan(r.p_value)
    csv = tmp_path / "same.csv"
    csv.write_text("patient_id,reader,vol\n" + "".join(f"P{i},{rd},{v:g}\n" for i, v in enumerate(x) for rd in "AB"))
    code, out, err = cli("stats", "agreement", csv, "--between", "reader", "--var", "vol", "-o", tmp_path / "o")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("ICC(A,1)"))
    assert line.startswith("ICC(A,1) = 1.000 (no between-reading variance") and "confidence interval" in line
    assert "95% CI )" not in line and "inf" not in line and "F(" not in line
    row = Table.read_csv(tmp_path / "o" / "agreement.csv").rows[0]
    assert row["note"] == agreement.ICC_IDENTICAL_NOTE
    assert row["icc"] == 1 and all(row[c] in (None, "") or math.isnan(row[c]) for c in ("icc_ci_low", "icc_ci_high", "icc_f", "icc_p"))
    text = (tmp_path / "o" / "agreement.csv").read_text() + (tmp_path / "o" / "agreement.md").read_text()
    assert "inf" not in text.replace("infinit", "")


def test_icc_readings_offset_by_a_constant_have_a_ci_but_no_f_test():
    """MSE = 0 but the readers differ: ICC < 1 with its interval; F = MSR/0 is not printed as inf."""
    x = np.array([10.0, 20.0, 35.0, 5.0, 50.0])
    r = agreement.icc_a1(np.column_stack([x, x + 2.0]))
    assert 0.9 < r.icc < 1 and r.ci_low < r.icc <= r.ci_high
    assert math.isnan(r.f_value) and math.isnan(r.p_value) and r.note == agreement.ICC_NO_RESIDUAL_NOTE
    res = agreement.reader_agreement(_long_table(list(x), list(x + 2.0)), ["v"], between="reader")
    assert "no residual variance" in res.markdown and "= inf" not in res.markdown
    assert res.tables["agreement"].rows[0]["note"] == agreement.ICC_NO_RESIDUAL_NOTE


def test_kappa_ci_not_capped_at_one_and_noted(import_extra):
    """Issue 13: the kappa CI is the Wald interval SAS and statsmodels report (its upper bound
    may pass 1), with a note on the row when it does."""
    inter_rater = import_extra("statsmodels.stats.inter_rater")
    t = np.array([[9, 1], [0, 10]])
    ref = inter_rater.cohens_kappa(t)
    r = agreement.kappa_from_table(t)
    assert r.ci_high == pytest.approx(ref.kappa_upp, rel=1e-9) and r.ci_high > 1.0
    assert r.ci_low == pytest.approx(ref.kappa_low, rel=1e-9)
    a = [1] * 9 + [1] + [0] * 10
    b = [1] * 9 + [0] + [0] * 10
    res = agreement.reader_agreement(_long_table(a, b), ["v"], between="reader")
    row = res.tables["agreement"].rows[0]
    assert row["kappa_ci_high"] > 1.0 and "passes 1" in row["note"]


def test_bland_altman_limit_cis_in_table_and_text():
    """Issue 13: the 95% CIs of the limits of agreement (Bland & Altman 1999: SE of a limit
    sqrt(3 SD^2 / n), t quantile) are written, not only computed."""
    x = [10.0, 20.0, 35.0, 12.0, 50.0, 22.0, 31.0]
    y = [11.0, 19.0, 37.0, 12.5, 47.0, 23.5, 30.0]
    res = agreement.reader_agreement(_long_table(x, y, "read"), ["v"], between="read")
    row = res.tables["agreement"].rows[0]
    d = np.subtract(y, x)
    se = math.sqrt(3 * d.std(ddof=1) ** 2 / len(d))
    t = sps.t.ppf(0.975, len(d) - 1)
    assert row["loa_low_ci_low"] == pytest.approx(row["loa_low"] - t * se)
    assert row["loa_high_ci_high"] == pytest.approx(row["loa_high"] + t * se)
    assert res.markdown.count("95% CI") >= 4
