"""The spine map's tables: lesions, levels and patient (the shared contract).

* ``lesions.csv`` - the engine's lesion columns plus ``level, segment, subsite, pattern``;
* ``levels.csv`` - one row per level C7-T1 … L5-S1: ``level, status`` (assessed /
  not_assessed) and counts per segment and sub-site (empty, not 0, when not assessed);
* ``patient.csv`` - one row: coverage, levels assessed, counts and any-flags (0/1) per
  segment, sub-site and pattern.
"""

from __future__ import annotations

from calcinosis.core.measure import lesion_columns
from calcinosis.core.tables import Column, Table

from .anatomy import LEVELS, PATTERNS, SEGMENTS, SUBSITES

SPINE_COLUMNS = [
    Column("level", "string", "", "Disco-vertebral level (C7-T1 … L5-S1) the calcification belongs to"),
    Column("segment", "string", "", "Segment: anterior, intracanal or posterior"),
    Column("subsite", "string", "", "Sub-site: anterior_longitudinal_ligament, intervertebral_disc, "
                                    "posterior_longitudinal_ligament, intracanal, foraminal, costotransverse, "
                                    "interspinous, transverse_process or facet_joint"),
    Column("pattern", "string", "", "Pattern from shape: linear, punctate or pseudotumoral"),
]

_SUBSITE_TEXT = {
    "anterior_longitudinal_ligament": "anterior longitudinal ligament (anterior segment)",
    "intervertebral_disc": "intervertebral disc (anterior segment)",
    "posterior_longitudinal_ligament": "posterior longitudinal ligament (anterior segment)",
    "intracanal": "spinal canal (intracanal segment)",
    "foraminal": "intervertebral foramen (counted in the intracanal segment)",
    "costotransverse": "costotransverse junction (posterior segment)",
    "interspinous": "between the spinous processes (posterior segment)",
    "transverse_process": "transverse process (posterior segment)",
    "facet_joint": "facet (zygapophyseal) joint (posterior segment)",
}


#: Sub-sites with their own count/any columns.  ``intracanal`` is also a segment: its
#: column counts the segment (canal + foramina), as the contract names it once.
SUBSITE_COLUMNS = [s for s in SUBSITES if s not in SEGMENTS]


def lesion_table_columns() -> list[Column]:
    return lesion_columns(False) + SPINE_COLUMNS


def levels_columns() -> list[Column]:
    cols = [Column("level", "string", "", "Disco-vertebral level"),
            Column("status", "string", "", "assessed (both vertebrae in the scan and usable) or not_assessed"),
            Column("count_total", "int", "calcifications", "Calcifications at this level (empty when not assessed)")]
    for s in SEGMENTS:
        cols.append(Column(f"count_{s}", "int", "calcifications", _segment_text("Calcifications", s)))
    for s in SUBSITE_COLUMNS:
        cols.append(Column(f"count_{s}", "int", "calcifications", f"Calcifications at the {_SUBSITE_TEXT[s]}"))
    return cols


def _segment_text(what: str, s: str) -> str:
    if s == "intracanal":
        return (f"{what} in the intracanal segment (canal and foramina; the canal alone is count_intracanal "
                "minus count_foraminal)")
    return f"{what} in the {s} segment"


def patient_columns() -> list[Column]:
    cols = [
        Column("coverage", "string", "", "Spine covered: TAP (C7-T1 to L5-S1), chest (C7-T1 to T11-T12 or lower, "
                                         "not lumbar), lumbar (from T11-T12 or lower to L5-S1), partial (other), "
                                         "none"),
        Column("levels_assessed", "int", "levels", "Number of levels assessed"),
        Column("first_level_assessed", "string", "", "Most cranial level assessed"),
        Column("last_level_assessed", "string", "", "Most caudal level assessed"),
        Column("calcification_count", "int", "calcifications", "Calcifications mapped in the assessed levels"),
        Column("any_calcification", "int", "0/1", "1 when at least one calcification was mapped"),
    ]
    for s in SEGMENTS:
        where = "intracanal segment (canal or foramina)" if s == "intracanal" else f"{s} segment"
        cols.append(Column(f"any_{s}", "int", "0/1", f"1 when the {where} holds a calcification"))
    cols.append(Column("any_all_three_segments", "int", "0/1", "1 when all three segments hold a calcification"))
    for s in SEGMENTS:
        cols.append(Column(f"count_{s}", "int", "calcifications", _segment_text("Calcifications", s)))
    for s in SUBSITE_COLUMNS:
        cols.append(Column(f"any_{s}", "int", "0/1", f"1 when the {_SUBSITE_TEXT[s]} holds a calcification"))
    for s in SUBSITE_COLUMNS:
        cols.append(Column(f"count_{s}", "int", "calcifications", f"Calcifications at the {_SUBSITE_TEXT[s]}"))
    for p in PATTERNS:
        cols.append(Column(f"count_{p}", "int", "calcifications", f"Calcifications with the {p} pattern"))
    return cols


def coverage_name(assessed: list[str]) -> str:
    if not assessed:
        return "none"
    idx = sorted(LEVELS.index(lv) for lv in assessed)
    first, last = LEVELS[idx[0]], LEVELS[idx[-1]]
    contiguous = idx == list(range(idx[0], idx[-1] + 1))
    if not contiguous:
        return "partial"
    t11 = LEVELS.index("T11-T12")
    if first == "C7-T1" and last == "L5-S1":
        return "TAP"
    if first == "C7-T1" and t11 <= LEVELS.index(last) <= LEVELS.index("L1-L2"):
        return "chest"
    if last == "L5-S1" and LEVELS.index(first) >= t11:
        return "lumbar"
    return "partial"


def levels_table(rows: list[dict], assessed: list[str]) -> Table:
    """``rows``: the final lesion rows (with level, segment, subsite)."""
    t = Table(levels_columns(), name="levels", description="Calcifications per disco-vertebral level")
    for lv in LEVELS:
        if lv not in assessed:
            t.append({"level": lv, "status": "not_assessed"})
            continue
        mine = [r for r in rows if r["level"] == lv]
        row = {"level": lv, "status": "assessed", "count_total": len(mine)}
        for s in SEGMENTS:
            row[f"count_{s}"] = sum(r["segment"] == s for r in mine)
        for s in SUBSITE_COLUMNS:
            row[f"count_{s}"] = sum(r["subsite"] == s for r in mine)
        t.append(row)
    return t


def patient_table(rows: list[dict], assessed: list[str]) -> Table:
    t = Table(patient_columns(), name="patient", description="Spine calcification map, one row per patient")
    order = sorted(assessed, key=LEVELS.index)
    row = {"coverage": coverage_name(assessed), "levels_assessed": len(order),
           "first_level_assessed": order[0] if order else None, "last_level_assessed": order[-1] if order else None,
           "calcification_count": len(rows), "any_calcification": int(len(rows) > 0)}
    for s in SEGMENTS:
        c = sum(r["segment"] == s for r in rows)
        row[f"count_{s}"] = c
        row[f"any_{s}"] = int(c > 0)
    row["any_all_three_segments"] = int(all(row[f"any_{s}"] for s in SEGMENTS))
    for s in SUBSITE_COLUMNS:
        c = sum(r["subsite"] == s for r in rows)
        row[f"count_{s}"] = c
        row[f"any_{s}"] = int(c > 0)
    for p in PATTERNS:
        row[f"count_{p}"] = sum(r["pattern"] == p for r in rows)
    t.append(row)
    return t
