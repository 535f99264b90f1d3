"""A realistic spine CT phantom with exact ground truth for the spine map.

Anatomy (adult sizes, from C7 to S1, interpolated between tabulated vertebrae):
vertebral bodies (cortical shell over a trabecular core), intervertebral discs, the
spinal canal with CSF and cord, pedicles, laminae, spinous and transverse processes,
ribs articulating with the thoracic bodies and transverse processes, a thoracic
kyphosis and lumbar lordosis, a mild scoliosis with axial rotation, the descending
aorta (contrast-enhanced or not) bifurcating into the iliac arteries in front of L4,
with calcified walls (distractors the map must not report), lungs in the chest, the
body outline with a fat layer, noise, and partial volume everywhere (each voxel takes
the covered fraction of every structure, from signed distances).

Calcifications are placed inside named sub-sites of chosen levels, clear of bone so
that they are visible, with the three patterns: *linear* (thin, along the anterior
longitudinal ligament), *punctate* (small, compact) and *pseudotumoral* (large lobulated
mass, intracanal/foraminal/posterior).  The truth table gives, for each, its level,
segment, sub-site, pattern, centroid, volume and peak HU; aortic and iliac wall
calcifications are listed with ``kind`` = ``vascular`` and no level.

Coverage: ``chest`` (C7 to L1), ``tap`` (C7 to S1), ``lumbar`` (T12 to S1); the scan
cuts the end vertebrae, so the levels beyond are not assessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcinosis.core.geometry import Geometry
from calcinosis.core.tables import Column, Table

from . import conventions as conv
from .anatomy import LEVELS, SUBSITE_SEGMENT, VERTEBRAE, order_number
from .sdf import Capsule, Ellipsoid, EllipticCylinder, ExtrudedCapsule, Frame, Slab, Union

COVERAGES = {"chest": ("C7", "L1"), "tap": ("C7", "S1"), "lumbar": ("T12", "S1")}

# order number -> (body width, depth, height, disc below, canal half-width, canal half-depth)
_BODY = {7: (28, 17, 14, 5.5, 11, 7), 8: (28, 18, 16, 5.5, 9, 7.5), 11: (29, 23, 18, 6.0, 8, 7.5),
         15: (32, 27, 21, 6.5, 8, 7.5), 18: (38, 30, 23, 7.5, 8.5, 7.5), 19: (40, 31, 24, 8.0, 9, 7.5),
         20: (42, 32, 25, 9.0, 10, 8), 22: (47, 34, 27, 11.0, 11, 8.5), 23: (49, 35, 27, 12.0, 11.5, 8.5),
         24: (50, 35, 26, 11.0, 12, 8.5), 25: (48, 32, 28, 0.0, 13, 7)}
# spinous: length, downward angle (deg), radius
_SPINOUS = {7: (40, 20, 4), 8: (38, 30, 4), 10: (36, 40, 4), 13: (34, 55, 4), 16: (32, 55, 4), 18: (28, 35, 4.5),
            19: (26, 25, 4.5), 20: (28, 10, 5), 22: (28, 5, 5), 24: (22, 10, 5), 25: (12, 20, 4)}
# transverse process: reach |x| of the tip from the body centre, backward offset of the tip, radius
_TP = {7: (32, 2, 4), 8: (42, 10, 5), 11: (40, 14, 5), 15: (36, 16, 5), 17: (32, 14, 5), 19: (24, 8, 4.5),
       20: (32, 4, 4.5), 22: (44, 4, 4.5), 23: (40, 4, 5), 24: (40, 2, 6), 25: (52, -10, 11)}
# sagittal tangent tilt (deg; + = the cranial direction leans anterior)
_PHI = {7: 16, 8: 20, 11: 10, 14: 0, 17: -10, 19: -15, 20: -15, 21: -8, 22: 0, 23: 12, 24: 22, 25: 36}

HU = {"air": -1000.0, "fat": -100.0, "soft": 40.0, "lung": -850.0, "csf": 10.0, "cord": 35.0, "disc": 85.0,
      "cortex": 750.0, "trabecular": 190.0, "rib_cortex": 650.0, "rib_marrow": 200.0, "wall": 45.0,
      "lumen_contrast": 260.0, "lumen_plain": 40.0}


def _interp(table: dict, n: float) -> np.ndarray:
    keys = sorted(table)
    vals = np.array([table[k] for k in keys], float)
    if vals.ndim == 1:
        return np.interp(n, keys, vals)
    return np.array([np.interp(n, keys, vals[:, c]) for c in range(vals.shape[1])])


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


@dataclass
class Vertebra:
    name: str
    frame: Frame                 # origin = body centre
    W: float
    D: float
    H: float
    disc_below: float
    cx: float
    cy: float
    spinous: tuple
    tp: tuple
    #: articular processes (PhantomSpec.facets): the superior pair rises into the level
    #: above (disc ``disc_above`` tall), the inferior pair hangs into the level below
    #: articular processes (PhantomSpec.facets, :func:`facet_joint`): (SPINEPS part name,
    #: Capsule) - the superior pair of its joints with the vertebra above, the inferior
    #: pair (and the bar joining each to the lamina) of those with the one below
    articular: list = field(default_factory=list)

    @property
    def canal_y(self) -> float:
        return -self.D / 2 - self.cy

    @property
    def lamina_y(self) -> float:
        return -self.D / 2 - 2 * self.cy

    def ras(self, x, y, z):
        return self.frame.to_ras(x, y, z)


@dataclass
class Calcification:
    name: str
    kind: str                     # 'spinal' or 'vascular'
    lobes: list                   # Ellipsoid primitives
    hu: float
    level: str = ""
    subsite: str = ""
    pattern: str = ""

    @property
    def segment(self) -> str:
        return SUBSITE_SEGMENT.get(self.subsite, "")


@dataclass
class PhantomSpec:
    coverage: str = "tap"
    spacing: tuple = (0.7, 0.7, 1.25)        # x (column), y (row), slice, mm
    size_xy: tuple | None = (512, 512)       # columns, rows; None = a field of view fitted to the spine
    margin_mm: float = 55.0                  # with size_xy None: field of view around the spine
    contrast: bool = True
    noise_sd: float = 12.0
    seed: int = 0
    convention: str = "totalsegmentator"
    direction_ras: tuple | None = None       # None: the usual axial DICOM grid (i -> L, j -> P, k -> S)
    rotation_deg: float = 6.0                # maximal axial rotation of the vertebrae
    scoliosis_deg: float = 4.0
    calcifications_per_level: float = 2.5
    vascular_calcifications: int = 14
    n_slices: int | None = None              # more slices than the spine's coverage: the scan goes on into the pelvis
    # --- the hard cases real anatomy has (see :mod:`.phantom_hard`)
    bone_touching: bool = False              # calcifications against the cortex at every sub-site
    thin_discs: bool = False                 # thoracic discs 3-5 mm tall (degenerated)
    osteophytes: int = 0                     # osteophytes and end-plate spurs (bone, never reported)
    veins: bool = False                      # IVC, iliac and renal veins, renal arteries, azygos
    shoulder_noise_sd: float | None = None   # noise (HU) reached at the scan's cranial end (shoulders)
    label_error_mm: float = 0.0              # vertebra labels off by up to this (per vertebra) + a voxel locally
    facets: bool = False                     # articular processes and facet joints (see vertebra_prims)


@dataclass
class SpinePhantom:
    spec: PhantomSpec
    vertebrae: list[Vertebra]
    calcifications: list[Calcification]
    aorta_path: list[tuple[np.ndarray, float]]
    iliac_paths: list[list[tuple[np.ndarray, float]]]
    scan_s: tuple[float, float]              # S range covered by the scan
    notes: list[str] = field(default_factory=list)
    vein_paths: list = field(default_factory=list)      # (label key or "", lumen HU, path) - see phantom_hard
    osteophyte_prims: dict = field(default_factory=dict)  # vertebra name -> [Capsule]

    def vertebra(self, name: str) -> Vertebra:
        return next(v for v in self.vertebrae if v.name == name)


# ---------------------------------------------------------------------- anatomy
def build_phantom(spec: PhantomSpec) -> SpinePhantom:
    if spec.coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {', '.join(COVERAGES)}")
    rng = np.random.default_rng(spec.seed)
    names = VERTEBRAE[VERTEBRAE.index("C7"):]
    rot_amp = spec.rotation_deg * rng.uniform(0.7, 1.0) * rng.choice([-1, 1])
    sco_amp = spec.scoliosis_deg * rng.uniform(0.6, 1.0) * rng.choice([-1, 1])
    verts: list[Vertebra] = []
    centre = np.array([0.0, 0.0, 0.0])
    prev = None
    for name in names:
        n = order_number(name)
        W, D, H, disc, cx, cy = _interp(_BODY, n)
        if spec.thin_discs and name.startswith("T"):
            disc = float(rng.uniform(3.0, 5.0))
        phi = np.radians(_interp(_PHI, n))
        chi = np.radians(sco_amp * np.sin(2 * np.pi * (n - 7) / 18.0))
        rho = np.radians(rot_amp * np.sin(np.pi * (n - 7) / 12.0) if n <= 19 else -0.4 * rot_amp * np.sin(
            np.pi * (n - 19) / 6.0))
        u = _unit([np.tan(chi), np.tan(phi), 1.0])
        a0 = _unit(np.array([0.0, 1.0, 0.0]) - u[1] * u)
        r0 = np.cross(a0, u)
        a = np.cos(rho) * a0 + np.sin(rho) * r0
        r = np.cross(a, u)
        if prev is not None:
            step_prev = prev.H / 2 + prev.disc_below / 2
            step_this = prev.disc_below / 2 + H / 2
            centre = prev.frame.origin - prev.frame.u * step_prev - u * step_this
        sp = tuple(_interp(_SPINOUS, n))
        tp = tuple(_interp(_TP, n))
        v = Vertebra(name, Frame(centre.copy(), r, a, u), W, D, H, disc, cx, cy, sp, tp)
        verts.append(v)
        prev = v
    # put the spine in the patient: S1 low, spine behind the body's centre
    top, bottom = COVERAGES[spec.coverage]
    vt, vb = next(v for v in verts if v.name == top), next(v for v in verts if v.name == bottom)
    s_top = vt.frame.origin[2] + 0.15 * vt.H  # the scan cuts the end vertebrae
    s_bottom = vb.frame.origin[2] - (0.30 * vb.H if bottom == "S1" else 0.15 * vb.H)
    shift = np.array([0.0, -40.0, -s_bottom + 0.0])
    for v in verts:
        v.frame.origin = v.frame.origin + shift
    s_range = (s_bottom + shift[2], s_top + shift[2])
    if spec.facets:
        # from the bottom up: each joint keeps clear of the processes of the joint below
        for v, w in reversed(list(zip(verts[:-1], verts[1:]))):
            for side, side_name in ((-1, "left"), (1, "right")):
                j = facet_joint(v, w, side)
                w.articular.append((f"articular_superior_{side_name}", Capsule(*j["superior"], j["radius"])))
                v.articular.append((f"articular_inferior_{side_name}", Capsule(*j["inferior"], j["radius"])))
                v.articular.append(("arch", Capsule(*j["bar"], j["radius"])))
    ph = SpinePhantom(spec, verts, [], [], [], s_range)
    _build_vessels(ph, rng)
    from . import phantom_hard   # the hard cases (lazy: it builds on this module)
    if spec.veins:
        phantom_hard.build_veins(ph)
    if spec.osteophytes:
        phantom_hard.place_osteophytes(ph, np.random.default_rng(spec.seed + 77))
    _place_calcifications(ph, rng)
    if spec.bone_touching:
        phantom_hard.place_touching(ph, np.random.default_rng(spec.seed + 99))
    return ph


def vertebra_prims(v: Vertebra) -> tuple[Union, list]:
    """The vertebra as one solid (canal subtracted) and the canal cylinder."""
    f = v.frame
    W, D, H = v.W, v.D, v.H
    parts = [EllipticCylinder(f, W / 2, D / 2, -H / 2, H / 2)]
    cy_c = v.canal_y
    canal = EllipticCylinder(f, v.cx, v.cy, -H / 2 - 6, H / 2 + 6, 0.0, cy_c)
    pw = 3.0 if v.name.startswith("T") or v.name == "C7" else 4.0
    xp = v.cx + pw * 0.8
    z_ped = (-0.15 * H, 0.45 * H)
    for s in (-1, 1):
        parts.append(ExtrudedCapsule(f, (s * xp, -D / 2 + 3), (s * xp, v.lamina_y + 1), pw, *z_ped))
    lt = 2.6 if v.name.startswith("T") else 3.0
    z_lam = (-0.45 * H, 0.25 * H)
    ly = v.lamina_y - lt * 0.6
    for s in (-1, 1):
        parts.append(ExtrudedCapsule(f, (s * xp, v.lamina_y + 1), (0.0, ly), lt, *z_lam))
    L, ang, rad = v.spinous
    ang = np.radians(ang)
    p0 = f.to_ras(0, ly - 1, -0.1 * H)
    p1 = p0 + L * (-np.cos(ang) * f.a - np.sin(ang) * f.u)
    parts.append(Capsule(p0, p1, rad))
    if v.name.startswith("L"):
        parts.append(Capsule(p0 - 0.3 * H * f.u, p1 - 0.3 * H * f.u, rad))
    reach, back, tr = v.tp
    for s in (-1, 1):
        q0 = f.to_ras(s * (xp + 2), cy_c, 0.1 * H)
        q1 = f.to_ras(s * reach, cy_c - back, 0.1 * H)
        parts.append(Capsule(q0, q1, tr))
    if v.name == "S1":  # sacral alae and a short median crest
        for s in (-1, 1):
            parts.append(ExtrudedCapsule(f, (s * 14, -2), (s * 40, -6), 12.0, -H / 2, H / 2))
    parts += [p for _, p in v.articular]
    return Union(parts, [canal]), [canal]


#: the facet joint's space between two articular processes (mm), and how far each
#: process's tip keeps from the other vertebra's bone elsewhere (mm)
FACET_GAP = 1.6
FACET_CLEARANCE = 3.0


def facet_radius(w: Vertebra) -> float:
    """Half the thickness of an articular process at the joint above ``w`` (mm): enough for
    a marrow core inside the 1.6 mm the phantom paints as cortex, as real processes have."""
    return 4.0 if w.name.startswith("L") or w.name == "S1" else 3.2


def facet_joint(v: Vertebra, w: Vertebra, side: int) -> dict:
    """The facet joint between ``v`` and the vertebra below it, ``w``, on one side (RAS).

    w's superior articular process rises from its pedicle, at the column just behind the
    canal, to 1 mm below the middle of the disc (its tip kept ``FACET_CLEARANCE`` from v's
    bone). v's inferior one hangs from v's lamina to 7 mm below that middle, behind the
    superior one at a thoracic level (a coronal joint) and behind and medial to it at a
    lumbar one (a sagittal joint), a joint space (``FACET_GAP``) apart; its tip keeps as
    far from w's bone as it can while reaching 4.5 mm below the superior one's tip (at
    lumbar levels the lordosis leaves 1.5 mm above w's lamina). They overlap over a few mm
    plus their round ends.  Keys: ``superior``, ``inferior`` (each (p0, p1)), ``bar`` (the
    inferior process's root on v's lamina), ``centre`` (the joint space's centre), ``out``
    (unit vector from the joint's axis to the side it opens to), ``radius``."""
    f = w.frame
    pw = 3.0 if w.name.startswith("T") or w.name == "C7" else 4.0
    xp = w.cx + pw * 0.8
    rad = facet_radius(w)
    step = 2 * rad + FACET_GAP
    if w.name.startswith("L") or w.name == "S1":
        sup = np.array([side * (xp + 1.0), w.lamina_y - 1.0])
        off = np.array([-side * 0.6, -0.8]) * step
    else:
        sup = np.array([side * xp, w.lamina_y])
        off = np.array([0.0, -1.0]) * step
    inf = sup + off
    zj = w.H / 2 + v.disc_below / 2                     # the disc's middle, in w's frame
    # the inferior process's root: where its line (vertical in w's frame) meets v's plane
    # 0.3 H below v's centre (lordosis tilts v's frame: found in v's own frame)
    z0 = zj + v.disc_below / 2 + 0.2 * v.H
    h0 = float(v.frame.local(f.to_ras(inf[0], inf[1], z0)[None])[2][0])
    h1 = float(v.frame.local(f.to_ras(inf[0], inf[1], z0 + 1.0)[None])[2][0])
    z_top = z0 + (-0.3 * v.H - h0) / (h1 - h0)
    zc = zj - 3.5
    vp = v.cx + (3.0 if v.name.startswith("T") or v.name == "C7" else 4.0) * 0.8
    out2 = side * np.array([-off[1], off[0]]) / step    # along the joint space: lateral (and back)
    # each process's tip stays FACET_CLEARANCE clear of the other vertebra's bone (a joint,
    # not a bridge; lordosis brings the lumbar arches close): measured on the solids
    v_solid, w_solid = vertebra_prims(v)[0], vertebra_prims(w)[0]

    def clear(solid, x, y, z, toward: float) -> bool:
        """The process's axis over the 8 mm from its tip at z (towards its root)."""
        zs = z + toward * np.linspace(0.0, 8.0, 9)
        pts = np.stack([f.to_ras(x, y, zz) for zz in zs])
        return float(solid.sdf(pts).min()) >= rad + FACET_CLEARANCE

    z_sup = zj - 1.0
    while z_sup > 0.3 * w.H + 1.0 and not clear(v_solid, sup[0], sup[1], z_sup, -1.0):
        z_sup -= 0.5
    z_inf = min(zj - 7.0, z_sup - 4.5)
    while z_inf < z_sup and not clear(w_solid, inf[0], inf[1], z_inf, 1.0):
        z_inf += 0.5
    return {"superior": (f.to_ras(sup[0], sup[1], 0.3 * w.H), f.to_ras(sup[0], sup[1], z_sup)),
            "inferior": (f.to_ras(inf[0], inf[1], z_top), f.to_ras(inf[0], inf[1], z_inf)),
            "bar": (v.frame.to_ras(side * vp, v.lamina_y + 1.0, -0.3 * v.H), f.to_ras(inf[0], inf[1], z_top)),
            "centre": f.to_ras(*(sup + inf) / 2, zc),
            "out": _unit(out2[0] * f.r + out2[1] * f.a), "radius": rad}


def vertebra_part_names(v: Vertebra) -> list[str]:
    """The SPINEPS sub-region of each part of :func:`vertebra_prims` (same order)."""
    names = ["body", "arch", "arch", "arch", "arch", "spinous"]
    if v.name.startswith("L"):
        names.append("spinous")
    names += ["costal_left", "costal_right"]
    if v.name == "S1":
        names += ["body", "body"]
    names += [name for name, _ in v.articular]
    return names


#: SPINEPS sub-region values of the phantom's parts
SPINEPS_PART_VALUES = {"arch": 41, "spinous": 42, "costal_left": 43, "costal_right": 44,
                       "articular_superior_left": 45, "articular_superior_right": 46,
                       "articular_inferior_left": 47, "articular_inferior_right": 48, "body": 49,
                       "cord": 60, "canal": 61, "disc": 100, "sacrum": 26}


def subregion_labels(r: "RenderedPhantom") -> np.ndarray:
    """A SPINEPS sub-region mask (seg-spine) of a rendered phantom: each voxel of a vertebra
    label takes the part of the vertebra nearest to it (body, arch, spinous or costal
    process; S1 and the rest of the sacrum: sacrum), then the canal, the cord and the discs
    where no vertebra is.  Articular processes (PhantomSpec.facets) take 45-48."""
    ph, g = r.phantom, r.geometry
    cv = _Canvas(g, 0.0)
    out = np.zeros(g.shape, dtype=np.uint8)
    value_of = {n: v for v, n in r.label_names.items()}
    for v in ph.vertebrae:
        lv = value_of.get(v.name)
        if lv is None and v.name == "S1":
            lv = value_of.get("sacrum_rest")
        solid, _ = vertebra_prims(v)
        sl = cv.box(solid.lo, solid.hi)
        if lv is None or sl is None:
            continue
        mine = r.labels[sl] == lv
        if not mine.any():
            continue
        pts = cv.points(sl)[mine]
        names = vertebra_part_names(v)
        d = np.stack([part.sdf(pts) for part in solid.parts], axis=1)
        best = np.asarray([SPINEPS_PART_VALUES["sacrum" if v.name == "S1" else names[i]]
                           for i in range(len(names))])[np.argmin(d, axis=1)]
        sub = out[sl]
        sub[mine] = best
    for vv, w in zip(ph.vertebrae[:-1], ph.vertebrae[1:]):
        pv, pw = vv.ras(0, vv.canal_y, 0), w.ras(0, w.canal_y, 0)
        for prim, key in ((Capsule(pv, pw, min(vv.cx, vv.cy) + 0.5), "canal"), (Capsule(pv, pw, 4.0), "cord"),
                          (disc_prim(vv, w), "disc")):
            sl, fr = cv.coverage(prim)
            if sl is not None:
                sub = out[sl]
                free = (fr >= 0.5) & ((sub == 0) | ((sub == SPINEPS_PART_VALUES["canal"]) & (key == "cord")))
                sub[free] = SPINEPS_PART_VALUES[key]
    return out


def tp_tip(v: Vertebra, side: int) -> np.ndarray:
    reach, back, _ = v.tp
    return v.frame.to_ras(side * reach, v.canal_y - back, 0.1 * v.H)


def spinous_point(v: Vertebra, frac: float) -> np.ndarray:
    L, ang, _ = v.spinous
    ang = np.radians(ang)
    lt = 2.6 if v.name.startswith("T") else 3.0
    f = v.frame
    p0 = f.to_ras(0, v.lamina_y - lt * 0.6 - 1, -0.1 * v.H)
    return p0 + frac * L * (-np.cos(ang) * f.a - np.sin(ang) * f.u)


def rib_prims(v: Vertebra, side: int) -> list[Capsule]:
    """A rib as a chain of capsules: head beside the body, neck to the transverse
    process, then curving laterally, forwards and down (clear of the vertebra by a
    joint space)."""
    f = v.frame
    n = int(v.name[1:])
    rr = 4.5 if n <= 10 else 3.8
    reach, back, tr = v.tp
    head = f.to_ras(side * (v.W / 2 + rr + 2.5), -v.D / 2 + 5, 0.4 * v.H)
    tip = tp_tip(v, side)
    tub = tip + (tr + rr + 2.5) * f.a + side * (-3.0) * f.r - 2.0 * f.u
    pts = [head, tub]
    lat = [(25, 8, -10), (55, 32, -26), (72, 75, -45), (68, 120, -60)]
    if n >= 11:
        lat = lat[:2]
    base = tub - f.origin
    for dx, dy, dz in lat:
        pts.append(f.origin + base + side * dx * f.r + dy * f.a + dz * f.u)
    return [Capsule(p, q, rr) for p, q in zip(pts[:-1], pts[1:])]


def disc_prim(v: Vertebra, w: Vertebra) -> Slab:
    fv, fw = v.frame, w.frame
    u = _unit(fv.u + fw.u)
    a = _unit((fv.a + fw.a) - ((fv.a + fw.a) @ u) * u)
    r = np.cross(a, u)
    top = fv.to_ras(0, 0, -v.H / 2)
    bottom = fw.to_ras(0, 0, w.H / 2)
    origin = (top + bottom) / 2
    A = (v.W + w.W) / 4 + 0.8
    B = (v.D + w.D) / 4 + 0.8
    return Slab(Frame(origin, r, a, u), A, B, top, fv.u, bottom, -fw.u)


def _build_vessels(ph: SpinePhantom, rng) -> None:
    """Descending aorta from T4 to L4 (left-anterior of the bodies), iliac arteries below."""
    path = []
    for v in ph.vertebrae:
        n = order_number(v.name)
        if n < 11 or n > 23:
            continue
        R = float(np.interp(n, [11, 19, 23], [12.5, 11.0, 9.0]))
        theta = np.radians(np.interp(n, [11, 19, 23], [48, 38, 20]))
        ex = -np.sin(theta)
        ey = np.cos(theta)
        rho = 1.0 / np.sqrt((ex / (v.W / 2)) ** 2 + (ey / (v.D / 2)) ** 2)
        dist = rho + 4.0 + R + 1.5
        zoff = -0.3 * v.H if v.name == "L4" else 0.0
        path.append((v.ras(dist * ex, dist * ey, zoff), R))
    # arch: from T4 forwards and up out of the region
    top, rt = path[0]
    v4 = ph.vertebra("T4")
    path.insert(0, (top + 40 * v4.frame.u + 35 * v4.frame.a + 15 * v4.frame.r, rt))
    ph.aorta_path = path
    bif, rb = path[-1]
    v5, s1 = ph.vertebra("L5"), ph.vertebra("S1")
    for side in (-1, 1):
        p1 = v5.ras(side * 22, v5.D / 2 + 12, 0)
        p2 = s1.ras(side * 42, s1.D / 2 + 14, -20)
        p3 = s1.ras(side * 65, s1.D / 2 + 22, -70)
        ph.iliac_paths.append([(bif, 6.0), (p1, 6.0), (p2, 5.5), (p3, 5.5)])
    # wall calcifications: on the wall, touching the lumen, all round
    segs = []
    for path_ in [ph.aorta_path[1:]] + ph.iliac_paths:
        for (p, R), (q, _) in zip(path_[:-1], path_[1:]):
            segs.append((p, q, R))
    n = ph.spec.vascular_calcifications
    picks = rng.choice(len(segs), size=n, replace=len(segs) < n)
    for k, s in enumerate(picks):
        p, q, R = segs[s]
        t = rng.uniform(0.2, 0.8)
        c = p + t * (q - p)
        ax = _unit(q - p)
        e1 = _unit(np.cross(ax, [0.3, 0.2, 0.9]) if abs(ax[2]) < 0.9 else np.cross(ax, [1, 0, 0]))
        e2 = np.cross(ax, e1)
        ang = rng.uniform(0, 2 * np.pi)
        radial = np.cos(ang) * e1 + np.sin(ang) * e2
        centre = c + radial * (R + 0.8)
        tang = np.cross(ax, radial)
        semi = np.array([1.2, rng.uniform(1.8, 3.0), rng.uniform(2.0, 4.0)])
        axes = np.stack([radial, tang, ax], axis=1)
        ph.calcifications.append(Calcification(f"vascular_{k + 1}", "vascular", [Ellipsoid(centre, axes, semi)],
                                                float(rng.uniform(550, 900))))


def vessel_prims(ph: SpinePhantom, extra: float = 0.0) -> list[Capsule]:
    out = []
    for path_ in [ph.aorta_path] + ph.iliac_paths + [p for _, _, p in ph.vein_paths]:
        for (p, R), (q, _) in zip(path_[:-1], path_[1:]):
            out.append(Capsule(p, q, R + extra))
    return out


# ---------------------------------------------------------------------- calcifications
_SCHEDULE = ["anterior_longitudinal_ligament", "costotransverse", "intracanal", "intervertebral_disc",
             "anterior_longitudinal_ligament", "interspinous", "foraminal", "posterior_longitudinal_ligament",
             "transverse_process", "anterior_longitudinal_ligament", "intervertebral_disc", "foraminal"]


def _bone_sdf_factory(ph: SpinePhantom):
    prims = []
    for v in ph.vertebrae:
        prims.append(vertebra_prims(v)[0])
        prims += ph.osteophyte_prims.get(v.name, [])
    for v in ph.vertebrae:
        if v.name.startswith("T"):
            for s in (-1, 1):
                prims += rib_prims(v, s)
    vessels = vessel_prims(ph, extra=1.5)

    def bone(p):
        p = np.atleast_2d(p)
        d = np.full(len(p), np.inf)
        for q in prims:
            inside = np.all((p >= q.lo - 10) & (p <= q.hi + 10), axis=1)
            if inside.any():
                d[inside] = np.minimum(d[inside], q.sdf(p[inside]))
        return d

    def vessel(p):
        p = np.atleast_2d(p)
        return np.min([q.sdf(p) for q in vessels], axis=0)

    return bone, vessels, vessel


def _lobes_clearance(lobes, bone, vessel) -> float:
    """Smallest distance from the lobes' surfaces to bone, or to vessels less 4 mm (a
    calcification next to a vessel wall is taken for the wall's, by readers and the map)."""
    pts = []
    for e in lobes:
        dirs = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1],
                         [1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1], [1, 1, -1], [-1, -1, -1],
                         [1, -1, 1], [-1, 1, 1]], float)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        for d in dirs:
            q = d / np.sqrt(((e.axes.T @ d) ** 2 / e.semi ** 2).sum())  # surface point along d
            pts.append(e.center + q)
    pts = np.array(pts)
    return float(min(bone(pts).min(), vessel(pts).min() - 4.0))


