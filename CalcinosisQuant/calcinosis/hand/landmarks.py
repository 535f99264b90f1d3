"""Hand landmarks: read and write Slicer point lists (``.mrk.json``), Slicer markups CSV
and legacy ``.fcsv``, and check them against an image.

A :class:`HandLandmarks` maps ``(side, digit, point)`` to a RAS position in mm.  Points
the user has not placed yet (Slicer's *unplaced* control points, empty coordinates in a
CSV, ``defined`` = 0) are simply absent: a partial set works for the digits it covers.

Coordinates: ``.mrk.json`` says its coordinate system (``LPS``, the default Slicer
writes, or ``RAS``); CSV files have columns ``r, a, s`` (RAS) or ``l, p, s`` (LPS), as
Slicer's *Export to CSV* writes them; ``.fcsv`` says ``# CoordinateSystem = ...``.
Everything inside the project is RAS.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry

from .anatomy import DIGITS, LandmarkKey, digit_points, expected_landmark_labels, format_label, parse_landmark_label

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                  "Schema/markups-schema-v1.0.3.json#")
UNKNOWN_LABEL_POLICIES = ("error", "warn")


@dataclass
class HandLandmarks:
    """Placed hand landmarks, RAS mm, keyed by :class:`~.anatomy.LandmarkKey`."""

    points: dict[LandmarkKey, np.ndarray] = field(default_factory=dict)
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    input_id: str | None = None

    def __len__(self) -> int:
        return len(self.points)

    @property
    def sides(self) -> list[str]:
        return sorted({k.side for k in self.points}, key=lambda s: "RL".index(s))

    def get(self, side: str, digit: str, point: str) -> np.ndarray | None:
        return self.points.get(LandmarkKey(side, digit, point))

    def digit_points(self, side: str, digit: str) -> dict[str, np.ndarray]:
        """The placed points of one digit, proximal to distal."""
        out = {}
        for p in digit_points(digit):
            v = self.get(side, digit, p)
            if v is not None:
                out[p] = v
        return out

    def covered_digits(self, side: str) -> list[str]:
        """Digits with at least two placed points (enough for a ray)."""
        return [d for d in DIGITS if len(self.digit_points(side, d)) >= 2]

    def missing_labels(self, sides: Sequence[str] | None = None) -> list[str]:
        sides = sides if sides is not None else self.sides
        placed = {k.label for k in self.points}
        return [lab for lab in expected_landmark_labels(tuple(sides)) if lab not in placed]

    def as_points(self) -> list[tuple[str, np.ndarray]]:
        """``[(label, ras)]`` in the canonical order."""
        order = {lab: n for n, lab in enumerate(expected_landmark_labels("both"))}
        return sorted(((k.label, v) for k, v in self.points.items()), key=lambda t: order[t[0]])

    def palm_normal(self, side: str) -> np.ndarray | None:
        """Unit normal (RAS) of the plane fitted to one hand's placed points (least
        squares), or None when they do not span a plane: fewer than two digits' worth of
        points, or all nearly on one line (the smaller in-plane spread under a fifth of
        the larger)."""
        pts = np.array([v for k, v in self.points.items() if k.side == side], dtype=float)
        if len(pts) < 4 or len({k.digit for k in self.points if k.side == side}) < 2:
            return None
        _, sv, vt = np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)
        if sv[1] < 0.2 * sv[0]:
            return None
        return vt[2] / np.linalg.norm(vt[2])

    def describe(self) -> dict:
        """What provenance records: which points, how many per digit (no positions needed)."""
        return {
            "input_id": self.input_id,
            "n_points": len(self.points),
            "sides": self.sides,
            "digits_covered": {s: self.covered_digits(s) for s in self.sides},
            "labels": [lab for lab, _ in self.as_points()],
        }


# ---------------------------------------------------------------------- building
def landmarks_from_points(points: Iterable[tuple[str, object]], source: str = "",
                          unknown: str = "error") -> HandLandmarks:
    """From ``[(label, ras or None)]`` (e.g. the bridge's ``points_from_markups``).

    ``None`` positions are unplaced points and are skipped.  Unknown labels raise an
    :class:`InputError` naming the label (``unknown='warn'`` skips them with a warning
    instead).  A label given twice is an error."""
    if unknown not in UNKNOWN_LABEL_POLICIES:
        raise ValueError(f"unknown must be one of {UNKNOWN_LABEL_POLICIES}")
    out = HandLandmarks(source=source)
    where_of: dict[LandmarkKey, str] = {}
    for n, (label, pos) in enumerate(points, start=1):
        where = f"{source}, point {n}" if source else f"point {n}"
        if label is None or str(label).strip() == "":
            if pos is None:
                continue
            msg = f"{where}: a placed point has no label; name it like R_index_PIP"
            if unknown == "error":
                raise InputError(msg)
            out.warnings.append(msg + " (ignored)")
            continue
        try:
            key = parse_landmark_label(str(label), where)
        except InputError as e:
            if unknown == "error":
                raise
            out.warnings.append(f"{e} (ignored)")
            continue
        if pos is None:
            continue
        p = np.asarray(pos, dtype=float).reshape(-1)
        if p.size != 3 or not np.all(np.isfinite(p)):
            raise InputError(f"{where}: landmark {label!r} has no valid 3D position ({pos!r})")
        if key in out.points:
            raise InputError(f"{where}: landmark {key.label} is placed twice (also {where_of[key]}); "
                             "delete one of them")
        out.points[key] = p
        where_of[key] = where
    return out


# ---------------------------------------------------------------------- reading
def read_landmarks(path: str | Path, unknown: str = "error") -> HandLandmarks:
    """Read ``.mrk.json``, Slicer markups ``.csv`` or ``.fcsv``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found")
    name = path.name.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file (a .mrk.json or .csv point list was expected)") from None
    if name.endswith(".json"):
        points = _points_from_markups_json(text, path)
    elif name.endswith(".fcsv"):
        points = _points_from_fcsv(text, path)
    elif name.endswith(".csv") or name.endswith(".tsv") or name.endswith(".txt"):
        points = _points_from_csv(text, path)
    else:
        raise InputError(f"{path}: unknown landmark format (expected .mrk.json, .csv or .fcsv)")
    lm = landmarks_from_points(points, source=path.name, unknown=unknown)
    from calcinosis.core.dicom_meta import file_content_id
    lm.input_id = file_content_id([path])
    if not lm.points:
        lm.warnings.append(f"{path.name}: no placed hand landmark; digits and zones cannot be assigned")
    return lm


def _points_from_markups_json(text: str, path: Path) -> list[tuple[str, np.ndarray | None]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list):
        raise InputError(f"{path}: not a Slicer markups file (no 'markups' list)")
    points: list[tuple[str, np.ndarray | None]] = []
    for m_no, m in enumerate(markups, start=1):
        if not isinstance(m, dict):
            continue
        mtype = m.get("type", "Fiducial")
        if mtype != "Fiducial":
            raise InputError(f"{path}: markup {m_no} is a {mtype}; hand landmarks are a point list (Fiducial)")
        system = str(m.get("coordinateSystem", "LPS") or "LPS").upper()
        if system not in ("LPS", "RAS"):
            raise InputError(f"{path}: markup {m_no} has coordinateSystem {system!r} (LPS or RAS expected)")
        units = m.get("coordinateUnits", "mm")
        if isinstance(units, list):
            units = units[0] if units else "mm"
        scale = {"mm": 1.0, "um": 1e-3}.get(str(units), None)
        if scale is None:
            raise InputError(f"{path}: markup {m_no} has coordinateUnits {units!r} (mm expected)")
        for cp_no, cp in enumerate(m.get("controlPoints", []) or [], start=1):
            label = cp.get("label", "")
            status = str(cp.get("positionStatus", "defined") or "defined").lower()
            pos = cp.get("position", "")
            if status != "defined" or pos in ("", None):
                points.append((label, None))
                continue
            try:
                p = np.array([float(v) for v in pos], dtype=float)
            except (TypeError, ValueError):
                raise InputError(f"{path}: control point {cp_no} ({label!r}) has position {pos!r}; "
                                 "three numbers expected") from None
            if p.size != 3:
                raise InputError(f"{path}: control point {cp_no} ({label!r}) has {p.size} coordinates, 3 expected")
            p = p * scale
            if system == "LPS":
                p[:2] = -p[:2]
            points.append((label, p))
    return points


def _truthy(text: str) -> bool:
    return str(text).strip().lower() not in ("0", "false", "no", "")


def _points_from_csv(text: str, path: Path) -> list[tuple[str, np.ndarray | None]]:
    first = text.splitlines()[0] if text.strip() else ""
    dialect = "excel-tab" if "\t" in first else "excel"
    rows = list(csv.reader(io.StringIO(text), dialect=dialect))
    if not rows:
        raise InputError(f"{path}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    if "label" not in header:
        raise InputError(f"{path}: no 'label' column (columns label,r,a,s or label,l,p,s expected)")
    if all(c in header for c in ("r", "a", "s")):
        cols, lps = ("r", "a", "s"), False
    elif all(c in header for c in ("l", "p", "s")):
        cols, lps = ("l", "p", "s"), True
    else:
        raise InputError(f"{path}: coordinate columns r,a,s (RAS) or l,p,s (LPS) not found; "
                         "x,y,z would leave the coordinate system unknown")
    i_lab = header.index("label")
    i_xyz = [header.index(c) for c in cols]
    i_def = header.index("defined") if "defined" in header else None
    points: list[tuple[str, np.ndarray | None]] = []
    for lineno, rec in enumerate(rows[1:], start=2):
        if not rec or all(v.strip() == "" for v in rec):
            continue
        if len(rec) < len(header):
            rec = rec + [""] * (len(header) - len(rec))
        label = rec[i_lab].strip()
        vals = [rec[i].strip() for i in i_xyz]
        if (i_def is not None and not _truthy(rec[i_def])) or all(v == "" for v in vals):
            points.append((label, None))
            continue
        try:
            p = np.array([float(v) for v in vals])
        except ValueError:
            raise InputError(f"{path}, row {lineno}: coordinates {vals} of {label!r} are not numbers") from None
        if lps:
            p[:2] = -p[:2]
        points.append((label, p))
    return points


def _points_from_fcsv(text: str, path: Path) -> list[tuple[str, np.ndarray | None]]:
    lps = False
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatedNodeID"]
    data = []
    for line in text.splitlines():
        if line.startswith("#"):
            body = line[1:].strip()
            if body.lower().startswith("coordinatesystem"):
                value = body.split("=", 1)[-1].strip().upper()
                lps = value in ("LPS", "1")
            elif body.lower().startswith("columns"):
                columns = [c.strip() for c in body.split("=", 1)[-1].split(",")]
            continue
        if line.strip():
            data.append(line)
    points: list[tuple[str, np.ndarray | None]] = []
    for lineno, rec in enumerate(csv.reader(data), start=1):
        row = dict(zip(columns, rec))
        try:
            p = np.array([float(row["x"]), float(row["y"]), float(row["z"])])
        except (KeyError, ValueError):
            raise InputError(f"{path}, point {lineno}: x, y, z are not numbers") from None
        if lps:
            p[:2] = -p[:2]
        points.append((row.get("label", ""), p))
    return points


# ---------------------------------------------------------------------- writing
def markups_json_text(points: Sequence[tuple[str, np.ndarray | None]], name: str = "HandLandmarks",
                      coordinate_system: str = "LPS") -> str:
    """A Slicer point list (``.mrk.json``).  ``None`` positions become unplaced points
    (``positionStatus: undefined``), which Slicer offers to place one by one."""
    cs = coordinate_system.upper()
    if cs not in ("LPS", "RAS"):
        raise ValueError("coordinate_system must be LPS or RAS")
    cps = []
    for n, (label, pos) in enumerate(points, start=1):
        cp = {"id": str(n), "label": label, "description": "", "associatedNodeID": ""}
        if pos is None:
            cp["position"] = ""
            status = "undefined"
        else:
            p = np.asarray(pos, dtype=float).copy()
            if cs == "LPS":
                p[:2] = -p[:2]
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


def landmarks_csv_text(points: Sequence[tuple[str, np.ndarray | None]]) -> str:
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


def template_points(sides: str | Sequence[str] = "both") -> list[tuple[str, None]]:
    """Every expected label, unplaced (the blank point list the user fills in Slicer)."""
    return [(lab, None) for lab in expected_landmark_labels(sides if isinstance(sides, str) else tuple(sides))]


# ---------------------------------------------------------------------- checking against an image
def check_against_image(landmarks: HandLandmarks, geometry: Geometry, margin_mm: float = 20.0) -> tuple[HandLandmarks, list[str]]:
    """Drop landmarks lying more than ``margin_mm`` outside the image (for a 2D image:
    outside its rectangle, or that far off its plane), with a warning naming them.

    Such landmarks belong to another image (or another hand position); using them
    would assign lesions to digits that are not where the landmarks say."""
    if not landmarks.points:
        return landmarks, []
    keys = list(landmarks.points)
    ras = np.array([landmarks.points[k] for k in keys])
    inside = geometry.contains_ras(ras, margin_mm=margin_mm)
    if geometry.is_2d:
        normal = geometry.direction[:, 2]
        off = np.abs((ras - np.asarray(geometry.origin_ras)) @ normal)
        inside &= off <= margin_mm
    if inside.all():
        return landmarks, []
    dropped = [k.label for k, ok in zip(keys, inside) if not ok]
    kept = HandLandmarks({k: landmarks.points[k] for k, ok in zip(keys, inside) if ok}, landmarks.source,
                         list(landmarks.warnings), landmarks.input_id)
    if not kept.points:
        msg = (f"landmarks {landmarks.source or ''}: all {len(keys)} points lie more than {margin_mm:g} mm outside the "
               "image (placed on another image?); lesions are left without digit, zone and kind")
    else:
        shown = ", ".join(dropped[:6]) + (f" and {len(dropped) - 6} more" if len(dropped) > 6 else "")
        msg = (f"landmarks {landmarks.source or ''}: {len(dropped)} point(s) lie more than {margin_mm:g} mm outside "
               f"the image and are ignored ({shown})")
    return kept, [msg.replace("landmarks : ", "landmarks: ")]


def landmark_label_list(sides: str = "both") -> list[str]:
    """Alias of :func:`~.anatomy.expected_landmark_labels` for the panel."""
    return expected_landmark_labels(sides)


__all__ = ["HandLandmarks", "landmarks_from_points", "read_landmarks", "markups_json_text", "landmarks_csv_text",
           "template_points", "check_against_image", "landmark_label_list", "format_label", "MARKUPS_SCHEMA"]
