"""An Excel workbook (``.xlsx``) of result tables, written with the standard library.

CSV opens badly in Excel outside English locales (a comma is not the list separator in
French or German Excel); a workbook opens the same everywhere.  One sheet per table, the
header row bold and frozen, each header ``column name (unit)``, numbers as numbers (the same
10 significant digits as the CSV), missing values as empty cells; a last sheet ``columns``
holds every column's unit and description (the ``.schema.csv`` files).

The file is the minimal SpreadsheetML package of ECMA-376 (content types, relationships,
workbook, styles, one worksheet per table with inline strings), so no optional dependency is
needed in Slicer or on the command line; the tests read it back with openpyxl.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Sequence
from xml.sax.saxutils import escape

from .tables import Table, format_value

SHEET_NAME_MAX = 31                       # Excel's limit
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")   # not allowed in XML 1.0
COLUMN_WIDTH_MAX = 60
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)       # zip entry times: the same tables give the same bytes

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_R = "http://schemas.openxmlformats.org/package/2006/relationships"


def header_text(name: str, unit: str) -> str:
    """The header of a column in the workbook: its name, and its unit in brackets."""
    return f"{name} ({unit})" if unit else name


def workbook_bytes(tables: Sequence[tuple[str, Table]]) -> bytes:
    """An .xlsx holding ``tables`` ((sheet name, table) pairs) and a ``columns`` sheet."""
    if not tables:
        raise ValueError("a workbook needs at least one table")
    names = _sheet_names([n for n, _ in tables] + ["columns"])
    sheets = [_sheet_xml([header_text(c.name, c.unit) for c in t.columns],
                         [[_cell_value(r.get(c.name), c.type) for c in t.columns] for r in t.rows])
              for _, t in tables]
    schema_rows = [[names[i], c.name, c.unit, c.type, c.description]
                   for i, (_, t) in enumerate(tables) for c in t.columns]
    sheets.append(_sheet_xml(["sheet", "column", "unit", "type", "description"], schema_rows))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        def put(path: str, text: str) -> None:
            info = zipfile.ZipInfo(path, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text.encode("utf-8"))
        put("[Content_Types].xml", _content_types(len(sheets)))
        put("_rels/.rels", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{_PKG_R}">'
                           f'<Relationship Id="rId1" Type="{_R}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        put("xl/workbook.xml", _workbook_xml(names))
        put("xl/_rels/workbook.xml.rels", _workbook_rels(len(sheets)))
        put("xl/styles.xml", _STYLES)
        for i, xml in enumerate(sheets, start=1):
            put(f"xl/worksheets/sheet{i}.xml", xml)
    return buf.getvalue()


# ---------------------------------------------------------------------- parts
def _cell_value(value, type_: str):
    """A number (float) for number columns, text otherwise; None for an empty cell."""
    text = format_value(value, type_)
    if text == "":
        return None
    if type_ in ("double", "int") and text not in ("inf", "-inf"):
        return float(text) if type_ == "double" else int(text)
    return text


def _col_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _cell_xml(ref: str, value, style: int = 0) -> str:
    st = f' s="{style}"' if style else ""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"{st}><v>{value!r}</v></c>'
    text = escape(_XML_ILLEGAL.sub("", str(value)))
    return f'<c r="{ref}"{st} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def _sheet_xml(header: list[str], rows: list[list]) -> str:
    widths = [len(h) for h in header]
    for r in rows:
        for j, v in enumerate(r):
            if v is not None:
                widths[j] = max(widths[j], len(str(v)) if not isinstance(v, float) else len(format(v, ".10g")))
    cols = "".join(f'<col min="{j + 1}" max="{j + 1}" width="{min(COLUMN_WIDTH_MAX, w + 2)}" customWidth="1"/>'
                   for j, w in enumerate(widths))
    out = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_NS}" xmlns:r="{_R}">',
           '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
           'state="frozen"/></sheetView></sheetViews>',
           f"<cols>{cols}</cols>" if header else "", "<sheetData>"]
    out.append('<row r="1">' + "".join(_cell_xml(f"{_col_letter(j)}1", h, 1) for j, h in enumerate(header)) + "</row>")
    for i, r in enumerate(rows, start=2):
        cells = "".join(_cell_xml(f"{_col_letter(j)}{i}", v) for j, v in enumerate(r) if v is not None)
        out.append(f'<row r="{i}">{cells}</row>')
    out.append("</sheetData>")
    if header:
        out.append(f'<autoFilter ref="A1:{_col_letter(len(header) - 1)}{max(1, len(rows) + 1)}"/>')
    out.append("</worksheet>")
    return "".join(out)


def _sheet_names(wanted: list[str]) -> list[str]:
    out: list[str] = []
    for w in wanted:
        base = _BAD_SHEET_CHARS.sub("_", w).strip("'") or "table"
        name, k = base[:SHEET_NAME_MAX], 2
        while name.lower() in (o.lower() for o in out):
            suffix = f" ({k})"
            name, k = base[:SHEET_NAME_MAX - len(suffix)] + suffix, k + 1
        out.append(name)
    return out


def _content_types(n: int) -> str:
    sheets = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
                     f'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for i in range(1, n + 1))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>' + sheets + "</Types>")


def _workbook_xml(names: list[str]) -> str:
    sheets = "".join(f'<sheet name="{escape(n, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
                     for i, n in enumerate(names, start=1))
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{_NS}" xmlns:r="{_R}">'
            f"<sheets>{sheets}</sheets></workbook>")


def _workbook_rels(n: int) -> str:
    rels = "".join(f'<Relationship Id="rId{i}" Type="{_R}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                   for i in range(1, n + 1))
    rels += f'<Relationship Id="rId{n + 1}" Type="{_R}/styles" Target="styles.xml"/>'
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{_PKG_R}">{rels}</Relationships>'


_STYLES = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{_NS}">'
           '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
           '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
           '<fills count="2"><fill><patternFill patternType="none"/></fill>'
           '<fill><patternFill patternType="gray125"/></fill></fills>'
           '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
           '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
           '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
           '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
           '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
           "</styleSheet>")


__all__ = ["workbook_bytes", "header_text", "SHEET_NAME_MAX"]
