"""A synthetic SSc patient's hand, seen by CT, MRI and a PA radiograph, with exact truth.

The hand is built from analytic solids (:mod:`.shapes`) in a *hand frame* (mm):
``x`` across the hand from the thumb side (negative) to the little finger, ``y`` along
the fingers (0 at the radiocarpal joint, distal positive), ``z`` palmar positive.  It is
placed in patient RAS by :class:`Pose` (fingers along +S, palm facing +A, thumb toward
the midline as with the arm raised overhead; a left hand is the mirror image).

Anatomy: five rays, each with its metacarpal and phalanges as cortical shells around
trabecular bone (rounded cylinders, flat ends facing each other across a joint space),
eight carpal bones, the ends of radius and ulna, soft tissue (tendons, muscle) inside a
subcutaneous fat layer.  Lesions are ellipsoids with log-normal volumes (about
1-5000 mm³) at chosen side/digit/zone/kind, each wrapped in a small soft-tissue bulge
(calcinosis nodules distend the skin).  Periarticular lesions sit at a joint, touching or
nearly touching the bone (0-0.8 mm); subcutaneous ones lie in the fat, at least 2 mm
from bone and well away from joint centres.

Rendering:

* CT (HU): fat -100, soft tissue 40, cortical bone 1250-1500, trabecular 280 with
  texture, lesions 200-1500; partial volume (ramp for tissue, exact sub-voxel sampling for
  lesions), Gaussian noise; no blur beyond the voxel itself;
* MRI (T1-like, a.u.): fat 900, soft tissue 380, cortex 30, marrow 700, lesions as signal
  voids 40-90; Rician noise; coronal slices;
* radiograph: the parallel PA projection (along A) of the linear attenuation derived
  from the CT values (mu = mu_water (1 + HU/1000)); pixel value = offset + gain x line
  integral, so dense is bright (MONOCHROME2).  Lesion chords are exact.  The DICOM file
  carries the detector spacing (Imager Pixel Spacing = patient spacing x magnification)
  and the Estimated Radiographic Magnification Factor.

Truth per lesion (see :data:`TRUTH_COLUMNS`): side, digit, zone, kind, centre in the
image's RAS, semi-axes, analytic volume and projected (coronal) area, distance to bone
and to the nearest joint centre, the intensity, and for the radiograph whether the
lesion's shadow overlaps bone or another lesion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.phantoms import coverage_fraction, rotation_matrix
from calcinosis.core.tables import Column, Table

from .anatomy import DIGITS, digit_points, joint_points
from .shapes import Capsule, EllipsoidSolid, RoundedCylinder, ellipsoid_chord  # noqa: F401 (EllipsoidSolid re-exported)

# ---------------------------------------------------------------------- anatomy tables (adult female hand)
#: metacarpal base (CMC joint centre) in the hand frame, and the ray's angle from +y toward +x (deg)
FINGER_BASES = {"index": ((-14.0, 28.0, 0.0), -6.0), "middle": ((0.0, 27.0, 0.0), 0.0),
                "ring": ((13.0, 25.0, -1.0), 5.0), "little": ((24.0, 23.0, -2.0), 11.0)}
THUMB_BASE = (-22.0, 14.0, 7.0)
THUMB_DIRECTION = (-0.55, 0.80, 0.22)
#: joint-to-joint lengths (mm): metacarpal, proximal, (middle), distal phalanx to the tip of the tuft
LENGTHS = {"thumb": (44.0, 31.0, 22.0), "index": (66.0, 40.0, 23.0, 17.0), "middle": (64.0, 44.0, 27.0, 18.0),
           "ring": (57.0, 41.0, 26.0, 18.0), "little": (52.0, 33.0, 19.0, 16.0)}
RADII = {"thumb": (4.5, 4.0, 3.0), "index": (4.0, 3.8, 3.2, 2.5), "middle": (4.1, 3.9, 3.3, 2.6),
         "ring": (3.8, 3.6, 3.1, 2.4), "little": (3.5, 3.3, 2.8, 2.2)}
CORTEX_MM = (1.2, 1.0, 0.95, 0.9)     # metacarpal, proximal, middle, distal
CORTICAL_HU = (1500.0, 1450.0, 1400.0, 1300.0)
JOINT_GAP_MM = 1.5
#: carpal bones: centre (hand frame), semi-axes, rotation about z (deg)
CARPALS = {
    "scaphoid": ((-12.0, 4.5, 1.0), (5.0, 4.0, 4.6), 30.0),
    "lunate": ((-2.5, 5.0, 0.0), (4.5, 4.2, 5.5), 0.0),
    "triquetrum": ((8.5, 5.5, -1.0), (4.0, 4.0, 4.8), 0.0),
    "pisiform": ((12.0, 6.0, 8.0), (3.0, 3.0, 2.8), 0.0),
    "trapezium": ((-21.0, 9.0, 6.5), (3.6, 3.4, 4.2), 25.0),
    "trapezoid": ((-11.0, 16.0, 1.5), (3.8, 4.2, 4.8), 0.0),
    "capitate": ((-1.0, 16.5, 0.0), (4.8, 5.0, 5.5), 0.0),
    "hamate": ((10.5, 16.0, -1.0), (4.8, 4.8, 5.0), 0.0),
}
#: forearm bones (rounded cylinders ending at the radiocarpal joint)
FOREARM = {"radius": ((-9.0, -60.0, 1.0), (-9.0, -1.5, 1.0), 10.5), "ulna": ((12.0, -60.0, -1.0), (12.0, -3.5, -1.0), 6.5)}

#: CT values (HU) and MRI signal (a.u.) of the tissue classes
CT_HU = {"air": -1000.0, "fat": -100.0, "tissue": 40.0, "marrow": 280.0}
MR_SIGNAL = {"air": 0.0, "fat": 900.0, "tissue": 380.0, "cortex": 30.0, "marrow": 700.0}
MU_WATER_PER_MM = 0.023
XR_OFFSET, XR_GAIN = 150.0, 2400.0
TRABECULAR_TEXTURE_HU = 50.0

#: default assignment distances the truth is built to agree with (see assign.AssignParams)
TRUTH_JOINT_RADIUS_MM = 5.0
TRUTH_PERIARTICULAR_MM = 6.0


# ---------------------------------------------------------------------- pose
@dataclass(frozen=True)
class Pose:
    """Hand frame -> patient RAS: ``R = m x + t_r``, ``A = z + t_a``, ``S = y + t_s``
    with ``m = +1`` for a right hand (thumb toward -R, i.e. the midline, with the arm
    raised overhead and the palm facing anterior) and ``-1`` for a left hand."""

    side: str = "R"
    translation: tuple = (0.0, 0.0, 0.0)

    @property
    def matrix(self) -> np.ndarray:
        m = 1.0 if self.side == "R" else -1.0
        return np.array([[m, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])

    def point(self, p) -> np.ndarray:
        return self.matrix @ np.asarray(p, float) + np.asarray(self.translation, float)

    def vector(self, v) -> np.ndarray:
        return self.matrix @ np.asarray(v, float)


# ---------------------------------------------------------------------- model
@dataclass
class Bone:
    name: str
    outer: object          # RoundedCylinder | EllipsoidSolid (RAS)
    cortex_mm: float
    cortical_hu: float

    @property
    def inner(self):
        return self.outer.shrunk(self.cortex_mm)


@dataclass
class Ray:
    digit: str
    points: dict           # point name -> RAS (CMC/MCP/PIP/DIP/IP/tip; finger CMC is the metacarpal base)
    u: np.ndarray          # distal unit vector (RAS)
    e_lat: np.ndarray      # unit, toward the little-finger side
    e_palm: np.ndarray     # unit, palmar
    radii: tuple           # bone radii per segment, proximal first

    def joint_positions(self) -> list[tuple[str, np.ndarray]]:
        names = ("CMC",) + tuple(p for p in digit_points(self.digit) if p != "CMC")
        return [(n, self.points[n]) for n in names]


@dataclass
class HandModel:
    side: str
    pose: Pose
    rays: dict
    bones: list
    fat: list
    tissue: list

    def landmarks(self) -> list[tuple[str, np.ndarray]]:
        """The landmark set a careful reader would place (joint centres and tuft tips)."""
        out = []
        for d in DIGITS:
            for p in digit_points(d):
                out.append((f"{self.side}_{d}_{p}", self.rays[d].points[p].copy()))
        return out

    def bone_sdf(self, pts: np.ndarray) -> np.ndarray:
        d = np.full(pts.shape[:-1], np.inf)
        for b in self.bones:
            d = np.minimum(d, b.outer.sdf(pts))
        return d

    def within_fat(self, point: np.ndarray, mm: float) -> bool:
        """Whether ``point`` lies within ``mm`` of the hand's soft-tissue envelope (some fat
        shape's signed distance at most ``mm``): the capsules all at once (one array operation
        instead of one call per shape), then the other shapes."""
        caps = getattr(self, "_fat_capsules", None)
        if caps is None:
            cs = [f for f in self.fat if isinstance(f, Capsule)]
            a = np.array([c.p0 for c in cs], float).reshape(-1, 3)
            ab = np.array([c.p1 for c in cs], float).reshape(-1, 3) - a
            caps = (a, ab, np.einsum("ij,ij->i", ab, ab), np.array([c.radius for c in cs], float),
                    [f for f in self.fat if not isinstance(f, Capsule)])
            self._fat_capsules = caps
        a, ab, abab, radius, others = caps
        p = np.asarray(point, float)
        if len(a):
            d = p - a
            t = np.clip(np.einsum("ij,ij->i", d, ab) / abab, 0.0, 1.0)
            d -= t[:, None] * ab
            if np.any(np.sqrt(np.einsum("ij,ij->i", d, d)) - radius <= mm):
                return True
        return any(float(f.sdf(p[None])[0]) <= mm for f in others)

    def min_bone_sdf(self, pts: np.ndarray) -> float:
        """``bone_sdf(pts).min()`` for a point cloud (a lesion's surface), exactly, skipping the
        bones that cannot hold the minimum: a bone's signed distance at a point is at least
        the point's distance to the bone's bounding box (for a point outside the box), so
        bones are visited nearest box first and the rest skipped once that bound is positive
        and exceeds the best value found."""
        pts = np.asarray(pts, float).reshape(-1, 3)
        centre = pts.mean(axis=0)
        reach = float(np.sqrt(((pts - centre) ** 2).sum(axis=1).max()))
        boxes = getattr(self, "_bone_boxes", None)
        if boxes is None:
            boxes = self._bone_boxes = tuple(np.array(x) for x in zip(*(b.outer.bbox() for b in self.bones)))
        outside = np.maximum(np.maximum(boxes[0] - centre, centre - boxes[1]), 0.0)
        # (less a nanometre: rounding in the bound never skips a bone that holds the minimum)
        bounds = np.sqrt(np.einsum("ij,ij->i", outside, outside)) - reach - 1e-6
        best = np.inf
        for k in np.argsort(bounds, kind="stable"):
            if bounds[k] > max(best, 0.0):
                break
            best = min(best, float(self.bones[k].outer.sdf(pts).min()))
        return best


def build_hand(side: str = "R", translation=(0.0, 0.0, 0.0)) -> HandModel:
    pose = Pose(side, tuple(translation))
    P, V = pose.point, pose.vector
    rays, bones, fat, tissue = {}, [], [], []
    z = np.array([0.0, 0.0, 1.0])
    for d in DIGITS:
        if d == "thumb":
            base = np.array(THUMB_BASE)
            u = np.array(THUMB_DIRECTION) / np.linalg.norm(THUMB_DIRECTION)
            names = ("CMC", "MCP", "IP", "tip")
        else:
            b, ang = FINGER_BASES[d]
            base = np.array(b)
            t = np.deg2rad(ang)
            u = np.array([np.sin(t), np.cos(t), 0.0])
            names = ("CMC", "MCP", "PIP", "DIP", "tip")
        e_palm = z - (z @ u) * u
        e_palm /= np.linalg.norm(e_palm)
        e_lat = np.cross(u, e_palm)
        pos = [base]
        for L in LENGTHS[d]:
            pos.append(pos[-1] + L * u)
        pts = {n: P(p) for n, p in zip(names, pos)}
        radii = RADII[d]
        ray = Ray(d, pts, V(u), V(e_lat), V(e_palm), radii)
        rays[d] = ray
        seg_names = ("metacarpal", "proximal", "distal") if d == "thumb" else ("metacarpal", "proximal", "middle", "distal")
        for k, (a, b) in enumerate(zip(pos[:-1], pos[1:])):
            last = k == len(pos) - 2
            start = a + (JOINT_GAP_MM / 2) * u
            end = b if last else b - (JOINT_GAP_MM / 2) * u
            cidx = 0 if k == 0 else (3 if last else min(k, 2))
            edge = 1.8 if last else 1.0
            bones.append(Bone(f"{side}_{d}_{seg_names[k]}", RoundedCylinder(tuple(P(start)), tuple(P(end)), radii[k], edge),
                              CORTEX_MM[cidx], CORTICAL_HU[cidx]))
            r = radii[k]
            if k == 0:
                tissue.append(Capsule(tuple(P(a + 4 * u)), tuple(P(b)), 9.5 if d != "thumb" else 10.5))
                fat.append(Capsule(tuple(P(a + 4 * u)), tuple(P(b)), 12.0 if d != "thumb" else 13.0))
            else:
                b_end = b - 2.0 * u if last else b
                tissue.append(Capsule(tuple(P(a)), tuple(P(b_end)), r + 2.4))
                fat.append(Capsule(tuple(P(a)), tuple(P(b_end)), r + 5.2))
    # thenar eminence (palmar to the thumb metacarpal)
    tb = rays["thumb"].points
    mid = (tb["CMC"] + tb["MCP"]) / 2
    tissue.append(EllipsoidSolid(tuple(mid + 4.0 * rays["thumb"].e_palm), (9.0, 12.0, 24.0), _frame(rays["thumb"])))
    fat.append(EllipsoidSolid(tuple(mid + 4.0 * rays["thumb"].e_palm), (11.5, 14.5, 26.5), _frame(rays["thumb"])))
    # wrist and carpus
    for x in (-10.0, 8.0):
        tissue.append(Capsule(tuple(P((x, -45.0, 1.0))), tuple(P((x, 24.0, 1.0))), 15.0))
        fat.append(Capsule(tuple(P((x, -45.0, 1.0))), tuple(P((x, 24.0, 1.0))), 18.0))
    for name, (c, semi, ang) in CARPALS.items():
        R = rotation_matrix((0, 0, 1), ang)
        Rr = pose.matrix @ R
        bones.append(Bone(f"{side}_{name}", EllipsoidSolid(tuple(P(c)), semi, tuple(map(tuple, Rr))), 0.8, 1300.0))
    for name, (a, b, r) in FOREARM.items():
        bones.append(Bone(f"{side}_{name}", RoundedCylinder(tuple(P(a)), tuple(P(b)), r, 2.5), 1.3, 1500.0))
    return HandModel(side, pose, rays, bones, fat, tissue)


def _frame(ray: Ray) -> tuple:
    """Rotation whose columns are the ray's lateral, palmar and distal axes."""
    return tuple(map(tuple, np.stack([ray.e_lat, ray.e_palm, ray.u], axis=1)))


# ---------------------------------------------------------------------- lesions
@dataclass
class PhantomLesion:
    lesion_id: int
    name: str
    side: str
    digit: str          # assigned digit per the rules ('unassigned' at the carpus)
    zone: str
    kind: str
    center: np.ndarray  # patient RAS
    semi: tuple
    R: np.ndarray       # columns: axes in RAS
    hu: float
    mr: float
    gap_to_bone_mm: float = 0.0
    joint_distance_mm: float = 0.0
    site_digit: str = ""

    @property
    def volume_mm3(self) -> float:
        a, b, c = self.semi
        return 4.0 / 3.0 * np.pi * a * b * c

    def projected_area_mm2(self, normal=(0.0, 1.0, 0.0)) -> float:
        a, b, c = self.semi
        n = self.R.T @ np.asarray(normal, float)
        return float(np.pi * np.sqrt((b * c * n[0]) ** 2 + (a * c * n[1]) ** 2 + (a * b * n[2]) ** 2))

    def contains(self, pts: np.ndarray) -> np.ndarray:
        q = (pts - self.center) @ self.R / np.asarray(self.semi)
        return np.einsum("...i,...i->...", q, q) <= 1.0

    def half_extent(self) -> np.ndarray:
        M = self.R @ np.diag(np.asarray(self.semi) ** 2) @ self.R.T
        return np.sqrt(np.diag(M))

    def surface_points(self, n: int = 1500) -> np.ndarray:
        k = np.arange(n) + 0.5
        phi = np.arccos(1 - 2 * k / n)
        theta = np.pi * (1 + 5 ** 0.5) * k
        sph = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)
        return self.center + (sph * np.asarray(self.semi)) @ self.R.T

    @property
    def min_diameter_mm(self) -> float:
        return 2.0 * min(self.semi)

    @property
    def max_diameter_mm(self) -> float:
        return 2.0 * max(self.semi)


