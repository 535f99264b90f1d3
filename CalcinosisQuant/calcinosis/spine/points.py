"""Point lists with one point per vertebral body (``T8``, ``L1`` …).

Read from a Slicer markups file (``.mrk.json``, LPS or RAS as the file says), a legacy
Slicer fiducial list (``.fcsv``, ``# CoordinateSystem`` header), or a CSV with a
``label`` column and either ``r,a,s`` (RAS, mm; also ``r_mm,a_mm,s_mm``) or ``l,p,s``
(LPS, Slicer's markups CSV export) columns.  Every position comes back in RAS.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from calcinosis.core.errors import InputError

from .anatomy import parse_vertebra_name

Point = tuple[str, "np.ndarray | None"]


def read_points(path: str | Path) -> list[Point]:
    """[(label, ras or None when the point is not placed)] in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such point list file")
    name = path.name.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file (a .mrk.json, .fcsv or .csv point list was "
                         "expected)") from None
    if name.endswith(".json"):
        return _read_mrk_json(path, text)
    if name.endswith(".fcsv"):
        return _read_fcsv(path, text)
    if name.endswith(".csv") or name.endswith(".txt"):
        return _read_csv(path, text)
    raise InputError(f"{path}: unknown point list format (.mrk.json, .fcsv or .csv)")


def _read_mrk_json(path: Path, text: str) -> list[Point]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    markups = data.get("markups") if isinstance(data, dict) else None
    if not markups:
        raise InputError(f"{path}: no 'markups' list (is this a Slicer .mrk.json file?)")
    out: list[Point] = []
    for m_no, m in enumerate(markups):
        system = str(m.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise InputError(f"{path}: markup {m_no} has coordinate system {system!r} (LPS or RAS expected)")
        flip = np.array([-1.0, -1.0, 1.0]) if system == "LPS" else np.ones(3)
        units = m.get("coordinateUnits", "mm")
        units = units[0] if isinstance(units, list) and units else units
        if units == "um":
            flip = flip / 1000.0
        elif units not in ("mm", None, ""):
            raise InputError(f"{path}: markup {m_no} has coordinate units {units!r} (mm or um expected)")
        for p_no, cp in enumerate(m.get("controlPoints", []) or []):
            label = str(cp.get("label", "")).strip()
            status = str(cp.get("positionStatus", "defined")).lower()
            pos = cp.get("position")
            if status in ("undefined", "preview") or pos is None:
                out.append((label, None))
                continue
            try:
                ras = np.asarray([float(v) for v in pos], dtype=float) * flip
            except (TypeError, ValueError):
                raise InputError(f"{path}: control point {p_no} ({label!r}) has a malformed position") from None
            if ras.shape != (3,) or not np.all(np.isfinite(ras)):
                raise InputError(f"{path}: control point {p_no} ({label!r}) has a malformed position")
            out.append((label, ras))
    return out


def _read_fcsv(path: Path, text: str) -> list[Point]:
    system = "LPS"
    rows = []
    for line in text.splitlines():
        if line.startswith("#"):
            if "CoordinateSystem" in line:
                v = line.split("=", 1)[-1].strip().upper()
                system = {"0": "RAS", "1": "LPS"}.get(v, v)
            continue
        if line.strip():
            rows.append(line)
    flip = np.array([-1.0, -1.0, 1.0]) if system == "LPS" else np.ones(3)
    out: list[Point] = []
    for n, rec in enumerate(csv.reader(rows), start=1):
        if len(rec) < 12:
            raise InputError(f"{path}, point {n}: {len(rec)} fields (a .fcsv row has id,x,y,z,...,label,...)")
        try:
            ras = np.array([float(rec[1]), float(rec[2]), float(rec[3])]) * flip
        except ValueError:
            raise InputError(f"{path}, point {n}: x, y, z are not numbers") from None
        out.append((rec[11].strip(), ras))
    return out


def _read_csv(path: Path, text: str) -> list[Point]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise InputError(f"{path}: empty file (a header with label and r,a,s or l,p,s columns is needed)")
    fields = {f.strip().lower(): f for f in reader.fieldnames}
    if "label" not in fields:
        raise InputError(f"{path}: no 'label' column (columns: {', '.join(reader.fieldnames)})")
    ras_cols = next((c for c in (("r", "a", "s"), ("r_mm", "a_mm", "s_mm")) if all(x in fields for x in c)), None)
    lps_cols = next((c for c in (("l", "p", "s"), ("l_mm", "p_mm", "s_mm")) if all(x in fields for x in c)), None)
    if ras_cols is None and lps_cols is None:
        raise InputError(f"{path}: needs r,a,s (RAS) or l,p,s (LPS) coordinate columns in mm "
                         f"(columns: {', '.join(reader.fieldnames)})")
    cols, flip = (ras_cols, np.ones(3)) if ras_cols else (lps_cols, np.array([-1.0, -1.0, 1.0]))
    out: list[Point] = []
    for n, row in enumerate(reader, start=2):
        label = (row.get(fields["label"]) or "").strip()
        vals = [(row.get(fields[c]) or "").strip() for c in cols]
        if all(v == "" for v in vals):
            out.append((label, None))
            continue
        try:
            ras = np.array([float(v) for v in vals]) * flip
        except ValueError:
            raise InputError(f"{path}, row {n}: coordinates {vals} are not numbers") from None
        out.append((label, ras))
    return out


def vertebra_points(points: list[Point], source: str = "point list"
                    ) -> tuple[dict[str, np.ndarray], list[str], set[str]]:
    """({vertebra: ras}, warnings, duplicated names) from labelled points.

    Points whose label names no vertebra are ignored with a warning; unplaced points
    are skipped; a vertebra given twice is reported in ``duplicated`` (both dropped)."""
    found: dict[str, list[np.ndarray]] = {}
    warnings = []
    for label, ras in points:
        name = parse_vertebra_name(label)
        if name is None:
            warnings.append(f"{source}: point {label!r} names no vertebra (expected labels like T8, L1); ignored")
            continue
        if ras is None:
            warnings.append(f"{source}: point {label} is not placed; ignored")
            continue
        found.setdefault(name, []).append(np.asarray(ras, float))
    duplicated = {n for n, v in found.items() if len(v) > 1}
    for n in sorted(duplicated):
        warnings.append(f"{source}: vertebra {n} is given {len(found[n])} times; levels next to it are not assessed")
    return {n: v[0] for n, v in found.items() if n not in duplicated}, warnings, duplicated


def write_points_mrk_json(points: list[tuple[str, np.ndarray]], path: str | Path, name: str = "vertebrae") -> Path:
    """A Slicer markups point list (RAS written as LPS, as Slicer does)."""
    cps = []
    for n, (label, ras) in enumerate(points):
        lps = [-float(ras[0]), -float(ras[1]), float(ras[2])]
        cps.append({"id": str(n + 1), "label": label, "description": "", "associatedNodeID": "",
                    "position": lps, "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                    "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"})
    data = {"@schema": "https://raw.githubusercontent.com/Slicer/Slicer/main/Modules/Loadable/Markups/Resources/"
                       "Schema/markups-v1.0.3-schema.json#",
            "markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": False,
                         "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber":
                             len(cps), "controlPoints": cps, "name": name}]}
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