def _place_calcifications(ph: SpinePhantom, rng) -> None:
    spec = ph.spec
    top, bottom = COVERAGES[spec.coverage]
    names = [v.name for v in ph.vertebrae]
    levels = [lv for lv in LEVELS if names.index(lv.split("-")[0]) >= names.index(top)
              and names.index(lv.split("-")[1]) <= names.index(bottom)]
    bone, _, vessel = _bone_sdf_factory(ph)
    count = int(round(spec.calcifications_per_level * len(levels)))
    order = list(rng.permutation(len(levels)))
    cursor = int(rng.integers(len(_SCHEDULE)))
    placed = 0
    used: set[tuple[str, str]] = set()
    for attempt in range(count * 6):
        if placed >= count:
            break
        level = levels[order[attempt % len(order)]]
        v, w = ph.vertebra(level.split("-")[0]), ph.vertebra(level.split("-")[1])
        for tries in range(len(_SCHEDULE)):
            subsite = _SCHEDULE[(cursor + tries) % len(_SCHEDULE)]
            if subsite == "costotransverse" and not v.name.startswith("T"):
                subsite = "transverse_process"
            if subsite == "intervertebral_disc" and v.disc_below < 5.9:
                continue
            if (level, subsite) in used:
                continue
            calc = _make_calc(ph, v, w, level, subsite, rng)
            if calc is None or _lobes_clearance(calc.lobes, bone, vessel) < 2.2:
                continue
            if any(np.linalg.norm(calc.lobes[0].center - c.lobes[0].center) < 12 for c in ph.calcifications
                   if c.kind == "spinal"):
                continue
            used.add((level, subsite))
            calc.name = f"{level}_{subsite}_{placed + 1}"
            ph.calcifications.append(calc)
            placed += 1
            cursor += tries + 1
            break
    ph.notes.append(f"{placed} spinal calcifications placed over {len(levels)} levels")


