"""The table contract: typed columns with units, written as CSV + Slicer ``.schema.csv``.

Every result of the project is a :class:`Table`.  Column names carry their unit
(``volume_mm3``, ``centroid_r_mm``), coordinates are RAS, and each column has a
description that travels into the schema file and into Slicer's table node.

CSV: UTF-8 with a byte-order mark (Excel on Windows then reads ±, ³ and ρ; Slicer, pandas,
readr and this package skip it; ``CALCINOSIS_CSV_BOM=0`` leaves it out), header row, ``,``
delimiter, empty cell = missing value.  For Excel in locales whose list separator is not a
comma, every result folder also has ``tables.xlsx`` (:mod:`calcinosis.core.xlsx`).  Floating point
numbers are written with 10 significant digits, so the same computation always gives
the same bytes.  The schema file is the one Slicer's table storage node reads
(columns ``columnName, unitLabel, description, title, nullValue, type, componentNames``),
so ``lesions.csv`` opens in Slicer with units and descriptions.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import InputError

COLUMN_TYPES = ("int", "double", "string")
SCHEMA_FIELDS = ["columnName", "unitLabel", "description", "title", "nullValue", "type", "componentNames"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "double"
    unit: str = ""
    description: str = ""
    title: str = ""

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name}: type must be one of {COLUMN_TYPES}, got {self.type!r}")


#: Written before the header of every CSV file unless CALCINOSIS_CSV_BOM=0
CSV_BOM = "\ufeff"


def csv_file_text(table: "Table") -> str:
    """The text of ``table``'s CSV file: the byte-order mark (unless the environment variable
    ``CALCINOSIS_CSV_BOM`` is ``0``) and :meth:`Table.to_csv_text`."""
    bom = "" if os.environ.get("CALCINOSIS_CSV_BOM", "1").strip().lower() in ("0", "no", "false", "off") else CSV_BOM
    return bom + table.to_csv_text()


def format_value(value: Any, type_: str) -> str:
    if value is None:
        return ""
    if type_ == "double":
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        return format(v, ".10g")
    if type_ == "int":
        if isinstance(value, float) and math.isnan(value):
            return ""
        return str(int(value))
    return str(value)


#: cell texts that mean "no value" (R's NA, Excel's #N/A), besides an empty cell: read as
#: missing in number columns, and never make a column of numbers a text column
MISSING_TEXTS = frozenset({"na", "n/a", "#n/a"})


def is_missing_text(text) -> bool:
    return isinstance(text, str) and text.strip().lower() in MISSING_TEXTS


def parse_value(text: str, type_: str, where: str = "") -> Any:
    if text == "" or text is None:
        return None
    if type_ in ("double", "int") and is_missing_text(text):
        return None
    if type_ == "double":
        try:
            return float(text)
        except ValueError:
            raise InputError(f"{where}: {text!r} is not a number") from None
    if type_ == "int":
        try:
            f = float(text)
        except ValueError:
            raise InputError(f"{where}: {text!r} is not an integer") from None
        if not math.isfinite(f) or f != int(f):
            raise InputError(f"{where}: {text!r} is not an integer")
        return int(f)
    return text


class Table:
    """Columns with units plus rows (dicts).  Rows keep the column order of ``columns``."""

    def __init__(self, columns: Sequence[Column], rows: Iterable[dict] | None = None,
                 name: str = "", description: str = ""):
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate column names: {dup}")
        self.columns: list[Column] = list(columns)
        self.name = name
        self.description = description
        self.rows: list[dict] = []
        for r in rows or []:
            self.append(r)

    # ------------------------------------------------------------------ access
    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column_spec(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)

    def append(self, row: dict) -> None:
        unknown = set(row) - set(self.column_names)
        if unknown:
            raise ValueError(f"table {self.name!r}: unknown columns {sorted(unknown)}")
        self.rows.append({c.name: row.get(c.name) for c in self.columns})

    def column(self, name: str) -> list:
        if not self.has_column(name):
            raise KeyError(f"table {self.name!r} has no column {name!r}")
        return [r[name] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def add_column(self, column: Column, values: Sequence | None = None, after: str | None = None) -> None:
        if self.has_column(column.name):
            raise ValueError(f"column {column.name} exists")
        pos = len(self.columns) if after is None else self.column_names.index(after) + 1
        self.columns.insert(pos, column)
        vals = list(values) if values is not None else [None] * len(self.rows)
        if len(vals) != len(self.rows):
            raise ValueError(f"column {column.name}: {len(vals)} values for {len(self.rows)} rows")
        new_rows = []
        for r, v in zip(self.rows, vals):
            r = dict(r)
            r[column.name] = v
            new_rows.append({c.name: r.get(c.name) for c in self.columns})
        self.rows = new_rows

    def select(self, names: Sequence[str]) -> "Table":
        cols = [self.column_spec(n) for n in names]
        return Table(cols, ({n: r[n] for n in names} for r in self.rows), self.name, self.description)

    # ------------------------------------------------------------------ text
    def to_csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.column_names)
        for r in self.rows:
            w.writerow([format_value(r[c.name], c.type) for c in self.columns])
        return buf.getvalue()

    def schema_csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(SCHEMA_FIELDS)
        for c in self.columns:
            # Slicer fills an empty cell with the column's nullValue, 0 when none is given:
            # "nan" keeps a missing double missing instead of showing a false 0.
            w.writerow([c.name, c.unit, c.description, c.title or c.name, "nan" if c.type == "double" else "",
                        c.type, ""])
        return buf.getvalue()

    def to_markdown(self, float_digits: int = 3) -> str:
        def fmt(v, t):
            if v is None:
                return ""
            if t == "double":
                return f"{float(v):.{float_digits}f}"
            return str(v)
        head = "| " + " | ".join(self.column_names) + " |"
        sep = "| " + " | ".join("---" for _ in self.columns) + " |"
        body = ["| " + " | ".join(fmt(r[c.name], c.type) for c in self.columns) + " |" for r in self.rows]
        return "\n".join([head, sep] + body) + "\n"

    # ------------------------------------------------------------------ files
    def write_csv(self, path: str | Path) -> list[Path]:
        """Write ``path`` and its ``.schema.csv``; returns both paths.  (Use
        :class:`~calcinosis.core.output.OutputTransaction` for atomic, no-overwrite output.)"""
        path = Path(path)
        schema = schema_path_for(path)
        path.write_text(csv_file_text(self), encoding="utf-8")
        schema.write_text(self.schema_csv_text(), encoding="utf-8")
        return [path, schema]

    @staticmethod
    def read_csv(path: str | Path, columns: Sequence[Column] | None = None) -> "Table":
        """Read a CSV written by this project (types from its schema, else from
        ``columns``, else inferred: int, then double, then string)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not a UTF-8 text file") from None
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: empty file (no header row)") from None
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise InputError(f"{path}: duplicate column names {dup}")
        raw_rows = []
        for lineno, rec in enumerate(reader, start=2):
            if not rec or all(v.strip() == "" for v in rec):
                continue
            if len(rec) != len(header):
                raise InputError(f"{path}, row {lineno}: {len(rec)} cells for {len(header)} columns")
            raw_rows.append((lineno, [v.strip() for v in rec]))
        specs: dict[str, Column] = {}
        schema = schema_path_for(path)
        if schema.is_file():
            for srow in csv.DictReader(io.StringIO(schema.read_text(encoding="utf-8-sig"))):
                name = srow.get("columnName", "")
                t = srow.get("type", "string") or "string"
                t = {"float": "double", "bit": "int", "long": "int", "short": "int"}.get(t, t)
                if t not in COLUMN_TYPES:
                    t = "string"
                specs[name] = Column(name, t, srow.get("unitLabel", "") or "",
                                     srow.get("description", "") or "", srow.get("title", "") or "")
        for c in columns or []:
            specs.setdefault(c.name, c)
        cols = []
        for idx, h in enumerate(header):
            if h in specs:
                cols.append(specs[h])
            else:
                cols.append(Column(h, _infer_type([r[idx] for _, r in raw_rows])))
        table = Table(cols, name=path.stem)
        for lineno, rec in raw_rows:
            table.rows.append({c.name: parse_value(v, c.type, f"{path}, row {lineno}, column {c.name}")
                               for c, v in zip(cols, rec)})
        return table


def _infer_type(values: list[str]) -> str:
    vals = [v for v in values if v != "" and not is_missing_text(v)]
    if not vals:
        return "string"
    try:
        fl = [float(v) for v in vals]
    except ValueError:
        return "string"
    if all(math.isfinite(f) and f == int(f) and "." not in v and "e" not in v.lower() for f, v in zip(fl, vals)):
        return "int"
    return "double"


def schema_path_for(path: str | Path) -> Path:
    """``lesions.csv`` -> ``lesions.schema.csv`` (Slicer's naming)."""
    p = Path(path)
    return p.with_name(p.stem + ".schema" + p.suffix)
