"""Slicer point lists in and out: ``.mrk.json`` (Markups JSON), the markups CSV that
Slicer's *Export to CSV* writes, and the legacy ``.fcsv``.  The one reader and writer of
point files in the project (hand landmarks and vertebra points both use it).

Every position comes back in RAS mm, as ``[(label, ras or None)]`` in file order (``None``:
a point not placed yet).  The file says its coordinate system: ``.mrk.json`` per markup
(``coordinateSystem``, LPS by default, as Slicer writes it; ``coordinateUnits`` mm or um),
CSV by its columns (``r,a,s`` or ``r_mm,a_mm,s_mm`` are RAS; ``l,p,s`` or ``l_mm,p_mm,s_mm``
LPS), ``.fcsv`` by its ``# CoordinateSystem`` line (``LPS``/``1`` or ``RAS``/``0``; a file
without one is read as RAS, what Slicer wrote before it added the line).  LPS is turned
into RAS by :func:`calcinosis.core.geometry.lps_to_ras`, the project's only flip.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import InputError
from .geometry import lps_to_ras

Point = tuple[str, "np.ndarray | None"]

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                  "Schema/markups-schema-v1.0.3.json#")
_RAS_COLUMNS = (("r", "a", "s"), ("r_mm", "a_mm", "s_mm"))
_LPS_COLUMNS = (("l", "p", "s"), ("l_mm", "p_mm", "s_mm"))
_FCSV_COLUMNS = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatedNodeID"]


def read_point_list(path: str | Path, what: str = "point list") -> list[Point]:
    """``[(label, ras or None)]`` from a ``.mrk.json``, ``.fcsv`` or ``.csv`` (``.tsv``,
    ``.txt``) point list; ``what`` names the file in error messages."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file (a .mrk.json, .fcsv or .csv {what} was expected)") from None
    name = path.name.lower()
    if name.endswith(".json"):
        return _read_markups_json(text, path)
    if name.endswith(".fcsv"):
        return _read_fcsv(text, path)
    if name.endswith((".csv", ".tsv", ".txt")):
        return _read_csv(text, path)
    raise InputError(f"{path}: unknown {what} format (expected .mrk.json, .csv or .fcsv)")


def _position(values, path: Path, where: str, label) -> np.ndarray:
    try:
        p = np.array([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where} ({label!r}) has position {values!r}; three numbers expected") from None
    if p.shape != (3,) or not np.all(np.isfinite(p)) or np.any(np.abs(p) > MAX_COORDINATE_MM):
        raise InputError(f"{path}: {where} ({label!r}) has position {values!r}; three finite numbers (mm, within "
                         f"+-{MAX_COORDINATE_MM:g}) expected")
    return p


#: a point further than this (mm) from the scanner's origin is a typing or unit error
MAX_COORDINATE_MM = 1e5


def _read_markups_json(text: str, path: Path) -> list[Point]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list):
        raise InputError(f"{path}: not a Slicer markups file (no 'markups' list)")
    points: list[Point] = []
    for m_no, m in enumerate(markups, start=1):
        if not isinstance(m, dict):
            continue
        mtype = m.get("type", "Fiducial")
        if mtype != "Fiducial":
            raise InputError(f"{path}: markup {m_no} is a {mtype}; a point list (Fiducial) is expected")
        system = str(m.get("coordinateSystem", "LPS") or "LPS").upper()
        if system not in ("LPS", "RAS"):
            raise InputError(f"{path}: markup {m_no} has coordinateSystem {system!r} (LPS or RAS expected)")
        units = m.get("coordinateUnits", "mm")
        if isinstance(units, list):
            units = units[0] if units else "mm"
        scale = {"mm": 1.0, "um": 1e-3, "": 1.0, "None": 1.0}.get(str(units))
        if scale is None:
            raise InputError(f"{path}: markup {m_no} has coordinateUnits {units!r} (mm or um expected)")
        for cp_no, cp in enumerate(m.get("controlPoints", []) or [], start=1):
            label = str(cp.get("label", "") or "").strip()
            status = str(cp.get("positionStatus", "defined") or "defined").lower()
            pos = cp.get("position", "")
            if status != "defined" or pos in ("", None):
                points.append((label, None))
                continue
            p = _position(pos, path, f"control point {cp_no}", label) * scale
            points.append((label, lps_to_ras(p) if system == "LPS" else p))
    return points