def _level_frame(v: Vertebra, w: Vertebra, t: float) -> tuple[Frame, dict]:
    """Frame between two vertebrae at fraction t (0 = v's body centre, 1 = w's), origin
    on the canal centre line, with interpolated sizes."""
    def lerp(a, b):
        return (1 - t) * np.asarray(a, float) + t * np.asarray(b, float)
    u = _unit(lerp(v.frame.u, w.frame.u))
    a = lerp(v.frame.a, w.frame.a)
    a = _unit(a - (a @ u) * u)
    r = np.cross(a, u)
    body = lerp(v.frame.origin, w.frame.origin)
    dims = {"W": lerp(v.W, w.W), "D": lerp(v.D, w.D), "cx": lerp(v.cx, w.cx), "cy": lerp(v.cy, w.cy)}
    canal = body + (-dims["D"] / 2 - dims["cy"]) * a
    return Frame(canal, r, a, u), dims


def _disc_t(v: Vertebra, w: Vertebra) -> float:
    """Fraction between body centres at the middle of the disc."""
    total = v.H / 2 + v.disc_below + w.H / 2
    return (v.H / 2 + v.disc_below / 2) / total


def _make_calc(ph, v: Vertebra, w: Vertebra, level: str, subsite: str, rng) -> Calcification | None:
    hu = float(rng.uniform(450, 900))
    td = _disc_t(v, w)
    lumbar = v.name.startswith("L")
    eye = np.eye(3)
    pattern = "punctate"
    lobes = []
    if subsite == "anterior_longitudinal_ligament":
        t = td + rng.uniform(-0.05, 0.05)
        f, d = _level_frame(v, w, t)
        ang = np.radians(rng.uniform(-45, 45))
        ex, ey = np.sin(ang), np.cos(ang)
        rho = 1.0 / np.sqrt((ex / (d["W"] / 2 + 0.8)) ** 2 + (ey / (d["D"] / 2 + 0.8)) ** 2)
        linear = rng.uniform() < 0.5
        thick = 1.0 if linear else rng.uniform(1.4, 2.2)
        radial_c = rho + 2.6 + thick
        centre = f.to_ras(radial_c * ex, d["D"] / 2 + d["cy"] + radial_c * ey, 0.0)
        radial = _unit(ex * f.r + ey * f.a)
        tang = np.cross(f.u, radial)
        if linear:
            pattern = "linear"
            half = max(5.5, 0.5 * np.linalg.norm(v.frame.origin - w.frame.origin) * rng.uniform(0.5, 0.62))
            lobes.append(Ellipsoid(centre, np.stack([radial, tang, f.u], 1), [thick, 1.3, half]))
        else:
            lobes.append(Ellipsoid(centre, np.stack([radial, tang, f.u], 1), [thick, thick * 1.2, thick * 1.4]))
    elif subsite == "intervertebral_disc":
        f, d = _level_frame(v, w, td)
        r_ = min(2.2, d["W"] / 5)
        h_ = min(1.6, v.disc_below / 2 - 1.2)
        if h_ < 1.0:
            return None
        x = rng.uniform(-0.3, 0.3) * d["W"] / 2
        y = d["D"] / 2 + d["cy"] + rng.uniform(-0.2, 0.3) * d["D"] / 2
        lobes.append(Ellipsoid(f.to_ras(x, y, 0.0), np.stack([f.r, f.a, f.u], 1), [r_, r_ * 0.9, h_]))
    elif subsite == "posterior_longitudinal_ligament":
        f, d = _level_frame(v, w, td + rng.uniform(-0.05, 0.05))
        r_ = rng.uniform(1.3, 1.6)
        x = rng.uniform(-0.4, 0.4) * d["cx"]
        y = d["cy"] - 1.5
        lobes.append(Ellipsoid(f.to_ras(x, y, 0.0), np.stack([f.r, f.a, f.u], 1), [r_ * 1.3, r_, r_ * 1.2]))
    elif subsite == "intracanal":
        f, d = _level_frame(v, w, td + rng.uniform(-0.08, 0.08))
        if lumbar and rng.uniform() < 0.5:
            pattern = "pseudotumoral"
            c = f.to_ras(rng.uniform(-2, 2), -d["cy"] * 0.25, 0.0)
            for k in range(4):
                off = rng.normal(0, 1.0, 3) * np.array([2.5, 1.2, 3.0])
                lobes.append(Ellipsoid(c + off[0] * f.r + off[1] * f.a + off[2] * f.u, eye,
                                       [rng.uniform(3.2, 4.2)] * 3))
        else:
            ang = rng.uniform(0, 2 * np.pi)
            rr = rng.uniform(0.25, 0.45)
            x, y = rr * d["cx"] * np.cos(ang), -abs(rr * d["cy"] * np.sin(ang)) - 1.0
            r_ = rng.uniform(1.4, 2.0)
            lobes.append(Ellipsoid(f.to_ras(x, y, 0.0), eye, [r_, r_, r_ * 1.2]))
    elif subsite == "foraminal":
        f, d = _level_frame(v, w, td - 0.05)
        side = rng.choice([-1, 1])
        if rng.uniform() < 0.45:
            pattern = "pseudotumoral"
            c = f.to_ras(side * (d["cx"] + 8.5), -1.0, 0.0)
            for k in range(4):
                off = rng.normal(0, 1.0, 3) * np.array([2.5, 1.5, 2.5])
                lobes.append(Ellipsoid(c + off[0] * f.r + off[1] * f.a + off[2] * f.u, eye,
                                       [rng.uniform(3.2, 4.0)] * 3))
        else:
            r_ = rng.uniform(1.6, 2.2)
            lobes.append(Ellipsoid(f.to_ras(side * (d["cx"] + 5.5), -0.5, 0.0), eye, [r_, r_, r_ * 1.2]))
    elif subsite == "interspinous":
        frac = rng.uniform(0.3, 0.4)
        c = 0.5 * (spinous_point(v, frac) + spinous_point(w, frac))
        if rng.uniform() < 0.3:
            pattern = "pseudotumoral"
            for k in range(4):
                off = rng.normal(0, 1.0, 3) * np.array([1.0, 2.5, 1.5])
                lobes.append(Ellipsoid(c + off[0] * v.frame.r + off[1] * v.frame.a + off[2] * v.frame.u, eye,
                                       [rng.uniform(3.0, 3.6)] * 3))
        else:
            r_ = rng.uniform(1.5, 2.0)
            lobes.append(Ellipsoid(c, eye, [r_, r_ * 1.2, r_]))
    elif subsite in ("costotransverse", "transverse_process"):
        side = rng.choice([-1, 1])
        tip = tp_tip(v, side)
        root = v.frame.to_ras(side * (v.cx + 5), v.canal_y, 0.1 * v.H)
        tr = v.tp[2]
        down = -v.frame.u
        if subsite == "costotransverse":
            c = tip + down * (tr + 4.0) + v.frame.a * 1.0 - side * v.frame.r * 2.0
        elif v.name.startswith("T"):
            # behind the process, away from the rib neck that runs in front of it
            c = root + 0.5 * (tip - root) - v.frame.a * (tr + 3.8)
        else:
            c = root + 0.65 * (tip - root) + down * (tr + 4.0)
        if subsite == "transverse_process" and rng.uniform() < 0.35:
            pattern = "pseudotumoral"
            for k in range(4):
                off = rng.normal(0, 1.0, 3) * np.array([2.5, 1.5, 1.0])
                lobes.append(Ellipsoid(c + down * 3.5 + off[0] * v.frame.r + off[1] * v.frame.a + off[2] * v.frame.u,
                                       eye, [rng.uniform(3.0, 3.8)] * 3))
        else:
            r_ = rng.uniform(1.5, 2.0)
            lobes.append(Ellipsoid(c, eye, [r_, r_, r_]))
    else:  # pragma: no cover
        return None
    return Calcification("", "spinal", lobes, hu, level, subsite, pattern)


