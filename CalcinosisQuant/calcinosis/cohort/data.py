"""Reading cohort tables for statistics: filters, typed columns, one row per patient.

Statistics work on :class:`~calcinosis.core.tables.Table` objects (``patients.csv`` from a
batch, or any CSV a user made).  Every problem is an :class:`InputError` that names the
file, row (the CSV line, header = line 1) or column.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

from calcinosis.core.errors import InputError
from calcinosis.core.tables import MISSING_TEXTS as TABLE_MISSING_TEXTS
from calcinosis.core.tables import Column, Table

#: Columns that identify a reading rather than describe a patient.
KEY_COLUMNS = ("patient_id", "reader", "read", "time_point")
ID_LIKE = ("case_id", "patient_id", "reader", "read", "time_point", "n_cases", "n_failed", "cases")

_TRUE = {"1", "yes", "y", "true", "t", "present", "positive", "+"}
_FALSE = {"0", "no", "n", "false", "f", "absent", "negative", "-"}


def load_table(path: str | Path, what: str = "table") -> Table:
    """A CSV (with its ``.schema.csv`` when present); a batch folder means its ``patients.csv``."""
    p = Path(path)
    if p.is_dir():
        cand = p / "patients.csv"
        if not cand.is_file():
            raise InputError(f"{p}: a folder without patients.csv (give a CSV file or a batch output folder)")
        p = cand
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    t = Table.read_csv(p)
    t.name = str(p)
    return t


def batch_sibling(table: Table, name: str) -> Path | None:
    """``levels.csv`` etc. beside the ``patients.csv`` a table was read from."""
    if not table.name:
        return None
    p = Path(table.name).with_name(name)
    return p if p.is_file() else None


def where_text(value) -> str:
    """How a cell compares in ``--where`` (1 == '1', 1.0 == '1')."""
    if value is None:
        return ""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def apply_where(table: Table, conditions: Sequence[str] | None) -> Table:
    """Keep rows matching every ``COLUMN=VALUE`` / ``COLUMN!=VALUE`` (``VALUE`` may list
    alternatives separated by ``|``)."""
    if not conditions:
        return table
    tests = []
    for cond in conditions:
        neg = "!=" in cond
        col, sep, val = cond.partition("!=" if neg else "=")
        col = col.strip()
        if not sep or not col:
            raise InputError(f"--where {cond!r}: expected COLUMN=VALUE or COLUMN!=VALUE")
        if not table.has_column(col):
            raise InputError(f"--where {cond!r}: {table.name or 'table'} has no column {col!r} "
                             f"(columns: {', '.join(table.column_names[:12])}{' ...' if len(table.column_names) > 12 else ''})")
        tests.append((col, neg, {v.strip() for v in val.split("|")}))
    out = Table(table.columns, name=table.name, description=table.description)
    numbers = []
    for i, r in enumerate(table.rows):
        if all((where_text(r[c]) in vals) != neg for c, neg, vals in tests):
            out.rows.append(r)
            numbers.append(row_number(table, i))
    out.row_numbers = numbers     # messages name the row of the file, not of the selection
    if not out.rows:
        raise InputError(f"--where {' '.join(conditions)}: no row of {table.name or 'the table'} matches")
    return out


def row_number(table: Table, index: int) -> int:
    """The row of the file (header = row 1) that ``table.rows[index]`` came from, also after
    :func:`apply_where` selected rows."""
    numbers = getattr(table, "row_numbers", None)
    return numbers[index] if numbers is not None else index + 2


def row_label(table: Table, index: int) -> str:
    return f"{table.name or 'table'}, row {row_number(table, index)}"


def require_column(table: Table, name: str, what: str = "") -> None:
    if not table.has_column(name):
        raise InputError(f"{table.name or 'table'}: no column {name!r}{' (' + what + ')' if what else ''}; "
                         f"columns: {', '.join(table.column_names[:15])}{' ...' if len(table.column_names) > 15 else ''}")


def numeric(table: Table, name: str, rows: Iterable[int] | None = None) -> list[float | None]:
    """Column values as floats (None when empty); a non-number names its row and column."""
    require_column(table, name)
    out = []
    idx = range(len(table.rows)) if rows is None else rows
    for i in idx:
        v = table.rows[i][name]
        if is_blank(v):
            out.append(None)
            continue
        if isinstance(v, bool):
            out.append(float(v))
            continue
        if isinstance(v, (int, float)):
            out.append(None if isinstance(v, float) and math.isnan(v) else _plausible(float(v), table, i, name, v))
            continue
        s = str(v).strip().lower()
        if s in _TRUE and s not in ("+",):
            out.append(1.0)
            continue
        if s in _FALSE and s not in ("-",):
            out.append(0.0)
            continue
        try:
            x = float(s)
        except ValueError:
            raise InputError(f"{row_label(table, i)}, column {name}: {v!r} is not a number") from None
        out.append(None if math.isnan(x) else _plausible(x, table, i, name, v))
    return out


#: no measurement in a cohort table reaches this magnitude; a value that does is a typing or
#: export error (1e308 would make every sum infinite)
MAX_MAGNITUDE = 1e15


def check_finite(table: Table, name: str) -> None:
    """Refuse, naming row and column, a value of column ``name`` that reads as a number but
    is infinite or implausibly large (text and blanks are left to the caller)."""
    for i, r in enumerate(table.rows):
        v = r[name]
        if isinstance(v, bool) or is_blank(v) or not is_number(v):
            continue
        x = float(v)
        if not math.isnan(x):
            _plausible(x, table, i, name, v)


def _plausible(x: float, table: Table, i: int, name: str, raw) -> float:
    if not math.isfinite(x) or abs(x) >= MAX_MAGNITUDE:
        raise InputError(f"{row_label(table, i)}, column {name}: {raw!r} is not a finite number of a plausible size")
    return x


def is_number(value) -> bool:
    """A number, or text that reads as one (``'12.5'``); not True/False."""
    if isinstance(value, bool):
        return False
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def stray_text(table: Table, name: str) -> int | None:
    """Index of the first text value in column ``name`` when the column's other values are
    mostly numbers (at least as many numbers as text values): a typing error, not a column of
    categories.  None when the column holds no text or is mostly text."""
    filled = [(i, r[name]) for i, r in enumerate(table.rows) if not is_blank(r[name])]
    text = [i for i, v in filled if not is_number(v)]
    if text and len(filled) - len(text) >= len(text):
        return text[0]
    return None


def stray_text_error(table: Table, name: str, index: int, hint: str) -> InputError:
    """The one-line error for :func:`stray_text`: file, row, column, the value, what to do."""
    return InputError(f"{row_label(table, index)}, column {name}: {table.rows[index][name]!r} is not a number "
                      f"(the column's other values are); correct it, or {hint}")


def as_binary(value) -> int | None:
    """1/0 from 1/0, yes/no, true/false, present/absent; None when missing; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return None
        if value in (0, 1):
            return int(value)
        raise ValueError(value)
    s = str(value).strip().lower()
    if s == "" or s in MISSING_TEXTS:
        return None
    if s in _TRUE:
        return 1
    if s in _FALSE:
        return 0
    raise ValueError(value)