@dataclass
class Site:
    digit: str          # ray the lesion sits on ('carpus' for the wrist)
    zone: str
    kind: str


#: the default patient: every zone and both kinds, index and thumb most affected (study 1)
DEFAULT_SITES = [
    Site("index", "distal_phalanx", "subcutaneous"), Site("index", "DIP", "periarticular"),
    Site("index", "PIP", "periarticular"), Site("index", "PIP", "subcutaneous"),
    Site("index", "other", "subcutaneous"), Site("index", "MCP", "periarticular"),
    Site("thumb", "distal_phalanx", "subcutaneous"), Site("thumb", "DIP", "periarticular"),
    Site("thumb", "MCP", "periarticular"), Site("thumb", "other", "subcutaneous"),
    Site("thumb", "wrist", "periarticular"),
    Site("middle", "distal_phalanx", "subcutaneous"), Site("middle", "DIP", "subcutaneous"),
    Site("middle", "MCP", "subcutaneous"), Site("ring", "PIP", "periarticular"),
    Site("ring", "distal_phalanx", "subcutaneous"), Site("little", "distal_phalanx", "subcutaneous"),
    Site("little", "MCP", "periarticular"), Site("carpus", "wrist", "subcutaneous"),
    Site("index", "distal_phalanx", "subcutaneous"),
]