# ---------------------------------------------------------------------- rendering
def default_geometry(ph: SpinePhantom) -> Geometry:
    spec = ph.spec
    sx, sy, sz = (float(s) for s in spec.spacing)
    s0, s1 = ph.scan_s
    nk = int(np.floor((s1 - s0) / sz)) + 1
    if spec.n_slices is not None and spec.n_slices > nk:
        s0 -= (spec.n_slices - nk) * sz   # a longer scan reaches further down, into the pelvis
        nk = int(spec.n_slices)
    d = np.array(spec.direction_ras, float).reshape(3, 3) if spec.direction_ras is not None else np.diag(
        [-1.0, -1.0, 1.0])
    centres = np.array([v.frame.origin for v in ph.vertebrae])
    if spec.size_xy is not None:
        ni, nj = int(spec.size_xy[0]), int(spec.size_xy[1])
        mid_r = 0.0
        mid_a = float(np.mean(centres[:, 1])) + 30.0   # the spine lies in the back half of the body
    else:
        lo = centres[:, :2].min(axis=0) - spec.margin_mm
        hi = centres[:, :2].max(axis=0) + spec.margin_mm
        lo[1] -= 40.0  # room for the spinous processes
        hi[1] += 15.0  # and the aorta
        ni = int(np.ceil((hi[0] - lo[0]) / sx))
        nj = int(np.ceil((hi[1] - lo[1]) / sy))
        mid_r, mid_a = (lo + hi) / 2
    size = np.array([ni, nj, nk])
    sp = np.array([sx, sy, sz])
    centre = np.array([mid_r, mid_a, (s0 + s1) / 2])
    origin = centre - d @ ((size - 1) * sp / 2.0)
    if spec.direction_ras is None:
        # the slice positions fall on the scan's S range exactly
        origin[2] = s0
    return Geometry.create(size, sp, origin, d)


