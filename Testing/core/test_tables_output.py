"""The table contract (CSV + schema) and the no-overwrite, atomic output writer."""

import json
import math

import pytest

from calcinosis.core.errors import InputError, OutputExistsError
from calcinosis.core.output import OutputTransaction, check_output_free
from calcinosis.core.tables import Column, Table, schema_path_for

COLS = [Column("lesion_id", "int", "", "id"), Column("volume_mm3", "double", "mm3", "Lesion volume"),
        Column("digit", "string", "", "Digit")]


def _table():
    return Table(COLS, [{"lesion_id": 1, "volume_mm3": 12.3456789012345, "digit": "index"},
                        {"lesion_id": 2, "volume_mm3": None, "digit": "thumb, left"},
                        {"lesion_id": 3, "volume_mm3": float("nan"), "digit": ""}], name="lesions")


def test_csv_round_trip_keeps_types_units_and_missing_values(tmp_path):
    t = _table()
    p = tmp_path / "lesions.csv"
    t.write_csv(p)
    assert schema_path_for(p).name == "lesions.schema.csv"
    back = Table.read_csv(p)
    assert back.column_names == t.column_names
    assert back.column_spec("volume_mm3").unit == "mm3"
    assert back.column_spec("volume_mm3").description == "Lesion volume"
    assert back.column("lesion_id") == [1, 2, 3]
    assert back.column("volume_mm3")[0] == pytest.approx(12.3456789, rel=1e-9)
    assert back.column("volume_mm3")[1:] == [None, None]
    assert back.column("digit") == ["index", "thumb, left", None]


def test_schema_is_slicer_format():
    text = _table().schema_csv_text().splitlines()
    assert text[0] == "columnName,unitLabel,description,title,nullValue,type,componentNames"
    assert text[2].startswith("volume_mm3,mm3,Lesion volume,")
    assert text[2].split(",")[5] == "double"


def test_csv_text_is_deterministic_and_readable():
    a = _table().to_csv_text()
    assert a == _table().to_csv_text()
    assert a.splitlines()[1] == "1,12.3456789,index"


def test_read_csv_errors_name_the_row(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"row 3"):
        Table.read_csv(p)
    p.write_text("a,a\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="duplicate"):
        Table.read_csv(p)
    with pytest.raises(InputError, match="not found"):
        Table.read_csv(tmp_path / "missing.csv")


def test_read_csv_infers_types_without_schema(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("n,x,s,m\n1,2.5,a,nan\n2,,b,3\n", encoding="utf-8")
    t = Table.read_csv(p)
    assert [c.type for c in t.columns] == ["int", "double", "string", "double"]
    assert t.column("x") == [2.5, None]
    assert math.isnan(t.column("m")[0]) and t.column("m")[1] == 3.0


def test_transaction_writes_all_at_once(tmp_path):
    out = tmp_path / "res"
    with OutputTransaction(out) as tx:
        tx.write_table(_table(), "lesions.csv")
        tx.write_json({"outputs": ["lesions.csv"]}, "provenance.json")
        assert not out.exists()  # nothing visible before the block ends
    assert sorted(p.name for p in out.iterdir()) == ["lesions.csv", "lesions.schema.csv", "provenance.json"]
    assert not list(tmp_path.glob(".res.partial-*"))


def test_transaction_failure_leaves_no_trace(tmp_path):
    out = tmp_path / "res"
    with pytest.raises(RuntimeError):
        with OutputTransaction(out) as tx:
            tx.write_text("half", "lesions.csv")
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_without_force_and_keeps_earlier_result(tmp_path):
    out = tmp_path / "res"
    with OutputTransaction(out) as tx:
        tx.write_text("first", "lesions.csv")
        tx.write_json({"outputs": ["lesions.csv", "old.nrrd", "provenance.json"]}, "provenance.json")
        tx.write_text("old image", "old.nrrd")
    with pytest.raises(OutputExistsError, match="--force"):
        check_output_free(out)
    with pytest.raises(OutputExistsError):
        OutputTransaction(out)
    assert (out / "lesions.csv").read_text() == "first"
    # --force replaces, and removes files the earlier run listed that this run does not write
    with OutputTransaction(out, force=True) as tx:
        tx.write_text("second", "lesions.csv")
        tx.write_json({"outputs": ["lesions.csv", "provenance.json"]}, "provenance.json")
    assert (out / "lesions.csv").read_text() == "second"
    assert not (out / "old.nrrd").exists()
    assert json.loads((out / "provenance.json").read_text())["outputs"] == ["lesions.csv", "provenance.json"]


def test_existing_folder_without_result_is_used_but_clashes_refused(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "lesions.csv").write_text("someone else's")
    with pytest.raises(OutputExistsError, match="lesions.csv"):
        with OutputTransaction(out) as tx:
            tx.write_text("new", "lesions.csv")
    assert (out / "lesions.csv").read_text() == "someone else's"
    with OutputTransaction(out) as tx:
        tx.write_text("fine", "other.csv")
    assert (out / "notes.txt").read_text() == "mine" and (out / "other.csv").exists()


def test_directories_move_as_one(tmp_path):
    out = tmp_path / "res"
    with OutputTransaction(out) as tx:
        d = tx.dir("ct")
        (d / "a.dcm").write_text("a")
        tx.write_json({"outputs": ["ct", "provenance.json"]}, "provenance.json")
    assert (out / "ct" / "a.dcm").read_text() == "a"
    with OutputTransaction(out, force=True) as tx:
        d = tx.dir("ct")
        (d / "b.dcm").write_text("b")
        tx.write_json({"outputs": ["ct", "provenance.json"]}, "provenance.json")
    assert sorted(p.name for p in (out / "ct").iterdir()) == ["b.dcm"]


def test_double_formatting_edge_cases():
    t = Table([Column("x", "double")], [{"x": 0.0}, {"x": 1e-12}, {"x": math.inf}, {"x": 123456789.123}])
    assert t.to_csv_text().splitlines()[1:] == ["0", "1e-12", "inf", "123456789.1"]
