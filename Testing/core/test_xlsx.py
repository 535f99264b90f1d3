"""Tables that open in Excel in any locale: the CSV's byte-order mark and the tables.xlsx
workbook (written with the standard library, read back here with openpyxl, an independent
reader)."""

import csv
import io
import math

import pytest

from calcinosis.core import xlsx
from calcinosis.core.output import OutputTransaction
from calcinosis.core.tables import Column, Table, csv_file_text

openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (test extra) reads the workbooks back")

COLS = [Column("lesion_id", "int", "", "Lesion number"), Column("volume_mm3", "double", "mm3", "Volume"),
        Column("note", "string", "", "Text with ±, ³, ρ, <tags> & \"quotes\"")]


def _table(name="lesions"):
    return Table(COLS, [{"lesion_id": 1, "volume_mm3": 12.3456789012345, "note": "± 2 mm³, ρ = 0.8 <b> & \"x\""},
                        {"lesion_id": 2, "volume_mm3": None, "note": "bell\x07 stripped"},
                        {"lesion_id": 3, "volume_mm3": float("inf"), "note": None},
                        {"lesion_id": 4, "volume_mm3": 1e-7, "note": "=1+1 stays text"}], name=name)


def test_workbook_round_trip_with_openpyxl(tmp_path):
    p = tmp_path / "t.xlsx"
    p.write_bytes(xlsx.workbook_bytes([("lesions", _table()), ("digits", _table("digits"))]))
    wb = openpyxl.load_workbook(p)
    assert wb.sheetnames == ["lesions", "digits", "columns"]
    ws = wb["lesions"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("lesion_id", "volume_mm3 (mm3)", "note")            # the unit in the header
    assert rows[1] == (1, pytest.approx(12.3456789, rel=1e-9), "± 2 mm³, ρ = 0.8 <b> & \"x\"")
    assert isinstance(rows[1][0], int) and isinstance(rows[1][1], float)   # numbers, not text
    assert rows[2] == (2, None, "bell stripped")                          # missing = empty cell
    assert rows[3][1] == "inf" and rows[3][2] is None
    assert rows[4][1] == pytest.approx(1e-7) and rows[4][2] == "=1+1 stays text"
    assert ws.freeze_panes == "A2" and ws["A1"].font.b
    schema = list(wb["columns"].iter_rows(values_only=True))
    assert schema[0] == ("sheet", "column", "unit", "type", "description")
    assert ("lesions", "volume_mm3", "mm3", "double", "Volume") in schema and len(schema) == 1 + 2 * len(COLS)


def test_workbook_bytes_are_deterministic_and_sheet_names_legal():
    t = _table()
    assert xlsx.workbook_bytes([("a", t)]) == xlsx.workbook_bytes([("a", t)])
    long = "cases/" + "x" * 40
    names = xlsx._sheet_names([long, long, "a:b?", "columns"])
    assert all(len(n) <= xlsx.SHEET_NAME_MAX for n in names)
    assert len({n.lower() for n in names}) == 4 and names[2] == "a_b_"
    with pytest.raises(ValueError):
        xlsx.workbook_bytes([])


def test_csv_has_a_bom_and_reads_back_everywhere(tmp_path, monkeypatch):
    t = _table()
    p = tmp_path / "lesions.csv"
    t.write_csv(p)
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw[3:].decode("utf-8") == t.to_csv_text()
    back = Table.read_csv(p)
    assert back.column_names == t.column_names and back.column("note")[0] == t.rows[0]["note"]
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == t.column_names
    monkeypatch.setenv("CALCINOSIS_CSV_BOM", "0")
    assert csv_file_text(t) == t.to_csv_text()


def test_transaction_workbook_holds_every_table_written(tmp_path):
    out_dir = tmp_path / "res"
    with OutputTransaction(out_dir) as out:
        assert out.write_workbook() is None                    # nothing written yet: no workbook
        out.write_table(_table(), "lesions.csv")
        out.write_table(_table("hand"), "tables/hand.csv")
        out.write_table(_table(), "lesions.csv")               # rewritten: one sheet
        out.write_workbook()
    wb = openpyxl.load_workbook(out_dir / "tables.xlsx")
    assert wb.sheetnames == ["lesions", "tables_hand", "columns"]
    n = sum(1 for _ in wb["tables_hand"].iter_rows(min_row=2))
    assert n == len(_table().rows)
    assert not math.isnan(wb["lesions"]["B2"].value)
