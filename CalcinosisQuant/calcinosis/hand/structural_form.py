"""The structural-lesion form of the hand radiograph (Bauer et al. 2020, study 2).

Eight findings scored present (1) or absent (0) at five locations, per hand.  The
reader fills it (in Slicer's table view, or any spreadsheet); an empty cell means *not
assessed*, which is not the same as absent.  Layout, one row per hand and finding::

    side, finding, pattern, distal_phalanx, DIP, PIP, MCP, wrist

Findings and the radiographic pattern the study grouped them in:
calcinosis (soft tissue), acro_osteolysis (bone), periarticular_calcification (soft
tissue), subchondral_erosion (joint), marginal_erosion (joint), joint_space_narrowing
(joint), subluxation (joint), flexion_contracture (soft tissue).

:func:`validate_form` checks a filled form (exact rows and columns, values 0/1/empty)
and :func:`summarise_form` reduces it to one row per hand with ``any_<finding>`` (1 if
present at any location, 0 if absent at every assessed location, empty if none was
assessed) - the per-patient variables the study's statistics use.
"""

from __future__ import annotations

from pathlib import Path

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

FINDINGS = (
    ("calcinosis", "soft_tissue"),
    ("acro_osteolysis", "bone"),
    ("periarticular_calcification", "soft_tissue"),
    ("subchondral_erosion", "joint"),
    ("marginal_erosion", "joint"),
    ("joint_space_narrowing", "joint"),
    ("subluxation", "joint"),
    ("flexion_contracture", "soft_tissue"),
)
LOCATIONS = ("distal_phalanx", "DIP", "PIP", "MCP", "wrist")

FORM_COLUMNS = [
    Column("side", "string", "", "Hand: L or R"),
    Column("finding", "string", "", "Structural finding (Bauer et al. 2020)"),
    Column("pattern", "string", "", "Radiographic pattern: joint, bone or soft_tissue"),
] + [Column(loc, "int", "", f"1 = present at {loc}, 0 = absent, empty = not assessed") for loc in LOCATIONS]


def blank_form(sides=("R", "L")) -> Table:
    """The empty form: 8 findings x 5 locations per hand, every cell empty (not assessed)."""
    t = Table(FORM_COLUMNS, name="structural_form",
              description="Hand radiograph structural lesions (Bauer et al. 2020): 1 present, 0 absent, empty not assessed")
    for s in sides:
        if s not in ("L", "R"):
            raise InputError(f"structural form: side {s!r} is not L or R")
        for f, pattern in FINDINGS:
            t.append({"side": s, "finding": f, "pattern": pattern})
    return t


def validate_form(table: Table, where: str = "structural form", first_row: int = 2) -> Table:
    """Check a filled form; returns it with typed values.  Errors name row and column
    (``first_row``: the number of the first data row - 2 in a CSV file under its header,
    1 in Slicer's table view)."""
    names = table.column_names
    expected = [c.name for c in FORM_COLUMNS]
    missing = [c for c in expected if c not in names]
    if missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)} (expected {', '.join(expected)})")
    extra = [c for c in names if c not in expected]
    if extra:
        raise InputError(f"{where}: unexpected column(s) {', '.join(extra)}")
    out = Table(FORM_COLUMNS, name="structural_form", description=blank_form(()).description)
    seen = set()
    findings = dict(FINDINGS)
    for n, row in enumerate(table.rows, start=first_row):
        side = str(row["side"] or "").strip().upper()
        finding = str(row["finding"] or "").strip().lower()
        if side not in ("L", "R"):
            raise InputError(f"{where}, row {n}, column side: {row['side']!r} is not L or R")
        if finding not in findings:
            raise InputError(f"{where}, row {n}, column finding: {row['finding']!r} is not one of "
                             f"{', '.join(findings)}")
        if (side, finding) in seen:
            raise InputError(f"{where}, row {n}: {side} {finding} appears twice")
        seen.add((side, finding))
        clean = {"side": side, "finding": finding, "pattern": findings[finding]}
        for loc in LOCATIONS:
            v = row[loc]
            if v is None or (isinstance(v, str) and v.strip() == ""):
                clean[loc] = None
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{where}, row {n}, column {loc}: {v!r} is not 1 (present), 0 (absent) or empty") from None
            if f not in (0.0, 1.0):
                raise InputError(f"{where}, row {n}, column {loc}: {v!r} is not 1 (present), 0 (absent) or empty")
            clean[loc] = int(f)
        out.append(clean)
    for side in sorted({s for s, _ in seen}):
        absent = [f for f, _ in FINDINGS if (side, f) not in seen]
        if absent:
            raise InputError(f"{where}: hand {side} lacks the row(s) {', '.join(absent)}")
    return out


def read_form(path: str | Path) -> Table:
    """Read and validate a filled form (CSV)."""
    path = Path(path)
    t = Table.read_csv(path, columns=[Column(c.name, "string") for c in FORM_COLUMNS[:3]]
                       + [Column(loc, "string") for loc in LOCATIONS])
    return validate_form(t, str(path))


SUMMARY_COLUMNS = [Column("side", "string", "", "Hand: L or R"),
                   Column("locations_assessed", "int", "cells", "Number of filled cells (of 40)")] + [
    Column(f"any_{f}", "int", "", f"1 if {f} is present at any location, 0 if absent at every assessed "
                                  "location, empty if none was assessed") for f, _ in FINDINGS] + [
    Column(f"any_{p}_pattern", "int", "", f"1 if any {p} finding is present") for p in ("joint", "bone", "soft_tissue")]


def summarise_form(form: Table) -> Table:
    """One row per hand: any_<finding> and any_<pattern>_pattern (0/1, empty if not assessed)."""
    t = Table(SUMMARY_COLUMNS, name="structural_summary", description="Structural lesions per hand")
    for side in sorted({r["side"] for r in form.rows}, key=lambda s: "RL".index(s)):
        rows = {r["finding"]: r for r in form.rows if r["side"] == side}
        out = {"side": side, "locations_assessed": 0}
        pattern_any: dict[str, int | None] = {"joint": None, "bone": None, "soft_tissue": None}
        for f, pattern in FINDINGS:
            vals = [rows[f][loc] for loc in LOCATIONS if rows[f][loc] is not None]
            out["locations_assessed"] += len(vals)
            v = (1 if any(vals) else 0) if vals else None
            out[f"any_{f}"] = v
            if v is not None:
                pattern_any[pattern] = max(pattern_any[pattern] or 0, v)
        for p, v in pattern_any.items():
            out[f"any_{p}_pattern"] = v
        t.append(out)
    return t


__all__ = ["FINDINGS", "LOCATIONS", "FORM_COLUMNS", "blank_form", "validate_form", "read_form", "summarise_form"]
