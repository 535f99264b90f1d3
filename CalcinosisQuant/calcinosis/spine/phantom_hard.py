"""The hard cases of real spine CTs, added to the spine phantom (:mod:`.phantom`) on request.

The base phantom keeps every calcification clear of bone by 2.2 mm, every disc at least
5.9 mm tall, its only enhanced vessels the aorta and iliac arteries, its noise even and its
labels exact.  Real scans have (see the project's DOMAIN notes):

* **calcifications against bone** (``bone_touching``): against the cortex of the body
  (anterior and posterior longitudinal ligaments), filling thin discs between the end
  plates, in the costotransverse joint between the transverse process and the rib
  tubercle, on the transverse process, against the spinous process, in a facet joint
  (between two articular processes, with ``facets``) - each touching the bone
  (overlapping its surface by 0.3 mm);
* **facet joints** (``facets``, :func:`.phantom.facet_joint`): the articular processes,
  a superior pair rising from each vertebra's pedicles and an inferior pair hanging from
  the lamina of the one above, a 1.6 mm joint space apart (coronal joints at thoracic
  levels, sagittal and oblique at lumbar ones);
* **thin discs** (``thin_discs``): thoracic discs 3-5 mm tall;
* **osteophytes and end-plate spurs** (``osteophytes``): bony beaks at the rims of the
  end plates, cortex around marrow continuous with the body's, *not* in the vertebra
  label (as a model may miss them): bone, never to be reported (truth ``kind`` =
  ``osteophyte``);
* **contrast-filled veins** (``veins``): the inferior vena cava (right of the bodies, T11
  to L5), the common iliac veins, the renal veins and arteries at L1-L2 and the azygos
  vein (right-posterior of the thoracic bodies) at portal-venous densities (135-160 HU,
  so that noise cuts them into fragments above 130 HU); the vena cava and iliac veins
  carry their TotalSegmentator labels, the renal vessels and the azygos none (as in
  TotalSegmentator ``total``);
* **noisy shoulders** (``shoulder_noise_sd``): the noise rises linearly over the scan's
  cranial 80 mm to that value;
* **imprecise labels** (``label_error_mm``): each vertebra's label surface moved out or in
  by up to that distance (uniform, per vertebra), plus a smooth local wobble of half a
  voxel.
"""

from __future__ import annotations

import numpy as np

from calcinosis.core.geometry import Geometry

from .phantom import (Calcification, SpinePhantom, _bone_sdf_factory, _disc_t, _level_frame, _unit, facet_joint,
                      spinous_point, tp_tip)
from .sdf import Capsule, Ellipsoid

VEIN_HU = {"inferior_vena_cava": 145.0, "iliac_vena": 138.0, "renal_vein": 150.0, "renal_artery": 260.0,
           "azygos": 150.0}