@dataclass
class RenderedPhantom:
    ct: np.ndarray                 # int16 HU, [k, j, i]
    labels: np.ndarray             # uint8, in the chosen convention
    geometry: Geometry
    truth: Table
    truth_voxels: list[np.ndarray]  # flat indices of each truth calcification (coverage >= 0.5)
    phantom: SpinePhantom
    label_names: dict[int, str]


class _Canvas:
    """Float image painted by primitives, each on the voxel box around it."""

    def __init__(self, geometry: Geometry, background: float):
        self.g = geometry
        self.arr = np.full(geometry.shape, background, dtype=np.float32)
        self.h = float(np.cbrt(np.prod(geometry.spacing)))
        self.inv = geometry.ras_to_ijk_matrix()

    def box(self, lo, hi):
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        ijk = self.g.ras_to_ijk(corners)
        a = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - 1, 0)
        b = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 2, np.asarray(self.g.size_ijk))
        if np.any(b <= a):
            return None
        return (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))

    def points(self, sl):
        kk, jj, ii = np.meshgrid(np.arange(sl[0].start, sl[0].stop), np.arange(sl[1].start, sl[1].stop),
                                 np.arange(sl[2].start, sl[2].stop), indexing="ij")
        ijk = np.stack([ii, jj, kk], axis=-1).astype(np.float64)
        return self.g.ijk_to_ras(ijk)

    def coverage(self, prim, sl=None, pts=None):
        if sl is None:
            sl = self.box(prim.lo, prim.hi)
            if sl is None:
                return None, None
        if pts is None:
            pts = self.points(sl)
        d = prim.sdf(pts)
        return sl, np.clip(0.5 - d / self.h, 0.0, 1.0).astype(np.float32)

    def paint(self, sl, frac, value):
        if sl is None:
            return
        sub = self.arr[sl]
        sub += frac * (np.float32(value) - sub)