@dataclass
class HandPatient:
    hand: HandModel
    lesions: list
    seed: int
    notes: list = field(default_factory=list)


def sample_volumes(n: int, rng: np.random.Generator, median_mm3: float = 25.0, sigma_log: float = 1.5,
                   lo: float = 1.0, hi: float = 5000.0) -> np.ndarray:
    """Log-normal lesion volumes (mm³), clipped to [lo, hi]; always one small (< 4 mm³)
    and one large (> 1000 mm³) lesion, as real hands show (SD >> mean)."""
    v = np.exp(rng.normal(np.log(median_mm3), sigma_log, size=n))
    v = np.clip(v, lo, hi)
    if n >= 4:
        order = np.argsort(v)
        v[order[0]] = min(v[order[0]], float(rng.uniform(1.0, 3.5)))
        v[order[-1]] = max(v[order[-1]], float(rng.uniform(1200.0, 4000.0)))
    return v


def _ray_s(ray: Ray, point: str) -> float:
    return float((ray.points[point] - ray.points["CMC"]) @ ray.u)


def _joint_list(hand: HandModel) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for d, ray in hand.rays.items():
        for j in joint_points(d):
            out.append((d, j, ray.points[j]))
    return out


def make_patient(side: str = "R", seed: int = 0, sites: list | None = None, translation=(0.0, 0.0, 0.0),
                 max_tries: int = 4000, volumes=None, gaps=None) -> HandPatient:
    """The synthetic patient: one hand with lesions at the given sites (default
    :data:`DEFAULT_SITES`), sizes log-normal (or ``volumes``, mm³, one per site), placed by
    rejection sampling so that every truth value follows from the geometry with margins
    (see module docstring).  ``gaps`` (mm, one per site) fixes the distance of
    periarticular lesions to bone."""
    rng = np.random.default_rng(seed)
    hand = build_hand(side, translation)
    sites = list(DEFAULT_SITES if sites is None else sites)
    vols = np.sort(sample_volumes(len(sites), rng))[::-1] if volumes is None else None
    # big lesions go where there is room (the wrist, then fingertip pads, then shafts), small ones at joints
    room = {"wrist": 0, "distal_phalanx": 1, "other": 2}
    rank = sorted(range(len(sites)), key=lambda k: (room.get(sites[k].zone, 3) if sites[k].kind == "subcutaneous"
                                                    else 4, rng.random()))
    assigned = np.empty(len(sites))
    if volumes is None:
        for k_site, v in zip(rank, vols):
            assigned[k_site] = v
    else:
        assigned[:] = np.asarray(volumes, float)
    joints = _joint_list(hand)
    lesions: list[PhantomLesion] = []
    for n, (site, vol) in enumerate(zip(sites, assigned), start=1):
        les = None
        for attempt in range(max_tries):
            shrink = 0.85 ** (attempt // 400)  # if a site cannot hold the lesion, make it smaller
            cand = _propose(hand, site, vol * shrink, rng, n, None if gaps is None else gaps[n - 1])
            if cand is None:
                continue
            if _accept(hand, cand, site, lesions, joints):
                les = cand
                break
        if les is None:
            raise RuntimeError(f"could not place lesion {n} at {site}")
        lesions.append(les)
    return HandPatient(hand, lesions, seed)


def _propose(hand: HandModel, site: Site, vol: float, rng, n: int, gap: float | None = None) -> PhantomLesion | None:
    aspect = rng.uniform(1.0, 1.6, size=2)
    # semi-axes (along the ray, lateral, radial) with the given volume
    base = (vol / (4.0 / 3.0 * np.pi * aspect[0] * aspect[1])) ** (1 / 3)
    semi = np.array([base * aspect[0], base * aspect[1], base])
    rng.shuffle(semi[:2])
    hu = float(rng.uniform(200.0, 1500.0))
    mr = float(rng.uniform(40.0, 90.0))
    if site.digit == "carpus":
        # subcutaneous, dorsal or palmar over the carpus, clear of the thumb base
        ray = hand.rays["middle"]
        y = rng.uniform(2.0, 9.0)          # proximal to every metacarpal base by > 7 mm
        along = ray.points["CMC"] + (y - 27.0) * ray.u
        lat = rng.uniform(-4.0, 10.0)
        depth_dir = -ray.e_palm if rng.random() < 0.6 else ray.e_palm
        center = along + lat * ray.e_lat + (15.5 + semi[2] * 0.3) * depth_dir
        frame = np.stack([ray.u, ray.e_lat, ray.e_palm], axis=1)
        digit = "unassigned"
    else:
        ray = hand.rays[site.digit]
        s_j = {p: _ray_s(ray, p) for p in ("CMC",) + tuple(digit_points(site.digit))}
        dip = "IP" if site.digit == "thumb" else "DIP"
        jr = TRUTH_JOINT_RADIUS_MM
        if site.zone in ("DIP", "PIP", "MCP") or (site.zone == "wrist" and site.digit == "thumb"):
            jname = dip if site.zone == "DIP" else ("CMC" if site.zone == "wrist" else site.zone)
            s = s_j[jname] + rng.uniform(-1.5, 1.5)
        elif site.zone == "distal_phalanx":
            s = rng.uniform(s_j[dip] + jr + 2.5, s_j["tip"] + 2.0)
        else:  # other: a shaft, away from joints
            segs = [("CMC", "MCP"), ("MCP", "PIP"), ("PIP", "DIP")] if site.digit != "thumb" else [("CMC", "MCP"), ("MCP", "IP")]
            a, b = segs[rng.integers(len(segs))] if site.digit != "thumb" else segs[1]
            lo, hi = s_j[a] + jr + 3.0, s_j[b] - jr - 3.0
            if hi <= lo:
                return None
            s = rng.uniform(lo, hi)
        theta = rng.uniform(0, 2 * np.pi)
        if site.kind == "subcutaneous" and site.zone in ("DIP", "PIP", "MCP"):
            theta = rng.choice([0.0, np.pi]) + rng.uniform(-0.5, 0.5)   # beside the joint, in the fat
        if site.zone == "distal_phalanx" and site.kind == "subcutaneous" and rng.random() < 0.5:
            theta = np.pi / 2 + rng.uniform(-0.6, 0.6)                  # the fingertip pad
        radial = np.cos(theta) * ray.e_lat + np.sin(theta) * ray.e_palm
        if site.kind == "periarticular":
            rho = ray.radii[0] + 0.2 + semi[2]
        else:
            rho = rng.uniform(ray.radii[min(2, len(ray.radii) - 1)] + 2.5 + semi[2], ray.radii[1] + 5.5 + semi[2] * 0.5)
        center = ray.points["CMC"] + s * ray.u + rho * radial
        tangent = np.cross(ray.u, radial)
        frame = np.stack([ray.u, tangent, radial], axis=1)
        digit = site.digit
    tilt = rotation_matrix(rng.normal(size=3), rng.uniform(0, 25))
    R = frame @ tilt
    les = PhantomLesion(n, f"lesion_{n:02d}", hand.side, digit, site.zone, site.kind, np.asarray(center, float),
                        tuple(float(v) for v in semi), R, hu, mr, site_digit=site.digit)
    if site.kind == "periarticular" and site.digit != "carpus":
        target = rng.choice([0.0, 0.3, 0.5, 0.8]) if gap is None else gap
        if not _set_gap(hand, les, radial, target):
            return None
    return les


def _set_gap(hand: HandModel, les: PhantomLesion, direction: np.ndarray, target: float) -> bool:
    """Slide the lesion along ``direction`` until its surface is ``target`` mm from bone."""
    lo, hi = -6.0, 12.0
    c0 = les.center.copy()

    def gap(t):
        les.center = c0 + t * direction
        return hand.min_bone_sdf(les.surface_points(600))

    if gap(hi) < target or gap(lo) > target:
        les.center = c0
        return False
    for _ in range(40):
        mid = (lo + hi) / 2
        if gap(mid) < target:
            lo = mid
        else:
            hi = mid
    gap(hi)
    return True


def _accept(hand: HandModel, les: PhantomLesion, site: Site, others: list, joints) -> bool:
    """Whether a proposed lesion keeps every truth value unambiguous.  The checks are all
    required (their order changes nothing but the time): the cheap ones on the centre
    come first, those on the lesion's surface points after."""
    if not _accept_centre(hand, les, site):
        return False
    surf = les.surface_points(1500)
    g = hand.min_bone_sdf(surf)
    if g < -1e-3:
        return False
    les.gap_to_bone_mm = max(g, 0.0)
    if (g > 0.85) if site.kind == "periarticular" else (g < 2.0):
        return False
    # nearest lesion point to each joint centre of its hand
    dj = min(float(np.min(np.linalg.norm(surf - jp, axis=1))) if not les.contains(jp[None])[0] else 0.0
             for _, _, jp in joints)
    les.joint_distance_mm = dj
    if site.kind == "periarticular":
        if dj > TRUTH_PERIARTICULAR_MM - 1.0:
            return False
    else:
        if dj < TRUTH_PERIARTICULAR_MM + 1.5:
            return False
    # clear of other lesions (2 mm between surfaces, so CT keeps them apart)
    for o in others:
        dc = np.linalg.norm(o.center - les.center)
        if dc > max(les.semi) + max(o.semi) + 3.0:
            continue
        if np.any(o.contains(surf)) or np.any(les.contains(o.surface_points(800))):
            return False
        # sample distance between the two surfaces
        if np.min(np.linalg.norm(surf[:, None, :] - o.surface_points(400)[None, :, :], axis=2)) < 2.0:
            return False
    return True


def _accept_centre(hand: HandModel, les: PhantomLesion, site: Site) -> bool:
    """The checks of :func:`_accept` that need only the lesion's centre."""
    # inside the hand's soft tissue envelope (before its own bulge): centre within tissue or fat
    if not hand.within_fat(les.center, 1.0):
        return False
    # zone by the along-ray position must be unambiguous with the default joint radius
    if site.digit != "carpus":
        ray = hand.rays[site.digit]
        s = float((les.center - ray.points["CMC"]) @ ray.u)
        jnames = ("CMC",) + tuple(j for j in joint_points(site.digit) if j != "CMC")
        dist_j = {j: abs(s - _ray_s(ray, j)) for j in jnames}
        near = [j for j, d in dist_j.items() if d <= TRUTH_JOINT_RADIUS_MM + 1.5]
        far_enough = all(d >= TRUTH_JOINT_RADIUS_MM + 1.5 or d <= TRUTH_JOINT_RADIUS_MM - 1.5 for d in dist_j.values())
        if not far_enough:
            return False
        if site.zone in ("DIP", "PIP", "MCP", "wrist"):
            want = {"DIP": "IP" if site.digit == "thumb" else "DIP", "wrist": "CMC"}.get(site.zone, site.zone)
            if near != [want]:
                return False
        elif near:
            return False
        # distance from the ray axis well inside the digit reach (15 mm)
        rel = les.center - ray.points["CMC"]
        perp = np.linalg.norm(rel - (rel @ ray.u) * ray.u)
        if perp > 12.0:
            return False
        # nearer to its own ray than to any other ray (digit truth is unambiguous)
        for d2, r2 in hand.rays.items():
            if d2 == site.digit:
                continue
            if _dist_to_ray(les.center, r2) < _dist_to_ray(les.center, ray) + 3.0:
                return False
    return True


def _dist_to_ray(p: np.ndarray, ray: Ray) -> float:
    names = [n for n, _ in ray.joint_positions()]
    pts = [ray.points[n] for n in names]
    best = np.inf
    for a, b in zip(pts[:-1], pts[1:]):
        ab = b - a
        t = np.clip((p - a) @ ab / (ab @ ab), 0, 1)
        best = min(best, float(np.linalg.norm(p - (a + t * ab))))
    return best


# ---------------------------------------------------------------------- rendering
def _grid_points(geometry: Geometry, lo_ijk: np.ndarray, hi_ijk: np.ndarray) -> np.ndarray:
    """RAS of voxel centres in the index box, shape (nk, nj, ni, 3)."""
    ii = np.arange(lo_ijk[0], hi_ijk[0] + 1)
    jj = np.arange(lo_ijk[1], hi_ijk[1] + 1)
    kk = np.arange(lo_ijk[2], hi_ijk[2] + 1)
    M = geometry.direction * np.asarray(geometry.spacing)
    o = np.asarray(geometry.origin_ras)
    return (o + kk[:, None, None, None] * M[:, 2] + jj[None, :, None, None] * M[:, 1]
            + ii[None, None, :, None] * M[:, 0]).astype(np.float32)


def _index_box(geometry: Geometry, lo: np.ndarray, hi: np.ndarray, pad: float):
    corners = np.array([[x, y, z] for x in (lo[0] - pad, hi[0] + pad) for y in (lo[1] - pad, hi[1] + pad)
                        for z in (lo[2] - pad, hi[2] + pad)])
    ijk = geometry.ras_to_ijk(corners)
    a = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    b = np.minimum(np.ceil(ijk.max(axis=0)).astype(int), np.asarray(geometry.size_ijk) - 1)
    if np.any(b < a):
        return None
    return a, b


def _paint(arr: np.ndarray, geometry: Geometry, shape, value, ramp_mm: float, texture=None) -> None:
    lo, hi = shape.bbox()
    box = _index_box(geometry, lo, hi, ramp_mm)
    if box is None:
        return
    a, b = box
    pts = _grid_points(geometry, a, b)
    cov = np.clip(0.5 - shape.sdf(pts) / ramp_mm, 0.0, 1.0).astype(np.float32)
    sl = (slice(a[2], b[2] + 1), slice(a[1], b[1] + 1), slice(a[0], b[0] + 1))
    val = value if texture is None else value + texture(pts)
    arr[sl] = arr[sl] * (1 - cov) + val * cov


def _texture(seed: int):
    """Trabecular texture: a smooth random field (sum of plane waves), deterministic."""
    rng = np.random.default_rng(seed + 991)
    k = rng.normal(size=(12, 3)) * 2.2
    ph = rng.uniform(0, 2 * np.pi, size=12)

    def f(pts):
        acc = np.zeros(pts.shape[:-1], np.float32)
        for kv, p in zip(k, ph):
            acc += np.cos(pts @ kv.astype(np.float32) + p)
        return acc * (TRABECULAR_TEXTURE_HU / np.sqrt(6.0))

    return f


def render_anatomy(patient: HandPatient, geometry: Geometry, modality: str, with_lesions: bool = True) -> np.ndarray:
    """Noise-free image of the hand on ``geometry``: CT in HU, MR in a.u.; lesions
    painted last with exact sub-voxel coverage, each inside its soft-tissue bulge."""
    hand = patient.hand
    ct = modality == "CT"
    vals = CT_HU if ct else MR_SIGNAL
    arr = np.full(geometry.shape, vals["air"], dtype=np.float32)
    ramp = float(np.mean(geometry.spacing))
    for s in hand.fat:
        _paint(arr, geometry, s, vals["fat"], ramp)
    for s in hand.tissue:
        _paint(arr, geometry, s, vals["tissue"], ramp)
    for les in patient.lesions:
        bulge = EllipsoidSolid(tuple(les.center), tuple(np.asarray(les.semi) + 1.6), tuple(map(tuple, les.R)))
        _paint(arr, geometry, bulge, vals["tissue"], ramp)
    tex = _texture(patient.seed) if ct else None
    for b in hand.bones:
        _paint(arr, geometry, b.outer, b.cortical_hu if ct else vals["cortex"], ramp)
        _paint(arr, geometry, b.inner, vals["marrow"], ramp, texture=tex)
    if with_lesions:
        for les in patient.lesions:
            cov = coverage_fraction(geometry, les.contains, les.center, les.half_extent(), supersample=4)
            if cov is None:
                continue
            sl, frac = cov
            v = les.hu if ct else les.mr
            arr[sl] = arr[sl] * (1 - frac) + v * frac
    return arr


def add_noise(arr: np.ndarray, modality: str, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 17)
    if modality == "MR":  # magnitude image: Rician
        n1 = rng.normal(0.0, sd, size=arr.shape).astype(np.float32)
        n2 = rng.normal(0.0, sd, size=arr.shape).astype(np.float32)
        return np.sqrt((arr + n1) ** 2 + n2 ** 2)
    return arr + rng.normal(0.0, sd, size=arr.shape).astype(np.float32)


def hand_bounds(patient: HandPatient, margin: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """RAS box around the skin of the hand (from the wrist, y = -8 mm, to the fingertips)."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for s in patient.hand.fat:
        a, b = s.bbox()
        lo, hi = np.minimum(lo, a), np.maximum(hi, b)
    for les in patient.lesions:
        e = les.half_extent() + 1.6
        lo, hi = np.minimum(lo, les.center - e), np.maximum(hi, les.center + e)
    wrist_s = patient.hand.pose.point((0.0, -8.0, 0.0))[2]
    lo[2] = max(lo[2], wrist_s)
    return lo - margin, hi + margin


def ct_geometry(patient: HandPatient, spacing=(0.5, 0.5, 0.5), size_ijk=None) -> Geometry:
    """Axial CT grid (i -> L, j -> P, k -> S as DICOM axial series) over the hand."""
    lo, hi = hand_bounds(patient)
    direction = np.diag([-1.0, -1.0, 1.0])
    sp = np.asarray(spacing, float)
    if size_ijk is None:
        size = np.ceil((hi - lo) / sp).astype(int) + 1
    else:
        size = np.asarray(size_ijk, int)
    centre = (lo + hi) / 2
    origin = centre - direction @ ((size - 1) * sp / 2)
    return Geometry.create(size, sp, origin, direction)


def mr_geometry(patient: HandPatient, spacing=(0.5, 0.5, 1.5)) -> Geometry:
    """Coronal MRI grid: i -> L, j -> I (rows from the fingertips down), k -> A (slices)."""
    lo, hi = hand_bounds(patient)
    direction = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    sp = np.asarray(spacing, float)
    ext = direction.T @ (hi - lo)
    size = np.ceil(np.abs(ext) / sp).astype(int) + 1
    centre = (lo + hi) / 2
    origin = centre - direction @ ((size - 1) * sp / 2)
    return Geometry.create(size, sp, origin, direction)


# ---------------------------------------------------------------------- radiograph
@dataclass
class Radiograph:
    image: np.ndarray        # (rows, cols), float, dense = bright
    geometry: Geometry       # 2D, as the project loads a DICOM radiograph (i -> L, j -> P, origin 0)
    spacing: float           # mm at the patient
    r_max: float             # patient R of column 0
    s_max: float             # patient S of row 0

    def to_image_ras(self, ras: np.ndarray) -> np.ndarray:
        """Patient RAS -> the radiograph's RAS (coronal projection: R -> R - r_max, S -> A)."""
        p = np.atleast_2d(np.asarray(ras, float))
        out = np.stack([p[:, 0] - self.r_max, p[:, 2] - self.s_max, np.zeros(len(p))], axis=1)
        return out


def render_radiograph(patient: HandPatient, spacing: float = 0.2, dz: float = 0.5, noise_sd: float = 6.0,
                      seed: int = 0, chunk_rows: int = 96) -> Radiograph:
    """PA radiograph: parallel projection along A of mu = mu_w (1 + HU/1000)."""
    lo, hi = hand_bounds(patient)
    cols = int(np.ceil((hi[0] - lo[0]) / spacing)) + 1
    rows = int(np.ceil((hi[2] - lo[2]) / spacing)) + 1
    nz = int(np.ceil((hi[1] - lo[1]) / dz)) + 1
    r_max, s_max = float(hi[0]), float(hi[2])
    image = np.zeros((rows, cols), dtype=np.float64)
    # a 3D slab geometry: i -> -R (columns), j -> -S (rows), k -> +A (through the hand)
    direction = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    for r0 in range(0, rows, chunk_rows):
        nr = min(chunk_rows, rows - r0)
        origin = np.array([r_max, lo[1], s_max - r0 * spacing])
        g = Geometry.create((cols, nr, nz), (spacing, spacing, dz), origin, direction)
        hu = render_anatomy(patient, g, "CT", with_lesions=False)
        mu = MU_WATER_PER_MM * (1.0 + hu / 1000.0)
        image[r0:r0 + nr] = mu.sum(axis=0) * dz
    # lesions: exact chords (the lesion displaces soft tissue of its bulge), 4x4 sub-pixel
    image += lesion_line_integrals(patient, r_max, s_max, lo[1], spacing, image.shape)
    rng = np.random.default_rng(seed + 23)
    img = XR_OFFSET + XR_GAIN * image + rng.normal(0.0, noise_sd, size=image.shape)
    geom = Geometry.create((cols, rows, 1), (spacing, spacing, 1.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    return Radiograph(img, geom, spacing, r_max, s_max)


def lesion_line_integrals(patient: HandPatient, r_max: float, s_max: float, a_start: float, spacing: float,
                          shape) -> np.ndarray:
    """The lesions' own contribution to the line integral of mu (relative to the soft
    tissue they displace), exact chords averaged over 4 x 4 points per pixel."""
    rows, cols = shape
    out = np.zeros(shape, dtype=np.float64)
    mu_t = MU_WATER_PER_MM * (1.0 + CT_HU["tissue"] / 1000.0)
    offs = (np.arange(4) + 0.5) / 4 - 0.5
    for les in patient.lesions:
        dmu = MU_WATER_PER_MM * (1.0 + les.hu / 1000.0) - mu_t
        e = les.half_extent()
        c0 = max(int(np.floor((r_max - (les.center[0] + e[0])) / spacing)) - 1, 0)
        c1 = min(int(np.ceil((r_max - (les.center[0] - e[0])) / spacing)) + 1, cols - 1)
        q0 = max(int(np.floor((s_max - (les.center[2] + e[2])) / spacing)) - 1, 0)
        q1 = min(int(np.ceil((s_max - (les.center[2] - e[2])) / spacing)) + 1, rows - 1)
        if c1 < c0 or q1 < q0:
            continue
        cc, qq = np.meshgrid(np.arange(c0, c1 + 1), np.arange(q0, q1 + 1))
        acc = np.zeros(cc.shape)
        for du in offs:
            for dv in offs:
                R = r_max - (cc + du) * spacing
                S = s_max - (qq + dv) * spacing
                o = np.stack([R, np.full(R.shape, a_start), S], axis=-1)
                acc += ellipsoid_chord(les.center, np.asarray(les.semi), les.R, o, np.array([0.0, 1.0, 0.0]))
        out[q0:q1 + 1, c0:c1 + 1] += dmu * acc / offs.size ** 2
    return out


def radiograph_lesion_image(patient: HandPatient, xr: Radiograph) -> np.ndarray:
    """The part of a rendered radiograph's pixel values due to the lesions themselves
    (image units, no noise): the radiograph minus this is the anatomy under them,
    soft-tissue nodules included - the exact background an outline should be drawn on."""
    lo, _ = hand_bounds(patient)
    return XR_GAIN * lesion_line_integrals(patient, xr.r_max, xr.s_max, lo[1], xr.spacing, xr.image.shape)


def projected_bone_mask(patient: HandPatient, xr: Radiograph) -> np.ndarray:
    """Pixels whose ray crosses bone (for the truth's 'overlaps bone' flag)."""
    rows, cols = xr.image.shape
    lo, hi = hand_bounds(patient)
    mask = np.zeros((rows, cols), bool)
    zs = np.arange(lo[1], hi[1], 0.5)
    for b in patient.hand.bones:
        blo, bhi = b.outer.bbox()
        c0 = max(int((xr.r_max - bhi[0]) / xr.spacing), 0)
        c1 = min(int((xr.r_max - blo[0]) / xr.spacing) + 1, cols - 1)
        q0 = max(int((xr.s_max - bhi[2]) / xr.spacing), 0)
        q1 = min(int((xr.s_max - blo[2]) / xr.spacing) + 1, rows - 1)
        if c1 < c0 or q1 < q0:
            continue
        cc, qq = np.meshgrid(np.arange(c0, c1 + 1), np.arange(q0, q1 + 1))
        R = xr.r_max - cc * xr.spacing
        S = xr.s_max - qq * xr.spacing
        zz = zs[(zs >= blo[1] - 1) & (zs <= bhi[1] + 1)]
        pts = np.stack(np.broadcast_arrays(R[..., None], zz[None, None, :], S[..., None]), axis=-1)
        mask[q0:q1 + 1, c0:c1 + 1] |= (b.outer.sdf(pts) < 0).any(axis=-1)
    return mask


def lesion_shadow(les: PhantomLesion, xr: Radiograph) -> tuple[tuple[slice, slice], np.ndarray]:
    """Pixels inside the lesion's projected outline (centre test)."""
    rows, cols = xr.image.shape
    e = les.half_extent()
    c0 = max(int(np.floor((xr.r_max - (les.center[0] + e[0])) / xr.spacing)) - 1, 0)
    c1 = min(int(np.ceil((xr.r_max - (les.center[0] - e[0])) / xr.spacing)) + 1, cols - 1)
    q0 = max(int(np.floor((xr.s_max - (les.center[2] + e[2])) / xr.spacing)) - 1, 0)
    q1 = min(int(np.ceil((xr.s_max - (les.center[2] - e[2])) / xr.spacing)) + 1, rows - 1)
    cc, qq = np.meshgrid(np.arange(c0, c1 + 1), np.arange(q0, q1 + 1))
    o = np.stack([xr.r_max - cc * xr.spacing, np.full(cc.shape, les.center[1] - 100.0), xr.s_max - qq * xr.spacing], axis=-1)
    ch = ellipsoid_chord(les.center, np.asarray(les.semi), les.R, o, np.array([0.0, 1.0, 0.0]))
    return (slice(q0, q1 + 1), slice(c0, c1 + 1)), ch > 0


# ---------------------------------------------------------------------- truth
TRUTH_COLUMNS = [
    Column("lesion_id", "int", "", "Phantom lesion number"),
    Column("name", "string", "", "Phantom lesion name"),
    Column("side", "string", "", "Hand: L or R"),
    Column("digit", "string", "", "Digit the assignment rules give (unassigned at the carpus)"),
    Column("zone", "string", "", "distal_phalanx, DIP, PIP, MCP, wrist or other"),
    Column("kind", "string", "", "periarticular (at a joint) or subcutaneous"),
    Column("center_r_mm", "double", "mm", "True centre, R, in this image's RAS"),
    Column("center_a_mm", "double", "mm", "True centre, A, in this image's RAS"),
    Column("center_s_mm", "double", "mm", "True centre, S, in this image's RAS"),
    Column("semi_axis_1_mm", "double", "mm", "Semi-axis 1 of the ellipsoid"),
    Column("semi_axis_2_mm", "double", "mm", "Semi-axis 2"),
    Column("semi_axis_3_mm", "double", "mm", "Semi-axis 3"),
    Column("min_diameter_mm", "double", "mm", "Smallest diameter (2 x shortest semi-axis)"),
    Column("max_diameter_mm", "double", "mm", "Largest diameter"),
    Column("volume_mm3", "double", "mm3", "Analytic volume 4/3 pi abc"),
    Column("projected_area_mm2", "double", "mm2", "Analytic area of the projection on the coronal (PA) plane"),
    Column("gap_to_bone_mm", "double", "mm", "Smallest distance from the lesion surface to bone (0 = touching)"),
    Column("joint_distance_mm", "double", "mm", "Smallest distance from the lesion to a joint centre"),
    Column("ct_hu", "double", "HU", "Lesion density on CT"),
    Column("mr_signal", "double", "a.u.", "Lesion signal on MRI (signal void)"),
    Column("xr_peak_contrast", "double", "", "Radiograph: peak of the lesion's own contribution (pixel units)"),
    Column("xr_overlaps_bone", "int", "", "Radiograph: 1 if the lesion's shadow overlaps bone"),
    Column("xr_overlaps_lesion", "int", "", "Radiograph: 1 if the shadow overlaps another lesion's shadow"),
]


def truth_table(patient: HandPatient, to_image=None, xr: Radiograph | None = None) -> Table:
    """The truth for one image (``to_image`` maps patient RAS to the image's RAS)."""
    t = Table(TRUTH_COLUMNS, name="truth", description="Hand phantom ground truth (analytic)")
    overlaps_bone = {}
    overlaps_les = {}
    if xr is not None:
        bone = projected_bone_mask(patient, xr)
        shadows = [lesion_shadow(les, xr) for les in patient.lesions]
        for les, (sl, m) in zip(patient.lesions, shadows):
            overlaps_bone[les.lesion_id] = int(np.any(bone[sl][m]))
            hit = 0
            for o, (sl2, m2) in zip(patient.lesions, shadows):
                if o is les:
                    continue
                full = np.zeros(xr.image.shape, bool)
                full[sl2] = m2
                if np.any(full[sl][m]):
                    hit = 1
            overlaps_les[les.lesion_id] = hit
    mu_t = MU_WATER_PER_MM * (1.0 + CT_HU["tissue"] / 1000.0)
    for les in patient.lesions:
        c = les.center if to_image is None else to_image(les.center)[0]
        row = {"lesion_id": les.lesion_id, "name": les.name, "side": les.side, "digit": les.digit, "zone": les.zone,
               "kind": les.kind, "center_r_mm": c[0], "center_a_mm": c[1], "center_s_mm": c[2],
               "semi_axis_1_mm": les.semi[0], "semi_axis_2_mm": les.semi[1], "semi_axis_3_mm": les.semi[2],
               "min_diameter_mm": les.min_diameter_mm, "max_diameter_mm": les.max_diameter_mm,
               "volume_mm3": les.volume_mm3, "projected_area_mm2": les.projected_area_mm2(),
               "gap_to_bone_mm": les.gap_to_bone_mm, "joint_distance_mm": les.joint_distance_mm,
               "ct_hu": les.hu, "mr_signal": les.mr}
        if xr is not None:
            dmu = MU_WATER_PER_MM * (1.0 + les.hu / 1000.0) - mu_t
            n = les.R.T @ np.array([0.0, 1.0, 0.0])
            # longest chord along A through an ellipsoid: 2 / |S^-1 R^T d|
            chord = 2.0 / np.linalg.norm(n / np.asarray(les.semi))
            row.update({"xr_peak_contrast": XR_GAIN * dmu * chord, "xr_overlaps_bone": overlaps_bone[les.lesion_id],
                        "xr_overlaps_lesion": overlaps_les[les.lesion_id]})
        t.append(row)
    return t


# ---------------------------------------------------------------------- per-modality phantoms
#: the MRI session finds the hand a little elsewhere in the scanner (landmarks differ)
MR_TRANSLATION = (4.0, -3.0, 6.0)


@dataclass
class ModalityPhantom:
    modality: str                 # 'CT', 'MR', 'XR'
    array: np.ndarray             # [k, j, i] (XR: one slice)
    geometry: Geometry
    truth: Table
    landmarks: list               # [(label, RAS in this image)]
    patient: HandPatient
    regions: np.ndarray | None = None        # MRI: the regions a reader draws (label = lesion id)
    outlines: np.ndarray | None = None       # XR: each lesion's true shadow (label = lesion id)
    radiograph: Radiograph | None = None


def ct_phantom(side: str = "R", seed: int = 0, spacing=(0.5, 0.5, 0.5), size_ijk=None, noise_sd: float = 18.0,
               patient: HandPatient | None = None, scanner=None) -> ModalityPhantom:
    """The patient's hand CT.  ``scanner`` (a :class:`~calcinosis.core.psf.ScannerPSF`): imaged
    as that scanner does - the anatomy drawn on slices of the in-plane spacing, blurred in plane
    by the kernel and along the patient by the slice profile, then sampled every ``spacing[2]``
    mm (which must be a whole number of in-plane spacings); else sharp (each voxel its own
    content)."""
    p = patient or make_patient(side, seed)
    if scanner is None:
        g = ct_geometry(p, spacing, size_ijk)
        arr = render_anatomy(p, g, "CT")
    else:
        arr, g = _scanned_ct(p, spacing, size_ijk, scanner)
    arr = add_noise(arr, "CT", noise_sd, seed)
    arr = np.clip(np.round(arr), -1024, 3071).astype(np.int16)
    return ModalityPhantom("CT", arr, g, truth_table(p), p.hand.landmarks(), p)


def _scanned_ct(patient: HandPatient, spacing, size_ijk, scanner) -> tuple[np.ndarray, Geometry]:
    """Drawn on slices ``spacing[0]`` apart, blurred in plane by the kernel's Gaussian and along
    the slices by the edge of the slice profile, then each output slice the mean over its
    thickness (a box, the fine slices' overlap with it as weights)."""
    from scipy import ndimage

    from calcinosis.core.psf import FWHM_TO_SIGMA
    sp = np.asarray(spacing, float)
    out = ct_geometry(patient, sp, size_ijk)
    n_out = out.size_ijk[2]
    fine_dz = float(sp[0])
    half_t = scanner.slice_mm / 2.0
    # the fine slices cover the output's, half a thickness and the edge's blur beyond each end
    pad = half_t + 4.0 * scanner.slice_edge_fwhm_mm * FWHM_TO_SIGMA + fine_dz
    z0 = -pad                                     # mm from output slice 0, along the slice axis
    n_fine = int(np.ceil(((n_out - 1) * sp[2] + 2 * pad) / fine_dz)) + 1
    fine_origin = out.ijk_to_ras(np.array([[0.0, 0.0, z0 / sp[2]]]))[0]
    fine = Geometry.create((out.size_ijk[0], out.size_ijk[1], n_fine), (sp[0], sp[1], fine_dz), tuple(fine_origin),
                           np.asarray(out.direction))
    arr = render_anatomy(patient, fine, "CT").astype(np.float32)
    s_xy = scanner.in_plane_fwhm_mm * FWHM_TO_SIGMA / sp[0]
    s_z = scanner.slice_edge_fwhm_mm * FWHM_TO_SIGMA / fine_dz
    arr = ndimage.gaussian_filter(arr, (s_z, s_xy, s_xy), mode="nearest")
    # each output slice: the overlap of every fine slice [z - dz/2, z + dz/2] with its box
    zf = z0 + np.arange(n_fine) * fine_dz
    zc = np.arange(n_out) * sp[2]
    lo = np.maximum(zf[None, :] - fine_dz / 2, zc[:, None] - half_t)
    hi = np.minimum(zf[None, :] + fine_dz / 2, zc[:, None] + half_t)
    weights = np.clip(hi - lo, 0.0, None) / scanner.slice_mm
    return np.tensordot(weights.astype(np.float32), arr, axes=(1, 0)), out


def mr_phantom(side: str = "R", seed: int = 0, spacing=(0.5, 0.5, 1.5), noise_sd: float = 15.0,
               region_margin_mm: float = 1.5, min_visible_mm: float = 1.5) -> ModalityPhantom:
    p = make_patient(side, seed, translation=MR_TRANSLATION)
    g = mr_geometry(p, spacing)
    arr = add_noise(render_anatomy(p, g, "MR"), "MR", noise_sd, seed)
    arr = np.clip(np.round(arr), 0, 4095).astype(np.uint16)
    regions = lesion_regions(p, g, region_margin_mm, min_visible_mm)
    return ModalityPhantom("MR", arr, g, truth_table(p), p.hand.landmarks(), p, regions=regions)


def xr_phantom(side: str = "R", seed: int = 0, spacing: float = 0.2, noise_sd: float = 6.0) -> ModalityPhantom:
    p = make_patient(side, seed)
    xr = render_radiograph(p, spacing, noise_sd=noise_sd, seed=seed)
    truth = truth_table(p, xr.to_image_ras, xr)
    lms = [(lab, xr.to_image_ras(pos)[0]) for lab, pos in p.hand.landmarks()]
    outlines = np.zeros(xr.image.shape, np.uint16)
    for les in p.lesions:
        sl, m = lesion_shadow(les, xr)
        sub = outlines[sl]
        sub[m] = les.lesion_id
    arr = np.clip(np.round(xr.image), 0, 65535).astype(np.uint16)[None]
    return ModalityPhantom("XR", arr, xr.geometry, truth, lms, p, outlines=outlines[None], radiograph=xr)


def lesion_regions(patient: HandPatient, geometry: Geometry, margin_mm: float = 1.5,
                   min_diameter_mm: float = 1.5) -> np.ndarray:
    """What a reader draws on MRI: around each lesion big enough to see, ``margin_mm``
    beyond it, not over bone (label = lesion id)."""
    out = np.zeros(geometry.shape, np.uint16)
    for les in patient.lesions:
        if les.max_diameter_mm < min_diameter_mm:
            continue
        grown = EllipsoidSolid(tuple(les.center), tuple(np.asarray(les.semi) + margin_mm), tuple(map(tuple, les.R)))
        lo, hi = grown.bbox()
        box = _index_box(geometry, lo, hi, 0.0)
        if box is None:
            continue
        a, b = box
        pts = _grid_points(geometry, a, b)
        inside = (grown.sdf(pts) <= 0) & (patient.hand.bone_sdf(pts) > 0)
        sl = (slice(a[2], b[2] + 1), slice(a[1], b[1] + 1), slice(a[0], b[0] + 1))
        sub = out[sl]
        sub[inside & (sub == 0)] = les.lesion_id
    return out