def one_row_per(table: Table, id_column: str = "patient_id", what: str = "") -> None:
    """Refuse a table where a patient appears on several rows (several readers, reads or
    time points): the user must choose one with ``--where``."""
    if not table.has_column(id_column):
        return
    seen: dict = {}
    for i, r in enumerate(table.rows):
        key = r[id_column]
        if key in seen:
            j = seen[key]
            other = [c for c in KEY_COLUMNS[1:] if table.has_column(c) and r[c] != table.rows[j][c]]
            hint = (" (they differ in " + ", ".join(other) + "; choose one with e.g. --where "
                    + f"{other[0]}={where_text(table.rows[j][other[0]])})") if other else ""
            raise InputError(f"{row_label(table, i)}: {id_column} {key!r} also on row {row_number(table, j)}{hint}"
                             f"{' - ' + what if what else ''}")
        seen[key] = i


def require_patients(n: int, what: str, minimum: int = 2) -> None:
    if n < minimum:
        raise InputError(f"{what}: {n} patient{'s' if n != 1 else ''} with data; at least {minimum} are needed")


#: cell texts read as missing (besides an empty cell): R's and Excel's ways of writing it
MISSING_TEXTS = TABLE_MISSING_TEXTS | {"nan"}


def is_blank(v) -> bool:
    """Missing: empty, NaN, or NA / N/A / #N/A / NaN written as text (any case)."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (
        isinstance(v, str) and (v.strip() == "" or v.strip().lower() in MISSING_TEXTS))


def describe_source(table: Table, where: Sequence[str] | None) -> str:
    src = Path(table.name).name if table.name else "table"
    return src + (f" where {' and '.join(where)}" if where else "")


def make_table(spec: Sequence[tuple], rows: Iterable[dict] = (), name: str = "", description: str = "") -> Table:
    """``spec``: (name, type, unit, description) tuples."""
    return Table([Column(*s) for s in spec], rows, name, description)
