"""The hand tables: ``lesions.csv``, ``digits.csv`` and ``hand.csv`` (the shared contract).

* ``lesions.csv``: the engine's lesion columns plus ``side, digit, zone, kind``.
* ``digits.csv``: one row per side x digit the image could assess (digits with a ray
  from landmarks) plus one ``unassigned`` row per side; a digit without landmarks has
  no row (not assessed is not the same as no lesion).
* ``hand.csv``: one row per hand (side) the image shows.

Area columns are filled for radiographs, volume and projected-area columns for CT and
MRI, the others are empty.  A digit or hand without lesions has count 0 and totals and
largest values 0.  Zone and kind counts (and ``digits_affected``) are empty for a hand
without landmarks, because zones and kinds could not be assessed there.
"""

from __future__ import annotations

from calcinosis.core.tables import Column, Table

from .anatomy import DIGITS, ZONES
from .assign import ASSIGN_COLUMNS, Assignment

DIGIT_COLUMNS = [
    Column("side", "string", "", "Hand: L, R or unknown"),
    Column("digit", "string", "", "thumb, index, middle, ring, little, or unassigned (lesions on no digit)"),
    Column("modality", "string", "", "XR, CT or MR"),
    Column("lesion_count", "int", "lesions", "Number of lesions assigned to this digit"),
    Column("total_area_mm2", "double", "mm2", "Sum of lesion areas (radiograph only)"),
    Column("largest_area_mm2", "double", "mm2", "Area of the largest lesion (radiograph only; 0 if none)"),
    Column("total_volume_mm3", "double", "mm3", "Sum of lesion volumes (CT/MRI only)"),
    Column("largest_volume_mm3", "double", "mm3", "Volume of the largest lesion (CT/MRI only; 0 if none)"),
    Column("total_projected_area_mm2", "double", "mm2",
           "Sum of the lesions' projected areas on the coronal (PA) plane (CT/MRI only), to compare with radiographs"),
]

HAND_COLUMNS = [
    Column("side", "string", "", "Hand: L, R or unknown"),
    Column("modality", "string", "", "XR, CT or MR"),
    Column("lesion_count", "int", "lesions", "Number of lesions on this hand"),
    Column("total_area_mm2", "double", "mm2", "Sum of lesion areas (radiograph only)"),
    Column("total_volume_mm3", "double", "mm3", "Sum of lesion volumes (CT/MRI only)"),
    Column("largest_area_mm2", "double", "mm2", "Largest lesion area (radiograph only; 0 if none)"),
    Column("largest_volume_mm3", "double", "mm3", "Largest lesion volume (CT/MRI only; 0 if none)"),
    Column("total_projected_area_mm2", "double", "mm2", "Sum of projected (coronal) lesion areas (CT/MRI only)"),
    Column("n_subcutaneous", "int", "lesions", "Lesions away from joints (empty without landmarks)"),
    Column("n_periarticular", "int", "lesions", "Lesions at a joint (empty without landmarks)"),
] + [Column(f"zone_{z.lower()}_count", "int", "lesions", f"Lesions in zone {z} (empty without landmarks)")
     for z in ZONES] + [
    Column("digits_affected", "int", "digits", "Number of digits (of those with landmarks) with at least one lesion "
                                              "(empty without landmarks)"),
]


def hand_lesion_table(engine_table: Table, assignment: Assignment) -> Table:
    """Engine columns + side, digit, zone, kind."""
    t = Table(list(engine_table.columns) + ASSIGN_COLUMNS, name="lesions",
              description="One row per lesion: measurements and anatomical assignment")
    for n, row in enumerate(engine_table.rows):
        r = dict(row)
        lid = int(row["lesion_id"]) - 1
        r.update({"side": assignment.side[lid], "digit": assignment.digit[lid], "zone": assignment.zone[lid],
                  "kind": assignment.kind[lid]})
        t.append(r)
    return t


def _size_columns(is_2d: bool) -> tuple[str, str]:
    return ("area_mm2", "projected_area_mm2") if is_2d else ("volume_mm3", "projected_area_mm2")


