"""Assigning lesions to side, digit, zone and kind from hand landmarks.

Rules (every distance is a parameter in :class:`AssignParams`, recorded in provenance):

* **Rays.**  Each digit with at least two placed points is a *ray*: the polyline
  through its points, proximal to distal (thumb ``CMC-MCP-IP-tip``, fingers
  ``MCP-PIP-DIP-tip``).  A missing point between or beyond placed ones is estimated
  from typical phalanx proportions (a warning names it).  Fingers have no CMC
  landmark: their ray starts at the metacarpal base estimated as
  ``MCP - ratio x (PIP - MCP)`` (typical metacarpal / proximal phalanx length ratios,
  :data:`METACARPAL_RATIO`).
* **Side**: the side of the nearest landmark set within ``side_reach_mm``; else the DICOM
  laterality; else ``unknown``.
* **Digit**: the nearest ray of that side, when the lesion centroid lies within
  ``max_ray_distance_mm`` of it and not proximal to its base by more than
  ``joint_radius_mm``; else ``unassigned``.
* **Zone** (by the position along the ray of the centroid's closest point): within
  ``joint_radius_mm`` of a joint -> that joint (``MCP``, ``PIP``, ``DIP``; the thumb's
  IP joint -> ``thumb_ip_zone``, default ``DIP``, its homologue; a CMC joint ->
  ``wrist``); beyond the distal joint -> ``distal_phalanx``; elsewhere on the ray ->
  ``other`` (shafts).  Lesions proximal to the metacarpal bases, up to
  ``wrist_reach_mm`` and within ``wrist_width_mm`` of a ray's line, are ``wrist`` with
  digit ``unassigned`` (the carpus belongs to no digit); anything else off the rays is
  ``other``.
* **Kind**: ``periarticular`` when the lesion's nearest voxel lies within
  ``periarticular_mm`` of a joint centre (the placed CMC of the thumb, MCP, PIP, DIP
  and IP, and interior joints estimated between placed points), else ``subcutaneous``.
  Finger CMC joints are estimated, not placed, so they do not make a lesion
  periarticular.
* On a **radiograph** every distance is measured in the image plane (landmarks are
  projected onto it): depth is not known, so a deposit lying over a joint in the PA
  view counts as periarticular even if it sits in the skin above it.
* **Without landmarks** for a lesion's side, digit is ``unassigned`` and zone and kind
  are left empty (not known), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.lesions import LesionSet
from calcinosis.core.tables import Column, Table

from .anatomy import DIGITS, LandmarkKey, digit_points
from .landmarks import HandLandmarks, check_against_image
from .params import METACARPAL_RATIO, AssignParams  # noqa: F401 (re-exported)

#: typical joint-to-joint proportions along a digit (first point = 0), for missing points
PROPORTIONS = {"thumb": (0.0, 44.0, 75.0, 97.0), "index": (0.0, 40.0, 63.0, 80.0),
               "middle": (0.0, 44.0, 71.0, 89.0), "ring": (0.0, 41.0, 67.0, 85.0), "little": (0.0, 33.0, 52.0, 68.0)}


@dataclass
class Ray:
    side: str
    digit: str
    names: list            # point names along the polyline, proximal first ('CMC' first)
    points: np.ndarray     # (n, 3) RAS (projected onto the image plane for 2D images)
    placed: list           # bool per point: placed by the user (else estimated)

    def arc(self) -> np.ndarray:
        seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        return np.r_[0.0, np.cumsum(seg)]

    def joints(self) -> list[tuple[str, float, bool]]:
        """(name, arc position, placed) of every joint on the ray (all points but the tip)."""
        a = self.arc()
        return [(n, float(a[k]), p) for k, (n, p) in enumerate(zip(self.names, self.placed)) if n != "tip"]

    def closest(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For points p (m, 3): distance to the polyline, arc position of the closest
        point, how far proximal to the ray's base (0 if not), distance to the first
        segment's line."""
        P = self.points
        a = self.arc()
        best_d = np.full(len(p), np.inf)
        best_s = np.zeros(len(p))
        for k in range(len(P) - 1):
            ab = P[k + 1] - P[k]
            L2 = float(ab @ ab)
            if L2 == 0:
                continue
            t = np.clip(((p - P[k]) @ ab) / L2, 0.0, 1.0)
            d = np.linalg.norm(p - (P[k] + t[:, None] * ab), axis=1)
            better = d < best_d
            best_d[better] = d[better]
            best_s[better] = a[k] + t[better] * np.sqrt(L2)
        u0 = P[1] - P[0]
        L0 = np.linalg.norm(u0)
        u0 = u0 / L0 if L0 > 0 else u0
        along = (p - P[0]) @ u0
        overshoot = np.maximum(-along, 0.0)
        perp = np.linalg.norm((p - P[0]) - along[:, None] * u0, axis=1)
        return best_d, best_s, overshoot, perp