# ---------------------------------------------------------------------- veins
def build_veins(ph: SpinePhantom) -> None:
    """Vena cava, iliac veins, renal veins and arteries, azygos (see the module docstring)."""
    names = [v.name for v in ph.vertebrae]

    def beside(v, side: int, theta_deg: float, gap: float, R: float, z: float = 0.0):
        th = np.radians(theta_deg)
        ex, ey = side * np.sin(th), np.cos(th)
        rho = 1.0 / np.sqrt((ex / (v.W / 2)) ** 2 + (ey / (v.D / 2)) ** 2)
        return v.ras((rho + gap + R) * ex, (rho + gap + R) * ey, z)

    ivc = [ph.vertebra(n) for n in ("T11", "T12", "L1", "L2", "L3", "L4", "L5") if n in names]
    path = [(beside(v, +1, 40 if v.name < "L" else 35, 3.0, 10.0), 10.0) for v in ivc]
    ph.vein_paths.append(("inferior_vena_cava", VEIN_HU["inferior_vena_cava"], path))
    if "L5" in names and "S1" in names:
        v5, s1 = ph.vertebra("L5"), ph.vertebra("S1")
        conf = path[-1][0]
        for side, key in ((-1, "iliac_vena_left"), (1, "iliac_vena_right")):
            p1 = v5.ras(side * 16, v5.D / 2 + 6, -v5.H / 2)
            p2 = s1.ras(side * 36, s1.D / 2 + 6, -18)
            p3 = s1.ras(side * 58, s1.D / 2 + 12, -65)
            ph.vein_paths.append((key, VEIN_HU["iliac_vena"], [(conf, 7.0), (p1, 7.0), (p2, 6.5), (p3, 6.5)]))
    if "L1" in names:
        v = ph.vertebra("L1")
        start = beside(v, +1, 40, 3.0, 10.0, -0.3 * v.H)
        right = start + 55.0 * v.frame.r - 5.0 * v.frame.a
        ph.vein_paths.append(("", VEIN_HU["renal_vein"], [(start, 5.0), (right, 5.0)]))
        # the left renal vein passes in front of the aorta to the left kidney
        front = v.ras(0.0, v.D / 2 + 32.0, -0.3 * v.H)
        left = v.ras(-75.0, v.D / 2 + 4.0, -0.3 * v.H)
        ph.vein_paths.append(("", VEIN_HU["renal_vein"], [(start, 5.0), (front, 5.0), (left, 5.0)]))
        aorta = beside(v, -1, 38, 4.0, 11.0, -0.1 * v.H)
        for side in (-1, 1):
            tip = aorta + side * 60.0 * v.frame.r - 8.0 * v.frame.a
            ph.vein_paths.append(("", VEIN_HU["renal_artery"], [(aorta, 3.0), (tip, 3.0)]))
    az = [ph.vertebra(n) for n in names if n.startswith("T") and 4 <= int(n[1:]) <= 12]
    if len(az) >= 2:
        ph.vein_paths.append(("", VEIN_HU["azygos"], [(beside(v, +1, 50, 3.0, 4.0), 4.0) for v in az]))


def paint_veins(ph: SpinePhantom, cv, labels: np.ndarray, values: dict) -> None:
    """Wall (1.2 mm) and enhanced lumen of every vein path, with its label when the
    convention names it."""
    for key, hu, path in ph.vein_paths:
        for (p, R), (q, _) in zip(path[:-1], path[1:]):
            sl, fw = cv.coverage(Capsule(p, q, R + 1.2))
            if sl is None:
                continue
            cv.paint(sl, fw, 45.0)
            _, fl = cv.coverage(Capsule(p, q, R), sl)
            cv.paint(sl, fl, hu)
            if key and key in values:
                sub = labels[sl]
                sub[(fw >= 0.5) & (sub == 0)] = values[key]


# ---------------------------------------------------------------------- osteophytes
def place_osteophytes(ph: SpinePhantom, rng) -> None:
    """Beaks at the rims of the end plates: osteophytes (7-9 mm, 3.3 mm thick) and spurs
    (4-5 mm, 2.4 mm thick), anterior or lateral, pointing outwards and towards the disc."""
    cands = [v for v in ph.vertebrae[1:-1] if v.name != "S1"]
    lo, hi = ph.scan_s
    cands = [v for v in cands if lo + 15 < v.frame.origin[2] < hi - 15]
    n = min(ph.spec.osteophytes, len(cands))
    for k, v in enumerate(rng.choice(len(cands), size=n, replace=False)):
        v = cands[int(v)]
        spur = k % 2 == 1
        ang = np.radians(rng.uniform(-70, 70))
        ex, ey = np.sin(ang), np.cos(ang)
        rho = 1.0 / np.sqrt((ex / (v.W / 2)) ** 2 + (ey / (v.D / 2)) ** 2)
        end = rng.choice([-1, 1])               # inferior or superior end plate
        radius = 2.4 if spur else 3.3
        length = rng.uniform(4.0, 5.0) if spur else rng.uniform(7.0, 9.0)
        z = end * (v.H / 2 - radius + 0.3)
        base = v.ras((rho - 4.0) * ex, (rho - 4.0) * ey, z)
        tip = v.ras((rho + length) * ex, (rho + length) * ey, z + end * 0.5 * length)
        ph.osteophyte_prims.setdefault(v.name, []).append(Capsule(base, tip, radius))
    ph.notes.append(f"{n} osteophytes/spurs")


