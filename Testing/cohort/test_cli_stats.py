"""``calcinosis stats``: outputs, test names, bad input with exit code 2 and nothing written."""

from __future__ import annotations

from CalcinosisLib.tables import Table


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
    code, _, err = cli("stats", "groups", t2, "--by", "subset", "--vars", "age_years")
    assert code == 2


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
    assert (tmp_path / "a" / "bland_altman_vol_mm3.png").is_file()
    code, out, err = cli("stats", "change", t, "--value", "vol_mm3", "--where", "reader=A", "-o", tmp_path / "c")
    assert code == 0, err
    ch = Table.read_csv(tmp_path / "c" / "change.csv").rows
    assert [r["change_class"] for r in ch] == ["stable", "progression"] * 4


def test_stats_modalities_wide_cli(tmp_path, cli):
    lines = ["patient_id,xr_n,ct_n,mri_n,xr_area_mm2,ct_vol_mm3"]
    vals = [(3, 4, 3, 20, 150), (8, 9, 7, 60, 700), (1, 1, 2, 5, 30), (5, 7, 4, 33, 320), (0, 1, 0, 2, 12)]
    lines += [f"P{i},{a},{b},{c},{d},{e}" for i, (a, b, c, d, e) in enumerate(vals)]
    t = _write(tmp_path, "\n".join(lines) + "\n")
    code, out, err = cli("stats", "modalities", t, "--friedman", "xr_n,ct_n,mri_n", "--correlate", "xr_area_mm2,ct_vol_mm3")
    assert code == 0, err
    assert "Friedman" in out and "Spearman rho" in out and "rho = 1.00" in out