def _project(points: np.ndarray, geometry: Geometry | None) -> np.ndarray:
    if geometry is None or not geometry.is_2d:
        return points
    n = geometry.direction[:, 2]
    o = np.asarray(geometry.origin_ras)
    return points - ((points - o) @ n)[:, None] * n


def build_rays(landmarks: HandLandmarks, geometry: Geometry | None = None) -> tuple[list[Ray], list[str]]:
    """The rays of every covered digit (see module docstring), with warnings for the
    points that had to be estimated."""
    rays, warnings = [], []
    for side in landmarks.sides:
        for d in DIGITS:
            placed = landmarks.digit_points(side, d)
            if len(placed) < 2:
                if placed:
                    warnings.append(f"{side} {d}: only {', '.join(placed)} placed; a digit needs two points "
                                    "to be assigned, its lesions stay unassigned")
                continue
            names = list(digit_points(d))
            prop = np.asarray(PROPORTIONS[d])
            known = [k for k, n in enumerate(names) if n in placed]
            pts = np.zeros((len(names), 3))
            for k in known:
                pts[k] = placed[names[k]]
            estimated = []
            for k, n in enumerate(names):
                if n in placed:
                    continue
                lo = max([j for j in known if j < k], default=None)
                hi = min([j for j in known if j > k], default=None)
                if lo is not None and hi is not None:
                    f = (prop[k] - prop[lo]) / (prop[hi] - prop[lo])
                    pts[k] = pts[lo] + f * (pts[hi] - pts[lo])
                else:
                    a, b = (known[-2], known[-1]) if hi is None else (known[0], known[1])
                    f = (prop[k] - prop[a]) / (prop[b] - prop[a])
                    pts[k] = pts[a] + f * (pts[b] - pts[a])
                estimated.append(n)
            if estimated:
                warnings.append(f"{side} {d}: {', '.join(estimated)} not placed; estimated from typical proportions")
            placed_flags = [n in placed for n in names]
            if d != "thumb":
                cmc = landmarks.get(side, d, "CMC")       # placed (optional), else estimated
                base = cmc if cmc is not None else pts[0] - METACARPAL_RATIO[d] * (pts[1] - pts[0])
                names = ["CMC"] + names
                pts = np.vstack([base, pts])
                placed_flags = [cmc is not None] + placed_flags
            rays.append(Ray(side, d, names, _project(pts, geometry), placed_flags))
    return rays, warnings


ASSIGN_COLUMNS = [
    Column("side", "string", "", "Hand: L, R or unknown (from landmarks, else DICOM laterality)"),
    Column("digit", "string", "", "thumb, index, middle, ring, little, or unassigned (far from every ray, "
                                  "at the carpus, or no landmarks)"),
    Column("zone", "string", "", "distal_phalanx, DIP, PIP, MCP, wrist or other; empty without landmarks"),
    Column("kind", "string", "", "periarticular (nearest voxel within the periarticular distance of a joint "
                                 "centre) or subcutaneous; empty without landmarks"),
]

DETAIL_COLUMNS = [
    Column("lesion_id", "int", "", "Lesion number (as in lesions.csv)"),
    Column("side", "string", "", "Assigned side"),
    Column("side_source", "string", "", "Where the side came from: landmarks, dicom_laterality or none"),
    Column("digit", "string", "", "Assigned digit"),
    Column("zone", "string", "", "Assigned zone"),
    Column("kind", "string", "", "Assigned kind"),
    Column("nearest_ray", "string", "", "Nearest digit ray of that side (even when too far to assign)"),
    Column("distance_to_ray_mm", "double", "mm", "Distance from the lesion centroid to the nearest ray"),
    Column("position_along_ray_mm", "double", "mm",
           "Arc length along that ray from its base (thumb CMC or estimated finger metacarpal base) "
           "to the centroid's closest point"),
    Column("proximal_to_base_mm", "double", "mm", "How far the centroid lies proximal to that ray's base (0 if not)"),
    Column("nearest_joint", "string", "", "Nearest joint centre (label), by the lesion's nearest voxel"),
    Column("distance_to_joint_mm", "double", "mm", "Distance from the lesion's nearest voxel to that joint centre"),
    Column("touches_bone", "int", "", "CT detection: 1 if the lesion shares a face with the voxels taken for bone "
                                      "(kept apart from it; check its outline), 0 if not; empty otherwise"),
    Column("detection_confidence", "double", "", "Radiograph detection: how sure the detector is that the lesion is "
                                                 "a deposit, 0-1 (docs/methods/hand-detection.md, step 6; 0.5 is the "
                                                 "default operating point); empty for lesions not found by it"),
]