def render_phantom(ph: SpinePhantom, geometry: Geometry | None = None, progress=None) -> RenderedPhantom:
    """CT (int16 HU), label map in the spec's convention and ground truth."""
    spec = ph.spec
    g = geometry if geometry is not None else default_geometry(ph)
    rng = np.random.default_rng(spec.seed + 1000)
    cv = _Canvas(g, HU["air"])
    labels = np.zeros(g.shape, dtype=np.uint8)
    values = _label_values(spec.convention)

    # body outline (elliptic cylinder around the spine's mean position) with a fat layer
    centres = np.array([v.frame.origin for v in ph.vertebrae])
    body_c = np.array([0.0, float(centres[:, 1].mean()) + 55.0])
    for k in range(g.shape[0]):
        sl = (slice(k, k + 1), slice(0, g.shape[1]), slice(0, g.shape[2]))
        p = cv.points(sl)
        x, y = p[..., 0] - body_c[0], p[..., 1] - body_c[1]
        q = np.sqrt((x / 165.0) ** 2 + (y / 125.0) ** 2)
        d_out = (q - 1.0) * 125.0
        f_body = np.clip(0.5 - d_out / cv.h, 0, 1)
        f_soft = np.clip(0.5 - (d_out + 14.0) / cv.h, 0, 1)
        a = cv.arr[sl]
        a += f_body * (HU["fat"] - a)
        a += f_soft * (HU["soft"] - a)
    if progress:
        progress(0.1, "body")
    # lungs in the chest
    for side in (-1, 1):
        vs = [v for v in ph.vertebrae if v.name.startswith("T") and order_number(v.name) <= 18]
        if not vs:
            continue
        for v, w in zip(vs[:-1], vs[1:]):
            for vv in (v,):
                f = vv.frame
                lung = EllipticCylinder(Frame(f.origin, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                                              np.array([0, 0, 1.0])), 55.0, 70.0, -vv.H / 2 - vv.disc_below,
                                        vv.H / 2 + 1, side * (vv.W / 2 + 90.0), 25.0)
                sl, fr = cv.coverage(lung)
                if sl is not None:
                    cv.paint(sl, fr, HU["lung"])
                    if "lung_left" in values:
                        labels[sl][fr >= 0.5] = values["lung_left" if side < 0 else "lung_right"]
    # canal: CSF and cord, along the canal centre line
    for v, w in zip(ph.vertebrae[:-1], ph.vertebrae[1:]):
        pv, pw = v.ras(0, v.canal_y, 0), w.ras(0, w.canal_y, 0)
        for prim, hu, key in ((Capsule(pv, pw, min(v.cx, v.cy) + 0.5), HU["csf"], "spinal_canal"),
                              (Capsule(pv, pw, 4.0), HU["cord"], "spinal_cord")):
            sl, fr = cv.coverage(prim)
            if sl is not None:
                cv.paint(sl, fr, hu)
                if key in values:
                    labels[sl][fr >= 0.5] = values[key]
    if progress:
        progress(0.2, "discs")
    for v, w in zip(ph.vertebrae[:-1], ph.vertebrae[1:]):
        sl, fr = cv.coverage(disc_prim(v, w))
        if sl is not None:
            cv.paint(sl, fr, HU["disc"])
            key = f"disc:{v.name}-{w.name}"
            if key in values:
                sub = labels[sl]
                sub[fr >= 0.5] = values[key]
    # vertebrae: cortex, then the trabecular core 1.6 mm inside
    label_rng = np.random.default_rng(spec.seed + 555)
    for n, v in enumerate(ph.vertebrae):
        solid, _ = vertebra_prims(v)
        osteo = ph.osteophyte_prims.get(v.name, [])
        painted = Union(solid.parts + osteo, solid.minus) if osteo else solid
        sl = cv.box(painted.lo, painted.hi)
        if sl is None:
            continue
        pts = cv.points(sl)
        d = painted.sdf(pts)
        f_out = np.clip(0.5 - d / cv.h, 0, 1).astype(np.float32)
        f_core = np.clip(0.5 - (d + 1.6) / cv.h, 0, 1).astype(np.float32)
        cv.paint(sl, f_out, HU["cortex"])
        cv.paint(sl, f_core, HU["trabecular"] + rng.normal(0, 8))
        key = v.name
        lv = values.get(key) or (values.get("sacrum") if v.name == "S1" else None)
        if lv is not None:
            # the label follows the vertebra without its osteophytes (as a model's would),
            # off by the spec's label error
            d_label = solid.sdf(pts) if osteo else d
            if spec.label_error_mm > 0:
                from .phantom_hard import label_error_field
                d_label = d_label - label_error_field(pts, spec.label_error_mm, cv.h, label_rng)
            sub = labels[sl]
            sub[d_label <= 0] = lv
        if progress:
            progress(0.2 + 0.4 * (n + 1) / len(ph.vertebrae), f"vertebra {v.name}")
    # sacrum below S1 (S2 and down), tilted like S1
    s1 = ph.vertebra("S1")
    f = s1.frame
    rest = Capsule(f.to_ras(0, -4, -s1.H / 2 - 8), f.to_ras(0, -30, -s1.H / 2 - 60), 16.0)
    sl, fr = cv.coverage(rest)
    if sl is not None:
        cv.paint(sl, fr, HU["cortex"] * 0.6)
        key = "sacrum_rest"
        if key in values:
            sub = labels[sl]
            sub[(fr >= 0.5) & (sub == 0)] = values[key]
    # ribs
    for v in ph.vertebrae:
        if not v.name.startswith("T"):
            continue
        for side in (-1, 1):
            for cap in rib_prims(v, side):
                sl, fr = cv.coverage(cap)
                if sl is None:
                    continue
                cv.paint(sl, fr, HU["rib_cortex"])
                core = Capsule(cap.p0, cap.p1, cap.radius - 1.5)
                _, fc = cv.coverage(core, sl)
                cv.paint(sl, fc, HU["rib_marrow"])
                key = f"rib_{'left' if side < 0 else 'right'}_{v.name[1:]}"
                if key in values:
                    sub = labels[sl]
                    sub[(fr >= 0.5) & (sub == 0)] = values[key]
    if progress:
        progress(0.7, "vessels")
    # aorta and iliac arteries: wall, then lumen
    lumen_hu = HU["lumen_contrast"] if spec.contrast else HU["lumen_plain"]
    for path_, key in [(ph.aorta_path, "aorta")] + [(p, k) for p, k in zip(ph.iliac_paths,
                                                                            ("iliac_artery_left",
                                                                             "iliac_artery_right"))]:
        for (p, R), (q, _) in zip(path_[:-1], path_[1:]):
            sl, fw = cv.coverage(Capsule(p, q, R + 1.5))
            if sl is None:
                continue
            cv.paint(sl, fw, HU["wall"])
            _, fl = cv.coverage(Capsule(p, q, R), sl)
            cv.paint(sl, fl, lumen_hu)
            if key in values:
                sub = labels[sl]
                sub[(fw >= 0.5) & (sub == 0)] = values[key]
    if ph.vein_paths:
        from .phantom_hard import paint_veins
        paint_veins(ph, cv, labels, values)
    # calcifications
    truth_voxels = []
    rows = []
    for n, c in enumerate(ph.calcifications, start=1):
        u = Union(c.lobes)
        sl = cv.box(u.lo, u.hi)
        if sl is None:
            truth_voxels.append(np.zeros(0, np.int64))
            rows.append(_truth_row(n, c, None, None, g, 0.0))
            continue
        pts = cv.points(sl)
        d = u.sdf(pts)
        fr = np.clip(0.5 - d / cv.h, 0, 1).astype(np.float32)
        cv.paint(sl, fr, c.hu)
        kk, jj, ii = np.nonzero(fr >= 0.5)
        flat = np.ravel_multi_index((kk + sl[0].start, jj + sl[1].start, ii + sl[2].start), g.shape)
        truth_voxels.append(np.sort(flat))
        rows.append(_truth_row(n, c, fr, pts, g, cv))
    if progress:
        progress(0.85, "noise")
    ct = np.empty(g.shape, dtype=np.int16)
    if spec.shoulder_noise_sd is not None:
        from .phantom_hard import noise_sd_per_slice
        sd_k = noise_sd_per_slice(ph, g)
    else:
        sd_k = np.full(g.shape[0], float(spec.noise_sd))
    for k in range(g.shape[0]):
        sl = cv.arr[k]
        noisy = sl + rng.normal(0.0, sd_k[k], size=sl.shape).astype(np.float32) if sd_k[k] > 0 else sl
        ct[k] = np.clip(np.round(noisy), -1024, 3071).astype(np.int16)
    if ph.osteophyte_prims:
        from .phantom_hard import osteophyte_truth
        osteophyte_truth(ph, cv, g, rows, truth_voxels)
    truth = Table(TRUTH_COLUMNS, rows, name="truth", description="Spine phantom ground truth")
    names = {v: k for k, v in values.items()}
    return RenderedPhantom(ct, labels, g, truth, truth_voxels, ph, names)


