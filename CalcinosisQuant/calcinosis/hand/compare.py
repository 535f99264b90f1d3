"""Side-by-side comparison of one hand seen by two or three modalities (study 1).

Input: result folders of ``calcinosis hand`` (each with ``provenance.json``,
``digits.csv``, ``hand.csv``).  Output tables:

* ``compare_digits.csv``: one row per side x digit (thumb ... little, unassigned):
  lesion counts per modality, radiograph area, CT and MRI volume, CT (and MRI)
  projected area, and the MRI - CT volume difference (second - first) (the per-finger "within-finger
  spread" study 1 tested);
* ``compare_hand.csv``: the same per hand, with mean lesion size per modality.

A value is empty when its modality was not given, or did not assess that digit (no
landmarks for it): not assessed is not zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from calcinosis.core.errors import InputError
from calcinosis.core.tables import Column, Table

from .anatomy import DIGITS

PREFIX = {"XR": "xr", "CT": "ct", "MR": "mri"}
MODALITY_NAMES = {"XR": "radiograph", "CT": "CT", "MR": "MRI"}


@dataclass
class HandRun:
    folder: Path
    modality: str
    case_id: str | None
    digits: Table
    hand: Table
    provenance: dict
    sides: list = field(default_factory=list)   # sides known (L/R), from hand.csv


def read_hand_result(folder: str | Path) -> HandRun:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (a result folder of `calcinosis hand` was expected)")
    prov_path = folder / "provenance.json"
    if not prov_path.is_file():
        raise InputError(f"{folder}: no provenance.json (not a result folder of `calcinosis hand`)")
    try:
        prov = json.loads(prov_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{prov_path}: unreadable ({e})") from None
    if prov.get("command") != "hand":
        raise InputError(f"{folder}: a result of `calcinosis {prov.get('command', '?')}`, not of `calcinosis hand`")
    modality = (prov.get("parameters") or {}).get("modality") or (prov.get("results") or {}).get("modality")
    if modality not in PREFIX:
        raise InputError(f"{prov_path}: modality {modality!r} is not XR, CT or MR")
    for name in ("digits.csv", "hand.csv"):
        if not (folder / name).is_file():
            raise InputError(f"{folder}: {name} is missing (incomplete result folder)")
    digits = Table.read_csv(folder / "digits.csv")
    hand = Table.read_csv(folder / "hand.csv")
    size = "total_area_mm2" if modality == "XR" else "total_volume_mm3"
    for table, name, needed in ((digits, "digits.csv", ("side", "digit", "lesion_count")),
                                (hand, "hand.csv", ("side", "lesion_count", size))):
        for col in needed:
            if not table.has_column(col):
                raise InputError(f"{folder / name}: column {col} is missing")
    sides = sorted({r["side"] for r in hand.rows if r["side"] in ("L", "R")})
    return HandRun(folder, modality, prov.get("case_id"), digits, hand, prov, sides)


def _columns() -> tuple[list[Column], list[Column]]:
    per_mod = []
    for m, p in PREFIX.items():
        per_mod.append(Column(f"{p}_lesion_count", "int", "lesions", f"Lesions on the {MODALITY_NAMES[m]}"))
    size = [
        Column("xr_total_area_mm2", "double", "mm2", "Sum of lesion areas on the radiograph"),
        Column("ct_total_volume_mm3", "double", "mm3", "Sum of lesion volumes on CT"),
        Column("mri_total_volume_mm3", "double", "mm3", "Sum of lesion volumes on MRI"),
        Column("ct_total_projected_area_mm2", "double", "mm2",
               "Sum of CT lesions' areas projected on the coronal plane (comparable with the radiograph area)"),
        Column("mri_total_projected_area_mm2", "double", "mm2", "Sum of MRI lesions' projected (coronal) areas"),
        Column("mri_minus_ct_volume_mm3", "double", "mm3", "MRI total volume minus CT total volume (second − first, as everywhere)"),
    ]
    digit_cols = [Column("side", "string", "", "Hand: L, R or unknown"),
                  Column("digit", "string", "", "thumb, index, middle, ring, little or unassigned")] + per_mod + size
    hand_cols = [Column("side", "string", "", "Hand: L, R or unknown"),
                 Column("modalities", "string", "", "Modalities compared (XR;CT;MR)")] + per_mod + size + [
        Column("xr_mean_area_mm2", "double", "mm2", "Mean lesion area on the radiograph"),
        Column("ct_mean_volume_mm3", "double", "mm3", "Mean lesion volume on CT"),
        Column("mri_mean_volume_mm3", "double", "mm3", "Mean lesion volume on MRI"),
    ]
    return digit_cols, hand_cols


def _fill(row: dict, run: HandRun, src: dict) -> None:
    p = PREFIX[run.modality]
    row[f"{p}_lesion_count"] = src["lesion_count"]
    if run.modality == "XR":
        row["xr_total_area_mm2"] = src.get("total_area_mm2")
    else:
        row[f"{p}_total_volume_mm3"] = src.get("total_volume_mm3")
        row[f"{p}_total_projected_area_mm2"] = src.get("total_projected_area_mm2")


def compare_runs(runs: list[HandRun], side: str | None = None) -> tuple[Table, Table, list[str]]:
    """(compare_digits, compare_hand, warnings).  Errors for mismatched inputs."""
    warnings: list[str] = []
    if not 2 <= len(runs) <= 3:
        raise InputError(f"hand-compare: give two or three result folders (one per modality), got {len(runs)}")
    seen: dict[str, Path] = {}
    for r in runs:
        if r.modality in seen:
            raise InputError(f"hand-compare: {seen[r.modality]} and {r.folder} are both {MODALITY_NAMES[r.modality]} "
                             "results; give one folder per modality")
        seen[r.modality] = r.folder
    ids = {r.case_id for r in runs if r.case_id}
    if len(ids) > 1:
        raise InputError("hand-compare: the results belong to different cases (case ids "
                         + ", ".join(f"{r.folder.name}: {r.case_id}" for r in runs if r.case_id) + ")")
    known = [r for r in runs if r.sides]
    for r in runs:
        if not r.sides:
            warnings.append(f"{r.folder.name}: the {MODALITY_NAMES[r.modality]} result does not say which hand it is "
                            "(no landmarks, no DICOM laterality); assumed to be the same hand")
    if side is not None:
        side = side.upper()
        if side not in ("L", "R"):
            raise InputError(f"--side: expected L or R, got {side!r}")
        for r in known:
            if side not in r.sides:
                raise InputError(f"hand-compare: {r.folder} ({MODALITY_NAMES[r.modality]}) has no {side} hand "
                                 f"(it shows {', '.join(r.sides)})")
        sides = [side]
    else:
        common = set(known[0].sides) if known else set()
        for r in known[1:]:
            common &= set(r.sides)
        if known and not common:
            desc = "; ".join(f"{r.folder.name} ({MODALITY_NAMES[r.modality]}): {'+'.join(r.sides)} hand" for r in known)
            raise InputError(f"hand-compare: the results are not of the same hand ({desc})")
        sides = sorted(common, key=lambda s: "RL".index(s)) if common else ["unknown"]
        if known and any(set(r.sides) != common for r in known):
            warnings.append(f"comparing the {' and '.join(sides)} hand(s) only (the one(s) every result shows)")
    digit_cols, hand_cols = _columns()
    dt = Table(digit_cols, name="compare_digits", description="One hand, per digit, across modalities (study 1)")
    ht = Table(hand_cols, name="compare_hand", description="One hand across modalities")
    order = {"XR": 0, "CT": 1, "MR": 2}
    runs = sorted(runs, key=lambda r: order[r.modality])
    for s in sides:
        for d in list(DIGITS) + ["unassigned"]:
            row: dict = {"side": s, "digit": d}
            for r in runs:
                src = _find(r.digits.rows, s if r.sides else None, d)
                if src is not None:
                    _fill(row, r, src)
            _difference(row)
            dt.append(row)
        hrow: dict = {"side": s, "modalities": ";".join(r.modality for r in runs)}
        for r in runs:
            src = _find(r.hand.rows, s if r.sides else None, None)
            if src is None:
                continue
            _fill(hrow, r, src)
            n = src["lesion_count"] or 0
            p = PREFIX[r.modality]
            if r.modality == "XR":
                hrow["xr_mean_area_mm2"] = (src["total_area_mm2"] / n) if n else None
            else:
                hrow[f"{p}_mean_volume_mm3"] = (src["total_volume_mm3"] / n) if n else None
        _difference(hrow)
        ht.append(hrow)
    return dt, ht, warnings


def _find(rows: list[dict], side: str | None, digit: str | None) -> dict | None:
    for r in rows:
        if side is not None and r["side"] != side:
            continue
        if digit is not None and r.get("digit") != digit:
            continue
        return r
    return None


def _difference(row: dict) -> None:
    ct, mr = row.get("ct_total_volume_mm3"), row.get("mri_total_volume_mm3")
    row["mri_minus_ct_volume_mm3"] = (mr - ct) if ct is not None and mr is not None else None


__all__ = ["HandRun", "read_hand_result", "compare_runs"]
