"""Reader overrides: a reader deletes a calcification or changes its level, segment,
sub-site or pattern, and every later run keeps the decision.

**Identity across runs.** ``lesion_id`` numbers change whenever anything upstream
changes (a threshold, a label map, one more calcification above), so an override names
its calcification by *position*: the centroid (RAS, mm) it had when the reader decided.
On a re-run the override applies to the calcification whose centroid is nearest, if
within ``tolerance_mm`` (default 3 mm: a calcification's centroid moves by a fraction
of a voxel when a threshold changes, while two calcifications are rarely closer).  A
``lesion_id`` in the file is only a tie-breaker between calcifications equally near.
An override that finds no calcification within the tolerance is reported
``unmatched`` and changes nothing; one whose new level is not assessed in this scan is
``rejected``.

**File (CSV, UTF-8, header row):**

==================================== =============================================
column                               meaning
==================================== =============================================
``action``                           ``delete`` or ``change``
``centroid_r_mm, _a_mm, _s_mm``      the calcification's centroid (RAS, mm)
``lesion_id``                        optional; tie-breaker only
``level, segment, subsite, pattern`` ``change``: new values (empty = keep)
``note``                             optional free text, kept in the record
==================================== =============================================

A new sub-site sets its segment; a new segment alone is accepted only when it has a
single sub-site-free meaning (``intracanal``) or keeps the current sub-site.

The outputs record every override (``reader_overrides.csv``): its status, the
calcification it matched (automatic ``auto_lesion_id``, final ``lesion_id``), the
distance, and each field before and after.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

from .anatomy import LEVELS, PATTERNS, SEGMENTS, SUBSITE_SEGMENT, SUBSITES

FIELDS = ("level", "segment", "subsite", "pattern")
ACTIONS = ("delete", "change")


@dataclass
class Override:
    action: str
    centroid: np.ndarray
    lesion_id: int | None = None
    level: str | None = None
    segment: str | None = None
    subsite: str | None = None
    pattern: str | None = None
    note: str = ""
    row: int = 0                     # row in its file (or order given), for messages

    def changes(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in FIELDS if getattr(self, f)}


@dataclass
class AppliedOverride:
    override: Override
    status: str                      # applied, unmatched, rejected
    auto_lesion_id: int | None = None
    lesion_id: int | None = None
    distance_mm: float | None = None
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    message: str = ""


def validate_override(o: Override, where: str) -> Override:
    if o.action not in ACTIONS:
        raise InputError(f"{where}, column action: expected delete or change, got {o.action!r}")
    c = np.asarray(o.centroid, float)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise InputError(f"{where}: centroid_r_mm, centroid_a_mm, centroid_s_mm must be three numbers (RAS, mm)")
    if o.level and o.level not in LEVELS:
        raise InputError(f"{where}, column level: {o.level!r} is not a level (C7-T1 … L5-S1)")
    if o.segment and o.segment not in SEGMENTS:
        raise InputError(f"{where}, column segment: {o.segment!r} is not one of {', '.join(SEGMENTS)}")
    if o.subsite and o.subsite not in SUBSITES:
        raise InputError(f"{where}, column subsite: {o.subsite!r} is not one of {', '.join(SUBSITES)}")
    if o.pattern and o.pattern not in PATTERNS:
        raise InputError(f"{where}, column pattern: {o.pattern!r} is not one of {', '.join(PATTERNS)}")
    if o.subsite and o.segment and SUBSITE_SEGMENT[o.subsite] != o.segment:
        raise InputError(f"{where}: sub-site {o.subsite} belongs to the {SUBSITE_SEGMENT[o.subsite]} segment, "
                         f"not {o.segment}")
    if o.action == "change" and not o.changes():
        raise InputError(f"{where}: a change needs at least one of level, segment, subsite, pattern")
    if o.action == "delete" and o.changes():
        raise InputError(f"{where}: a delete takes no new level/segment/subsite/pattern")
    o.centroid = c
    return o


def read_overrides(path: str | Path) -> list[Override]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such overrides file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise InputError(f"{path}: empty file (header: action,centroid_r_mm,centroid_a_mm,centroid_s_mm,…)")
    cols = {h.strip(): h for h in reader.fieldnames}
    need = ("action", "centroid_r_mm", "centroid_a_mm", "centroid_s_mm")
    missing = [c for c in need if c not in cols]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(reader.fieldnames)})")
    out = []
    for n, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        where = f"{path}, row {n}"
        try:
            c = np.array([float(row["centroid_r_mm"]), float(row["centroid_a_mm"]), float(row["centroid_s_mm"])])
        except ValueError:
            raise InputError(f"{where}: centroid_r_mm, centroid_a_mm, centroid_s_mm must be numbers "
                             "(RAS, mm)") from None
        lid = row.get("lesion_id") or None
        try:
            lid = int(float(lid)) if lid else None
        except ValueError:
            raise InputError(f"{where}, column lesion_id: {row.get('lesion_id')!r} is not a number") from None
        o = Override(row["action"].lower(), c, lid, row.get("level") or row.get("level_after") or None,
                     row.get("segment") or None, row.get("subsite") or None, row.get("pattern") or None,
                     row.get("note", ""), n)
        out.append(validate_override(o, where))
    return out


INPUT_COLUMNS = [
    Column("action", "string", "", "delete or change"),
    Column("lesion_id", "int", "", "Lesion id when the decision was made (tie-breaker only)"),
    Column("centroid_r_mm", "double", "mm", "Centroid of the calcification, R (RAS)"),
    Column("centroid_a_mm", "double", "mm", "Centroid, A (RAS)"),
    Column("centroid_s_mm", "double", "mm", "Centroid, S (RAS)"),
    Column("level", "string", "", "New level (change), empty = keep"),
    Column("segment", "string", "", "New segment (change), empty = keep"),
    Column("subsite", "string", "", "New sub-site (change), empty = keep"),
    Column("pattern", "string", "", "New pattern (change), empty = keep"),
    Column("note", "string", "", "Reader's note"),
]


def overrides_table(overrides: list[Override]) -> Table:
    """Overrides in the input file format (what :func:`read_overrides` reads back)."""
    t = Table(INPUT_COLUMNS, name="overrides", description="Reader overrides (input format)")
    for o in overrides:
        t.append({"action": o.action, "lesion_id": o.lesion_id, "centroid_r_mm": float(o.centroid[0]),
                  "centroid_a_mm": float(o.centroid[1]), "centroid_s_mm": float(o.centroid[2]),
                  "level": o.level, "segment": o.segment, "subsite": o.subsite, "pattern": o.pattern,
                  "note": o.note or None})
    return t


RECORD_COLUMNS = [
    Column("override_row", "int", "", "Row of the override in its file (or its order)"),
    Column("action", "string", "", "delete or change"),
    Column("status", "string", "", "applied, unmatched (no calcification within the tolerance) or rejected"),
    Column("auto_lesion_id", "int", "", "lesion_id of the matched calcification before the overrides"),
    Column("lesion_id", "int", "", "lesion_id in the final lesions.csv (empty when deleted or unmatched)"),
    Column("centroid_r_mm", "double", "mm", "Centroid given by the override, R (RAS)"),
    Column("centroid_a_mm", "double", "mm", "Centroid given by the override, A (RAS)"),
    Column("centroid_s_mm", "double", "mm", "Centroid given by the override, S (RAS)"),
    Column("distance_mm", "double", "mm", "Distance from the override's centroid to the matched calcification's"),
] + [c for f in FIELDS for c in (
    Column(f"{f}_before", "string", "", f"{f} before the override"),
    Column(f"{f}_after", "string", "", f"{f} after the override (empty when deleted)"))] + [
    Column("note", "string", "", "Reader's note"),
    Column("message", "string", "", "Why an override was not applied"),
]


def record_table(applied: list[AppliedOverride]) -> Table:
    t = Table(RECORD_COLUMNS, name="reader_overrides", description="Reader overrides applied to this result")
    for a in applied:
        o = a.override
        row = {"override_row": o.row, "action": o.action, "status": a.status, "auto_lesion_id": a.auto_lesion_id,
               "lesion_id": a.lesion_id, "centroid_r_mm": float(o.centroid[0]), "centroid_a_mm": float(o.centroid[1]),
               "centroid_s_mm": float(o.centroid[2]), "distance_mm": a.distance_mm, "note": o.note or None,
               "message": a.message or None}
        for f in FIELDS:
            row[f"{f}_before"] = a.before.get(f)
            row[f"{f}_after"] = a.after.get(f)
        t.append(row)
    return t


def apply_overrides(rows: list[dict], overrides: list[Override], assessed: list[str],
                    tolerance_mm: float = 3.0) -> tuple[list[dict], list[AppliedOverride]]:
    """Apply overrides, in order, to the automatic lesion rows (dicts with lesion_id,
    centroid_*_mm, level, segment, subsite, pattern).  Returns the surviving rows (copies,
    changed) and one record per override.  Rows keep their automatic ``lesion_id``;
    the caller renumbers."""
    out = [dict(r) for r in rows]
    alive = [True] * len(out)
    C = np.array([[r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]] for r in out]).reshape(-1, 3)
    records = []
    for o in overrides:
        rec = AppliedOverride(o, "unmatched")
        if len(C):
            d = np.linalg.norm(C - o.centroid, axis=1)
            d_alive = np.where(alive, d, np.inf)
            within = np.flatnonzero(d_alive <= tolerance_mm)
        else:
            within = np.zeros(0, int)
        if within.size == 0:
            rec.message = f"no calcification within {tolerance_mm:g} mm of the given centroid"
            records.append(rec)
            continue
        best = within[np.argmin(d_alive[within])]
        if o.lesion_id is not None and within.size > 1:
            same = [k for k in within if out[k]["lesion_id"] == o.lesion_id]
            if same and d_alive[same[0]] - d_alive[best] < 1.0:
                best = same[0]
        rec.auto_lesion_id = int(out[best]["lesion_id"])
        rec.distance_mm = float(d[best])
        rec.before = {f: out[best][f] for f in FIELDS}
        if o.action == "delete":
            alive[best] = False
            rec.status = "applied"
            records.append(rec)
            continue
        new = dict(rec.before)
        new.update(o.changes())
        if o.subsite:
            new["segment"] = SUBSITE_SEGMENT[o.subsite]
        elif o.segment and SUBSITE_SEGMENT.get(new["subsite"]) != o.segment:
            if o.segment == "intracanal":
                new["subsite"] = "intracanal"
            else:
                rec.status = "rejected"
                rec.message = (f"segment changed to {o.segment} but sub-site {new['subsite']} belongs to "
                               f"{SUBSITE_SEGMENT[new['subsite']]}: give the sub-site too")
                records.append(rec)
                continue
        if new["level"] not in assessed:
            rec.status = "rejected"
            rec.message = f"level {new['level']} is not assessed in this scan"
            records.append(rec)
            continue
        out[best].update(new)
        rec.after = {f: new[f] for f in FIELDS}
        rec.status = "applied"
        records.append(rec)
    return [r for r, a in zip(out, alive) if a], records


def overrides_from_edits(shown: list[dict], edited: list[dict], previous: list[Override] | None = None,
                         tolerance_mm: float = 3.0, note: str = "") -> list[Override]:
    """Overrides that turn the lesion rows ``shown`` to the reader into the rows as the
    reader ``edited`` them (rows matched by ``lesion_id``; a missing row is a delete).
    Earlier overrides for the same calcifications (centroid within the tolerance) are
    replaced, the others kept: the result is the complete list to save and re-apply."""
    by_id = {int(r["lesion_id"]): r for r in edited}
    previous = list(previous or [])
    new: list[Override] = []
    replaced: set[int] = set()
    for r in shown:
        c = np.array([r["centroid_r_mm"], r["centroid_a_mm"], r["centroid_s_mm"]], float)
        lid = int(r["lesion_id"])
        e = by_id.get(lid)
        # an earlier change to the same calcification: the new decision includes it
        earlier = [k for k, p in enumerate(previous) if p.action == "change"
                   and np.linalg.norm(p.centroid - c) <= tolerance_mm]
        if e is None:
            new.append(Override("delete", c, lid, note=note))
            replaced.update(earlier)
            continue
        changes = {f: e.get(f) for f in FIELDS if e.get(f) and e.get(f) != r.get(f)}
        if changes:
            merged: dict = {}
            for k in earlier:
                merged.update(previous[k].changes())
            merged.update(changes)
            if "subsite" in changes:
                merged["segment"] = SUBSITE_SEGMENT[changes["subsite"]]
            elif "segment" in changes and merged.get("subsite") and \
                    SUBSITE_SEGMENT[merged["subsite"]] != changes["segment"]:
                merged.pop("subsite")
            o = Override("change", c, lid, note=note, **merged)
            if o.subsite and not o.segment:
                o.segment = SUBSITE_SEGMENT[o.subsite]
            new.append(validate_override(o, f"edited lesion {lid}"))
            replaced.update(earlier)
    kept = [p for k, p in enumerate(previous) if k not in replaced]
    allo = kept + new
    for n, o in enumerate(allo, start=1):
        o.row = n
    return allo