def _label_values(convention: str) -> dict[str, int]:
    """Structure name -> label value in the phantom's label map."""
    out: dict[str, int] = {}
    if convention not in conv.TABLES:
        raise ValueError(f"convention must be one of {', '.join(conv.TABLES)}")
    table = conv.structure_names(convention)
    for v, name in table.items():
        out.setdefault(name, v)      # a name with several values (SPINEPS' sacrum 26, 29-33): the first
    if convention == "totalsegmentator":
        out["sacrum_rest"] = out["sacrum"]
        out["lung_left"] = out["lung_lower_lobe_left"]
        out["lung_right"] = out["lung_lower_lobe_right"]
        out.pop("sacrum")
    else:
        # S1 and the rest of the sacrum share the sacrum label
        out["sacrum_rest"] = out["sacrum"]
        out.setdefault("S1", out["sacrum"])
        out.pop("sacrum")
    return out


TRUTH_COLUMNS = [
    Column("lesion_id", "int", "", "Phantom calcification number"),
    Column("name", "string", "", "Phantom calcification name"),
    Column("kind", "string", "", "spinal (to be mapped); vascular (aortic/iliac wall) or osteophyte (bone "
                                 "outgrowth, spur): must not be reported"),
    Column("level", "string", "", "True disco-vertebral level (spinal only)"),
    Column("segment", "string", "", "True segment: anterior, intracanal or posterior (spinal only)"),
    Column("subsite", "string", "", "True sub-site (spinal only)"),
    Column("pattern", "string", "", "True pattern: linear, punctate or pseudotumoral (spinal only)"),
    Column("center_r_mm", "double", "mm", "Centroid of the rendered calcification (coverage-weighted), R (RAS)"),
    Column("center_a_mm", "double", "mm", "Centroid, A (RAS)"),
    Column("center_s_mm", "double", "mm", "Centroid, S (RAS)"),
    Column("volume_mm3", "double", "mm3", "Volume of the rendered calcification: sum of voxel coverage x voxel volume"),
    Column("diameter_mm", "double", "mm", "Largest extent of the calcification's lobes"),
    Column("peak_hu", "double", "HU", "Calcification density before partial volume and noise"),
]


