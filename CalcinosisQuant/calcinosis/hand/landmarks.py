"""Hand landmarks: read and write Slicer point lists (``.mrk.json``), Slicer markups CSV
and legacy ``.fcsv``, and check them against an image.

A :class:`HandLandmarks` maps ``(side, digit, point)`` to a RAS position in mm.  Points
the user has not placed yet (Slicer's *unplaced* control points, empty coordinates in a
CSV, ``defined`` = 0) are simply absent: a partial set works for the digits it covers.

The files are read and written by :mod:`calcinosis.core.pointlists` (coordinate systems
as each file says; everything inside the project is RAS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from calcinosis.core import pointlists
from calcinosis.core.errors import InputError
from calcinosis.core.geometry import Geometry

from .anatomy import DIGITS, LandmarkKey, digit_points, expected_landmark_labels, format_label, parse_landmark_label

UNKNOWN_LABEL_POLICIES = ("error", "warn")


@dataclass
class HandLandmarks:
    """Placed hand landmarks, RAS mm, keyed by :class:`~.anatomy.LandmarkKey`."""

    points: dict[LandmarkKey, np.ndarray] = field(default_factory=dict)
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    input_id: str | None = None
    #: the points found by the hand model (:mod:`~calcinosis.hand.handmodel`), not placed
    automatic: set = field(default_factory=set)

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
        return sorted(((k.label, v) for k, v in self.points.items()),
                      key=lambda t: (order.get(t[0], len(order)), t[0]))   # optional finger CMCs last

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
            "automatic": sorted(k.label for k in self.automatic),
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
    _check_spread(out, source)
    return out


#: two hand landmarks (joints, tips) are never closer than this (mm); all of them closer is
#: a list in the wrong units (um) or every point placed at one place
MIN_LANDMARK_SPREAD_MM = 5.0


def _check_spread(landmarks: HandLandmarks, source: str) -> None:
    if len(landmarks.points) < 2:
        return
    pts = np.array(list(landmarks.points.values()), dtype=float)
    spread = float(np.max(np.linalg.norm(pts - pts.mean(axis=0), axis=1))) * 2.0
    if spread < MIN_LANDMARK_SPREAD_MM:
        raise InputError(f"{source or 'landmarks'}: the {len(pts)} placed landmarks lie within {spread:.2g} mm of one "
                         "another (a hand spans about 100 mm): wrong coordinate units, or every point placed at one "
                         "place?")


# ---------------------------------------------------------------------- reading
def read_landmarks(path: str | Path, unknown: str = "error") -> HandLandmarks:
    """Read ``.mrk.json``, Slicer markups ``.csv`` or ``.fcsv``."""
    path = Path(path)
    points = pointlists.read_point_list(path, what="landmark")
    lm = landmarks_from_points(points, source=path.name, unknown=unknown)
    from calcinosis.core.dicom_meta import file_content_id
    lm.input_id = file_content_id([path])
    if not lm.points:
        lm.warnings.append(f"{path.name}: no placed hand landmark; digits and zones cannot be assigned")
    return lm


def with_automatic(placed: HandLandmarks | None, automatic: Iterable[tuple[str, np.ndarray]]) -> HandLandmarks:
    """The placed landmarks completed by automatic ones: a placed point always wins over the
    automatic point of the same label; automatic points of the other side than the placed
    ones are not added (the hand model sees one hand)."""
    placed = placed if placed is not None else HandLandmarks()
    out = HandLandmarks(dict(placed.points), placed.source, list(placed.warnings), placed.input_id,
                        set(placed.automatic))
    placed_sides = set(placed.sides)
    for label, ras in automatic:
        key = parse_landmark_label(label)
        if key in out.points or (placed_sides and key.side not in placed_sides):
            continue
        out.points[key] = np.asarray(ras, float)
        out.automatic.add(key)
    return out


# ---------------------------------------------------------------------- writing
def markups_json_text(points: Sequence[tuple[str, np.ndarray | None]], name: str = "HandLandmarks",
                      coordinate_system: str = "LPS", descriptions: dict | None = None) -> str:
    """A Slicer point list (``.mrk.json``) of hand landmarks; ``None`` positions become
    unplaced points, which Slicer offers to place one by one."""
    return pointlists.markups_json_text(points, name=name, coordinate_system=coordinate_system,
                                        descriptions=descriptions)


#: the description of an automatic landmark in the written point list
AUTOMATIC_DESCRIPTION = "automatic (hand model): review, move if wrong"


def landmarks_json_text(landmarks: HandLandmarks) -> str:
    """The landmarks a result used, as a Slicer point list: the automatic ones described as
    such, so the reader knows which to review (moving one makes it placed)."""
    desc = {k.label: (AUTOMATIC_DESCRIPTION if k in landmarks.automatic else "placed") for k in landmarks.points}
    return markups_json_text(landmarks.as_points(), descriptions=desc)


def landmarks_csv_text(points: Sequence[tuple[str, np.ndarray | None]]) -> str:
    """Slicer's markups CSV layout (``label,r,a,s,defined,selected,visible,locked,description``)."""
    return pointlists.markups_csv_text(points)


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


__all__ = ["HandLandmarks", "landmarks_from_points", "with_automatic", "read_landmarks", "markups_json_text", "landmarks_csv_text",
           "template_points", "check_against_image", "landmark_label_list", "format_label"]