def osteophyte_truth(ph: SpinePhantom, cv, g: Geometry, rows: list, truth_voxels: list) -> None:
    """A truth row (kind ``osteophyte``) per beak: its voxels outside the vertebra."""
    from .phantom import vertebra_prims
    n = len(rows)
    for name, prims in ph.osteophyte_prims.items():
        solid, _ = vertebra_prims(ph.vertebra(name))
        for cap in prims:
            n += 1
            sl = cv.box(cap.lo, cap.hi)
            pts = cv.points(sl)
            inside = (cap.sdf(pts) <= 0) & (solid.sdf(pts) > 0.5)
            kk, jj, ii = np.nonzero(inside)
            flat = np.ravel_multi_index((kk + sl[0].start, jj + sl[1].start, ii + sl[2].start), g.shape)
            truth_voxels.append(np.sort(flat))
            rows.append({"lesion_id": n, "name": f"{name}_osteophyte_{n}", "kind": "osteophyte", "level": None,
                         "segment": None, "subsite": None, "pattern": None,
                         "center_r_mm": None, "center_a_mm": None, "center_s_mm": None,
                         "volume_mm3": float(inside.sum() * g.voxel_volume_mm3),
                         "diameter_mm": float(np.linalg.norm(cap.p1 - cap.p0) + 2 * cap.radius), "peak_hu": 750.0})


# ---------------------------------------------------------------------- calcifications against bone
def _push(c0: np.ndarray, direction: np.ndarray, semi: float, bone, overlap: float = 0.3,
          max_mm: float = 25.0) -> np.ndarray | None:
    """Move a centre from ``c0`` along ``direction`` until the lobe (``semi`` along that
    direction) overlaps the bone's surface by ``overlap`` mm; None if no bone is met."""
    d = _unit(direction)
    steps = np.arange(0.0, max_mm, 0.1)
    dist = bone(c0[None, :] + steps[:, None] * d[None, :])
    hit = np.flatnonzero(dist <= semi - overlap)
    if hit.size == 0:
        return None
    return c0 + steps[hit[0]] * d


