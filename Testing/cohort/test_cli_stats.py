"""``calcinosis stats``: outputs, test names, bad input with exit code 2 and nothing written."""

from __future__ import annotations

import sys

import pytest

from calcinosis.core.tables import Table
from environment import draws_figures


def _write(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


def test_stats_groups_cli(tmp_path, cli):
    lines = ["patient_id,subset,age_years,pah"] + [f"P{i},{'dcSSc' if i % 3 == 0 else 'lcSSc'},{40 + i},{i % 2}" for i in range(12)]
    t = _write(tmp_path, "\n".join(lines) + "\n")
    code, out, err = cli("stats", "groups", t, "--by", "subset", "-o", tmp_path / "g")
    assert code == 0, err
    assert "Student t (pooled)" in out and "Pearson chi-squared" in out
    for f in ("groups.csv", "groups.schema.csv", "groups.md", "groups.html", "groups_detail.csv", "provenance.json"):
        assert (tmp_path / "g" / f).is_file(), f
    rows = Table.read_csv(tmp_path / "g" / "groups.csv").rows
    assert {r["variable"] for r in rows} == {"age_years", "pah"}
    # bad input: exit 2, one line, nothing written
    for args, msg in ((["--by", "nope"], "no column 'nope'"), (["--by", "subset", "--where", "subset=lcSSc"], "single group")):
        code, _, err = cli("stats", "groups", t, *args, "-o", tmp_path / "bad")
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
    t2 = _write(tmp_path, "patient_id,subset,age_years\nP1,a,3\nP2,b,x\n")
    code, _, err = cli("stats", "groups", t2, "--by", "subset", "--vars", "age_years", "-o", tmp_path / "bad")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{t2}, row 3, column age_years: 'x' is not a number" in err and "--categorical age_years" in err
    assert not (tmp_path / "bad").exists()


def test_stats_agreement_and_change_cli(tmp_path, cli):
    lines = ["patient_id,reader,read,time_point,calc,vol_mm3"]
    a = [1, 1, 0, 0, 1, 0, 1, 1]
    b = [1, 0, 0, 0, 1, 0, 1, 1]
    for i, (x, y) in enumerate(zip(a, b)):
        lines += [f"P{i},A,1,baseline,{x},{10 + 5 * i}", f"P{i},B,1,baseline,{y},{11 + 5 * i}",
                  f"P{i},A,1,M12,{x},{(10 + 5 * i) * (1.5 if i % 2 else 0.9)}"]
    t = _write(tmp_path, "\n".join(lines) + "\n")
    # reader B also read P0 at M12: P0 would be paired twice without choosing a time point
    (tmp_path / "t2.csv").write_text("\n".join(lines + ["P0,B,1,M12,1,10"]) + "\n")
    code, out, err = cli("stats", "agreement", tmp_path / "t2.csv", "--var", "calc", "--between", "reader")
    assert code == 2 and "paired more than once" in err and "--where time_point=" in err
    code, out, err = cli("stats", "agreement", t, "--var", "calc", "--var", "vol_mm3", "--between", "reader",
                         "--where", "time_point=baseline", "-o", tmp_path / "a")
    assert code == 0, err
    rows = {r["variable"]: r for r in Table.read_csv(tmp_path / "a" / "agreement.csv").rows}
    assert rows["calc"]["n_disagree"] == 1 and rows["vol_mm3"]["bias"] == 1.0
    assert (tmp_path / "a" / "bland_altman_vol_mm3.png").is_file() == draws_figures()
    code, out, err = cli("stats", "change", t, "--value", "vol_mm3", "--where", "reader=A", "-o", tmp_path / "c")
    assert code == 0, err
    ch = Table.read_csv(tmp_path / "c" / "change.csv").rows
    assert [r["change_class"] for r in ch] == ["stable", "progression"] * 4


def _readings(tmp_path, stray: dict | None = None):
    """Two readers of 8 patients at baseline (and reader A again at M12): ``calc`` 0/1,
    ``vol_mm3``, ``grade`` A/B/C, ``present`` yes/no; ``stray`` puts text into a cell:
    {(patient, reader, column): text}."""
    a = [1, 1, 0, 0, 1, 0, 1, 1]
    b = [1, 0, 0, 0, 1, 0, 1, 1]
    lines = ["patient_id,reader,read,time_point,calc,vol_mm3,grade,present"]
    for i, (x, y) in enumerate(zip(a, b)):
        for reader, tp, v, vol in (("A", "baseline", x, 10 + 5 * i), ("B", "baseline", y, 11 + 5 * i),
                                   ("A", "M12", x, 20 + 5 * i)):
            cells = {"calc": v, "vol_mm3": vol, "grade": "ABC"[(i + v) % 3], "present": "yes" if v else "no"}
            for (pid, rd, col), text in (stray or {}).items():
                if (pid, rd, tp) == (f"P{i}", reader, "baseline"):
                    cells[col] = text
            lines.append(f"P{i},{reader},1,{tp}," + ",".join(str(cells[c]) for c in ("calc", "vol_mm3", "grade", "present")))
    return _write(tmp_path, "\n".join(lines) + "\n")


def test_stats_agreement_text_in_numeric_column_is_an_error(tmp_path, cli):
    """A 0/1 or volume column with one stray text value is a typing error (exit 2, file, row, column and
    value named, nothing written), not a categorical variable; the row is the file's, also after --where."""
    sel = ("--between", "reader", "--where", "time_point=baseline")
    # file rows: header 1, then 3 rows per patient (A baseline, B baseline, A M12): P5/B is row 18, P6/B row 21
    for col, pid, row in (("calc", "P5", 18), ("vol_mm3", "P6", 21)):
        t = _readings(tmp_path, {(pid, "B", col): "x"})
        for kind, hint in (("auto", "correct it, or give --kind categorical"), ("continuous", "--kind continuous needs numbers")):
            code, out, err = cli("stats", "agreement", t, "--var", col, *sel, "--kind", kind, "-o", tmp_path / "bad")
            assert code == 2, (col, kind, out)
            assert len(err.strip().splitlines()) == 1, err
            assert f"{t}, row {row}, column {col}: 'x' is not a number" in err and hint in err, err
            assert not (tmp_path / "bad").exists()
    # the same in a wide table (--pair): the column holding the text is named
    w = tmp_path / "wide.csv"
    w.write_text("patient_id,vol_r1,vol_r2\nP1,10,11\nP2,20,x\nP3,30,29\nP4,40,42\n")
    code, _, err = cli("stats", "agreement", w, "--pair", "vol_r1,vol_r2")
    assert code == 2 and f"{w}, row 3, column vol_r2: 'x' is not a number" in err, err
    # text a reader chose is not a stray value: --kind categorical compares it as categories
    t = _readings(tmp_path, {("P5", "B", "calc"): "x"})
    code, _, err = cli("stats", "agreement", t, "--var", "calc", *sel, "--kind", "categorical", "-o", tmp_path / "cat")
    assert code == 0, err
    ct = Table.read_csv(tmp_path / "cat" / "agreement_crosstab.csv").rows
    assert {r["category_b"] for r in ct} == {"0", "1", "x"}


def test_stats_agreement_text_categories_still_compared(tmp_path, cli):
    """Genuinely categorical text columns (yes/no, grades A/B/C) stay categorical under --kind auto."""
    t = _readings(tmp_path)
    code, _, err = cli("stats", "agreement", t, "--var", "present", "--var", "grade", "--var", "calc",
                       "--between", "reader", "--where", "time_point=baseline", "-o", tmp_path / "a")
    assert code == 0, err
    rows = {r["variable"]: r for r in Table.read_csv(tmp_path / "a" / "agreement.csv").rows}
    assert rows["present"]["kind"] == "categorical" and rows["present"]["n_disagree"] == 1
    assert rows["present"]["kappa"] == pytest.approx(rows["calc"]["kappa"])   # yes/no read as 1/0
    assert rows["grade"]["kind"] == "categorical" and rows["grade"]["n_disagree"] == 1
    assert 0 < rows["grade"]["kappa"] < 1
    ct = Table.read_csv(tmp_path / "a" / "agreement_crosstab.csv").rows
    assert {r["category_a"] for r in ct if r["variable"] == "grade"} == {"A", "B", "C"}


def test_stats_without_matplotlib_names_the_figures_left_out(tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # as inside Slicer
    t = _readings(tmp_path)
    code, _, err = cli("stats", "agreement", t, "--var", "calc", "--var", "vol_mm3", "--between", "reader",
                       "--where", "time_point=baseline", "-o", tmp_path / "a", "-q")
    assert code == 0, err
    assert (tmp_path / "a" / "agreement.csv").is_file() and not list((tmp_path / "a").glob("*.png"))
    assert "Figures left out, matplotlib is not installed" in (tmp_path / "a" / "agreement.md").read_text()
    assert "bland_altman_vol_mm3.png" in (tmp_path / "a" / "agreement.html").read_text()


def test_stats_modalities_wide_cli(tmp_path, cli):
    lines = ["patient_id,xr_n,ct_n,mri_n,xr_area_mm2,ct_vol_mm3"]
    vals = [(3, 4, 3, 20, 150), (8, 9, 7, 60, 700), (1, 1, 2, 5, 30), (5, 7, 4, 33, 320), (0, 1, 0, 2, 12)]
    lines += [f"P{i},{a},{b},{c},{d},{e}" for i, (a, b, c, d, e) in enumerate(vals)]
    t = _write(tmp_path, "\n".join(lines) + "\n")
    code, out, err = cli("stats", "modalities", t, "--friedman", "xr_n,ct_n,mri_n", "--correlate", "xr_area_mm2,ct_vol_mm3")
    assert code == 0, err
    assert "Friedman" in out and "Spearman rho" in out and "rho = 1.00" in out