def _truth_row(n, c: Calcification, fr, pts, g: Geometry, cv) -> dict:
    row = {"lesion_id": n, "name": c.name, "kind": c.kind, "level": c.level or None,
           "segment": c.segment or None, "subsite": c.subsite or None, "pattern": c.pattern or None,
           "peak_hu": c.hu}
    lo = np.min([e.center - e.semi.max() for e in c.lobes], axis=0)
    hi = np.max([e.center + e.semi.max() for e in c.lobes], axis=0)
    row["diameter_mm"] = float(np.max(hi - lo))
    if fr is None or float(fr.sum()) == 0:
        row.update({"center_r_mm": None, "center_a_mm": None, "center_s_mm": None, "volume_mm3": 0.0})
        return row
    w = fr.astype(np.float64)
    cen = (pts * w[..., None]).reshape(-1, 3).sum(axis=0) / w.sum()
    row.update({"center_r_mm": cen[0], "center_a_mm": cen[1], "center_s_mm": cen[2],
                "volume_mm3": float(w.sum() * g.voxel_volume_mm3)})
    return row


def vertebra_body_points(ph: SpinePhantom, geometry: Geometry | None = None) -> list[tuple[str, np.ndarray]]:
    """One point per vertebral body (its centre), for point-list inputs; only bodies
    whose centre lies inside the scan."""
    out = []
    for v in ph.vertebrae:
        c = v.frame.origin
        if geometry is None or geometry.contains_ras(c[None])[0]:
            out.append((v.name, c.copy()))
    return out


def make_spine_phantom(coverage: str = "tap", spacing=(0.7, 0.7, 1.25), size_xy=(512, 512), seed: int = 0,
                       convention: str = "totalsegmentator", contrast: bool = True, noise_sd: float = 12.0,
                       direction_ras=None, geometry: Geometry | None = None, progress=None,
                       **kw) -> RenderedPhantom:
    """Build and render a spine phantom in one call (see :class:`PhantomSpec`)."""
    spec = PhantomSpec(coverage=coverage, spacing=tuple(spacing), size_xy=size_xy, seed=seed, convention=convention,
                       contrast=contrast, noise_sd=noise_sd, direction_ras=direction_ras, **kw)
    ph = build_phantom(spec)
    return render_phantom(ph, geometry, progress)
