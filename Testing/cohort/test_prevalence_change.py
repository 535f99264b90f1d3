"""Prevalence with Wilson CIs (only assessed levels count) and change classes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from calcinosis.cohort import change, prevalence, synthetic as sy
from calcinosis.cohort.contract import LEVELS
from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table


@pytest.mark.parametrize("n,total,lo,hi", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
                                           (1, 29, 0.0061, 0.1718)])
def test_wilson_ci_newcombe_1998_examples(n, total, lo, hi):
    """Newcombe (Stat Med 1998) Table I, method 3 (score interval without continuity correction)."""
    got = prevalence.wilson_ci(n, total)
    assert got[0] == pytest.approx(lo, abs=5e-5) and got[1] == pytest.approx(hi, abs=5e-5)


def test_wilson_ci_matches_scipy():
    for n, total in [(3, 7), (64, 77), (62, 77), (21, 77), (27, 77), (13, 77), (0, 5), (5, 5)]:
        ci = sps.binomtest(n, total).proportion_ci(0.95, method="wilson")
        got = prevalence.wilson_ci(n, total)
        assert got == pytest.approx((ci.low, ci.high), abs=1e-12)


def _cohort(rng, n=9):
    """Patients with chest (C7-T1..T12-L1) or TAP coverage; contract tables stacked as in a batch."""
    prow, lrow, truth = [], [], []
    pcols = lcols = None
    for p in range(n):
        cov, assessed = ("TAP", sy.TAP) if p % 3 else ("chest", sy.CHEST)
        ls = sy.random_spine_lesions(rng, list(assessed), rate=8)
        t = sy.spine_tables(ls, assessed, cov)
        keys = {"patient_id": f"P{p}", "reader": "R1", "read": 1, "time_point": "baseline"}
        prow.append({**keys, **{f"spine_{k}": v for k, v in t["patient"].rows[0].items()}})
        for r in t["levels"].rows:
            lrow.append({**keys, **r})
        pcols = [Column(k, "string") for k in keys] + [Column(f"spine_{c.name}", c.type) for c in t["patient"].columns]
        lcols = [Column(k, "string") for k in keys] + list(t["levels"].columns)
        truth.append((ls, assessed))
    return Table(pcols, prow, "patients.csv"), Table(lcols, lrow, "levels.csv"), truth


def test_prevalence_counts_only_assessed_levels():
    rng = np.random.default_rng(11)
    patients, levels, truth = _cohort(rng)
    res = prevalence.prevalence(patients, levels)
    rows = res.tables["prevalence"].rows
    # per level: N = patients whose scan covers the level; n = those with >= 1 calcification there
    for lv in LEVELS:
        N = sum(1 for _, a in truth if lv in a)
        n = sum(1 for ls, a in truth if lv in a and any(l.level == lv for l in ls))
        r = next(r for r in rows if r["scope"] == "level" and r["level"] == lv)
        assert (r["n"], r["N"]) == (n, N), lv
        lo, hi = prevalence.wilson_ci(n, N)
        assert r["ci_low_pct"] == pytest.approx(100 * lo) and r["ci_high_pct"] == pytest.approx(100 * hi)
        for s in ("anterior", "intracanal", "posterior"):
            rs = next(x for x in rows if x["scope"] == "level_segment" and x["level"] == lv and x["item"] == s)
            assert rs["calcifications"] == sum(1 for ls, a in truth for l in ls if l.level == lv and l.segment == s)
    # lumbar levels were seen only on TAP scans
    assert next(r for r in rows if r["scope"] == "level" and r["level"] == "L3-L4")["N"] == 6
    # per segment at patient level
    for s in ("anterior", "intracanal", "posterior"):
        r = next(r for r in rows if r["scope"] == "segment" and r["item"] == s)
        assert r["n"] == sum(1 for ls, _ in truth if any(l.segment == s for l in ls)) and r["N"] == 9
    sub = next(r for r in rows if r["scope"] == "subsite" and r["item"] == "foraminal")
    assert sub["calcifications"] == sum(1 for ls, _ in truth for l in ls if l.subsite == "foraminal")
    # subgroup: TAP only
    res2 = prevalence.prevalence(patients, levels, where=["spine_coverage=TAP"])
    r = next(r for r in res2.tables["prevalence"].rows if r["scope"] == "level" and r["level"] == "T8-T9")
    assert r["N"] == 6


def test_prevalence_bad_input():
    rng = np.random.default_rng(2)
    patients, levels, _ = _cohort(rng, 3)
    with pytest.raises(InputError, match="at least 2"):
        prevalence.prevalence(Table(patients.columns, patients.rows[:1], "patients.csv"), levels)
    dup = Table(patients.columns, patients.rows + [patients.rows[0]], "patients.csv")
    with pytest.raises(InputError, match="also on row 2"):
        prevalence.prevalence(dup, levels)


@pytest.mark.parametrize("b,f,pct,cls", [
    (100.0, 126.0, 26.0, "progression"), (100.0, 125.0, 25.0, "stable"), (100.0, 75.0, -25.0, "stable"),
    (100.0, 74.0, -26.0, "improvement"), (100.0, 100.0, 0.0, "stable"), (0.0, 0.0, 0.0, "stable"),
    (0.0, 5.0, None, "progression"), (None, 5.0, None, "missing")])
def test_change_classes_and_zero_baseline(b, f, pct, cls):
    got_pct, got_cls, _ = change.classify_change(b, f)
    assert got_cls == cls
    assert got_pct == (pytest.approx(pct) if pct is not None else None)


def test_change_table():
    rows = []
    vals = {"P1": (100, 150), "P2": (80, 40), "P3": (50, 55), "P4": (0, 10)}
    for pid, (b, f) in vals.items():
        rows += [{"patient_id": pid, "time_point": "baseline", "v_mm2": b}, {"patient_id": pid, "time_point": "M12", "v_mm2": f}]
    t = Table([Column("patient_id", "string"), Column("time_point", "string"), Column("v_mm2", "double")], rows, "t.csv")
    res = change.change_table(t, "v_mm2")
    assert res.summary["counts"] == {"progression": 2, "stable": 1, "improvement": 1}
    assert [r["change_class"] for r in res.tables["change"].rows] == ["progression", "improvement", "stable", "progression"]
    assert res.tables["change"].rows[3]["change_pct"] is None
    with pytest.raises(InputError, match="at least 2"):
        change.change_table(Table(t.columns, rows[:2], "t.csv"), "v_mm2")


@pytest.mark.parametrize("b,f,cls", [
    (1.2, 1.5, "stable"), (1.2, 0.9, "stable"), (0.4, 0.5, "stable"), (0.8, 0.6, "stable"), (2.4, 3.0, "stable"),
    (1.2, 1.5000001, "progression"), (1.2, 0.8999999, "improvement"), (33.3, 41.625, "stable")])
def test_change_class_at_exactly_the_limit_with_decimals(b, f, cls):
    """Issue 13: 1.2 -> 1.5 is +25% exactly and stable (limits included), though
    100 * (1.5 - 1.2) / 1.2 is 25.000000000000004 in binary floating point; the class is
    decided on the values as written (exact fractions), the % stays the float."""
    assert 100 * (1.5 - 1.2) / 1.2 > 25          # what the float quotient says
    _, got, _ = change.classify_change(b, f)
    assert got == cls


def test_na_texts_are_missing(tmp_path):
    """Issue 13: "NA", "na", "N/A", "#N/A" (R, Excel) and an empty cell are missing, counted
    as missing - not an error that stops the run."""
    from calcinosis.cohort.data import as_binary, is_blank, numeric
    from calcinosis.core.tables import Column, Table
    for v in ("", "NA", "na", "N/A", "n/a", "#N/A", " NA ", "NaN"):
        assert is_blank(v) and as_binary(v) is None
    assert not is_blank("none") and not is_blank("0")
    t = Table([Column("v", "string")], [{"v": x} for x in ("1.5", "NA", "N/A", "", "2")], "patients.csv")
    assert numeric(t, "v") == [1.5, None, None, None, 2.0]