def _touching(ph: SpinePhantom, v, w, level: str, subsite: str, rng, bone) -> Calcification | None:
    hu = float(rng.uniform(500, 1100))
    td = _disc_t(v, w)
    eye = np.eye(3)
    pattern = "punctate"
    if subsite == "anterior_longitudinal_ligament":
        t = 0.5 * td                              # the lower half of the upper body
        f, d = _level_frame(v, w, t)
        ang = np.radians(rng.uniform(-20, 20))      # in front, between the aorta and the vena cava
        radial = _unit(np.sin(ang) * f.r + np.cos(ang) * f.a)
        body = v.frame.origin + t * (w.frame.origin - v.frame.origin)
        c0 = body + (d["D"] / 2 + 12.0) * radial
        linear = rng.uniform() < 0.5
        if linear:
            pattern = "linear"
            semi = np.array([1.1, 1.3, max(5.5, 0.3 * np.linalg.norm(v.frame.origin - w.frame.origin))])
        else:
            semi = np.array([1.8, 2.0, 2.2])
        c = _push(c0, -radial, semi[0], bone)
        if c is None:
            return None
        axes = np.stack([radial, np.cross(f.u, radial), f.u], 1)
        lobes = [Ellipsoid(c, axes, semi)]
    elif subsite == "intervertebral_disc":
        f, d = _level_frame(v, w, td)
        h = v.disc_below / 2 + 0.3                # fills the disc, against both end plates
        x = rng.uniform(-0.25, 0.25) * d["W"] / 2
        y = d["D"] / 2 + d["cy"] + rng.uniform(-0.1, 0.3) * d["D"] / 2
        lobes = [Ellipsoid(f.to_ras(x, y, 0.0), np.stack([f.r, f.a, f.u], 1), [2.6, 2.3, h])]
    elif subsite == "posterior_longitudinal_ligament":
        f, d = _level_frame(v, w, 0.5 * td)
        c0 = f.to_ras(rng.uniform(-0.3, 0.3) * d["cx"], 0.0, 0.0)
        c = _push(c0, f.a, 1.5, bone)
        if c is None:
            return None
        lobes = [Ellipsoid(c, np.stack([f.r, f.a, f.u], 1), [2.0, 1.5, 1.8])]
    elif subsite == "costotransverse":
        side = rng.choice([-1, 1])
        tip = tp_tip(v, side)
        # at the joint between the process's tip and the rib's tubercle, in the angle the
        # two bones make below it (periarticular), against both
        rr = 4.5 if int(v.name[1:]) <= 10 else 3.8
        tr = v.tp[2]
        tub = tip + (tr + rr + 2.5) * v.frame.a + side * (-3.0) * v.frame.r - 2.0 * v.frame.u
        dirn = _unit(tub - tip)
        mid = tip + (tr + 1.25) * dirn
        c = _push(mid - 9.0 * v.frame.u, v.frame.u, 2.0, bone)
        if c is None:
            return None
        lobes = [Ellipsoid(c, eye, [2.0, 2.0, 2.0])]
    elif subsite == "transverse_process":
        side = rng.choice([-1, 1])
        tip = tp_tip(v, side)
        root = v.frame.to_ras(side * (v.cx + 5), v.canal_y, 0.1 * v.H)
        # under the process (towards the level below), pushed up against it; at
        # thoracic levels half-way out, clear of the rib's tubercle at the tip
        frac = 0.45 if v.name.startswith("T") else 0.6
        c0 = root + frac * (tip - root) - v.frame.u * (v.tp[2] + 8.0)
        c = _push(c0, v.frame.u, 1.8, bone)
        if c is None:
            return None
        lobes = [Ellipsoid(c, eye, [1.8, 1.8, 1.8])]
    elif subsite == "interspinous":
        frac = rng.uniform(0.3, 0.45)
        a, b = spinous_point(v, frac), spinous_point(w, frac)
        c0 = 0.5 * (a + b)
        c = _push(c0, a - c0, 1.8, bone)
        if c is None:
            return None
        lobes = [Ellipsoid(c, eye, [1.8, 2.0, 1.8])]
    elif subsite == "facet_joint":
        if not ph.spec.facets:
            return None
        # at the joint's capsule where it opens laterally (and back, at a lumbar joint),
        # pushed into the joint space against both articular processes
        j = facet_joint(v, w, int(rng.choice([-1, 1])))
        semi = float(rng.uniform(1.8, 2.3))
        c = _push(j["centre"] + 9.0 * j["out"], -j["out"], semi, bone)
        if c is None:
            return None
        lobes = [Ellipsoid(c, eye, [semi, semi, semi * 1.2])]
    else:  # pragma: no cover
        return None
    return Calcification("", "spinal", lobes, hu, level, subsite, pattern)


TOUCHING_SCHEDULE = ("anterior_longitudinal_ligament", "costotransverse", "intervertebral_disc", "facet_joint",
                     "transverse_process", "posterior_longitudinal_ligament", "interspinous")