def _read_csv(text: str, path: Path) -> list[Point]:
    first = text.splitlines()[0] if text.strip() else ""
    rows = list(csv.reader(io.StringIO(text), dialect="excel-tab" if "\t" in first else "excel"))
    if not rows:
        raise InputError(f"{path}: empty file (a header with label and r,a,s or l,p,s columns is needed)")
    header = [h.strip().lower() for h in rows[0]]
    if "label" not in header:
        raise InputError(f"{path}: no 'label' column (columns label,r,a,s or label,l,p,s expected)")
    ras_cols = next((c for c in _RAS_COLUMNS if all(x in header for x in c)), None)
    lps_cols = next((c for c in _LPS_COLUMNS if all(x in header for x in c)), None)
    if ras_cols is None and lps_cols is None:
        raise InputError(f"{path}: coordinate columns r,a,s (RAS) or l,p,s (LPS) in mm not found; "
                         "x,y,z would leave the coordinate system unknown")
    i_label = header.index("label")
    i_xyz = [header.index(c) for c in (ras_cols or lps_cols)]
    i_defined = header.index("defined") if "defined" in header else None
    points: list[Point] = []
    for lineno, rec in enumerate(rows[1:], start=2):
        if not rec or all(v.strip() == "" for v in rec):
            continue
        rec = rec + [""] * (len(header) - len(rec))
        label = rec[i_label].strip()
        vals = [rec[i].strip() for i in i_xyz]
        defined = i_defined is None or rec[i_defined].strip().lower() not in ("0", "false", "no", "")
        if not defined or all(v == "" for v in vals):
            points.append((label, None))
            continue
        p = _position(vals, path, f"row {lineno}", label)
        points.append((label, p if ras_cols else lps_to_ras(p)))
    return points


def _read_fcsv(text: str, path: Path) -> list[Point]:
    lps = False
    columns = list(_FCSV_COLUMNS)
    data = []
    for line in text.splitlines():
        if line.startswith("#"):
            body = line[1:].strip()
            if body.lower().startswith("coordinatesystem"):
                lps = body.split("=", 1)[-1].strip().upper() in ("LPS", "1")
            elif body.lower().startswith("columns"):
                columns = [c.strip() for c in body.split("=", 1)[-1].split(",")]
            continue
        if line.strip():
            data.append(line)
    points: list[Point] = []
    for n, rec in enumerate(csv.reader(data), start=1):
        row = dict(zip(columns, rec))
        if not all(k in row for k in "xyz"):
            raise InputError(f"{path}, point {n}: x, y, z are missing")
        p = _position([row["x"], row["y"], row["z"]], path, f"point {n}", row.get("label", "").strip())
        points.append((row.get("label", "").strip(), lps_to_ras(p) if lps else p))
    return points


# ---------------------------------------------------------------------- writing
def markups_json_text(points: Sequence[Point], name: str = "Points", coordinate_system: str = "LPS",
                      descriptions: dict | None = None) -> str:
    """A Slicer point list (``.mrk.json``) of RAS positions, written in ``coordinate_system``
    (LPS, as Slicer writes).  ``None`` positions become unplaced points (``positionStatus:
    undefined``), which Slicer offers to place one by one.  ``descriptions``: label -> the
    point's description (Slicer shows it in the Markups module)."""
    cs = coordinate_system.upper()
    if cs not in ("LPS", "RAS"):
        raise ValueError("coordinate_system must be LPS or RAS")
    cps = []
    for n, (label, pos) in enumerate(points, start=1):
        cp = {"id": str(n), "label": label, "description": (descriptions or {}).get(label, ""),
              "associatedNodeID": ""}
        if pos is None:
            cp["position"] = ""
            status = "undefined"
        else:
            p = np.asarray(pos, dtype=float)
            p = lps_to_ras(p) if cs == "LPS" else p    # the flip is its own inverse
            cp["position"] = [round(float(v), 6) for v in p]
            status = "defined"
        cp["orientation"] = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0] if cs == "LPS" else \
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        cp.update({"selected": True, "locked": False, "visibility": True, "positionStatus": status})
        cps.append(cp)
    doc = {
        "@schema": MARKUPS_SCHEMA,
        "markups": [{
            "type": "Fiducial", "coordinateSystem": cs, "coordinateUnits": "mm", "locked": False,
            "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": len(cps),
            "controlPoints": cps, "measurements": [],
            "display": {"visibility": True, "opacity": 1.0, "color": [0.4, 1.0, 1.0],
                        "selectedColor": [1.0, 0.5, 0.5], "propertiesLabelVisibility": False,
                        "pointLabelsVisibility": True, "textScale": 2.0, "glyphType": "Sphere3D",
                        "glyphScale": 1.5, "glyphSize": 3.0, "useGlyphScale": True},
            "name": name,
        }],
    }
    return json.dumps(doc, indent=4) + "\n"


def markups_csv_text(points: Sequence[Point]) -> str:
    """Slicer's markups CSV layout (``label,r,a,s,defined,selected,visible,locked,description``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["label", "r", "a", "s", "defined", "selected", "visible", "locked", "description"])
    for label, pos in points:
        if pos is None:
            w.writerow([label, "", "", "", 0, 1, 1, 0, ""])
        else:
            w.writerow([label] + [format(float(v), ".6f") for v in pos] + [1, 1, 1, 0, ""])
    return buf.getvalue()