@dataclass
class Assignment:
    side: list
    digit: list
    zone: list
    kind: list
    details: Table
    warnings: list = field(default_factory=list)
    rays: list = field(default_factory=list)
    digits_covered: dict = field(default_factory=dict)   # side -> digits with a ray
    sides_present: list = field(default_factory=list)    # sides the image is known to show

    def columns_for(self, n: int) -> dict:
        return {"side": self.side[:n], "digit": self.digit[:n], "zone": self.zone[:n], "kind": self.kind[:n]}


def lesion_points(lesions: LesionSet, max_points_per_lesion: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """RAS of lesion voxels and their lesion ids (large lesions thinned to their
    boundary voxels: the nearest point of a lesion to anything outside it is on its boundary)."""
    idx, lab = lesions.voxel_index, lesions.voxel_label
    if idx.size == 0:
        return np.zeros((0, 3)), np.zeros(0, np.int64)
    counts = np.bincount(lab, minlength=lesions.n + 1)
    if counts.max() > max_points_per_lesion:
        shape = lesions.geometry.shape
        kji = np.stack(np.unravel_index(idx, shape), axis=1)
        flat = lesions.labels.reshape(-1)
        boundary = np.zeros(idx.size, bool)
        for axis in range(3):
            if shape[axis] == 1:
                continue
            for step in (-1, 1):
                nb = kji.copy()
                nb[:, axis] += step
                ok = (nb[:, axis] >= 0) & (nb[:, axis] < shape[axis])
                nidx = np.ravel_multi_index(tuple(np.where(ok[:, None], nb, 0).T), shape)
                boundary |= ~ok | (flat[nidx] != lab)
        big = counts[lab] > max_points_per_lesion
        keep = ~big | boundary
        idx, lab = idx[keep], lab[keep]
    kji = np.stack(np.unravel_index(idx, lesions.geometry.shape), axis=1)
    return lesions.geometry.kji_to_ras(kji), lab


def assign_lesions(lesions: LesionSet, centroids: np.ndarray, landmarks: HandLandmarks | None,
                   params: AssignParams = AssignParams(), laterality: str | None = None) -> Assignment:
    """Side, digit, zone and kind of every lesion (index id-1).  ``centroids`` (n, 3) RAS."""
    params.validate()
    geom = lesions.geometry
    n = lesions.n
    warnings: list[str] = []
    lat = laterality if laterality in ("L", "R") else None
    lm = landmarks if landmarks is not None else HandLandmarks()
    if lm.points:
        lm, w = check_against_image(lm, geom, params.landmark_margin_mm)
        warnings += w
    rays, w = build_rays(lm, geom) if lm.points else ([], [])
    warnings += w
    if lat and lm.points and set(lm.sides) == {("L" if lat == "R" else "R")}:
        warnings.append(f"landmarks are labelled {lm.sides[0]} but the image's DICOM laterality says {lat}; "
                        "the landmark labels are used")
    details = Table(DETAIL_COLUMNS, name="lesion_assignment",
                    description="How each lesion was assigned (distances in mm, RAS)")
    side = ["unknown"] * n
    digit = ["unassigned"] * n
    zone: list = [None] * n
    kind: list = [None] * n
    if n == 0:
        return Assignment([], [], [], [], details, warnings, rays, _covered(rays), _sides(lm, lat))
    cen = _project(np.asarray(centroids, float).reshape(n, 3), geom)
    pts, plab = lesion_points(lesions)
    pts = _project(pts, geom)
    # nearest-voxel distance of each lesion to every joint centre (placed, or estimated interior joints)
    joint_list = []
    for r in rays:
        for (name, _, placed), p in zip(r.joints(), r.points):
            if name == "CMC" and r.digit != "thumb" and not placed:
                continue  # estimated finger base: not a joint a user placed
            joint_list.append((r.side, f"{r.side}_{r.digit}_{name}", p))
    order = np.argsort(plab, kind="stable")
    plab_s, pts_s = plab[order], pts[order]
    starts = np.flatnonzero(np.r_[True, plab_s[1:] != plab_s[:-1]]) if plab_s.size else np.zeros(0, int)
    ids = plab_s[starts] if plab_s.size else np.zeros(0, int)
    jdist = np.full((n, len(joint_list)), np.inf)
    for jn, (_, _, p) in enumerate(joint_list):
        d = np.linalg.norm(pts_s - p, axis=1)
        jdist[ids - 1, jn] = np.minimum.reduceat(d, starts) if d.size else np.inf
    # per-ray closest-point data for centroids
    ray_data = [r.closest(cen) for r in rays]
    for i in range(n):
        side_src = "none"
        best_side, best_d = None, np.inf
        for r, (d, s, o, perp) in zip(rays, ray_data):
            dd = max(d[i], 0.0)
            if dd < best_d:
                best_side, best_d = r.side, dd
        if best_side is not None and best_d <= params.side_reach_mm:
            side[i], side_src = best_side, "landmarks"
        elif lat:
            side[i], side_src = lat, "dicom_laterality"
        row = {"lesion_id": i + 1, "side_source": side_src, "nearest_ray": None, "distance_to_ray_mm": None,
               "position_along_ray_mm": None, "proximal_to_base_mm": None, "nearest_joint": None,
               "distance_to_joint_mm": None}
        my_rays = [(r, rd) for r, rd in zip(rays, ray_data) if r.side == side[i]]
        if my_rays:
            r, (d, s, o, perp) = min(my_rays, key=lambda t: t[1][0][i])
            row.update({"nearest_ray": r.digit, "distance_to_ray_mm": float(d[i]), "position_along_ray_mm": float(s[i]),
                        "proximal_to_base_mm": float(o[i])})
            if o[i] > params.joint_radius_mm:
                digit[i] = "unassigned"
                # proximal to the metacarpal bases: the wrist, if near the hand's rays
                in_wrist = any(rd[2][i] > params.joint_radius_mm and rd[2][i] <= params.wrist_reach_mm
                               and rd[3][i] <= params.wrist_width_mm for rr, rd in my_rays)
                zone[i] = "wrist" if in_wrist else "other"
            elif d[i] <= params.max_ray_distance_mm:
                digit[i] = r.digit
                zone[i] = _zone_on_ray(r, float(s[i]), params)
            else:
                digit[i] = "unassigned"
                zone[i] = "other"
            jsel = [k for k, (js, _, _) in enumerate(joint_list) if js == side[i]]
            if jsel:
                k = min(jsel, key=lambda k: jdist[i, k])
                row["nearest_joint"] = joint_list[k][1]
                row["distance_to_joint_mm"] = float(jdist[i, k])
                kind[i] = "periarticular" if jdist[i, k] <= params.periarticular_mm else "subcutaneous"
            else:
                kind[i] = "subcutaneous"
        row.update({"side": side[i], "digit": digit[i], "zone": zone[i], "kind": kind[i]})
        details.append(row)
    if lm.points and not rays:
        warnings.append("no digit has two placed landmarks: lesions are left without digit, zone and kind")
    return Assignment(side, digit, zone, kind, details, warnings, rays, _covered(rays), _sides(lm, lat, side))


def _zone_on_ray(ray: Ray, s: float, params: AssignParams) -> str:
    joints = ray.joints()
    jr = params.joint_radius_mm
    distal_joint = joints[-1]
    near = [(abs(s - pos), name) for name, pos, _ in joints if abs(s - pos) <= jr]
    if near:
        name = min(near)[1]
        if name == "CMC":
            return "wrist"
        if name == "IP":
            return params.thumb_ip_zone
        return name
    if s > distal_joint[1]:
        return "distal_phalanx"
    return "other"


def _covered(rays: list[Ray]) -> dict:
    out: dict = {}
    for r in rays:
        out.setdefault(r.side, []).append(r.digit)
    return out


def _sides(lm: HandLandmarks, lat: str | None, assigned: list | None = None) -> list[str]:
    s = set(lm.sides)
    if lat and (not s or lat in s):   # landmarks that say the other hand win (a warning says so): no empty row
        s.add(lat)
    for a in assigned or []:
        s.add(a)
    return sorted(s, key=lambda v: ("R", "L", "unknown").index(v))


__all__ = ["AssignParams", "Assignment", "Ray", "build_rays", "assign_lesions", "lesion_points",
           "METACARPAL_RATIO", "PROPORTIONS", "ASSIGN_COLUMNS", "DETAIL_COLUMNS", "LandmarkKey"]