def _summarise(rows: list[dict], is_2d: bool) -> dict:
    size_col = "area_mm2" if is_2d else "volume_mm3"
    sizes = [float(r[size_col]) for r in rows]
    total = float(sum(sizes))
    largest = float(max(sizes)) if sizes else 0.0
    out = {"lesion_count": len(rows)}
    if is_2d:
        out.update({"total_area_mm2": total, "largest_area_mm2": largest})
    else:
        out.update({"total_volume_mm3": total, "largest_volume_mm3": largest,
                    "total_projected_area_mm2": float(sum(float(r["projected_area_mm2"]) for r in rows))})
    return out


def hand_sides(lesion_table: Table, assignment: Assignment) -> list[str]:
    sides = list(assignment.sides_present)
    for s in lesion_table.column("side") if len(lesion_table) else []:
        if s not in sides:
            sides.append(s)
    if not sides:
        sides = ["unknown"]
    return sorted(sides, key=lambda v: ("R", "L", "unknown").index(v))


def digit_table(lesion_table: Table, modality: str, assignment: Assignment, is_2d: bool) -> Table:
    t = Table(DIGIT_COLUMNS, name="digits", description="Lesions per side and digit")
    for side in hand_sides(lesion_table, assignment):
        digits = [d for d in DIGITS if d in assignment.digits_covered.get(side, [])] + ["unassigned"]
        for d in digits:
            rows = [r for r in lesion_table.rows if r["side"] == side and r["digit"] == d]
            t.append({"side": side, "digit": d, "modality": modality, **_summarise(rows, is_2d)})
    add_partial_volume_totals(t, lesion_table, ("side", "digit"))
    return t


def hand_table(lesion_table: Table, modality: str, assignment: Assignment, is_2d: bool) -> Table:
    t = Table(HAND_COLUMNS, name="hand", description="One row per hand")
    for side in hand_sides(lesion_table, assignment):
        rows = [r for r in lesion_table.rows if r["side"] == side]
        row = {"side": side, "modality": modality, **_summarise(rows, is_2d)}
        if side in assignment.digits_covered:
            row["n_subcutaneous"] = sum(1 for r in rows if r["kind"] == "subcutaneous")
            row["n_periarticular"] = sum(1 for r in rows if r["kind"] == "periarticular")
            for z in ZONES:
                row[f"zone_{z.lower()}_count"] = sum(1 for r in rows if r["zone"] == z)
            row["digits_affected"] = len({r["digit"] for r in rows if r["digit"] in DIGITS})
        t.append(row)
    add_partial_volume_totals(t, lesion_table, ("side",))
    return t


#: totals of the partial-volume columns (issue 14), in the summaries when the lesions have them
PV_TOTALS = [
    ("pv_volume_mm3", Column("total_pv_volume_mm3", "double", "mm3",
                             "Sum of the lesions' pv_volume_mm3 (partial-volume corrected); empty when a lesion "
                             "has none")),
    ("calcium_mass_mg", Column("total_calcium_mass_mg", "double", "mg",
                               "Sum of the lesions' calcium_mass_mg; empty without a calibration or when a lesion "
                               "has none")),
]


def add_partial_volume_totals(summary: Table, lesion_table: Table, keys: tuple[str, ...]) -> None:
    """Per summary row, the totals of :data:`PV_TOTALS` over the lesions sharing its ``keys``
    (side, or side and digit); nothing when the lesions have no partial-volume columns."""
    if not lesion_table.has_column("pv_volume_mm3"):
        return
    after = "total_volume_mm3"
    for source, column in PV_TOTALS:
        values = []
        for row in summary.rows:
            vals = [r[source] for r in lesion_table.rows if all(r[k] == row[k] for k in keys)]
            values.append(None if any(v is None for v in vals) else round(float(sum(vals)), 5))
        summary.add_column(column, values, after=after)
        after = column.name


__all__ = ["PV_TOTALS", "add_partial_volume_totals", "DIGIT_COLUMNS", "HAND_COLUMNS", "hand_lesion_table", "digit_table", "hand_table", "hand_sides"]