def place_touching(ph: SpinePhantom, rng) -> None:
    """One calcification against bone per level, the sub-sites in turn (costotransverse
    only at thoracic levels, thin-disc ones where the disc is under 6 mm when there is one)."""
    from .anatomy import LEVELS
    from .phantom import COVERAGES
    bone, _, vessel = _bone_sdf_factory(ph)
    names = [v.name for v in ph.vertebrae]
    top, bottom = COVERAGES[ph.spec.coverage]
    levels = [lv for lv in LEVELS if names.index(lv.split("-")[0]) >= names.index(top)
              and names.index(lv.split("-")[1]) <= names.index(bottom)]
    placed = 0
    cursor = int(rng.integers(len(TOUCHING_SCHEDULE)))
    osteo = [c for prims in ph.osteophyte_prims.values() for c in prims]
    for level in levels:
        v, w = ph.vertebra(level.split("-")[0]), ph.vertebra(level.split("-")[1])
        for tries in range(len(TOUCHING_SCHEDULE)):
            subsite = TOUCHING_SCHEDULE[(cursor + tries) % len(TOUCHING_SCHEDULE)]
            if (subsite == "costotransverse" and not v.name.startswith("T")) or (
                    subsite == "facet_joint" and not ph.spec.facets):
                continue
            calc = _touching(ph, v, w, level, subsite, rng, bone)
            if calc is None:
                continue
            c = calc.lobes[0].center
            # clear of the vessels' walls by the map's vessel margin (3 mm) and a voxel or
            # two: nearer, a reader (and the map) takes it for the wall's
            if vessel(c[None])[0] < 4.5 + float(np.max(calc.lobes[0].semi)):
                continue
            if any(np.linalg.norm(c - o.lobes[0].center) < 12 for o in ph.calcifications if o.kind == "spinal"):
                continue
            if any(cap.sdf(c[None])[0] < 8.0 for cap in osteo):
                continue
            calc.name = f"{level}_{subsite}_touching_{placed + 1}"
            ph.calcifications.append(calc)
            placed += 1
            cursor += tries + 1
            break
    ph.notes.append(f"{placed} calcifications against bone")


def is_touching(name: str) -> bool:
    return "_touching_" in name


# ---------------------------------------------------------------------- noise and labels
def noise_sd_per_slice(ph: SpinePhantom, g: Geometry) -> np.ndarray:
    """Noise SD per array slice (k): the spec's noise, rising linearly over the scan's
    cranial 80 mm to ``shoulder_noise_sd`` (slices are axial in the phantom's grids)."""
    spec = ph.spec
    ks = np.arange(g.shape[0])
    centre_ij = (np.array(g.size_ijk[:2]) - 1) / 2.0
    s = g.ijk_to_ras(np.column_stack([np.full(ks.size, centre_ij[0]), np.full(ks.size, centre_ij[1]), ks]))[:, 2]
    top = ph.scan_s[1]
    ramp = np.clip(1.0 - (top - s) / 80.0, 0.0, 1.0)
    return spec.noise_sd + ramp * (float(spec.shoulder_noise_sd) - spec.noise_sd)


def label_error_field(pts: np.ndarray, error_mm: float, voxel_mm: float, rng) -> np.ndarray:
    """How far (mm) a label's surface moves out at each point: one uniform offset in
    ±``error_mm`` for the structure plus a smooth wobble of half a voxel (three random
    plane waves of 15-30 mm wavelength)."""
    out = np.full(pts.shape[:-1], rng.uniform(-error_mm, error_mm), dtype=np.float64)
    for _ in range(3):
        k = _unit(rng.normal(size=3)) * 2 * np.pi / rng.uniform(15.0, 30.0)
        out += (0.5 * voxel_mm / np.sqrt(3)) * np.sin(pts @ k + rng.uniform(0, 2 * np.pi))
    return out


def hard_spec_kwargs() -> dict:
    """The hard phantom's settings (all the cases above)."""
    return {"bone_touching": True, "thin_discs": True, "osteophytes": 6, "veins": True, "shoulder_noise_sd": 45.0,
            "label_error_mm": 1.0, "facets": True}
